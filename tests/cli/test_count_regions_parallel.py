"""count-regions split over segments and plane lists: shards merged, and two torchrun ranks, equal one run."""

import json

import numpy as np
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.io import read
from tests.cli.test_torchrun import torchrun
from tests.cluster_helpers import ANCHORS, MOONS, assert_same_file
from tests.conftest import SAMPLES

DIGITS_MLP = SAMPLES / "digits-mlp.ts.pt"
PAIRS = ["count-regions", DIGITS_MLP, "--data", SAMPLES / "data" / "digits.npz", "--pairs", "random:12"]
ROUNDING = 1e-12  # positions and outputs go through matrix products over batches of other sizes


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_segment_shards_merge_to_the_whole_run(tmp_path):
    assert invoke(*PAIRS, "-q", "-o", tmp_path / "whole.h5").exit_code == 0
    for i in range(3):
        assert invoke(*PAIRS, "-q", "--shard", f"{i}/3", "-o", tmp_path / f"s{i}.h5").exit_code == 0
    shards = [tmp_path / f"s{i}.h5" for i in (2, 0, 1)]
    assert invoke("merge", *shards, "-o", tmp_path / "merged.h5").exit_code == 0
    assert_same_file(tmp_path / "merged.h5", tmp_path / "whole.h5", ROUNDING)
    whole, part = read(tmp_path / "whole.h5")["count-regions"], read(tmp_path / "s1.h5")["count-regions"]
    assert part.pieces.tolist() == whole.pieces[4:8].tolist()
    # distinct regions are recounted over all shares: no share alone sees them all
    assert part.distinct_regions < whole.distinct_regions


def test_plane_list_shards_merge_to_the_whole_run(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS)
    args = ["count-regions", MOONS, "--anchors-list", anchors, "--json"]
    whole = invoke(*args, "-o", tmp_path / "whole.h5")
    assert json.loads(whole.stdout)["regions_per_plane"]["max"] == 1596
    # the moons model's inputs are 2-D: the three planes lie in one, and the second one's square holds
    # the other two, so together they meet its 1,596 regions
    assert json.loads(whole.stdout)["distinct_regions"] == 1596
    for i in range(2):
        assert invoke(*args, "--shard", f"{i}/2", "-o", tmp_path / f"s{i}.h5").exit_code == 0
    assert invoke("merge", tmp_path / "s0.h5", tmp_path / "s1.h5", "-o", tmp_path / "m.h5").exit_code == 0
    assert_same_file(tmp_path / "m.h5", tmp_path / "whole.h5")
    # the same planes as slice's tiles
    merged = read(tmp_path / "m.h5")["count-regions"]
    assert merged.tiles.tolist() == [207, 1596, 268]
    # the merge takes the union of the regions the shares met, not the sum
    shares = [read(tmp_path / f"s{i}.h5")["count-regions"].distinct_regions for i in range(2)]
    assert shares == [207, 1596] and merged.distinct_regions == 1596


def test_segments_on_two_ranks_equal_one_process(tmp_path):
    two = torchrun(*PAIRS, "--json", "-o", tmp_path / "two.h5")
    assert two.returncode == 0, two.stderr
    one = invoke(*PAIRS, "--json", "-o", tmp_path / "one.h5")
    assert_same_file(tmp_path / "two.h5", tmp_path / "one.h5", ROUNDING)
    payloads = [json.loads(r.stdout) for r in (two, one)]
    for payload in payloads:
        payload.pop("seconds")
    assert payloads[0] == payloads[1] and payloads[0]["segments"] == 12


def test_a_plane_list_on_two_ranks_meets_the_regions_of_one_process(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS[[0, 1, 0]])  # the first plane twice, on both ranks
    args = ["count-regions", MOONS, "--anchors-list", anchors, "--json"]
    two = torchrun(*args, "-o", tmp_path / "two.h5")
    assert two.returncode == 0, two.stderr
    one = invoke(*args, "-o", tmp_path / "one.h5")
    assert_same_file(tmp_path / "two.h5", tmp_path / "one.h5")
    payloads = [json.loads(r.stdout) for r in (two, one)]
    assert payloads[0]["regions"] == payloads[1]["regions"] == 207 + 1596 + 207
    # within the moons model's 2-D inputs the second plane's square holds the first one's
    assert payloads[0]["distinct_regions"] == payloads[1]["distinct_regions"] == 1596


def test_sampling_and_sweeps_do_not_split(tmp_path):
    refused = invoke(
        "count-regions",
        MOONS,
        "--sample",
        "100",
        "--bounds",
        "0,1,0,1",
        "--shard",
        "0/2",
        "-o",
        tmp_path / "s.h5",
    )
    assert refused.exit_code == 2 and "--sample" in refused.output
    sweep = invoke(
        "count-regions",
        "--sweep",
        "configs/sweeps/depth-vs-width.toml",
        "--shard",
        "0/2",
        "-o",
        tmp_path / "s.h5",
    )
    assert sweep.exit_code == 2 and "one process" in sweep.output
    assert not (tmp_path / "s.h5").exists()


def test_an_empty_share_merges_like_any_other(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS[:1])
    args = ["count-regions", MOONS, "--anchors-list", anchors, "-q"]
    assert invoke(*args, "-o", tmp_path / "whole.h5").exit_code == 0
    for i in range(2):  # share 0 of 1 plane in 2 holds no plane
        assert invoke(*args, "--shard", f"{i}/2", "-o", tmp_path / f"s{i}.h5").exit_code == 0
    assert read(tmp_path / "s0.h5")["count-regions"].regions == 0
    assert invoke("merge", tmp_path / "s0.h5", tmp_path / "s1.h5", "-o", tmp_path / "m.h5").exit_code == 0
    assert_same_file(tmp_path / "m.h5", tmp_path / "whole.h5")
