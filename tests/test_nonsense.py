"""Inputs whose numbers make no sense in float64 exit 2 with one message, never 0 with NaN or inf."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.frontends.loading import build_arch
from tests.conftest import ARCHS, SAMPLES

runner = CliRunner()
MOONS = SAMPLES / "moons-mlp.ts.pt"


def refused(*args, names: str, out=None):
    """Run the CLI and check it refused with one message naming `names`, writing nothing to `out`."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and names in errors[0], result.output
    assert out is None or not out.exists()
    return errors[0]


def run_json(*args) -> dict:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- planes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["slice"], ["count-regions"], ["bn-density", "--data", "moons:20", "--grid", "4"]]
)
def test_bounds_whose_area_overflows_are_refused(command, tmp_path):
    out = tmp_path / "r.h5"
    message = refused(
        command[0],
        MOONS,
        *command[1:],
        "--bounds=-1e300,1e300,-1e300,1e300",
        "-o",
        out,
        names="--bounds",
        out=out,
    )
    assert "float64" in message and "1e+150" in message


@pytest.mark.parametrize("bounds", ["1,1,0,1", "0,1,2,-2", "0,inf,0,1", "nan,1,0,1"])
def test_empty_inverted_or_infinite_bounds_are_refused(bounds, tmp_path):
    out = tmp_path / "r.h5"
    refused("slice", MOONS, f"--bounds={bounds}", "-o", out, names="--bounds", out=out)


def test_far_anchors_and_margins_are_refused(tmp_path):
    anchors, out = tmp_path / "a.npy", tmp_path / "r.h5"
    np.save(anchors, np.array([[1e300, 0.0], [0.0, 1e300], [-1e300, -1e300]]))
    refused("slice", MOONS, "--anchors", anchors, "-o", out, names=f"--anchors {anchors}", out=out)
    np.save(anchors, np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    refused("slice", MOONS, "--anchors", anchors, "--margin", "1e300", "-o", out, names="--margin", out=out)
    refused("slice", MOONS, "--anchors", anchors, "--margin", "inf", "-o", out, names="--margin", out=out)
    listed = tmp_path / "list.npy"
    np.save(listed, np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [[1e300, 0], [0, 1e300], [0, 0]]]))
    refused("slice", MOONS, "--anchors-list", listed, "-o", out, names=f"--anchors-list {listed}, plane 1")


def test_far_origin_or_directions_are_refused(tmp_path):
    origin, directions, out = tmp_path / "o.npy", tmp_path / "d.npy", tmp_path / "r.h5"
    for o, d in [([[1e300, 0.0]], np.eye(2)), ([[0.0, 0.0]], 1e200 * np.eye(2))]:
        np.save(origin, np.array(o))
        np.save(directions, d)
        args = ["--origin", origin, "--directions", directions, "--bounds", "0,1,0,1", "-o", out]
        message = refused("count-regions", MOONS, *args, names=f"--origin {origin}", out=out)
        assert "origin + t·directions" in message


def test_far_data_is_refused_as_a_plane(tmp_path):
    data, out = tmp_path / "far.npy", tmp_path / "r.h5"
    np.save(data, np.random.default_rng(0).standard_normal((20, 2)) * 1e300)
    refused("slice", MOONS, "--data", data, "-o", out, names=f"--data {data}", out=out)
    refused("slice", MOONS, "--data", data, "--anchor-index", "0,1,2", names=f"--data {data}")


def tiny_mlp(tmp_path):
    model, _ = build_arch("mlp{widths=[4], outputs=1, input_shape=[2]}")
    path = tmp_path / "tiny.ts.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    return path


def test_large_but_finite_planes_still_work(tmp_path):
    for bounds in ["-1e6,1e6,-1e6,1e6", "-1e149,1e149,-1e149,1e149"]:
        payload = run_json("slice", tiny_mlp(tmp_path), "--input-shape", "2", f"--bounds={bounds}", "--json")
        assert np.isfinite(payload["domain_area"]) and payload["regions"] >= 1
        assert payload["covered_area"] == pytest.approx(payload["domain_area"], rel=1e-9)
    payload = run_json("count-regions", MOONS, "--bounds=-1e6,1e6,-1e6,1e6", "--json")
    assert payload["regions"] > 1


# -- local complexity -------------------------------------------------------------------------------


def far_data(tmp_path, scale: float):
    path = tmp_path / f"far{scale:g}.npy"
    np.save(path, np.random.default_rng(0).standard_normal((20, 2)) * scale)
    return path


