"""`local-complexity --exact-planes` from the shell: JSON, table, HDF5, trajectories, shards, bad input."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.analyses import local_complexity as lc
from splinetool.cli import app
from splinetool.data.loading import load_data
from splinetool.frontends.loading import load_model
from splinetool.io import read
from splinetool.ir import lower
from tests.cluster_helpers import MOONS, TRAJECTORY, assert_same_file
from tests.refusal import refused

runner = CliRunner()
MOONS_ARGS = ["local-complexity", MOONS, "--data", "moons:24", "--directions", "2", "--exact-planes", "2"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    return result


def test_json_table_and_hdf5_carry_the_exact_counts_beside_the_proxy(tmp_path):
    out = tmp_path / "lc.h5"
    payload = json.loads(invoke(*MOONS_ARGS, "--json", "-o", out).stdout)
    stored = read(out)["local-complexity"]
    assert stored.exact.shape == (1, 24, 2)
    # on a 2-D input every plane through x is the input plane itself: its K planes give one disc
    np.testing.assert_array_equal(stored.exact[0, :, 0], stored.exact[0, :, 1])
    # the same counts from the library, on a network lowered here
    net = lower(load_model(MOONS)).to(dtype=torch.float64)
    points = load_data("moons:24").x
    direct = lc.run(
        net,
        [lc.PointSet("data", points)],
        lc.LCOptions(directions=2, radius=payload["radius"], exact_planes=2),
    )
    np.testing.assert_array_equal(stored.exact, direct.exact)
    assert payload["exact_planes"] == 2 and payload["exact_tiles"] == direct.exact_tiles
    assert payload["exact_mean"] == pytest.approx(direct.exact.mean())
    assert payload["exact_spearman"] == pytest.approx(lc.spearman(direct.lc(0), direct.exact_mean(0)))
    assert stored.exact.min() >= 1 and payload["exact_mean"] > 1  # some discs hold several tiles
    table = invoke(*MOONS_ARGS).stdout
    assert f"{payload['exact_mean']:.3f}" in table and f"{payload['exact_spearman']:.3f}" in table
    assert "Spearman ρ (LC, exact)" in table and "2 random planes per point" in table and "tiles/s" in table


def test_a_trajectory_shows_the_exact_mean_and_correlation_per_checkpoint(tmp_path):
    data = tmp_path / "few.npz"
    with np.load(TRAJECTORY[0].parent.parent / "data" / "digits.npz") as f:
        np.savez(data, x=f["x_test"][:6])
    args = ["local-complexity", *TRAJECTORY[:2], "--data", data, "--directions", "4", "--exact-planes", "1"]
    payload = json.loads(invoke(*args, "--json").stdout)
    entries = payload["checkpoints"]
    assert [e["step"] for e in entries] == [0, 100] and all(e["exact_mean"] >= 1 for e in entries)
    table = invoke(*args).stdout
    assert "exact data" in table and "ρ data" in table and "1 random plane per point" in table
    for entry in entries:
        assert f"{entry['exact_mean']:.3f}" in table


def test_merged_shards_equal_one_process(tmp_path):
    whole = tmp_path / "whole.h5"
    invoke(*MOONS_ARGS, "-q", "-o", whole)
    shards = [tmp_path / f"shard{i}.h5" for i in range(3)]
    for i, path in enumerate(shards):
        invoke(*MOONS_ARGS, "-q", "--shard", f"{i}/3", "-o", path)
    merged = tmp_path / "merged.h5"
    invoke("merge", *shards, "-o", merged)
    assert_same_file(merged, whole)  # the counts, their means and correlations, the tiles partitioned
    assert read(merged)["local-complexity"].exact.shape == (1, 24, 2)


@pytest.mark.parametrize("planes", ["0", "-3"])
def test_no_planes_exits_2_and_writes_nothing(tmp_path, planes):
    args = [*MOONS_ARGS[:-1], planes, "-o", tmp_path / "lc.h5"]
    line = refused(*args, names="--exact-planes", folder=tmp_path)
    assert f"--exact-planes {planes}: expected a positive number of planes" in line


def test_more_planes_than_memory_holds_exits_2_before_measuring(tmp_path):
    args = [*MOONS_ARGS[:-1], "100000000000", "-o", tmp_path / "lc.h5"]
    line = refused(*args, names="--exact-planes", folder=tmp_path)
    assert "planes around each of 24 points" in line and "fewer --exact-planes" in line
