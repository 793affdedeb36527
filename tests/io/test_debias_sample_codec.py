"""The debias-sample encoding: what goes into the HDF5 group comes back as the same DebiasResult."""

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from splinetool.analyses import debias_sample as ds
from splinetool.io import Provenance, read, write
from splinetool.ir import lower
from tests.zoo import mlp

PROVENANCE = Provenance("debias-sample", ["debias-sample", "g.pt"], "ab" * 32, "cpu", 0)


def result(**options) -> ds.DebiasResult:
    torch.manual_seed(0)
    net = lower(mlp((3, 8, 12)).double(), (3,)).to(dtype=torch.float64)
    return ds.run(net, ds.DebiasOptions(6, 40, **options))


def assert_same(a: ds.DebiasResult, b: ds.DebiasResult) -> None:
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value)
        else:
            assert other == value, name


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rho": (-1.0, 0.0, 2.0), "top_k": 2, "proj_dim": 5, "replace": True, "output_shape": (1, 3, 4)},
    ],
    ids=["one rho", "several rho, projected, images"],
)
def test_round_trip(tmp_path, options):
    path = tmp_path / "debias.h5"
    original = result(**options)
    write(path, {"debias-sample": original}, PROVENANCE)
    back = read(path)["debias-sample"]
    assert isinstance(back, ds.DebiasResult)
    assert_same(original, back)
    assert back.summary() | {"seconds": 0} == original.summary() | {"seconds": 0}
    with h5py.File(path) as f:
        group = f["debias-sample"]
        rows = len(original.rho)
        assert group["latents"].shape == (rows, 6, 3)
        np.testing.assert_array_equal(group["latents"][()], original.latents)
        assert group["samples"].shape == (rows, 6, *original.output_shape)
        assert group["baseline_samples"].shape == (6, *original.output_shape)
        for name in ("pool_latents", "log_volume", "singular_values", "weights", "selected_index"):
            assert name in group


def test_share_round_trip_and_combine(tmp_path):
    torch.manual_seed(0)
    net = lower(mlp((3, 8, 12)).double(), (3,)).to(dtype=torch.float64)
    plan = ds.plan(net, ds.DebiasOptions(4, 30, (-1.0, 2.0), top_k=2, proj_dim=5, output_shape=(1, 3, 4)))
    shares = [ds.measure_share(net, plan, rows) for rows in (range(0, 15), range(15, 30))]
    back = []
    for i, share in enumerate(shares):
        write(tmp_path / f"s{i}.h5", {"debias-sample": share}, PROVENANCE)
        back.append(read(tmp_path / f"s{i}.h5")["debias-sample"])
    for share, other in zip(shares, back):
        assert isinstance(other, ds.PoolShare) and other.start == share.start
        for name in ("latents", "candidates", "outputs"):
            np.testing.assert_array_equal(getattr(other, name), getattr(share, name))
        for name, value in vars(share.measures).items():
            np.testing.assert_array_equal(getattr(other.measures, name), value)
        for name, value in vars(share.plan).items():
            stored = getattr(other.plan, name)
            assert np.array_equal(stored, value) if isinstance(value, np.ndarray) else stored == value, name
    assert_same(replace(ds.combine(back), seconds=0), replace(ds.combine(shares), seconds=0))
