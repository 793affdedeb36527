"""The density figure: one panel per (init, node) on one colour scale, with the data on top."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
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


def drawn(figure):
    FigureCanvasAgg(figure).draw()
    return figure


def test_rows_can_have_their_own_colour_scale():
    result = bn_density_result(inits=("as-is", "zero-bias", "batchnorm"), nodes=2)
    result.density[1] *= 0.01  # one sparse initialisation beside dense ones
    figure = drawn(draw_bn_density(result, scale="row"))
    panels = np.array([ax for ax in figure.axes if ax.images]).reshape(3, 2)
    for i, row in enumerate(panels):
        assert {ax.images[0].get_clim() for ax in row} == {(0.0, result.density[i].max())}
    assert len(figure.axes) == 3 * 2 + 3  # one colour bar per row
    assert "one colour scale per row" in figure.get_suptitle()
    shared = draw_bn_density(result)
    assert {ax.images[0].get_clim() for ax in shared.axes if ax.images} == {(0.0, result.density.max())}
    with pytest.raises(UsageError, match="`scale` 'column': expected one of shared, row"):
        draw_bn_density(result, scale="column")


@pytest.mark.parametrize("scale", ["shared", "row"])
def test_colour_bars_are_as_tall_as_the_panels_they_scale(scale):
    result = bn_density_result(inits=("as-is", "zero-bias", "batchnorm"), nodes=2)
    figure = drawn(draw_bn_density(result, title="model", scale=scale))
    column = [ax for ax in figure.axes if ax.images][1::2]
    bars = [ax for ax in figure.axes if not ax.images]
    if scale == "shared":
        (bar,) = bars
        top, bottom = column[0].get_position(original=False), column[-1].get_position(original=False)
        position = bar.get_position(original=False)
        assert position.y1 == pytest.approx(top.y1) and position.y0 == pytest.approx(bottom.y0)
    else:
        for ax, bar in zip(column, bars, strict=True):
            panel, position = ax.get_position(original=False), bar.get_position(original=False)
            assert (position.y0, position.height) == pytest.approx((panel.y0, panel.height))


def test_panel_notes_sit_on_a_white_box():
    figure = draw_bn_density(bn_density_result(nodes=2))
    notes = [text for ax in figure.axes for text in ax.texts]
    assert notes and all(text.get_color() == "black" for text in notes)
    for text in notes:
        *white, alpha = text.get_bbox_patch().get_facecolor()
        assert white == [1.0, 1.0, 1.0] and alpha >= 0.7
