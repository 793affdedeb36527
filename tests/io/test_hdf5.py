import json

import numpy as np
import pytest

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.io import Provenance, read, read_provenance, write
from splinetool.io import hdf5 as hdf5_module


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
    result = two_triangles(anchors=None, verify=None, vertices=many, edge_node=np.zeros(10_000, np.int32))
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


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(group, result):
        group.create_dataset("partial", data=np.zeros(3))
        raise RuntimeError("disk on fire")

    codec = hdf5_module.CODECS[SliceResult]._replace(write=fail)
    monkeypatch.setitem(hdf5_module.CODECS, SliceResult, codec)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write(tmp_path / "run.h5", {"slice": two_triangles()}, PROVENANCE)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    path.write_bytes(b"previous")
    monkeypatch.setitem(hdf5_module.CODECS, SliceResult, hdf5_module.CODECS[SliceResult]._replace(write=None))
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
