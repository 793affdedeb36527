"""`splinetool slice` from the shell on exact cancellation: `--verify` agrees with the tiles."""

import json

import numpy as np
import torch

from tests.analyses.test_zero_rule import hyperplane_net
from tests.cli.test_slice_list import invoke
from tests.zoo import concurrent_lines_net


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
