import json

import h5py
import numpy as np
import pytest

from splinetool.io import read, slice_codec
from tests.io.test_hdf5 import assert_same
from tests.zoo import slice_grid, slice_parts


def appended(path, parts, meta) -> None:
    with h5py.File(path, "w") as f:
        appender = slice_codec.SliceAppender(f.create_group("slice", track_order=True))
        for part in parts:
            appender.append(part)
        appender.finish(meta)
        assert appender.regions == sum(p.regions for p in parts)


def written(path, result) -> None:
    with h5py.File(path, "w") as f:
        slice_codec.write(f.create_group("slice", track_order=True), result)


def layout(path) -> dict:
    """Every dataset's dtype and shape and every attribute, group by group, in creation order."""
    out = {}
    with h5py.File(path) as f:
        group = f["slice"]
        out["attrs"] = {k: np.asarray(v).tolist() for k, v in group.attrs.items()}
        for name, dataset in group.items():
            attrs = {k: np.asarray(v).tolist() for k, v in dataset.attrs.items()}
            out[name] = (str(dataset.dtype), dataset.shape, attrs)
    return out


def read_group(path):
    with h5py.File(path) as f:
        return slice_codec.read(f["slice"])


@pytest.mark.parametrize("jacobian", [True, False])
def test_appended_parts_read_back_as_one_write_of_the_whole(tmp_path, jacobian):
    whole = slice_grid(9, jacobian=jacobian)
    assert whole.regions == 41 + 2 * 40
    # uneven groups, one of a single tile and one of none
    parts = slice_parts(whole, [1, 1, 40, 41, 100])
    assert [p.regions for p in parts] == [1, 0, 39, 1, 59, 21]
    appended(tmp_path / "parts.h5", parts, whole)
    written(tmp_path / "whole.h5", whole)
    back = read_group(tmp_path / "parts.h5")
    assert_same(whole, back)
    assert_same(read_group(tmp_path / "whole.h5"), back)
    assert layout(tmp_path / "parts.h5") == layout(tmp_path / "whole.h5")


def test_offsets_come_out_global(tmp_path):
    whole = slice_grid(6)
    parts = slice_parts(whole, [5, 17, 30])
    assert all(p.offsets[0] == 0 for p in parts)
    appended(tmp_path / "run.h5", parts, whole)
    with h5py.File(tmp_path / "run.h5") as f:
        offsets = f["slice/offsets"][()]
        vertices = f["slice/vertices"].shape[0]
    assert len(offsets) == whole.regions + 1 == 55
    assert offsets[0] == 0 and offsets[-1] == vertices == 4 * 18 + 6 * 18
    np.testing.assert_array_equal(offsets, whole.offsets)
    assert offsets.dtype == np.int64


def test_a_slice_without_jacobian_norms_stores_none(tmp_path):
    whole = slice_grid(4, jacobian=False)
    written(tmp_path / "run.h5", whole)
    with h5py.File(tmp_path / "run.h5") as f:
        assert "jacobian_norm" not in f["slice"]
        assert "affine_A" in f["slice"]
    assert read_group(tmp_path / "run.h5").jacobian_norm is None


def test_finish_without_tiles_writes_an_empty_slice(tmp_path):
    whole = slice_grid(3)
    appended(tmp_path / "run.h5", [], whole)
    back = read_group(tmp_path / "run.h5")
    assert back.regions == 0
    assert back.offsets.tolist() == [0]
    assert back.vertices.shape == (0, 2) and back.affine_A.shape == (0, 2, 2) and back.codes.shape == (0, 3)
    assert back.jacobian_norm.shape == (0,)
    assert back.boundary.shape == (0, 2, 2)
    assert back.node_names == whole.node_names and back.tiles_per_node == whole.tiles_per_node


def test_bad_parts_are_refused(tmp_path):
    whole = slice_grid(4)
    first, second = slice_parts(whole, [10])
    with h5py.File(tmp_path / "run.h5", "w") as f:
        appender = slice_codec.SliceAppender(f.create_group("slice"))
        appender.append(first)
        second.jacobian_norm = None
        with pytest.raises(ValueError, match="jacobian_norm"):
            appender.append(second)
        global_offsets = slice_parts(whole, [10])[1]
        global_offsets.offsets = global_offsets.offsets + 40
        with pytest.raises(ValueError, match="offsets must run from 0"):
            appender.append(global_offsets)
        short = slice_parts(whole, [10])[1]
        short.affine_c = short.affine_c[:-1]
        with pytest.raises(ValueError, match="affine_c"):
            appender.append(short)
        assert appender.regions == 10
        appender.finish(whole)
        with pytest.raises(ValueError, match="finished"):
            appender.append(first)
        assert f["slice/offsets"].shape == (11,)


def test_datasets_are_chunked_and_compressed(tmp_path):
    written(tmp_path / "run.h5", slice_grid(5))
    with h5py.File(tmp_path / "run.h5") as f:
        for name in slice_codec.ARRAYS:
            dataset = f["slice"][name]
            assert dataset.chunks is not None and dataset.maxshape[0] is None, name
            assert dataset.compression == "gzip", name


def test_read_part_gives_local_offsets_and_its_rows(tmp_path):
    whole = slice_grid(5)
    written(tmp_path / "run.h5", whole)
    with h5py.File(tmp_path / "run.h5") as f:
        part = slice_codec.read_part(f["slice"], 7, 12, slice(2, 4))
    first, last = whole.offsets[7], whole.offsets[12]
    np.testing.assert_array_equal(part.offsets, whole.offsets[7:13] - first)
    np.testing.assert_array_equal(part.vertices, whole.vertices[first:last])
    np.testing.assert_array_equal(part.edge_node, whole.edge_node[first:last])
    np.testing.assert_array_equal(part.codes, whole.codes[7:12])
    np.testing.assert_array_equal(part.jacobian_norm, whole.jacobian_norm[7:12])
    np.testing.assert_array_equal(part.boundary, whole.boundary[2:4])
    assert part.regions == 5


def test_the_io_package_reads_what_the_codec_wrote(tmp_path):
    path = tmp_path / "run.h5"
    written(path, slice_grid(3))
    with h5py.File(path, "a") as f:
        f["slice"].attrs["encoding-type"] = slice_codec.ENCODING_TYPE
        f["slice"].attrs["encoding-version"] = slice_codec.ENCODING_VERSION
    assert_same(slice_grid(3), read(path)["slice"])


def test_files_with_contiguous_datasets_still_read(tmp_path):
    """Files from before the datasets grew in chunks: plain datasets, jacobian_norm among them."""
    whole = slice_grid(3)
    with h5py.File(tmp_path / "old.h5", "w") as f:
        group = f.create_group("slice")
        for name in ["vertices", "offsets", "affine_A", "affine_c", "jacobian_norm", "boundary", "edge_node"]:
            group.create_dataset(name, data=getattr(whole, name))
        codes = group.create_dataset("codes", data=whole.codes)
        codes.attrs["node_names"] = whole.node_names
        codes.attrs["node_kinds"] = whole.node_kinds
        codes.attrs["node_code_bits"] = whole.node_code_bits
        group.create_dataset("tiles_per_node", data=np.asarray(whole.tiles_per_node))
        for name in ["origin", "directions", "domain", "norm", "seconds", "anchors"]:
            group.attrs[name] = getattr(whole, name)
        group.attrs["verify"] = json.dumps(whole.verify)
        assert group["vertices"].chunks is None
    assert_same(whole, read_group(tmp_path / "old.h5"))
