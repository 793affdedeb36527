"""`splinetool count-regions` from the shell: every way to give segments, planes, samples and sweeps."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.analyses.count_regions import SegmentCount
from splinetool.analyses.count_regions_sweep import SweepResult
from splinetool.cli import app
from splinetool.io import read, read_provenance
from tests.conftest import SAMPLES
from tests.refusal import refused
from tests.zoo import tent_network

runner = CliRunner()
MOONS = SAMPLES / "moons-mlp.pt2"
DIGITS_MLP = SAMPLES / "digits-mlp.ts.pt"
DIGITS = SAMPLES / "data" / "digits.npz"

SWEEP = """family = "mlp"
neurons = 8
depths = [1, 2]
seeds = [0, 1]
[options]
input_shape = [2]
outputs = 1
[measure]
plane = [-1.0, 1.0, -1.0, 1.0]
"""


def invoke(*args):
    result = runner.invoke(app, ["count-regions", *[str(a) for a in args]])
    # a traceback escaping the CLI would surface as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def tent(tmp_path_factory):
    """A depth-12 tent-map network saved as TorchScript, recording its 1-D input shape."""
    path = tmp_path_factory.mktemp("models") / "tent.ts.pt"
    scripted = torch.jit.script(tent_network(12))
    torch.jit.save(scripted, str(path), _extra_files={"splinetool.json": json.dumps({"input_shape": [1]})})
    return path


def test_a_plane_counts_the_slice_tiles():
    payload = run_json(MOONS, "--bounds", "-2,2,-2,2")
    sliced = json.loads(runner.invoke(app, ["slice", str(MOONS), "--bounds", "-2,2,-2,2", "--json"]).stdout)
    assert payload["method"] == "exact-2d"
    assert payload["regions"] == sliced["regions"]
    assert payload["per_layer"] == list(sliced["tiles_per_node"].values())


def test_bounds_on_a_one_dimensional_model_is_a_segment(tent, tmp_path):
    out = tmp_path / "tent.h5"
    payload = run_json(tent, "--bounds", "0,1", "-o", out, "--png", tmp_path / "tent.png")
    assert payload["method"] == "exact-1d"
    assert payload["regions"] == 2**12 == payload["distinct_regions"]
    assert payload["per_layer"] == [2**k for k in range(1, 13)]
    result = read(out)["count-regions"]
    assert isinstance(result, SegmentCount)
    assert np.allclose(result.breakpoints, np.arange(2**12 + 1) / 2**12, atol=1e-12)
    assert result.offsets.tolist() == [0, 2**12 + 1]
    assert read_provenance(out)["command"] == "count-regions"
    assert (tmp_path / "tent.png").stat().st_size > 0


def test_random_pairs_of_digits(tmp_path):
    out = tmp_path / "pairs.h5"
    payload = run_json(DIGITS_MLP, "--data", DIGITS, "--split", "train", "--pairs", "random:6", "-o", out)
    assert payload["segments"] == 6
    stats = payload["regions_per_segment"]
    assert stats["min"] <= stats["median"] <= stats["max"] and stats["min"] >= 1
    assert len(payload["per_layer"]) == 4 and payload["per_layer"] == sorted(payload["per_layer"])
    assert payload["distinct_regions"] <= payload["regions"]
    result = read(out)["count-regions"]
    assert result.pieces.sum() == payload["regions"] == payload["per_layer"][-1]
    assert result.piece_codes.shape == (payload["regions"], 100)  # 4 × 200 ReLU bits per piece
    # the same seed picks the same pairs, another seed others
    again = run_json(DIGITS_MLP, "--data", DIGITS, "--split", "train", "--pairs", "random:6")
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in payload.items() if k != "seconds"
    }
    other = run_json(DIGITS_MLP, "--data", DIGITS, "--split", "train", "--pairs", "random:6", "--seed", "1")
    assert other["regions"] != payload["regions"]


def test_one_pair_and_a_segment_file_agree(tmp_path):
    with np.load(DIGITS) as f:
        x = f["x"]
    np.save(tmp_path / "segment.npy", x[[3, 17]])
    by_pair = run_json(DIGITS_MLP, "--data", DIGITS, "--pairs", "3,17")
    by_file = run_json(DIGITS_MLP, "--segment", tmp_path / "segment.npy")
    assert by_pair["regions"] == by_file["regions"] == by_pair["distinct_regions"]
    assert by_pair["per_layer"] == by_file["per_layer"]
    np.save(tmp_path / "segments.npy", np.stack([x[[3, 17]], x[[5, 9]]]))
    both = run_json(DIGITS_MLP, "--segment", tmp_path / "segments.npy")
    assert both["segments"] == 2 and both["regions_per_segment"]["max"] >= by_file["regions"]


def test_sampling_is_a_lower_bound_with_an_estimate():
    exact = run_json(MOONS, "--bounds", "-1,1,-1,1")
    sampled = run_json(MOONS, "--sample", "5000", "--bounds", "-1,1,-1,1")
    assert sampled["method"] == "sampled"
    assert sampled["lower_bound"] == sampled["regions"] <= exact["regions"]
    assert sampled["estimate"] >= sampled["lower_bound"]
    around = run_json(DIGITS_MLP, "--sample", "500", "--data", DIGITS, "--around", "ball", "--radius", "0.5")
    assert 1 <= around["lower_bound"] <= 500


def test_sweep_writes_its_table_and_plot(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    out = tmp_path / "sweep.h5"
    payload = run_json("--sweep", config, "-o", out, "--png", tmp_path / "sweep.png")
    assert [row["depth"] for row in payload["sweep"]] == [1, 2]
    assert len(payload["rows"]) == 4
    result = read(out)["count-regions"]
    assert isinstance(result, SweepResult)
    assert result.regions.tolist() == [row["regions"] for row in payload["rows"]]
    assert (tmp_path / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        ([DIGITS_MLP, "--pairs", "1,2"], "--data"),
        ([DIGITS_MLP, "--data", DIGITS, "--pairs", "1,99999"], "rows must lie in"),
        ([DIGITS_MLP, "--data", DIGITS, "--pairs", "random:x"], "random:N"),
        ([DIGITS_MLP, "--segment", DIGITS, "--pairs", "1,2", "--data", DIGITS], "choose one"),
        ([DIGITS_MLP, "--segment", DIGITS], "--segment"),
        ([DIGITS_MLP, "--sample", "10", "--around", "ball"], "--data"),
        ([DIGITS_MLP, "--sample", "10", "--around", "cube", "--data", DIGITS], "--around"),
        ([DIGITS_MLP, "--sample", "10", "--data", DIGITS, "--anchor-index", "1,2,3"], "cannot be combined"),
        ([MOONS, "--bounds", "1,0,0,1"], "--bounds"),
        ([], "checkpoint"),
        ([MOONS, "--sweep", "configs/sweeps/depth-vs-width.toml"], "drop the checkpoint"),
        (["--sweep", "configs/sweeps/depth-vs-width.toml", "--data", DIGITS], "--data"),
        ([MOONS, "--png", "out.jpg"], ".png"),
        ([MOONS, "-o", SAMPLES], "folder"),
        ([MOONS, "--sample", "10", "--bounds", "0,1,0,1", "--radius", "0.5"], "--radius"),
        ([DIGITS_MLP, "--data", DIGITS, "--pairs", "random:100000000"], "random:N"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_nothing_is_written_when_an_option_is_bad(tmp_path):
    out = tmp_path / "x.h5"
    result = invoke(MOONS, "--bounds", "-1,1,-1,1", "-o", out, "--png", tmp_path / "missing" / "x.png")
    assert result.exit_code == 2
    assert not out.exists()


def test_tables_name_what_was_counted(tmp_path):
    pairs = invoke(DIGITS_MLP, "--data", DIGITS, "--pairs", "random:3")
    assert pairs.exit_code == 0 and "3 segments: pieces per segment" in pairs.output
    assert "distinct regions crossed" in pairs.output
    np.save(tmp_path / "anchors.npy", np.array([[[0.2, 0.1], [0.1, 0.3], [-0.3, 0.2]]] * 2))
    planes = invoke(MOONS, "--anchors-list", tmp_path / "anchors.npy")
    assert planes.exit_code == 0 and "2 planes: tiles per plane mean 207.0" in planes.output
    # the two planes coincide: they meet the same 207 regions
    assert "414 in all, 207 distinct regions met" in planes.output
    sampled = invoke(MOONS, "--sample", "50", "--bounds", "-2,2,-2,2")
    assert "at least" in sampled.output and "Chao1 estimate" in sampled.output


def test_origin_and_directions_of_the_wrong_size_are_refused(tmp_path):
    np.save(tmp_path / "origin.npy", np.zeros((1, 2)))
    np.save(tmp_path / "directions.npy", np.eye(3)[:, :2])
    files = ["--origin", tmp_path / "origin.npy", "--directions", tmp_path / "directions.npy"]
    result = invoke(MOONS, *files, "--bounds", "-1,1,-1,1")
    assert result.exit_code == 2 and "two inputs of 2 values" in result.output


# -- vectors saved as vectors: one input or a stack of inputs, flat or in the input shape -----------


def test_a_flat_segment_of_a_one_dimensional_model_is_its_two_ends(tent, tmp_path):
    np.save(tmp_path / "segment.npy", np.array([0.0, 1.0]))  # two 1-D inputs, as np.save writes them
    payload = run_json(tent, "--segment", tmp_path / "segment.npy")
    assert payload["method"] == "exact-1d"
    assert payload["regions"] == 2**12  # a depth-12 tent map has 2^12 pieces on [0, 1]


def test_a_flat_origin_counts_the_plane_of_a_one_row_origin(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(2))
    np.save(tmp_path / "row.npy", np.zeros((1, 2)))
    np.save(tmp_path / "directions.npy", np.eye(2))
    # the origin 0 and the unit directions place the input plane itself
    expected = run_json(MOONS, "--bounds", "-1,1,-1,1")["regions"]
    for origin in ("flat.npy", "row.npy"):
        payload = run_json(MOONS, "--origin", tmp_path / origin, "--directions", tmp_path / "directions.npy",
                           "--bounds", "-1,1,-1,1")  # fmt: skip
        assert payload["regions"] == expected > 1


def test_a_segment_file_of_the_wrong_shape_exits_2_naming_the_option(tmp_path):
    segment = tmp_path / "segment.npy"
    np.save(segment, np.zeros((3, 64)))
    out = tmp_path / "out"
    out.mkdir()
    message = refused("count-regions", DIGITS_MLP, "--segment", segment, "-o", out / "c.h5",
                      names=f"--segment {segment}", folder=out)  # fmt: skip
    assert "array of shape [3, 64] holds 3 inputs; expected two inputs of 64 values: shape [2, 64]" in message
    assert "or S segments: shape [S, 2, 64]" in message
