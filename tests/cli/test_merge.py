"""`--shard i/n` and `splinetool merge`: merged shards equal the unshared run; merge refuses bad sets."""

import json
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.io import read, read_provenance
from tests.cluster_helpers import ANCHORS, MOONS, TRAJECTORY, assert_same_file, small_digits
from tests.conftest import SAMPLES

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
    whole = read(folder / "whole.h5")["local-complexity"]
    assert 0 < whole.accuracy[0, 1] < 1  # the shuffled test labels: hits from every shard add up
    assert read_provenance(merged)["command"] == "local-complexity"
    # a shard holds exactly its points' rows of the unshared result
    part = read(shards[1])["local-complexity"]
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


# --- a shard whose data disagree with its header (edited, cut short, or written by something else) ---

DIGITS_MLP = SAMPLES / "digits-mlp.ts.pt"
SEGMENTS = ["count-regions", DIGITS_MLP, "--data", SAMPLES / "data" / "digits.npz", "--pairs", "random:12"]
GMM = SAMPLES / "gmm-wgan.ts.pt"
POOL = ["debias-sample", GMM, "--pool", "300", "--n", "20", "--rho", "-1", "--seed", "3"]


def shards_of(args, count, folder):
    paths = [folder / f"s{i}.h5" for i in range(count)]
    for i, path in enumerate(paths):
        assert invoke(*args, "-q", "--shard", f"{i}/{count}", "-o", path).exit_code == 0
    return paths


@pytest.fixture(scope="module")
def segment_shards(tmp_path_factory):
    return shards_of(SEGMENTS, 3, tmp_path_factory.mktemp("segments"))  # 4 segments each


@pytest.fixture(scope="module")
def plane_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planes")
    np.save(folder / "anchors.npy", ANCHORS)
    return shards_of(["count-regions", MOONS, "--anchors-list", folder / "anchors.npy"], 2, folder)


def edited(path, folder, edit):
    """A copy of shard `path` in `folder` (same name), changed by edit(h5py file)."""
    copy = folder / path.name
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        edit(f)
    return copy


def cut(name, rows, axis=0):
    """An edit that keeps the first `rows` of dataset `name` along `axis`, with its attributes."""

    def edit(f):
        data, attrs = f[name][()], dict(f[name].attrs)
        del f[name]
        f[name] = np.take(data, np.arange(rows), axis=axis)
        f[name].attrs.update(attrs)

    return edit


def declare(**items):
    """An edit of the header (root attribute `shard`) to declare other items."""

    def edit(f):
        f.attrs["shard"] = json.dumps(json.loads(f.attrs["shard"]) | items, sort_keys=True)

    return edit


def assert_refused(shards, folder, *fragments):
    output = folder / "merged.h5"
    result = invoke("merge", *shards, "-o", output)
    message = result.stderr.strip()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message
    assert not output.exists()


def test_merge_refuses_a_local_complexity_shard_cut_short(lc_shards, tmp_path):
    _, _, _, shards = lc_shards
    # per_point is [checkpoints, points, nodes]: keep 12 of the share's 19 points
    short = edited(shards[1], tmp_path, cut("local-complexity/per_point", 12, axis=1))
    assert_refused(
        [shards[0], short, shards[2]],
        tmp_path,
        f"{short}: declares items 19:38 (19 items) but its 'local-complexity' result holds 12 (per_point)",
    )


def test_merge_refuses_headers_that_declare_other_items(lc_shards, tmp_path):
    _, _, _, shards = lc_shards
    # every header says 61 items, consistently shared out (0:20, 20:40, 40:61): the data hold 58
    ranges = [(0, 20), (20, 40), (40, 61)]
    renamed = [
        edited(path, tmp_path, declare(start=start, stop=stop, total=61))
        for path, (start, stop) in zip(shards, ranges)
    ]
    assert_refused(renamed, tmp_path, f"{renamed[0]}: declares items 0:20 (20 items)", "holds 19 (per_point)")


