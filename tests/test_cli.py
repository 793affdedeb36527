"""The command line: every sample opens in every format; bad input exits 2 with a message, no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

from splinetool.cli import app
from tests.conftest import ARCHS, SAMPLE_NAMES, SAMPLES

runner = CliRunner()

# (file, extra arguments) for every format each sample ships in
SAMPLE_FILES = [
    (f"{name}.{suffix}", args)
    for name in SAMPLE_NAMES
    for suffix, args in [
        ("ts.pt", []),
        ("state.pt", ["--arch", str(ARCHS / f"{name}.toml")]),
        ("pt2", []),
    ]
    if (SAMPLES / f"{name}.{suffix}").exists()
]

# what each sample lowers to: (kind, neurons) per PL node
EXPECTED_NODES = {
    "moons-mlp": [("relu", 20)] * 4,
    "digits-mlp": [("relu", 200)] * 4,
}


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    # a traceback escaping the CLI would surface as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_every_sample_ships_in_every_promised_format():
    names = {f for f, _ in SAMPLE_FILES}
    for name in SAMPLE_NAMES:
        assert {f"{name}.ts.pt", f"{name}.state.pt"} <= names
    assert {"moons-mlp.pt2", "digits-mlp.pt2"} <= names


@pytest.mark.parametrize("filename,args", SAMPLE_FILES, ids=[f for f, _ in SAMPLE_FILES])
def test_info_lowers_every_sample_faithfully(filename, args):
    result = invoke("info", SAMPLES / filename, *args, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] and payload["max_abs_diff"] < 1e-9
    name = filename.split(".")[0]
    if name in EXPECTED_NODES:
        assert [(n["kind"], n["neurons"]) for n in payload["nodes"]] == EXPECTED_NODES[name]
    kinds = {n["kind"] for n in payload["nodes"]}
    assert ("maxpool" in kinds) == (name == "digits-convnet")
    assert payload["parameters"] > 0 and payload["format"] in ("torchscript", "state_dict", "export")


def test_info_table_names_the_nodes_and_the_check():
    result = invoke("info", SAMPLES / "moons-mlp.pt2")
    assert result.exit_code == 0
    assert "hidden.0.act" in result.stdout and "lowering check" in result.stdout and "ok" in result.stdout


def test_missing_checkpoint_exits_2_naming_the_file(tmp_path):
    result = invoke("info", tmp_path / "nope.pt")
    assert result.exit_code == 2
    assert "nope.pt" in result.output and "Traceback" not in result.output


def test_wrong_arch_exits_2_with_both_key_lists():
    result = invoke("info", SAMPLES / "moons-mlp.state.pt", "--arch", ARCHS / "digits-mlp.toml")
    assert result.exit_code == 2
    assert "does not fit" in result.output


def test_wrong_input_shape_exits_2():
    result = invoke("info", SAMPLES / "moons-mlp.ts.pt", "--input-shape", "3")
    assert result.exit_code == 2 and "--input-shape" in result.output
    result = invoke("info", SAMPLES / "moons-mlp.ts.pt", "--input-shape", "two")
    assert result.exit_code == 2 and "positive integers" in result.output


@pytest.mark.parametrize("option,value", [("--dtype", "float16"), ("--device", "tpu")])
def test_bad_device_or_dtype_exits_2(option, value):
    result = invoke("info", SAMPLES / "moons-mlp.ts.pt", option, value)
    assert result.exit_code == 2 and option in result.output


def test_unsupported_model_exits_3_listing_its_ops(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 3), nn.SiLU(), nn.Linear(3, 1))
    path = tmp_path / "gelu.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    result = invoke("info", path, "--input-shape", "2")
    assert result.exit_code == 3
    assert "gelu" in result.output and "silu" in result.output and "supported operations" in result.output


def test_config_file_sets_defaults_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('dtype = "float32"\nsamples = 3\n')
    payload = json.loads(invoke("info", SAMPLES / "moons-mlp.ts.pt", "--config", config, "--json").stdout)
    assert payload["check_dtype"] == "float32" and payload["check_inputs"] == 3
    payload = json.loads(
        invoke("info", SAMPLES / "moons-mlp.ts.pt", "--config", config, "--samples", "5", "--json").stdout
    )
    assert payload["check_inputs"] == 5


def test_config_file_with_unknown_key_exits_2(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("max_regions = 3\n")
    result = invoke("info", SAMPLES / "moons-mlp.ts.pt", "--config", config)
    assert result.exit_code == 2 and "max_regions" in result.output


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "splinetool", "info", str(SAMPLES / "moons-mlp.ts.pt"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True


def test_slice_writes_json_hdf5_and_pictures(tmp_path):
    from splinetool.io import read, read_provenance

    out, png, svg = tmp_path / "s.h5", tmp_path / "s.png", tmp_path / "s.svg"
    result = invoke(
        "slice",
        SAMPLES / "moons-mlp.ts.pt",
        "--data",
        SAMPLES / "data" / "moons.npz",
        "--verify",
        "-o",
        out,
        "--png",
        png,
        "--svg",
        svg,
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["verify"]["passed"] and payload["regions"] > 100
    assert abs(payload["covered_area"] - payload["domain_area"]) < 1e-9 * payload["domain_area"]
    stored = read(out)["slice"]
    assert stored.regions == payload["regions"] and len(stored.boundary) == payload["boundary_segments"]
    assert read_provenance(out)["command"] == "slice"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.stat().st_size > 1000


def test_slice_through_three_data_points():
    result = invoke(
        "slice",
        SAMPLES / "moons-mlp.pt2",
        "--data",
        SAMPLES / "data" / "moons.npz",
        "--split",
        "train",
        "--anchor-index",
        "0,1,2",
        "--margin",
        "1.5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["regions"] > 10


@pytest.mark.parametrize("name", ["digits-convnet", "digits-resnet"])
def test_slice_of_conv_samples_on_a_small_plane(tmp_path, name):
    digits = np.load(SAMPLES / "data" / "digits.npz")["x_train"][:3].astype(np.float64)
    np.save(tmp_path / "origin.npy", digits[:1])
    np.save(tmp_path / "directions.npy", digits[1:] - digits[:1])
    result = invoke(
        "slice",
        SAMPLES / f"{name}.ts.pt",
        "--origin",
        tmp_path / "origin.npy",
        "--directions",
        tmp_path / "directions.npy",
        "--bounds",
        "-0.01,0.01,-0.01,0.01",
        "--verify",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["verify"]["passed"] and payload["regions"] > 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--anchor-index", "0,1,2"], "--anchor-index needs --data"),
        (["--bounds", "1,0,0,1"], "xmin < xmax"),
        (["--bounds", "0,1,0"], "4 numbers"),
        (["--norm", "3"], "--norm"),
        (["--color", "rainbow"], "--color"),
        (["--data", "moons:50", "--anchor-index", "0,1,99"], "rows must lie"),
    ],
)
def test_slice_bad_options_exit_2(args, message):
    result = invoke("slice", SAMPLES / "moons-mlp.ts.pt", *args)
    assert result.exit_code == 2 and message in result.output


def test_slice_collinear_anchors_exit_2(tmp_path):
    anchors = tmp_path / "a.npy"
    np.save(anchors, np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    result = invoke("slice", SAMPLES / "moons-mlp.ts.pt", "--anchors", anchors)
    assert result.exit_code == 2 and "collinear" in result.output


def test_slice_over_the_region_limit_writes_nothing(tmp_path):
    out = tmp_path / "s.h5"
    result = invoke(
        "slice", SAMPLES / "moons-mlp.ts.pt", "--max-regions", "50", "-o", out, "--png", tmp_path / "p.png"
    )
    assert result.exit_code == 2 and "--max-regions" in result.output
    assert list(tmp_path.iterdir()) == []
