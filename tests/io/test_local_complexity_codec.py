"""The local-complexity encoding: what goes into the HDF5 group comes back as the same LCResult."""

import h5py
import numpy as np
import pytest

from splinetool.analyses.local_complexity import LCResult
from splinetool.io import Provenance, read, write

PROVENANCE = Provenance("local-complexity", ["local-complexity", "m.pt"], "cd" * 32, "cpu", 3)


def result(**overrides) -> LCResult:
    rng = np.random.default_rng(0)
    fields = dict(
        per_point=rng.integers(0, 9, size=(2, 7, 3)).astype(np.int32),
        node_names=["a.relu", "b.relu", "pool"],
        node_kinds=["relu", "hardtanh", "maxpool"],
        node_units=[10, 20, 4],
        set_names=["train", "random"],
        set_offsets=np.array([0, 5, 7]),
        accuracy=np.array([[0.5, np.nan], [1.0, np.nan]]),
        checkpoints=["step-1.pt", "step-10.pt"],
        checkpoint_sha256=["ab" * 32, "ef" * 32],
        steps=[1, 10],
        radius=0.125,
        radius_rule="given with --radius",
        directions=2,
        frame="shared",
        frame_vectors=np.eye(2, 6),
        include_output=False,
        seed=3,
        dtype="float64",
        seconds=1.5,
    )
    return LCResult(**(fields | overrides))


def assert_same(a: LCResult, b: LCResult) -> None:
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value)
        else:
            assert other == value, name


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"steps": None, "frame": "per-point", "frame_vectors": None, "include_output": True},
        {
            "exact": np.arange(2 * 7 * 3, dtype=np.int32).reshape(2, 7, 3) % 5,
            "exact_tiles": 90,
            "exact_seconds": 0.5,
        },
    ],
    ids=["trajectory", "per-point frames", "exact counts"],
)
def test_round_trip(tmp_path, overrides):
    path = tmp_path / "lc.h5"
    original = result(**overrides)
    write(path, {"local-complexity": original}, PROVENANCE)
    back = read(path)["local-complexity"]
    assert isinstance(back, LCResult)
    assert_same(original, back)
    assert back.stats(1, "train") == original.stats(1, "train")


def test_layout_names_its_axes(tmp_path):
    path = tmp_path / "lc.h5"
    write(path, {"local-complexity": result()}, PROVENANCE)
    with h5py.File(path) as f:
        group = f["local-complexity"]
        assert group.attrs["encoding-type"] == "splinetool.local_complexity"
        assert list(group["per_point"].attrs["dims"]) == ["checkpoint", "point", "node"]
        assert group["directions"].shape == (2, 6) and group.attrs["radius"] == 0.125


def test_exact_counts_are_stored_per_plane_with_their_mean_and_correlation(tmp_path):
    path = tmp_path / "lc.h5"
    exact = np.random.default_rng(1).integers(1, 9, size=(2, 7, 3)).astype(np.int32)
    original = result(exact=exact, exact_tiles=90, exact_seconds=0.5)
    write(path, {"local-complexity": original}, PROVENANCE)
    with h5py.File(path) as f:
        group = f["local-complexity/exact"]
        np.testing.assert_array_equal(group["counts"][()], exact)
        assert list(group["counts"].attrs["dims"]) == ["checkpoint", "point", "plane"]
        np.testing.assert_allclose(group["mean"][()], exact.mean(axis=2))
        rho = [[original.stats(c, s)["exact_spearman"] for s in ("train", "random")] for c in range(2)]
        np.testing.assert_allclose(group["spearman"][()], np.array(rho, dtype=np.float64))
        assert group.attrs["tiles"] == 90
    write(tmp_path / "plain.h5", {"local-complexity": result()}, PROVENANCE)
    with h5py.File(tmp_path / "plain.h5") as f:
        assert "exact" not in f["local-complexity"]
