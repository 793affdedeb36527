"""`splinetool local-complexity` from the shell: JSON, HDF5, pictures, trajectories, gate exit codes."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from splinetool.analyses import local_complexity as lc
from splinetool.cli import app
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from tests.conftest import ROOT, SAMPLES
from tests.refusal import refused

runner = CliRunner()
MLP = SAMPLES / "digits-mlp.ts.pt"
TRAJECTORY = SAMPLES / "digits-mlp-trajectory"
GATE = ROOT / "configs" / "gates" / "digits-mlp.toml"


def invoke(*args):
    result = runner.invoke(app, ["local-complexity", *[str(a) for a in args]])
    # a traceback escaping the CLI would surface as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small train/test file cut from the shipped digits, so each run takes a fraction of a second."""
    with np.load(SAMPLES / "data" / "digits.npz") as f:
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    path = tmp_path_factory.mktemp("data") / "digits-small.npz"
    np.savez(
        path,
        x_train=arrays["x_train"][:120],
        y_train=arrays["y_train"][:120],
        x_test=arrays["x_test"][:40],
        y_test=arrays["y_test"][:40],
    )
    return path


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.stdout)


def test_json_reports_the_published_statistics_and_matches_the_library(digits):
    result, payload = run_json(MLP, "--data", digits, "--split", "train,test", "--random", "30")
    assert result.exit_code == 0
    for key in ("lc_mean", "lc_median", "lc_p95", "per_node_mean", "radius", "directions", "points"):
        assert key in payload
    assert (
        payload["directions"] == 25
        and payload["points"] == 120
        and set(payload["sets"]) == {"train", "test", "random"}
    )
    assert "passed" not in payload  # no gate, no verdict
    # the same numbers from the library, with the radius computed here from both splits
    with np.load(digits) as f:
        x_train, x_test = f["x_train"].astype(np.float64), f["x_test"].astype(np.float64)
    both = np.concatenate([x_train, x_test])
    scale = np.sqrt(((both - both.mean(axis=0)) ** 2).sum(axis=1).mean())
    assert payload["radius"] == pytest.approx(0.05 * scale, rel=1e-12)
    net = lower(load_model(MLP)).to(dtype=__import__("torch").float64)
    direct = lc.run(net, [lc.PointSet("train", x_train)], lc.LCOptions(radius=payload["radius"]))
    assert payload["lc_mean"] == pytest.approx(direct.stats(0)["lc_mean"])
    assert payload["per_node_mean"] == pytest.approx(direct.stats(0)["per_node_mean"])


def test_hdf5_and_pictures(digits, tmp_path):
    from splinetool.io import read, read_provenance

    out, png, svg = tmp_path / "lc.h5", tmp_path / "lc.png", tmp_path / "lc.svg"
    result, payload = run_json(
        MLP, "--data", digits, "--split", "test", "-o", out, "--png", png, "--svg", svg
    )
    stored = read(out)["local-complexity"]
    assert stored.per_point.shape == (1, 40, 4)
    assert stored.stats(0)["lc_mean"] == pytest.approx(payload["lc_mean"])
    assert stored.frame_vectors.shape == (25, 64) and stored.radius == payload["radius"]
    assert read_provenance(out)["command"] == "local-complexity"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.stat().st_size > 1000


def test_table_prints_the_parameters(digits):
    result = invoke(MLP, "--data", digits, "--split", "test", "--radius", "0.2", "--directions", "10")
    assert result.exit_code == 0
    assert "radius 0.2 (given with --radius); 10 directions, 20 vertices per point" in result.stdout
    assert "LC mean" in result.stdout and "hidden.3" in result.stdout


