"""Count figures: pieces and breakpoints along segments, tiles per prefix network, sweeps."""

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection

from splinetool.analyses import count_regions as counting
from splinetool.analyses.count_regions_sweep import SweepResult
from splinetool.analyses.plane import input_plane
from splinetool.io import Provenance, read, write
from splinetool.ir import lower
from splinetool.render.count_regions import draw_per_layer, draw_segments, draw_sweep
from tests.zoo import first_layer_net

F64 = torch.float64


@pytest.fixture(scope="module")
def net():
    # two ReLU units with kinks on the lines x = 0.25 and x = -0.5: three tiles on [-1, 1]^2
    torch.manual_seed(0)
    return lower(first_layer_net([[1.0, 0.0], [1.0, 0.0]], [-0.25, 0.5]), (2,)).to(dtype=F64)


def segments(net):
    starts = torch.tensor([[-1.0, 0.0], [-1.0, 0.5]], dtype=F64)
    ends = torch.tensor([[1.0, 0.0], [1.0, 0.5]], dtype=F64)
    return counting.run(net, counting.Segments(starts, ends))


def test_segments_show_the_output_its_breakpoints_and_the_pieces_per_segment(net, tmp_path):
    result = segments(net)
    assert result.pieces.tolist() == [3, 3]
    fig = draw_segments(result, title="model")
    along, hist = fig.axes
    assert along.get_title() == "3 pieces along the first segment"
    # the kinks at t = (x + 1) / 2: 0.25 for x = -0.5, 0.625 for x = 0.25
    (marks,) = [c for c in along.collections if isinstance(c, LineCollection)]
    kinks = sorted(float(s[0][0]) for s in marks.get_segments())
    np.testing.assert_allclose(kinks, [0.25, 0.625], atol=1e-12)
    (curve,) = along.lines
    np.testing.assert_allclose(curve.get_ydata(), result.outputs[: result.offsets[1], 0])
    assert hist.get_title() == "2 segments, 3 distinct regions crossed"
    assert fig.get_suptitle() == "model"
    # a result read back from its file draws the same
    path = tmp_path / "run.h5"
    write(path, {"count-regions": result}, Provenance("count-regions", ["splinetool"], "", "cpu", 0))
    again = draw_segments(read(path)["count-regions"])
    np.testing.assert_array_equal(again.axes[0].lines[0].get_ydata(), curve.get_ydata())


def test_planes_show_the_tiles_of_each_prefix_network(net):
    planes = (input_plane(2, (-1, 1, -1, 1)), input_plane(2, (0.5, 1, 0, 1)))
    result = counting.run(net, counting.Planes(planes))
    assert result.tiles.tolist() == [3, 1] and result.per_layer == [4]
    ax = draw_per_layer(result).axes[0]
    assert [bar.get_height() for bar in ax.patches] == [4]
    assert ax.get_title() == "4 tiles" and ax.get_ylabel() == "tiles, 2 planes"


def test_samples_show_the_codes_seen_and_the_estimate(net):
    points = torch.rand(400, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2 - 1
    result = counting.run(net, counting.Samples(points, "uniform in the box"))
    assert result.regions == 3 and result.samples == 400
    ax = draw_per_layer(result).axes[0]
    assert [bar.get_height() for bar in ax.patches] == [3]
    (estimate,) = ax.lines
    assert estimate.get_ydata()[0] == pytest.approx(result.estimate)
    assert ax.get_title() == "at least 3 regions among 400 samples"


def test_a_sweep_shows_every_seed_and_the_median_per_depth():
    result = SweepResult(
        family="mlp",
        neurons=8,
        depth=np.array([1, 1, 2, 2]),
        width=np.array([8, 8, 4, 4]),
        seed=np.array([0, 1, 0, 1]),
        regions=np.array([10.0, 14.0, 20.0, 30.0]),
        method="exact-2d",
        measure="tiles of [-1, 1]^2",
        init="default",
        config="",
    )
    by_depth, by_width = draw_sweep(result).axes
    (seeds,) = [c for c in by_depth.collections if isinstance(c, PathCollection)]
    np.testing.assert_array_equal(seeds.get_offsets(), [[1, 10], [1, 14], [2, 20], [2, 30]])
    (median,) = by_depth.lines
    np.testing.assert_array_equal(median.get_ydata(), [12.0, 25.0])
    np.testing.assert_array_equal(by_width.lines[0].get_xdata(), [8, 4])
    assert by_depth.get_title() == "8 hidden neurons, 2 seeds"
    (legend,) = by_depth.figure.legends
    assert by_depth.get_legend() is None and outside(legend, by_depth) and outside(legend, by_width)


def outside(legend, ax) -> bool:
    """Whether `legend` lies wholly outside the data area of `ax`, once drawn."""
    FigureCanvasAgg(ax.figure).draw()
    return not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_legends_lie_beside_the_data_never_over_it(net):
    result = segments(net)
    along, hist = draw_segments(result).axes
    assert outside(along.get_legend(), along)
    assert outside(along.get_legend(), hist)  # nor over the histogram beside it
    assert hist.get_legend() is None and "dashed: the mean, 3.0" in hist.get_xlabel()
    points = torch.rand(400, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2 - 1
    ax = draw_per_layer(counting.run(net, counting.Samples(points, "uniform"))).axes[0]
    assert outside(ax.get_legend(), ax)
