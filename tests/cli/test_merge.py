"""`--shard i/n` and `splinetool merge`: merged shards equal the unshared run; merge refuses bad sets."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.io import read, read_provenance
from tests.cluster_helpers import ANCHORS, MOONS, TRAJECTORY, assert_same_file, small_digits

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def lc_args(data, *checkpoints):
    return [
        "local-complexity",
        *checkpoints,
        "--data",
        data,
        "--split",
        "train,test",
        "--random",
        "7",
        "--frame",
        "per-point",
        "--directions",
        "6",
        "--seed",
        "5",
        "-q",
    ]


@pytest.fixture(scope="module")
def lc_shards(tmp_path_factory):
    """An unshared trajectory run and its three shards."""
    folder = tmp_path_factory.mktemp("lc")
    data = small_digits(folder / "digits.npz")
    args = lc_args(data, *TRAJECTORY[:2])
    assert invoke(*args, "-o", folder / "whole.h5").exit_code == 0
    shards = [folder / f"shard{i}.h5" for i in range(3)]
    for i, path in enumerate(shards):
        result = invoke(*args[:-1], "--json", "--shard", f"{i}/3", "-o", path)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["items"] == [[0, 19], [19, 38], [38, 58]][i]  # 30 + 21 + 7 points
    return folder, data, args, shards


def test_merged_trajectory_shards_equal_the_unshared_run(lc_shards, tmp_path):
    folder, _, _, shards = lc_shards
    merged = tmp_path / "merged.h5"
    result = invoke("merge", shards[2], shards[0], shards[1], "-o", merged)  # any order
    assert result.exit_code == 0, result.output
    assert_same_file(merged, folder / "whole.h5")
    whole = read(folder / "whole.h5")["local_complexity"]
    assert 0 < whole.accuracy[0, 1] < 1  # the shuffled test labels: hits from every shard add up
    assert read_provenance(merged)["command"] == "local-complexity"
    # a shard holds exactly its points' rows of the unshared result
    part = read(shards[1])["local_complexity"]
    assert np.array_equal(part.per_point, whole.per_point[:, 19:38])


def test_merge_refuses_a_missing_share(lc_shards, tmp_path):
    _, _, _, shards = lc_shards
    result = invoke("merge", shards[0], shards[2], "-o", tmp_path / "m.h5")
    assert result.exit_code == 2 and "missing share(s) 1 of 3" in result.stderr
    assert not (tmp_path / "m.h5").exists()


def test_merge_refuses_a_duplicated_share(lc_shards, tmp_path):
    _, _, _, shards = lc_shards
    copy = tmp_path / "again.h5"
    shutil.copy(shards[1], copy)
    result = invoke("merge", *shards, copy, "-o", tmp_path / "m.h5")
    assert result.exit_code == 2 and "share 1/3 is given twice" in result.stderr
    assert not (tmp_path / "m.h5").exists()


def test_merge_refuses_other_parameters(lc_shards, tmp_path):
    _, data, args, shards = lc_shards
    other = tmp_path / "other.h5"
    assert invoke(*args, "--radius", "0.3", "--shard", "1/3", "-o", other).exit_code == 0
    result = invoke("merge", shards[0], other, shards[2], "-o", tmp_path / "m.h5")
    assert result.exit_code == 2
    assert "other parameters" in result.stderr and "radius: None vs 0.3" in result.stderr
    assert not (tmp_path / "m.h5").exists()


def test_merge_refuses_other_checkpoint_contents(lc_shards, tmp_path):
    _, data, _, shards = lc_shards
    # the same file names and options, but one checkpoint's contents changed between the shards
    checkpoints = [tmp_path / p.name for p in TRAJECTORY[:2]]
    for source, target in zip(TRAJECTORY, checkpoints):
        shutil.copy(source, target)
    args = lc_args(data, *checkpoints)
    assert invoke(*args, "--shard", "0/2", "-o", tmp_path / "a.h5").exit_code == 0
    shutil.copy(TRAJECTORY[2], checkpoints[1])
    assert invoke(*args, "--shard", "1/2", "-o", tmp_path / "b.h5").exit_code == 0
    result = invoke("merge", tmp_path / "a.h5", tmp_path / "b.h5", "-o", tmp_path / "m.h5")
    assert result.exit_code == 2 and "other checkpoint contents" in result.stderr
    assert not (tmp_path / "m.h5").exists()


def test_merge_refuses_a_file_that_is_not_a_shard(lc_shards, tmp_path):
    folder, _, _, shards = lc_shards
    result = invoke("merge", shards[0], folder / "whole.h5", "-o", tmp_path / "m.h5")
    assert result.exit_code == 2 and "is not a shard file" in result.stderr


@pytest.mark.parametrize(
    ("shard", "message"),
    [("2", "expected i/n"), ("3/3", "expected 0 <= i < n"), ("0/0", "expected 0 <= i < n")],
)
def test_bad_shard_option(lc_shards, tmp_path, shard, message):
    _, _, args, _ = lc_shards
    result = invoke(*args, "--shard", shard, "-o", tmp_path / "s.h5")
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "s.h5").exists()


def test_shard_needs_an_output_and_the_whole_result_options(lc_shards, tmp_path):
    _, _, args, _ = lc_shards
    assert "give -o FILE.h5" in invoke(*args, "--shard", "0/2").stderr
    result = invoke(*args, "--shard", "0/2", "-o", tmp_path / "s.h5", "--max-lc", "3")
    assert result.exit_code == 2 and "--max-lc need(s) all of it" in result.stderr


def test_slice_plane_list_shards_merge_to_the_unshared_run(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS)
    args = ["slice", MOONS, "--anchors-list", anchors, "-q"]
    assert invoke(*args, "-o", tmp_path / "whole.h5").exit_code == 0
    for i in range(2):
        assert invoke(*args, "--shard", f"{i}/2", "-o", tmp_path / f"s{i}.h5").exit_code == 0
    assert invoke("merge", tmp_path / "s0.h5", tmp_path / "s1.h5", "-o", tmp_path / "m.h5").exit_code == 0
    assert_same_file(tmp_path / "m.h5", tmp_path / "whole.h5")
    assert [s.regions for s in read(tmp_path / "s1.h5")["slice"].slices] == [
        s.regions for s in read(tmp_path / "whole.h5")["slice"].slices[1:]
    ]