def test_count_regions_refuses_segments_and_samples_that_overflow(tmp_path):
    line = tmp_path / "line.pt"
    torch.save(build_arch(LINE_ARCH)[0].state_dict(), line)
    refused("count-regions", line, "--arch", LINE_ARCH, "--bounds=-1e308,1e308", names="--bounds")
    far = tmp_path / "far.npy"
    np.save(far, np.array([[0.0, 0.0], [1e200, 1e200]]))
    refused("count-regions", MOONS, "--segment", far, names="--segment")
    refused("count-regions", MOONS, "--sample", "50", "--bounds=-1e300,1e300,-1e300,1e300", names="--bounds")
    assert run_json("count-regions", line, "--arch", LINE_ARCH, "--bounds=-1e6,1e6", "--json")["regions"] >= 1


LINE_ARCH = "mlp{widths=[4], outputs=1, input_shape=[1]}"


def test_local_complexity_refuses_a_scale_that_overflows(tmp_path):
    data, out = far_data(tmp_path, 1e300), tmp_path / "lc.h5"
    message = refused("local-complexity", MOONS, "--data", data, "-o", out, names=f"--data {data}", out=out)
    assert "--relative-radius" in message and "--radius" in message
    refused("local-complexity", MOONS, "--data", data, "--random", "5", "-o", out, names=str(data), out=out)
    edge = tmp_path / "edge.npy"  # a box wider than float64 holds
    np.save(edge, np.array([[-1.7e308, 0.0], [1.7e308, 1.0]]))
    refused("local-complexity", MOONS, "--data", edge, "--radius", "1", "--random", "5", names="--random")


def test_local_complexity_refuses_radii_that_overflow_or_vanish(tmp_path):
    out = tmp_path / "lc.h5"
    moons = SAMPLES / "data" / "moons.npz"
    args = ["local-complexity", MOONS, "--data", moons, "-o", out]
    refused(*args, "--relative-radius", "1e308", names="--relative-radius", out=out)
    refused(*args, "--radius", "inf", names="--radius", out=out)
    refused(*args, "--radius", "1e308", names="--radius", out=out)  # the network's values overflow
    refused(*args, "--radius", "1e39", "--dtype", "float32", names="--radius 1e+39", out=out)
    # points far out with a radius below their float resolution: every vertex is the point itself
    far = far_data(tmp_path, 1e200)
    message = refused(
        "local-complexity", MOONS, "--data", far, "--radius", "1", "-o", out, names=f"--data {far}", out=out
    )
    assert "resolution" in message


def test_local_complexity_refuses_nan_data_naming_file_and_key(tmp_path):
    data = tmp_path / "nan.npz"
    x = np.zeros((5, 2))
    x[3, 1] = np.nan
    np.savez(data, x_train=x)
    refused("local-complexity", MOONS, "--data", data, "--split", "train", names=f"x in {data} (train split)")


def test_local_complexity_on_large_but_finite_data_still_works(tmp_path):
    payload = run_json("local-complexity", MOONS, "--data", far_data(tmp_path, 1e6), "--json")
    assert np.isfinite(payload["radius"]) and payload["lc_mean"] >= 0


# -- weights ----------------------------------------------------------------------------------------


def poisoned(tmp_path, fmt: str, value: float) -> tuple:
    """moons-mlp with one weight set to `value`, saved in `fmt`, and the arguments that open it."""
    state = torch.load(SAMPLES / "moons-mlp.state.pt", weights_only=True)
    state["hidden.1.linear.weight"][3, 2] = value
    if fmt == "state_dict":
        path = tmp_path / "m.pt"
        torch.save(state, path)
        return path, ["--arch", ARCHS / "moons-mlp.toml"]
    model, _ = build_arch(str(ARCHS / "moons-mlp.toml"))
    model.load_state_dict(state)
    model.eval()
    if fmt == "torchscript":
        path = tmp_path / "m.ts.pt"
        torch.jit.save(torch.jit.script(model), str(path))
        return path, ["--input-shape", "2"]
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(3, 2),)), str(path))
    return path, []


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("fmt", ["state_dict", "torchscript", "export"])
def test_non_finite_weights_are_refused_naming_the_parameter(tmp_path, fmt, value):
    path, args = poisoned(tmp_path, fmt, value)
    out = tmp_path / "s.h5"
    for command in (["info", path], ["slice", path, "-o", out]):
        message = refused(*command, *args, names=f"checkpoint {path}", out=out)
        assert "parameter 'hidden.1.linear.weight' holds NaN or inf" in message


@pytest.mark.parametrize("command", ["slice", "count-regions"])
def test_float32_planes_beyond_float32_geometry_are_refused(command, tmp_path):
    out = tmp_path / "r.h5"
    message = refused(
        command,
        MOONS,
        "--bounds=-1e20,1e20,-1e20,1e20",
        "--dtype",
        "float32",
        "-o",
        out,
        names="float32",
        out=out,
    )
    assert "float64" in message
