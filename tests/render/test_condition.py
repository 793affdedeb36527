"""The condition figure: one spectrum panel per layer position and the block box plots."""

import numpy as np
import torch

from splinetool.analyses import condition
from splinetool.frontends.families import build
from splinetool.ir import lower
from splinetool.render.condition import draw_condition


def test_draws_one_panel_per_layer_and_the_blocks():
    torch.manual_seed(0)
    nets = [
        lower(build("mlp", {"input_shape": [2], "outputs": 2, "widths": w}).double().eval(), (2,)).to(
            dtype=torch.float64
        )
        for w in ([4], [4, 4])
    ]
    x = np.random.default_rng(0).normal(size=(10, 2))
    options = condition.ConditionOptions(block_points=6)
    result = condition.run(nets, x, options=options, checkpoints=["a.pt", "b.pt"])
    fig = draw_condition(result)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 + 1  # the deeper model's 3 layers, then the blocks
    assert all(ax.get_yscale() == "log" for ax in visible[:3])
    assert len(visible[3].get_xticklabels()) == 2 + 3  # every block of both models
