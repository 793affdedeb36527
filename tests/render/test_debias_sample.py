"""Pictures of debiased samples: a scatter per draw for 2-D outputs, a grid per draw for images."""

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from splinetool.analyses import debias_sample as ds
from splinetool.ir import lower
from splinetool.render.debias_sample import draw_debias, image_shape
from splinetool.render.slice import save_figure
from tests.zoo import mlp


def run(widths, **options):
    torch.manual_seed(0)
    net = lower(mlp(widths).double(), (widths[0],)).to(dtype=torch.float64)
    return ds.run(net, ds.DebiasOptions(30, 300, **options))


def test_two_dimensional_outputs_draw_a_scatter_per_draw_and_the_plain_one_once(tmp_path):
    result = run((2, 16, 2), rho=(-1.0, 0.0, 1.0))
    fig = draw_debias(result, title="toy")
    panels = fig.axes
    assert len(panels) == 4  # ρ = -1, 0, 1, then the log-volume histogram
    assert [len(ax.collections) for ax in panels[:3]] == [1, 1, 1]
    np.testing.assert_allclose(panels[2].collections[0].get_offsets(), result.samples[2])
    assert "ρ = -1" in panels[0].get_title() and "modes" in panels[0].get_title()
    save_figure(fig, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_images_draw_a_grid_per_draw_with_the_baseline_first():
    result = run((2, 16, 12), rho=(1.0,), output_shape=(1, 3, 4))
    panels = draw_debias(result).axes
    assert len(panels) == 3  # baseline, ρ = 1, histogram
    assert "plain" in panels[0].get_title()
    grid = panels[1].images[0].get_array()
    side = 6  # 30 samples in a 6 × 6 grid of 3 × 4 images, one-pixel gaps
    assert grid.shape == (side * 4 - 1, side * 5 - 1)
    assert image_shape((3, 8, 8)) == (3, 8, 8) and image_shape((8, 8)) == (1, 8, 8)
    assert image_shape((12,)) is None and image_shape((2, 8, 8)) is None


def test_other_outputs_draw_only_the_log_volumes():
    assert len(draw_debias(run((2, 8, 5))).axes) == 1


def test_the_log_volume_legend_lies_outside_its_histogram():
    fig = draw_debias(run((2, 16, 2), rho=(-1.0, 1.0)))
    FigureCanvasAgg(fig).draw()
    histogram = fig.axes[-1]
    box = histogram.get_legend().get_window_extent()
    assert not box.overlaps(histogram.get_window_extent())
    assert [t.get_text() for t in histogram.get_legend().get_texts()][1:] == ["ρ = 0", "ρ = -1", "ρ = 1"]
