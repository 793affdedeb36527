"""bn-density against analytic lines, shapely geometry and a hand-written batch-norm pass."""

import numpy as np
import pytest
import shapely
import torch

from splinetool.analyses import bn_density as bd
from splinetool.analyses.plane import input_plane
from splinetool.data.generators import generate
from splinetool.data.loading import Dataset

ARCH = bd.Architecture("mlp", {"input_shape": [2], "outputs": 1, "widths": [12, 12, 12]})
BOUNDS = (-1.3, 1.1, -1.2, 1.25)  # off-centre, so that no grid line runs through the origin


@pytest.fixture(scope="module")
def star():
    return generate("star", 50, seed=0)


@pytest.fixture(scope="module")
def result(star):
    x, y = star
    nets = bd.networks(bd.REINITS, torch.as_tensor(x), ARCH, seed=3)
    plane = input_plane(2, BOUNDS)
    data = Dataset(x, y, "star:50")
    grid = bd.run(nets, plane, data, bd.BNDensityOptions(grid=24, seed=3))
    exact = bd.run(nets, plane, data, bd.BNDensityOptions(grid=24, seed=3, exact=True))
    return nets, grid, exact


def first_layer_lines(net):
    """(A, c) of the first node's pre-activations z = A t + c, read off the network at 3 points."""
    pre = bd.node_values(net, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=net.dtype), [0])[0]
    c = pre[0].numpy()
    return np.stack([pre[1].numpy() - c, pre[2].numpy() - c], axis=1), c


def clipped_lines(a, c, bounds=BOUNDS):
    """Each line a·t + c = 0 as a shapely LineString clipped to the view."""
    view = shapely.box(bounds[0], bounds[2], bounds[1], bounds[3])
    lines = []
    for (a1, a2), ck in zip(a, c):
        point = -ck * np.array([a1, a2]) / (a1 * a1 + a2 * a2)
        along = 100 * np.array([-a2, a1]) / np.hypot(a1, a2)
        lines.append(shapely.LineString([point - along, point + along]).intersection(view))
    return lines


def cells(result):
    xe, ye = result.x_edges, result.y_edges
    return [
        [shapely.box(xe[j], ye[i], xe[j + 1], ye[i + 1]) for j in range(len(xe) - 1)]
        for i in range(len(ye) - 1)
    ]


def test_batch_norm_puts_every_first_layer_boundary_through_the_data_centroid(star):
    x = torch.as_tensor(star[0] + np.array([0.4, -0.7]))  # centroid away from the origin
    net = bd.networks(["batchnorm"], x, ARCH, seed=1)[0].net
    a, c = first_layer_lines(net)
    centroid = x.mean(dim=0).numpy()
    distance = np.abs(a @ centroid + c) / np.linalg.norm(a, axis=1)
    assert distance.max() < 1e-9


def test_zero_bias_puts_every_first_layer_boundary_through_the_origin(result):
    nets = {n.init: n.net for n in result[0]}
    _, c = first_layer_lines(nets["zero-bias"])
    assert np.abs(c).max() == 0.0
    _, c_random = first_layer_lines(nets["random-bias"])
    assert np.abs(c_random).min() > 1e-3  # and random biases do move them


def test_the_initialisations_share_their_weights(result):
    nets = {n.init: n.net for n in result[0]}
    a_zero, _ = first_layer_lines(nets["zero-bias"])
    a_random, _ = first_layer_lines(nets["random-bias"])
    np.testing.assert_allclose(a_zero, a_random, rtol=1e-12)


def test_batch_statistics_come_from_the_data_alone(star):
    x = torch.as_tensor(star[0])
    module = bd.initialised(ARCH, "batchnorm", x, seed=2)
    h = x
    for layer in module.hidden:  # the batch-norm pass written out: mean and biased variance per layer
        z = layer.linear(h)
        mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
        torch.testing.assert_close(layer.bn.running_mean, mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.bn.running_var, var, rtol=1e-12, atol=1e-12)
        h = torch.relu((z - mean) / torch.sqrt(var + layer.bn.eps))
    more = torch.cat([x, torch.randn(20, 2, dtype=torch.float64)])
    other = bd.initialised(ARCH, "batchnorm", more, seed=2)
    assert not torch.allclose(other.hidden[0].bn.running_mean, module.hidden[0].bn.running_mean)


