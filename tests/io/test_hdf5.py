import dataclasses
import json

import numpy as np
import pytest

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.io import Provenance, iter_slice, read, read_provenance, slice_info, stream, write
from splinetool.io.commands import KINDS
from tests.zoo import joined_slices, slice_grid, slice_parts


def two_triangles(**overrides) -> SliceResult:
    """The unit square cut along its diagonal by one neuron of a one-node network."""
    fields = dict(
        vertices=np.array([[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [0, 1]], dtype=np.float64),
        offsets=np.array([0, 3, 6]),
        codes=np.array([[0b10000000], [0]], dtype=np.uint8),
        affine_A=np.array([[[1.0, 0.0]], [[0.0, 1.0]]]),
        affine_c=np.array([[0.5], [-0.5]]),
        jacobian_norm=np.array([1.0, 2.0]),
        edge_node=np.array([-1, -1, 0, 0, -1, -1], dtype=np.int32),
        boundary=np.array([[[0.5, 0.0], [0.5, 0.5]]]),
        origin=np.zeros(4),
        directions=np.eye(2, 4),
        domain=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64),
        node_names=["relu"],
        node_kinds=["relu"],
        node_code_bits=[1],
        norm="fro",
        anchors=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        tiles_per_node=[2],
        seconds=0.25,
        verify={"points": 20, "passed": True},
    )
    return SliceResult(**(fields | overrides))


PROVENANCE = Provenance(
    command="slice",
    argv=["slice", "model.pt", "-o", "run.h5"],
    checkpoint_sha256="ab" * 32,
    device="cpu",
    seed=7,
)


def assert_same(a: SliceResult, b: SliceResult) -> None:
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value)
            assert other.dtype == value.dtype, name
        else:
            assert other == value, name


def test_round_trip_gives_the_same_result(tmp_path):
    path = tmp_path / "run.h5"
    result = two_triangles()
    write(path, {"slice": result}, PROVENANCE)
    back = read(path)
    assert list(back) == ["slice"]
    assert isinstance(back["slice"], SliceResult)
    assert_same(result, back["slice"])


def test_round_trip_without_optional_fields_and_with_large_arrays(tmp_path):
    path = tmp_path / "run.h5"
    many = np.random.default_rng(0).normal(size=(10_000, 2))
    result = two_triangles(
        anchors=None,
        verify=None,
        vertices=many,
        offsets=np.array([0, 3, 10_000]),
        edge_node=np.zeros(10_000, np.int32),
    )
    write(path, {"slice": result}, PROVENANCE)
    assert_same(result, read(path)["slice"])


def test_root_attributes_and_encoding(tmp_path):
    import h5py

    path = tmp_path / "run.h5"
    write(path, {"slice": two_triangles()}, PROVENANCE)
    attrs = read_provenance(path)
    assert attrs["command"] == "slice"
    assert attrs["argv"] == PROVENANCE.argv
    assert attrs["checkpoint_sha256"] == "ab" * 32
    assert attrs["device"] == "cpu"
    assert attrs["seed"] == 7
    assert attrs["splinetool_version"]
    assert attrs["torch_version"]
    assert attrs["created_utc"].endswith("+00:00")
    with h5py.File(path) as f:
        group = f["slice"]
        assert group.attrs["encoding-type"] == "splinetool.slice"
        assert group.attrs["encoding-version"] == "0.1.0"
        assert list(group["codes"].attrs["node_names"]) == ["relu"]
        assert json.loads(group.attrs["verify"]) == {"points": 20, "passed": True}


