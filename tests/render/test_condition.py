"""The condition figure: one spectrum panel per layer and the block box plots."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from splinetool.analyses import condition
from splinetool.frontends.families import build
from splinetool.ir import lower
from splinetool.render.condition import COLOURS, draw_condition


@pytest.fixture(scope="module")
def result():
    """Two MLPs sharing their first and output layers' names and sizes; the second has one more."""
    torch.manual_seed(0)
    nets = [
        lower(build("mlp", {"input_shape": [2], "outputs": 2, "widths": w}).double().eval(), (2,)).to(
            dtype=torch.float64
        )
        for w in ([4], [4, 4])
    ]
    x = np.random.default_rng(0).normal(size=(10, 2))
    options = condition.ConditionOptions(block_points=6)
    return condition.run(nets, x, options=options, checkpoints=["a.pt", "b.pt"])


def spectra(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_yscale() == "log"]


def test_draws_one_panel_per_layer_and_the_blocks(result):
    fig = draw_condition(result)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 + 1  # the deeper model's 3 layers, then the blocks
    assert all(ax.get_yscale() == "log" for ax in visible[:3])
    assert len(visible[3].get_xticklabels()) == 2 + 3  # every block of both models


def test_titles_name_the_layer_and_the_models_it_compares(result):
    a, b = (model.layers for model in result.models)
    titles = [ax.get_title() for ax in spectra(draw_condition(result))]
    assert titles == [
        f"{a[0].name}\na.pt, b.pt",  # the same layer of both: one panel, both lines
        f"{a[1].name}\na.pt, b.pt",
        f"{b[1].name}\nb.pt",
    ]
    assert a[1].name == b[2].name  # the output layers, paired by name and size, not by position


def test_layers_of_unrelated_models_never_share_a_panel(result):
    other = result.models[1]
    renamed = replace(other, layers=[replace(layer, name=f"other.{layer.name}") for layer in other.layers])
    fig = draw_condition(replace(result, models=[result.models[0], renamed]))
    panels = spectra(fig)
    assert len(panels) == 2 + 3
    for ax in panels:
        assert ax.get_title().count(".pt") == 1
        assert len({line.get_color() for line in ax.lines}) == 1


def test_one_colour_means_one_model_and_nothing_else(result):
    fig = draw_condition(result)
    boxes = [ax for ax in fig.axes if ax.get_visible()][-1]
    model_colours = {to_rgba(c) for c in COLOURS}
    ticks = boxes.get_xticklabels()
    assert [t.get_text().split(":")[0] for t in ticks] == ["a.pt"] * 2 + ["b.pt"] * 3
    assert {to_rgba(t.get_color()) for t in ticks[:2]} == {to_rgba(COLOURS[0])}
    # the box plot's own lines (whiskers, caps, medians: black by default, medians orange) stay neutral
    assert boxes.lines and not {to_rgba(line.get_color()) for line in boxes.lines} & model_colours


def test_box_plots_raise_no_deprecation_warning(result):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        draw_condition(result).canvas.draw()
