"""A ConditionResult survives the HDF5 round trip."""

import numpy as np
import torch

from splinetool.analyses import condition
from splinetool.frontends.families import build
from splinetool.io import Provenance, read, write
from splinetool.ir import lower


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("mlp", {"input_shape": [2], "outputs": 2, "widths": [4, 4], "residual": True}).double()
    net = lower(model.eval(), (2,)).to(dtype=torch.float64)
    x = np.random.default_rng(0).normal(size=(12, 2))
    y = condition.one_hot(np.arange(12) % 2, 2)
    names, shas = ["a/m.pt", "b/m.pt"], ["1", "2"]
    options = condition.ConditionOptions(max_dense=10, k=2, block_points=5)
    targets = condition.Targets(y, "labels")
    result = condition.run([net, net], x, targets, options, checkpoints=names, checkpoint_sha256=shas)
    assert {layer.method for layer in result.models[0].layers} == {"lanczos", "dense JᵀJ"}
    path = tmp_path / "c.h5"
    write(path, {"condition": result}, Provenance("condition", ["x"], "1,2", "cpu", 0))
    back = read(path)["condition"]
    assert back.summary() == result.summary()
    for before, after in zip(result.models, back.models):
        for a, b in zip(before.layers, after.layers):
            np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
            np.testing.assert_array_equal(a.residuals, b.residuals)
        for a, b in zip(before.blocks, after.blocks):
            np.testing.assert_array_equal(a.singular_values, b.singular_values)
            assert a.step_names == b.step_names
        np.testing.assert_array_equal(before.block_points, after.block_points)
