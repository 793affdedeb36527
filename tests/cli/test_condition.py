"""`splinetool condition` from the shell: JSON, HDF5, pictures, and bad input."""

import json

import numpy as np
import pytest
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
        (lambda y: y + 0.5, "class indices"),
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
