"""`splinetool slice` from the shell on exact cancellation: `--verify` agrees with the tiles."""

import json

import numpy as np
import pytest
import torch

from tests.analyses.test_zero_rule import hyperplane_net
from tests.cli.test_slice_list import invoke
from tests.refusal import refused
from tests.zoo import build, concurrent_lines_net


def test_verify_passes_on_a_plane_inside_a_units_hyperplane(tmp_path):
    # the case: x1 + x2 + x3 - 0.75 is 0 on the plane, which x1 = 0 cuts in two
    model = tmp_path / "model.ts.pt"
    torch.jit.trace(hyperplane_net().eval(), torch.zeros(1, 3, dtype=torch.float64)).save(str(model))
    np.save(tmp_path / "origin.npy", np.array([[0.125, 0.25, 0.375]]))
    np.save(tmp_path / "directions.npy", np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]))
    result = invoke(
        model,
        "--origin",
        tmp_path / "origin.npy",
        "--directions",
        tmp_path / "directions.npy",
        "--input-shape",
        "3",
        "--bounds=-1,1,-1,1",
        "--verify",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["regions"] == 2 and payload["verify"]["passed"]


def test_verify_passes_on_three_concurrent_lines(tmp_path):
    model = tmp_path / "model.ts.pt"
    torch.jit.trace(concurrent_lines_net().eval(), torch.zeros(1, 2)).save(str(model))
    result = invoke(model, "--input-shape", "2", "--bounds=-1,1,-1,1", "--verify", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["regions"] == 6 and payload["verify"]["passed"]


def test_data_of_another_dimension_is_refused_before_the_work(tmp_path):
    from tests.conftest import SAMPLES

    digits = SAMPLES / "data" / "digits.npz"
    result = invoke(SAMPLES / "moons-mlp.ts.pt", "--data", digits, "-o", tmp_path / "s.h5")
    assert result.exit_code == 2
    assert f"--data {digits}: rows have 64 values, the plane lives in 2-D" in result.output
    assert list(tmp_path.iterdir()) == []


# -- vectors saved as vectors: one input or a stack of inputs, flat or in the input shape -----------


def test_a_flat_origin_gives_the_slice_of_a_one_row_origin(tmp_path):
    model = tmp_path / "model.ts.pt"
    torch.jit.trace(hyperplane_net().eval(), torch.zeros(1, 3, dtype=torch.float64)).save(str(model))
    np.save(tmp_path / "flat.npy", np.array([0.125, 0.25, 0.375]))  # np.save of a vector: shape [3]
    np.save(tmp_path / "row.npy", np.array([[0.125, 0.25, 0.375]]))
    np.save(tmp_path / "directions.npy", np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]))
    payloads = []
    for origin in ("flat.npy", "row.npy"):
        result = invoke(model, "--origin", tmp_path / origin, "--directions", tmp_path / "directions.npy",
                        "--input-shape", "3", "--bounds=-1,1,-1,1", "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        payloads.append(json.loads(result.stdout))
    assert payloads[0]["regions"] == payloads[1]["regions"] == 2
    measured = {"seconds", "tiles_per_second", "peak_memory_bytes"}  # of the run, not of the slice
    assert {k: v for k, v in payloads[0].items() if k not in measured} == {
        k: v for k, v in payloads[1].items() if k not in measured
    }


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A small residual convolutional network on [1, 6, 6] images, saved as TorchScript with its shape."""
    model, shape = build("resnet")
    path = tmp_path_factory.mktemp("models") / "resnet.ts.pt"
    traced = torch.jit.trace(model.eval(), torch.zeros(1, *shape))
    torch.jit.save(
        traced, str(path), _extra_files={"splinetool.json": json.dumps({"input_shape": list(shape)})}
    )
    return path


def test_anchors_in_the_input_shape_or_flat_give_the_same_slice(image_model, tmp_path):
    anchors = np.random.default_rng(0).normal(size=(3, 36))
    regions = []
    for shape in ((3, 36), (3, 1, 6, 6), (3, 6, 6)):
        np.save(tmp_path / "anchors.npy", anchors.reshape(shape))
        result = invoke(image_model, "--anchors", tmp_path / "anchors.npy", "--json")
        assert result.exit_code == 0, result.output
        regions.append(json.loads(result.stdout)["regions"])
    assert regions[0] > 1 and regions == [regions[0]] * 3


@pytest.mark.parametrize(
    ("option", "shape", "found"),
    [
        ("--anchors", (36,), "holds one input; expected three inputs of 36 values: shape [3, 36] or "
         "[3, 1, 6, 6]"),
        ("--anchors", (3, 5, 5), "array of shape [3, 5, 5] does not fit the model's inputs of shape "
         "[1, 6, 6]"),
        ("--origin", (2, 1, 6, 6), "holds 2 inputs; expected one input of 36 values: shape [36] or "
         "[1, 6, 6]"),
        ("--directions", (36,), "holds one input; expected two inputs of 36 values: shape [2, 36] or "
         "[2, 1, 6, 6]"),
    ],
)  # fmt: skip
def test_inputs_of_the_wrong_shape_exit_2_naming_the_option(image_model, tmp_path, option, shape, found):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "origin.npy", rng.normal(size=(1, 6, 6)))
    np.save(tmp_path / "directions.npy", rng.normal(size=(2, 36)))
    given = tmp_path / f"{option.strip('-')}.npy"
    np.save(given, rng.normal(size=shape))
    out = tmp_path / "out"
    out.mkdir()
    if option == "--anchors":
        place = ["--anchors", given]
    else:
        place = [
            "--origin",
            tmp_path / "origin.npy",
            "--directions",
            tmp_path / "directions.npy",
            "--bounds=-1,1,-1,1",
        ]
    message = refused("slice", image_model, *place, "-o", out / "s.h5", names=f"{option} {given}", folder=out)
    assert found in message
