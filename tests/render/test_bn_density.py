"""The density figure: one panel per (init, node) on one colour scale, with the data on top."""

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.image import AxesImage

from splinetool.errors import UsageError
from splinetool.render.bn_density import draw_bn_density, draw_tessellation
from splinetool.render.slice import save_figure
from tests.zoo import bn_density_result


def test_heatmaps_share_one_colour_scale_and_show_the_data(tmp_path):
    result = bn_density_result(inits=("as-is", "zero-bias", "batchnorm"), nodes=2)
    figure = draw_bn_density(result, title="model")
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 6
    limits = {ax.images[0].get_clim() for ax in panels}
    assert limits == {(0.0, result.density.max())}
    np.testing.assert_array_equal(panels[5].images[0].get_array(), result.density[2, 1])
    for ax in panels:
        (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        np.testing.assert_allclose(points.get_offsets(), result.data)
    save_figure(figure, tmp_path / "density.png")
    assert (tmp_path / "density.png").stat().st_size > 0


def test_tessellation_draws_the_last_node_over_the_earlier_ones():
    result = bn_density_result(nodes=3)
    figure = draw_tessellation(result)
    for ax, segments, layers in zip(figure.axes, result.segments, result.segment_layers):
        earlier, last = [c for c in ax.collections if isinstance(c, LineCollection)]
        np.testing.assert_allclose(np.array(earlier.get_segments()).reshape(-1, 2, 2), segments[layers < 3])
        np.testing.assert_allclose(np.array(last.get_segments()).reshape(-1, 2, 2), segments[layers == 3])
    assert not any(isinstance(image, AxesImage) for ax in figure.axes for image in ax.images)
    with pytest.raises(UsageError, match="tessellation"):
        draw_tessellation(bn_density_result(segments=False))
