"""Local-complexity figures: a histogram with per-node bars, and a curve over training steps."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from splinetool.render.local_complexity import draw_local_complexity
from splinetool.render.slice import save_figure
from tests.io.test_local_complexity_codec import result


def one_checkpoint():
    return result(
        per_point=result().per_point[:1],
        accuracy=result().accuracy[:1],
        steps=None,
        checkpoints=["m.pt"],
        checkpoint_sha256=[""],
    )


def test_one_checkpoint_draws_a_histogram_and_bars(tmp_path):
    single = one_checkpoint()
    figure = draw_local_complexity(single, title="m.pt")
    hist, bars = figure.axes
    assert len(bars.patches) == 2 * 3  # a bar per (set, node)
    heights = [p.get_height() for p in bars.patches[:3]]
    np.testing.assert_allclose(heights, single.per_point[0, :5].mean(axis=0))
    save_figure(figure, tmp_path / "h.svg")
    assert (tmp_path / "h.svg").stat().st_size > 1000


def test_a_trajectory_draws_lc_and_accuracy_against_step(tmp_path):
    figure = draw_local_complexity(result())
    lc, accuracy = figure.axes
    train = lc.lines[0]
    np.testing.assert_array_equal(train.get_xdata(), [1, 10])
    np.testing.assert_allclose(train.get_ydata(), result().per_point[:, :5].sum(axis=2).mean(axis=1))
    assert lc.get_xscale() == "symlog" and len(accuracy.lines) == 1  # the random points have no labels
    save_figure(figure, tmp_path / "t.png")


def test_legends_lie_outside_the_plots():
    trajectory = draw_local_complexity(result())
    FigureCanvasAgg(trajectory).draw()
    (legend,) = trajectory.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[0].startswith("LC, ") and any(t.startswith("accuracy, ") for t in texts)
    for ax in trajectory.axes:  # the LC axes and its accuracy twin
        assert ax.get_legend() is None
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    figure = draw_local_complexity(one_checkpoint())
    FigureCanvasAgg(figure).draw()
    hist, bars = figure.axes
    box = hist.get_legend().get_window_extent()
    assert not box.overlaps(hist.get_window_extent()) and not box.overlaps(bars.get_window_extent())
