"""A slice trajectory drawn: a panel per checkpoint on one colour scale, and density curves by step."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection

from splinetool.render.slice_trajectory import draw_slice_trajectory
from tests.io.test_slice_trajectory_codec import trajectory


def test_one_panel_per_checkpoint_and_one_curve_per_step():
    result = trajectory()
    fig = draw_slice_trajectory(result, title="run")
    FigureCanvasAgg(fig).draw()
    titles = [ax.get_title() for ax in fig.axes]
    assert "step 0: 6 tiles" in titles and "step 1,000: 24 tiles" in titles
    curves = [ax for ax in fig.axes if ax.get_xlabel().startswith("distance to")]
    assert [ax.get_xlabel() for ax in curves] == [
        "distance to the nearest data point",
        "distance to the decision boundary",
    ]
    for ax in curves:
        lines = ax.get_lines()
        assert len(lines) == 2 and lines[0].get_color() != lines[1].get_color()
        np.testing.assert_allclose(lines[1].get_ydata(), result.placements[1].density[_target(ax)])


def _target(ax) -> str:
    return "data" if "data" in ax.get_xlabel() else "boundary"


def test_panels_share_one_colour_scale():
    result = trajectory()
    # the same Jacobian norm in both checkpoints must take the same colour
    result.slices[0].jacobian_norm[:] = 2.0
    result.slices[1].jacobian_norm[:] = 1.0
    result.slices[1].jacobian_norm[:2] = (3.0, 2.0)
    fig = draw_slice_trajectory(result)
    first, second = (next(c for c in ax.collections if isinstance(c, PolyCollection)) for ax in fig.axes[:2])
    np.testing.assert_array_equal(first.get_facecolor()[0], second.get_facecolor()[1])
    assert not np.array_equal(second.get_facecolor()[0], second.get_facecolor()[1])