def _replace_codec(monkeypatch, **parts):
    kind = KINDS[SliceResult]
    monkeypatch.setitem(KINDS, SliceResult, dataclasses.replace(kind, codec=kind.codec._replace(**parts)))


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(group, result):
        group.create_dataset("partial", data=np.zeros(3))
        raise RuntimeError("disk on fire")

    _replace_codec(monkeypatch, write=fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write(tmp_path / "run.h5", {"slice": two_triangles()}, PROVENANCE)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    path.write_bytes(b"previous")
    _replace_codec(monkeypatch, write=None)
    with pytest.raises(TypeError):
        write(path, {"slice": two_triangles()}, PROVENANCE)
    assert list(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == b"previous"


def test_missing_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        write(tmp_path / "nowhere" / "run.h5", {"slice": two_triangles()}, PROVENANCE)


@pytest.mark.parametrize("content", [None, b"not an hdf5 file at all"])
def test_unreadable_file_is_a_usage_error(tmp_path, content):
    path = tmp_path / "run.h5"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match="run.h5"):
        read(path)
    with pytest.raises(UsageError, match="run.h5"):
        read_provenance(path)


def test_unknown_encoding_is_a_usage_error(tmp_path):
    import h5py

    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f.create_group("mystery").attrs["encoding-type"] = "someone.else"
    with pytest.raises(UsageError, match=r"run.h5.*someone.else|someone.else.*run.h5"):
        read(path)


def streamed(path, parts, whole, **options) -> None:
    with stream(path, PROVENANCE, **options) as appender:
        for part in parts:
            appender.append(part)
        appender.finish(whole)


def test_a_streamed_file_reads_back_as_the_written_whole(tmp_path):
    whole = slice_grid(7)
    streamed(tmp_path / "streamed.h5", slice_parts(whole, [3, 30, 31]), whole)
    write(tmp_path / "written.h5", {"slice": whole}, PROVENANCE)
    back = read(tmp_path / "streamed.h5")
    assert list(back) == ["slice"]
    assert_same(whole, back["slice"])
    assert_same(read(tmp_path / "written.h5")["slice"], back["slice"])
    streamed_attrs, written_attrs = (
        read_provenance(tmp_path / "streamed.h5"),
        read_provenance(tmp_path / "written.h5"),
    )
    assert streamed_attrs.keys() == written_attrs.keys()
    assert {k: v for k, v in streamed_attrs.items() if k != "created_utc"} == {
        k: v for k, v in written_attrs.items() if k != "created_utc"
    }
    assert streamed_attrs["argv"] == PROVENANCE.argv and streamed_attrs["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.h5", "written.h5"]


def test_stream_takes_a_group_name_and_root_attributes(tmp_path):
    import h5py

    whole = slice_grid(2, jacobian=False)
    streamed(tmp_path / "run.h5", [whole], whole, name="plane", attrs={"note": "x"})
    with h5py.File(tmp_path / "run.h5") as f:
        assert list(f) == ["plane"]
        assert f.attrs["note"] == "x"
        assert f["plane"].attrs["encoding-type"] == "splinetool.slice"
        assert f["plane"].attrs["encoding-version"] == "0.1.0"
    assert read(tmp_path / "run.h5")["plane"].jacobian_norm is None


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("existing", [None, b"previous"])
def test_an_interrupted_stream_leaves_nothing_and_keeps_the_previous_file(tmp_path, error, existing):
    path = tmp_path / "run.h5"
    if existing is not None:
        path.write_bytes(existing)
    whole = slice_grid(4)
    with pytest.raises(error), stream(path, PROVENANCE) as appender:
        appender.append(slice_parts(whole, [5])[0])
        assert len(list(tmp_path.iterdir())) == (2 if existing else 1)  # the temporary file
        raise error("stopped")
    assert list(tmp_path.iterdir()) == ([path] if existing else [])
    if existing is not None:
        assert path.read_bytes() == existing


def test_a_stream_left_unfinished_writes_nothing(tmp_path):
    whole = slice_grid(2)
    with pytest.raises(RuntimeError, match="finish"), stream(tmp_path / "run.h5", PROVENANCE) as appender:
        appender.append(whole)
    assert list(tmp_path.iterdir()) == []


def test_only_slices_stream(tmp_path):
    from splinetool.analyses.slice import SliceList

    with (
        pytest.raises(TypeError, match="SliceList"),
        stream(tmp_path / "run.h5", PROVENANCE, result_type=SliceList),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("jacobian", [True, False])
def test_paged_reading_gives_the_whole_back(tmp_path, jacobian):
    path = tmp_path / "run.h5"
    whole = slice_grid(8, jacobian=jacobian)
    streamed(path, slice_parts(whole, [60]), whole)
    info = slice_info(path)
    assert (info.regions, info.vertices, info.boundary_segments) == (96, 4 * 32 + 6 * 32, 24)
    assert info.jacobian_norm is jacobian
    assert info.tile_bytes > 3 + 2 * 2 * 8 + 2 * 8  # codes, affine_A and affine_c at least
    parts = list(iter_slice(path, tiles=25))
    assert [p.regions for p in parts] == [25, 25, 25, 21]
    assert [len(p.boundary) for p in parts] == [6, 6, 6, 6]
    for part in parts:
        assert part.offsets[0] == 0 and part.offsets[-1] == len(part.vertices) == len(part.edge_node)
        assert (part.jacobian_norm is None) is not jacobian
    assert_same(whole, joined_slices(parts))
    (one,) = iter_slice(path, tiles=1000)
    assert_same(whole, one)


def test_paged_reading_of_one_plane_of_a_list(tmp_path):
    from splinetool.analyses.slice import SliceList

    path = tmp_path / "run.h5"
    planes = [slice_grid(3, seed=0), slice_grid(5, seed=1)]
    write(path, {"slice": SliceList(planes)}, PROVENANCE)
    assert slice_info(path, "slice/0001").regions == planes[1].regions == 37
    assert_same(planes[1], joined_slices(list(iter_slice(path, "slice/0001", tiles=10))))


def test_paged_reading_of_an_empty_slice(tmp_path):
    path = tmp_path / "run.h5"
    streamed(path, [], slice_grid(2))
    (part,) = iter_slice(path)
    assert part.regions == 0 and part.vertices.shape == (0, 2) and len(part.boundary) == 0


def test_paged_reading_refuses_what_is_not_a_slice(tmp_path):
    from tests.zoo import bn_density_result

    path = tmp_path / "run.h5"
    write(path, {"bn": bn_density_result()}, PROVENANCE)
    with pytest.raises(UsageError, match="no group 'slice'"):
        slice_info(path)
    with pytest.raises(UsageError, match="bn_density"):
        iter_slice(path, "bn")
    with pytest.raises(UsageError, match="at least 1"):
        iter_slice(path, tiles=0)
    with pytest.raises(UsageError, match="no such file"):
        iter_slice(tmp_path / "missing.h5")


@pytest.mark.parametrize(
    "command, old, new",
    [
        ("count-regions", "count", "count-regions"),
        ("debias-sample", "debias", "debias-sample"),
        ("local-complexity", "local_complexity", "local-complexity"),
        ("bn-density", "bn_density", "bn-density"),
    ],
)
def test_groups_of_earlier_versions_read_under_the_command_name(tmp_path, command, old, new):
    path = tmp_path / "old.h5"
    write(path, {old: two_triangles()}, Provenance(command, [command], "", "cpu", 0))
    assert list(read(path)) == [new]
    write(path, {old: two_triangles()}, Provenance("slice", ["slice"], "", "cpu", 0))
    assert list(read(path)) == [old]  # another command's group of that name is its own