def test_batch_statistics_are_frozen_before_the_grid(star, result):
    # measuring a grid leaves the lowered network unchanged: its normalised pre-activations on the data
    # still have mean 0 at every layer
    nets = {n.init: n.net for n in result[0]}
    pre = bd.node_values(nets["batchnorm"], torch.as_tensor(star[0]), [0, 1, 2])
    for p in pre:
        assert p.mean(dim=0).abs().max() < 1e-12


def test_first_layer_density_counts_the_lines_crossing_each_cell(result):
    nets, grid, _ = result
    for i, network in enumerate(nets):
        lines = clipped_lines(*first_layer_lines(network.net))
        expected = np.array(
            [
                [sum(line.intersection(cell).length > 0 for line in lines) for cell in row]
                for row in cells(grid)
            ]
        )
        np.testing.assert_array_equal(grid.density[i, 0], expected)
        assert grid.boundaries_in_view[i, 0] == sum(line.length > 0 for line in lines)


def test_exact_first_layer_length_per_cell_and_distances(result):
    nets, grid, exact = result
    for i, network in enumerate(nets):
        lines = clipped_lines(*first_layer_lines(network.net))
        expected = np.array(
            [[sum(ln.intersection(cell).length for ln in lines) for cell in row] for row in cells(exact)]
        )
        np.testing.assert_allclose(exact.density[i, 0], expected, atol=1e-9)
        union = shapely.union_all(lines)
        points = shapely.points(exact.data)
        np.testing.assert_allclose(exact.distance_to_data[i, 0], shapely.distance(points, union), atol=1e-9)
        # the grid distance is a lower bound within one cell diagonal (first-layer lines cross cells)
        diagonal = np.hypot(np.diff(grid.x_edges[:2]), np.diff(grid.y_edges[:2]))[0]
        assert np.all(grid.distance_to_data[i, 0] <= exact.distance_to_data[i, 0] + 1e-12)
        assert np.all(exact.distance_to_data[i, 0] <= grid.distance_to_data[i, 0] + diagonal + 1e-12)
        near = shapely.union_all(shapely.buffer(points, exact.delta, quad_segs=512))
        share = union.intersection(near).length / union.length
        assert exact.share_within_delta[i, 0] == pytest.approx(share, rel=1e-4)


def test_linearised_distance_of_the_first_layer_is_the_distance_to_its_lines(star, result):
    nets, grid, _ = result
    for i, network in enumerate(nets):
        a, c = first_layer_lines(network.net)
        expected = (np.abs(star[0] @ a.T + c) / np.linalg.norm(a, axis=1)).min(axis=1)
        np.testing.assert_allclose(grid.linearised_distance[i, 0], expected, rtol=1e-9)


def test_batch_norm_concentrates_deep_boundaries_near_the_data(result):
    _, grid, _ = result
    share = dict(zip(grid.inits, grid.share_within_delta[:, -1]))
    assert share["batchnorm"] > share["random-bias"]


def test_length_per_cell_and_length_within_match_shapely():
    rng = np.random.default_rng(0)
    segments = rng.uniform(-1, 1, (40, 2, 2))
    edges = np.linspace(-1, 1, 9)
    got = bd.length_per_cell(segments, edges, edges)
    lines = [shapely.LineString(s) for s in segments]
    boxes = [
        [shapely.box(edges[j], edges[i], edges[j + 1], edges[i + 1]) for j in range(8)] for i in range(8)
    ]
    expected = np.array([[sum(ln.intersection(b).length for ln in lines) for b in row] for row in boxes])
    np.testing.assert_allclose(got, expected, atol=1e-12)
    points = rng.uniform(-1, 1, (7, 2))
    near = shapely.union_all(shapely.buffer(shapely.points(points), 0.2, quad_segs=512))
    within = shapely.union_all(lines).intersection(near).length
    assert bd.length_within(points, segments, 0.2) == pytest.approx(within, rel=1e-4)
