"""The slice_list encoding: one slice subgroup per plane, read back plane for plane."""

import h5py
import numpy as np

from splinetool.analyses.slice import SliceList
from splinetool.io import read, slice_codec, slice_list_codec, write
from tests.io.test_hdf5 import PROVENANCE, assert_same
from tests.zoo import slice_grid


def written(path, result: SliceList) -> None:
    with h5py.File(path, "w") as f:
        slice_list_codec.write(f.create_group("slice", track_order=True), result)


def test_planes_read_back_in_order(tmp_path):
    planes = [slice_grid(n, seed=n, jacobian=n != 4) for n in (2, 4, 3)]
    written(tmp_path / "run.h5", SliceList(planes))
    with h5py.File(tmp_path / "run.h5") as f:
        group = f["slice"]
        assert int(group.attrs["planes"]) == 3
        assert list(group) == ["0000", "0001", "0002"]
        for name in group:
            assert group[name].attrs["encoding-type"] == slice_codec.ENCODING_TYPE
        back = slice_list_codec.read(group)
    assert [p.regions for p in back.slices] == [p.regions for p in planes] == [6, 24, 13]
    for plane, one in zip(planes, back.slices):
        assert_same(plane, one)


def test_plane_names_sort_as_the_planes():
    names = [slice_list_codec.plane_name(i) for i in (0, 9, 10, 1234)]
    assert names == ["0000", "0009", "0010", "1234"] and sorted(names) == names


def test_an_empty_list_reads_back_empty(tmp_path):
    written(tmp_path / "run.h5", SliceList([]))
    with h5py.File(tmp_path / "run.h5") as f:
        assert int(f["slice"].attrs["planes"]) == 0
        assert slice_list_codec.read(f["slice"]).slices == []


def test_the_io_package_writes_and_reads_the_list_under_its_encoding(tmp_path):
    planes = [slice_grid(2), slice_grid(3, seed=1)]
    write(tmp_path / "run.h5", {"slice": SliceList(planes)}, PROVENANCE)
    with h5py.File(tmp_path / "run.h5") as f:
        assert f["slice"].attrs["encoding-type"] == slice_list_codec.ENCODING_TYPE
        assert f["slice"].attrs["encoding-version"] == slice_list_codec.ENCODING_VERSION
    (back,) = read(tmp_path / "run.h5").values()
    assert isinstance(back, SliceList) and len(back.slices) == 2
    np.testing.assert_array_equal(back.slices[1].vertices, planes[1].vertices)
    assert_same(planes[0], back.slices[0])
