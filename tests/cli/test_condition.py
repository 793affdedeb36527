"""`splinetool condition` from the shell: JSON, HDF5, pictures, and bad input."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.cli import app
from tests.conftest import SAMPLES
from tests.refusal import refused

runner = CliRunner()
MOONS = SAMPLES / "moons-mlp.ts.pt"


def invoke(*args):
    result = runner.invoke(app, ["condition", *[str(a) for a in args]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    with np.load(SAMPLES / "data" / "moons.npz") as f:
        x, y = f["x"][:60], f["y"][:60]
    folder = tmp_path_factory.mktemp("data")
    np.savez(folder / "moons.npz", x=x, y=y)
    np.save(folder / "targets.npy", np.sin(x[:, 0]))
    return folder


def test_json_two_models_with_outputs(moons, tmp_path):
    h5, png = tmp_path / "c.h5", tmp_path / "c.png"
    result = invoke(MOONS, SAMPLES / "moons-mlp.pt2", "--data", moons / "moons.npz", "--json", "-o", h5,
                    "--png", png, "--block-points", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["targets"] == "one-hot class labels y" and payload["points"] == 60
    assert payload["outputs"] == 1  # a binary logit: the labels 0 and 1 are its targets
    first, second = payload["models"]
    assert [layer["name"] for layer in first["layers"]] == [layer["name"] for layer in second["layers"]]
    for a, b in zip(first["layers"], second["layers"]):  # one model through two frontends
        assert a["lambda_max"] == pytest.approx(b["lambda_max"], rel=1e-9)
        assert a["rank"] == b["rank"]
        assert a["rank"] == a["params"] - a["zero_eigenvalues"]
    assert {"kappa_median", "kappa_p95", "kappa_max", "singular_share"} <= set(first["blocks"][0])
    assert h5.stat().st_size > 0 and png.stat().st_size > 0


def test_regression_targets_and_layers(moons):
    result = invoke(MOONS, "--data", moons / "moons.npz", "--targets", moons / "targets.npy", "--json",
                    "--layers", "output")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["targets"].startswith("regression targets")
    assert [layer["name"] for layer in payload["models"][0]["layers"]] == ["output"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--data"),
        (("--layers", "nope"), "--layers"),
        (("--targets", "missing.npy"), "--targets"),
        (("--k", "0"), "--k"),
        (("--png", "out.jpg"), "--png"),
    ],
)
def test_bad_input_exits_2_without_output(moons, tmp_path, args, message):
    data = () if not args else ("--data", moons / "moons.npz")
    h5 = tmp_path / "c.h5"
    result = invoke(MOONS, *data, *args, "-o", h5)
    assert result.exit_code == 2
    assert message in result.output
    assert not h5.exists()


# -- issue 13: labels that are no class indices, one per point ---------------------------------------


@pytest.mark.parametrize(
    ("labels", "found"),
    [
        (lambda y: np.array(["left", "right"])[y], "of type <U5"),
        (lambda y: np.stack([y, y, y], axis=1), "shape [60, 3]"),
        (lambda y: y[:, None, None], "shape [60, 1, 1]"),
        (lambda y: np.where(y == 1, np.nan, 0.0), "class indices"),
    ],
)
def test_labels_that_are_no_class_indices_are_refused_naming_the_file(moons, tmp_path, labels, found):
    with np.load(moons / "moons.npz") as f:
        x, y = f["x"], f["y"]
    data = tmp_path / "labelled.npz"
    np.savez(data, x=x, y=labels(y))
    out = tmp_path / "out"
    out.mkdir()
    message = refused(
        "condition", MOONS, "--data", data, "-o", out / "c.h5", names=f"y in {data}", folder=out
    )
    assert found in message and "--targets" in message


def test_labels_as_a_column_are_class_indices(moons, tmp_path):
    with np.load(moons / "moons.npz") as f:
        x, y = f["x"], f["y"]
    np.savez(tmp_path / "column.npz", x=x, y=y[:, None])
    one = invoke(MOONS, "--data", tmp_path / "column.npz", "--block-points", "4", "--json")
    flat = invoke(MOONS, "--data", moons / "moons.npz", "--block-points", "4", "--json")
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["models"][0]["loss"] == json.loads(flat.stdout)["models"][0]["loss"]


# -- regression targets: floating y in the data file, or the y of a --targets file -------------------


def _condition(*args) -> dict:
    result = invoke(MOONS, *args, "--json", "--block-points", "4")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_floating_y_in_the_data_file_is_regression_targets(moons, tmp_path):
    with np.load(moons / "moons.npz") as f:
        x = f["x"]
    y = np.sin(x[:, 0])  # the targets of moons/targets.npy, which --targets reads as before
    np.savez(tmp_path / "flat.npz", x=x, y=y)
    np.savez(tmp_path / "column.npz", x=x, y=y[:, None])
    np.savez(tmp_path / "targets.npz", y=y[:, None])
    expected = _condition("--data", moons / "moons.npz", "--targets", moons / "targets.npy")["models"][0]
    # the loss by hand: the mean over points of the squared error of the model's output
    outputs = torch.jit.load(str(MOONS)).double()(torch.as_tensor(x)).detach().numpy().reshape(-1)
    assert expected["loss"] == pytest.approx(np.mean((outputs - y) ** 2), rel=1e-9)
    flat = _condition("--data", tmp_path / "flat.npz")
    column = _condition("--data", tmp_path / "column.npz")
    npz = _condition("--data", moons / "moons.npz", "--targets", tmp_path / "targets.npz")
    assert flat["targets"] == f"regression targets y from {tmp_path / 'flat.npz'}"
    assert npz["targets"] == f"regression targets from {tmp_path / 'targets.npz'}"
    for payload in (flat, column, npz):
        model = payload["models"][0]
        assert model["loss"] == pytest.approx(expected["loss"], rel=1e-12)
        for layer, same in zip(model["layers"], expected["layers"], strict=True):
            assert layer["gradient_norm"] == pytest.approx(same["gradient_norm"], rel=1e-12)


def test_integer_y_stays_class_labels(moons):
    assert _condition("--data", moons / "moons.npz")["targets"] == "one-hot class labels y"


def test_floating_y_of_the_wrong_width_exits_2(moons, tmp_path):
    with np.load(moons / "moons.npz") as f:
        x = f["x"]
    np.savez(tmp_path / "data.npz", x=x, y=np.stack([x[:, 0], x[:, 1]], axis=1))
    out = tmp_path / "out"
    out.mkdir()
    message = refused("condition", MOONS, "--data", tmp_path / "data.npz", "-o", out / "c.h5",
                      names=f"y in {tmp_path / 'data.npz'}", folder=out)  # fmt: skip
    assert "has shape [60, 2]; expected regression targets of shape [60, 1] or [60]" in message


def test_a_targets_file_of_the_wrong_rows_exits_2(moons, tmp_path):
    targets = tmp_path / "targets.npz"
    np.savez(targets, y=np.zeros(59))
    out = tmp_path / "out"
    out.mkdir()
    message = refused("condition", MOONS, "--data", moons / "moons.npz", "--targets", targets,
                      "-o", out / "c.h5", names=f"--targets {targets}", folder=out)  # fmt: skip
    assert "has shape [59]; expected regression targets of shape [60, 1] or [60]" in message