def test_trajectory_from_a_quoted_glob_is_ordered_by_step(digits, tmp_path):
    png = tmp_path / "curve.png"
    result, payload = run_json(
        str(TRAJECTORY / "step-*.ts.pt"),
        "--data",
        digits,
        "--split",
        "train,test",
        "--directions",
        "8",
        "--png",
        png,
    )
    steps = [entry["step"] for entry in payload["checkpoints"]]
    assert steps == sorted(steps) and steps[0] == 0 and len(steps) >= 8
    first = payload["checkpoints"][0]
    assert first["sets"]["train"]["accuracy"] < 0.3 < payload["checkpoints"][-1]["sets"]["train"]["accuracy"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_come_from_names_or_from_the_option(digits, tmp_path):
    a, b = tmp_path / "early.ts.pt", tmp_path / "late.ts.pt"
    a.write_bytes(MLP.read_bytes())
    b.write_bytes(MLP.read_bytes())
    result = invoke(b, a, "--data", digits, "--split", "test")
    assert result.exit_code == 2 and "no training step in its file name" in result.output
    result = invoke(b, a, "--data", digits, "--split", "test", "--steps", "1")
    assert result.exit_code == 2 and "--steps" in result.output
    _, payload = run_json(b, a, "--data", digits, "--split", "test", "--steps", "20,10")
    assert [(e["checkpoint"], e["step"]) for e in payload["checkpoints"]] == [(str(a), 10), (str(b), 20)]


def test_max_lc_gate_exit_codes(digits):
    _, payload = run_json(MLP, "--data", digits, "--split", "test")
    mean = payload["lc_mean"]
    result, passed = run_json(MLP, "--data", digits, "--split", "test", "--max-lc", mean + 0.01)
    assert result.exit_code == 0 and passed["passed"] is True and passed["failed_checks"] == []
    result, failed = run_json(MLP, "--data", digits, "--split", "test", "--max-lc", mean - 0.01)
    assert result.exit_code == 1 and failed["passed"] is False
    assert failed["failed_checks"] == [f"lc_mean = {mean:.4g} > {mean - 0.01:.4g} (--max-lc)"]
    assert "failed: lc_mean" in result.stderr


def test_gate_file_names_each_failed_check(digits, tmp_path):
    first, second = [n.name for n in lower(load_model(MLP)).pl_nodes][:2]
    gate = tmp_path / "gate.toml"
    gate.write_text(
        f'points = "test"\nmean = 1000\nmedian = 1\np95 = 2\n[per_node]\n"{first}" = 0.5\n"{second}" = 100\n'
    )
    result = invoke(MLP, "--data", digits, "--split", "train,test", "--gate", gate)
    assert result.exit_code == 1
    for label in ("lc_median", "lc_p95", f"per_node_mean[{first}]"):
        assert f"failed: {label} =" in result.stderr
    assert "lc_mean" not in result.stderr and second not in result.stderr
    assert "gate: lc_mean" in result.stdout and "ok" in result.stdout


def test_shipped_example_gate_passes_on_its_model():
    result = invoke(
        MLP, "--data", SAMPLES / "data" / "digits.npz", "--split", "test", "--gate", GATE, "--quiet"
    )
    assert result.exit_code == 0, result.output


def test_baseline_allows_a_relative_increase(digits, tmp_path):
    base = tmp_path / "base.json"
    result = invoke(MLP, "--data", digits, "--split", "test", "--json")
    base.write_text(result.stdout)
    result = invoke(MLP, "--data", digits, "--split", "test", "--baseline", base)
    assert result.exit_code == 0, result.output
    lowered = json.loads(base.read_text())
    lowered["sets"]["test"]["lc_mean"] /= 1.1
    base.write_text(json.dumps(lowered))
    result = invoke(MLP, "--data", digits, "--split", "test", "--baseline", base)
    assert result.exit_code == 1 and "lc_mean" in result.stderr and "--baseline base.json" in result.stderr
    result = invoke(MLP, "--data", digits, "--split", "test", "--baseline", base, "--max-increase", "0.2")
    assert result.exit_code == 0
    result = invoke(MLP, "--data", digits, "--split", "test", "--baseline", base, "--radius", "0.3")
    assert result.exit_code == 2 and "other neighbourhoods" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "--data is needed"),
        (["--data", "DIGITS", "--split", "valid"], "valid"),
        (["--data", "DIGITS", "--split", "test", "--directions", "65"], "--directions 65"),
        (["--data", "DIGITS", "--split", "test", "--frame", "random"], "--frame"),
        (["--data", "DIGITS", "--split", "test", "--max-increase", "0.1"], "--baseline"),
        (["--data", "DIGITS", "--split", "test", "--radius", "0"], "--radius"),
        (["--data", "moons:50"], "64-D inputs"),
        (["--data", "DIGITS", "--svg", "OUT/picture.jpg"], "expected a file name ending in .svg"),
        (["--data", "DIGITS", "--svg", "OUT/nowhere/lc.svg"], "does not exist"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(digits, tmp_path, args, message):
    out = tmp_path / "out" / "lc.h5"
    out.parent.mkdir()
    args = [str(digits) if a == "DIGITS" else a.replace("OUT", str(out.parent)) for a in args]
    result = invoke(MLP, *args, "-o", out, "--png", out.with_suffix(".png"))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert list(out.parent.iterdir()) == []


def test_gate_naming_an_unknown_node_exits_2_and_writes_nothing(digits, tmp_path):
    gate = tmp_path / "gate.toml"
    gate.write_text("[per_node]\nconv9 = 1\n")
    out = tmp_path / "lc.h5"
    result = invoke(MLP, "--data", digits, "--split", "test", "--gate", gate, "-o", out)
    last = lower(load_model(MLP)).pl_nodes[-1].name
    assert result.exit_code == 2 and "conv9" in result.output and last in result.output
    assert not out.exists()


def test_unmatched_glob_exits_2(tmp_path, digits):
    result = invoke(str(tmp_path / "step-*.pt"), "--data", digits)
    assert result.exit_code == 2 and "no file matches" in result.output


# -- issue 13: negative seeds, malformed baselines and gates ----------------------------------------


def test_a_negative_seed_draws_its_own_reproducible_random_points_and_frames(digits):
    args = [MLP, "--data", digits, "--split", "test", "--random", "10", "--frame", "per-point"]
    _, first = run_json(*args, "--seed", "-1")
    _, again = run_json(*args, "--seed", "-1")
    _, other = run_json(*args, "--seed", "1")
    drop = "seconds"
    assert {k: v for k, v in first.items() if k != drop} == {k: v for k, v in again.items() if k != drop}
    assert first["seed"] == -1 and first["sets"]["random"] != other["sets"]["random"]


BASELINES = {
    # a previous run's JSON, edited -> the field the message names
    "sets as a list": (lambda p: p | {"sets": [1, 2]}, "'sets'"),
    "no point sets": (lambda p: p | {"sets": {}}, "'sets'"),
    "a set as a number": (lambda p: p | {"sets": {"test": 3}}, "'sets'"),
    "checkpoints as a table": (lambda p: p | {"checkpoints": {"a": 1}}, "'checkpoints'"),
    "checkpoints of numbers": (lambda p: p | {"checkpoints": [1, 2]}, "'checkpoints'"),
    "no sets in the last checkpoint": (
        lambda p: p | {"checkpoints": [{"radius": 1}]},
        "checkpoints[-1].sets",
    ),
    "per-node means as a list": (
        lambda p: p | {"sets": {"test": p["sets"]["test"] | {"per_node_mean": [1]}}},
        "'sets.test.per_node_mean'",
    ),
    "a mean as text": (lambda p: p | {"sets": {"test": p["sets"]["test"] | {"lc_mean": "low"}}}, "lc_mean"),
}


@pytest.mark.parametrize("case", BASELINES)
def test_a_baseline_unlike_a_previous_run_is_refused_naming_file_and_field(digits, tmp_path, case):
    edit, field = BASELINES[case]
    base, out = tmp_path / "base.json", tmp_path / "out"
    _, payload = run_json(MLP, "--data", digits, "--split", "test")
    base.write_text(json.dumps(edit(payload)))
    out.mkdir()
    args = [MLP, "--data", digits, "--split", "test", "--baseline", base, "-o", out / "lc.h5"]
    message = refused("local-complexity", *args, names=f"--baseline {base}", folder=out)
    assert field in message


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--gate", "EMPTY"], "sets no bound"),
        (["--max-lc", "inf"], "--max-lc inf"),
        (["--steps", "-1"], "--steps -1"),
        (["--split", ""], "--split ''"),
    ],
)
def test_gates_steps_and_splits_that_mean_nothing_are_refused(digits, tmp_path, args, names):
    (tmp_path / "empty.toml").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    args = [str(tmp_path / "empty.toml") if a == "EMPTY" else a for a in args]
    refused("local-complexity", MLP, "--data", digits, *args, "-o", out / "lc.h5", names=names, folder=out)