def test_merge_refuses_set_offsets_that_disagree_with_the_points(lc_shards, tmp_path):
    _, _, _, shards = lc_shards

    def edit(f):
        f["local-complexity/set_offsets"][-1] -= 1

    changed = edited(shards[2], tmp_path, edit)
    assert_refused([*shards[:2], changed], tmp_path, f"{changed}:", "holds 19 (set_offsets)")


@pytest.mark.parametrize("field", ["starts", "ends", "pieces_per_node", "offsets"])
def test_merge_refuses_a_segment_shard_cut_short(segment_shards, tmp_path, field):
    short = edited(segment_shards[1], tmp_path, cut(f"count-regions/{field}", 3 + (field == "offsets")))
    assert_refused(
        [segment_shards[0], short, segment_shards[2]],
        tmp_path,
        f"{short}: declares items 4:8 (4 items) but its 'count-regions' result holds 3 ({field})",
    )


@pytest.mark.parametrize("field", ["origins", "directions", "domains", "tiles_per_node"])
def test_merge_refuses_a_plane_shard_cut_short(plane_shards, tmp_path, field):
    short = edited(plane_shards[1], tmp_path, cut(f"count-regions/{field}", 1))  # share 1/2 of 3 planes: 2
    assert_refused(
        [plane_shards[0], short], tmp_path, f"{short}: declares items 1:3 (2 items)", f"holds 1 ({field})"
    )


def test_merge_refuses_results_of_other_methods(segment_shards, plane_shards, tmp_path):
    def swap(source):
        def edit(f):
            del f["count-regions"]
            with h5py.File(source, "r") as other:
                other.copy("count-regions", f)

        return edit

    # a plane share's header with a segment count inside (2 segments fit its 2 items)
    whole = tmp_path / "segments.h5"
    assert invoke(*SEGMENTS[:-1], "random:2", "-q", "-o", whole).exit_code == 0
    mixed = edited(plane_shards[1], tmp_path, swap(whole))
    assert_refused(
        [plane_shards[0], mixed], tmp_path, f"{mixed}: its 'count-regions' result", "does not combine"
    )
    # a sampled count is one estimate, not a share of items
    sampled = tmp_path / "sampled.h5"
    counted = invoke("count-regions", MOONS, "--sample", "50", "--bounds", "0,1,0,1", "-q", "-o", sampled)
    assert counted.exit_code == 0
    alone = edited(plane_shards[0], tmp_path, swap(sampled))
    assert_refused(
        [alone, plane_shards[1]], tmp_path, f"{alone}: its 'count-regions' result holds nothing per item"
    )


def test_merge_refuses_a_slice_list_shard_missing_a_plane(tmp_path):
    np.save(tmp_path / "anchors.npy", ANCHORS)
    (tmp_path / "shards").mkdir()
    shards = shards_of(["slice", MOONS, "--anchors-list", tmp_path / "anchors.npy"], 2, tmp_path / "shards")

    def edit(f):
        f["slice"].attrs["planes"] = 1

    short = edited(shards[1], tmp_path, edit)
    assert_refused([shards[0], short], tmp_path, f"{short}: declares items 1:3 (2 items)", "holds 1 (slices)")


def test_merge_refuses_pool_shards_that_disagree_with_their_headers(tmp_path):
    (tmp_path / "shards").mkdir()
    shards = shards_of(POOL, 2, tmp_path / "shards")  # rows 0:150 and 150:300
    short = edited(shards[1], tmp_path, cut("debias-sample/log_volume", 100))
    assert_refused([shards[0], short], tmp_path, f"{short}: declares items 150:300", "holds 100 (log_volume)")

    def edit(f):
        f["debias-sample"].attrs["start"] = 140

    moved = edited(shards[1], tmp_path, edit)
    assert_refused([shards[0], moved], tmp_path, f"{moved}: declares items 150:300 of 300", "from 140 of 300")
