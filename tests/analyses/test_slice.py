"""slice results against brute force on dense grids, area identities and the decision boundary."""

import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn

from splinetool.analyses import slice as analysis
from splinetool.analyses.plane import PlaneOptions, anchor_plane, given_plane, input_plane, input_rows
from splinetool.engine.planar import count_tiles
from splinetool.errors import UsageError
from splinetool.io import Provenance, read, stream
from splinetool.ir import lower
from tests.zoo import ZOO, build, mlp

F64 = torch.float64


def grid(plane, n: int) -> tuple[np.ndarray, torch.Tensor]:
    (xmin, ymin), (xmax, ymax) = plane.domain.min(dim=0).values, plane.domain.max(dim=0).values
    # stay off the domain edge so every grid point is inside some tile
    gx = torch.linspace(float(xmin), float(xmax), n + 2, dtype=F64)[1:-1]
    gy = torch.linspace(float(ymin), float(ymax), n + 2, dtype=F64)[1:-1]
    t = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).reshape(-1, 2)
    return t.numpy(), plane.to_input(t)


def check_exact(net, plane, result, n_grid=120):
    areas = result.areas
    assert (areas > 0).all()
    assert abs(areas.sum() - result.domain_area) / result.domain_area < 1e-9
    t, x = grid(plane, n_grid)
    codes = net.codes(x.reshape(len(x), *net.input_shape)).numpy()
    # tiles are at least as many as the distinct codes a dense grid sees
    assert result.regions >= len(np.unique(codes, axis=0))
    # every grid point lies in a tile whose code is its own
    located = result.locate(t)
    assert (located >= 0).all()
    assert (result.codes[located] == codes).all()


@pytest.fixture(scope="module")
def moons_like():
    torch.manual_seed(5)  # a network whose three classes all appear in the domain
    model = mlp((2, 12, 12, 10, 3))
    net = lower(model, (2,)).to(dtype=F64)
    plane = input_plane(2, (-4, 4, -4, 4))
    return net, plane, analysis.run(net, plane, analysis.SliceOptions(verify_samples=3, jacobian_norm=True))


def test_tiles_cover_the_domain_and_match_grid_codes(moons_like):
    net, plane, result = moons_like
    check_exact(net, plane, result)
    assert result.verify["passed"] and result.verify["tiles_checked"] == result.regions


def test_adjacent_tiles_differ_in_code(moons_like):
    _, _, result = moons_like
    polygons = result.to_shapely()
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="touches")
    shared_edge = [
        (i, j) for i, j in zip(left, right) if i < j and polygons[i].intersection(polygons[j]).length > 1e-9
    ]
    assert shared_edge
    assert all((result.codes[i] != result.codes[j]).any() for i, j in shared_edge)


def test_affine_maps_reproduce_the_output_inside_each_tile(moons_like):
    net, plane, result = moons_like
    rng = np.random.default_rng(0)
    for r in rng.choice(result.regions, size=50, replace=False):
        corners = result.polygon(r)
        t = (rng.dirichlet(np.ones(len(corners)), size=5) @ corners).astype(np.float64)
        expected = net(plane.to_input(torch.as_tensor(t))).numpy()
        got = t @ result.affine_A[r].T + result.affine_c[r]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_jacobian_norms_match_dense_jacobians(moons_like):
    net, plane, result = moons_like
    r = int(np.argmax(result.areas))
    centre = torch.as_tensor(result.polygon(r).mean(axis=0))
    x = plane.to_input(centre[None])
    jac = torch.autograd.functional.jacobian(lambda z: net(z)[0], x)[:, 0, :]
    assert abs(float(torch.linalg.matrix_norm(jac, ord=2)) - result.jacobian_norm[r]) < 1e-10


def test_decision_boundary_separates_grid_points_of_different_classes(moons_like):
    net, plane, result = moons_like
    n = 80
    t, x = grid(plane, n)
    classes = net(x).argmax(dim=1).numpy().reshape(n, n)
    boundary = shapely.MultiLineString([seg.tolist() for seg in result.boundary])
    pts = t.reshape(n, n, 2)
    changes = 0
    for i in range(n):
        for j in range(n - 1):
            if classes[i, j] != classes[i, j + 1]:
                changes += 1
                assert shapely.LineString([pts[i, j], pts[i, j + 1]]).intersects(boundary)
    assert changes > 0
    # and it stays where classes really meet: midpoints of segments tie between two classes
    mid = torch.as_tensor(result.boundary.mean(axis=1))
    logits = net(plane.to_input(mid))
    top2 = logits.topk(2, dim=1).values
    assert torch.allclose(top2[:, 0], top2[:, 1], atol=1e-8)


def test_single_output_boundary_is_the_zero_level_set():
    torch.manual_seed(4)
    net = lower(mlp((2, 10, 10, 1)), (2,)).to(dtype=F64)
    plane = input_plane(2, (-3, 3, -3, 3))
    result = analysis.run(net, plane)
    assert len(result.boundary) > 0
    ends = torch.as_tensor(result.boundary.reshape(-1, 2))
    assert net(plane.to_input(ends)).abs().max() < 1e-9


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_layer_kind_is_sliced_exactly(name):
    model, shape = build(name)
    net = lower(model, shape).to(dtype=F64)
    anchors = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    plane = anchor_plane(anchors)
    result = analysis.run(net, plane, analysis.SliceOptions(verify_samples=2))
    assert result.verify["passed"]
    check_exact(net, plane, result, n_grid=60)


def test_anchor_plane_keeps_the_anchors_inside_and_in_the_plane():
    anchors = torch.randn(3, 10, dtype=F64)
    plane = anchor_plane(anchors, margin=1.25)
    t, distance = plane.project(anchors)
    assert distance.max() < 1e-12
    torch.testing.assert_close(t, plane.anchors)
    half = float(plane.domain[:, 0].max())
    assert float(t.abs().max()) <= half / 1.25 + 1e-12


def test_collinear_anchors_and_parallel_directions_are_refused():
    a = torch.randn(2, 5, dtype=F64)
    with pytest.raises(UsageError, match="collinear"):
        anchor_plane(torch.stack([a[0], a[1], 2 * a[1] - a[0]]))
    with pytest.raises(UsageError, match="parallel"):
        given_plane(torch.zeros(5), torch.stack([a[0], 3 * a[0]]), (-1, 1, -1, 1))


def test_results_do_not_depend_on_the_plane_parameterisation():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    net = lower(model, (4,)).to(dtype=F64)
    origin = torch.randn(4, dtype=F64)
    q, _ = torch.linalg.qr(torch.randn(4, 2, dtype=F64))
    straight = analysis.run(net, given_plane(origin, q.T, (-2, 2, -2, 2)))
    # the same square, described with the directions swapped: same tiles, mirrored coordinates
    swapped = analysis.run(net, given_plane(origin, q.T.flip(0), (-2, 2, -2, 2)))
    assert straight.regions == swapped.regions
    assert abs(straight.boundary_length - swapped.boundary_length) < 1e-9


def test_decision_boundary_lying_on_a_tile_edge_is_found():
    # f(x) = relu(x1) - relu(-x1) = x1: its zero set is exactly the kink line shared by both units
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        model[2].bias.zero_()
    net = lower(model, (2,)).to(dtype=F64)
    result = analysis.run(net, input_plane(2, (-1, 1, -2, 2)))
    assert result.regions == 2
    assert abs(result.boundary_length - 4.0) < 1e-12
    assert np.abs(result.boundary[..., 0]).max() < 1e-15


@pytest.mark.parametrize("budget", [None, 1 << 15])
def test_decision_boundary_along_tile_edges_is_whole_when_the_plane_is_cut_into_groups(budget):
    # f(x) = relu(relu(x1)) - relu(relu(-x1)) = x1 again, with more units that only cut tiles (zero
    # weight onward): the boundary runs along the kink line over many tile edges, and a small budget
    # splits the tiles into groups after the first layer, each seeing one side of some of those edges
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    with torch.no_grad():
        model[0].weight[:2] = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        model[0].bias[:2] = 0.0
        model[2].weight[:2] = 0.0
        model[2].weight[0, 0] = model[2].weight[1, 1] = 1.0
        model[2].bias[:2] = 0.0
        model[4].weight.zero_()
        model[4].weight[0, :2] = torch.tensor([1.0, -1.0])
        model[4].bias.zero_()
    net = lower(model, (2,)).to(dtype=F64)
    plane, options = input_plane(2, (-1, 1, -2, 2)), analysis.SliceOptions(budget=budget)
    result = analysis.run(net, plane, options)
    assert abs(result.boundary_length - 4.0) < 1e-12
    assert np.abs(result.boundary[..., 0]).max() < 1e-15
    groups = []
    analysis.run(net, plane, options, groups.append)
    assert (len(groups) > 1) == (budget is not None)


def test_float32_geometry_agrees_with_float64_on_a_generic_network():
    torch.manual_seed(7)
    model = mlp((2, 16, 16, 16, 1))
    plane = input_plane(2, (-2, 2, -2, 2))
    exact = analysis.run(lower(model, (2,)).to(dtype=F64), plane)
    single = analysis.run(lower(model, (2,)).to(dtype=torch.float32), plane)
    assert single.regions == exact.regions
    assert abs(single.areas.sum() - 16.0) < 1e-4


def test_streamed_groups_read_back_equal_to_the_slice_in_memory(tmp_path):
    # a budget of 512 KiB forces several groups; streamed or joined in memory, the arrays are the same
    model, shape = build("resnet")
    net = lower(model, shape).to(dtype=F64)
    plane = anchor_plane(torch.randn(3, *shape, generator=torch.Generator().manual_seed(2), dtype=F64))
    in_memory = analysis.run(net, plane, analysis.SliceOptions(jacobian_norm=True, budget=1 << 19))
    path = tmp_path / "slice.h5"
    with stream(path, Provenance("slice", [], "0" * 64, "cpu", 0)) as appender:
        streamed = analysis.run(
            net, plane, analysis.SliceOptions(jacobian_norm=True, budget=1 << 19), appender.append
        )
        appender.finish(streamed)
    back = read(path)["slice"]
    for name in ("vertices", "offsets", "codes", "affine_A", "affine_c", "jacobian_norm", "edge_node"):
        np.testing.assert_array_equal(getattr(back, name), getattr(in_memory, name))
    assert len(back.boundary) == len(in_memory.boundary)
    assert streamed.summary()["regions"] == in_memory.regions == back.regions
    assert streamed.summary()["covered_area"] == pytest.approx(in_memory.domain_area, rel=1e-9)
    assert in_memory.tiles_per_node == count_tiles(net, plane.origin, plane.directions, plane.domain)


def test_affine_maps_on_the_plane_give_the_network_output(moons_like):
    net, plane, result = moons_like
    centres = np.array([result.polygon(r).mean(axis=0) for r in range(result.regions)])
    predicted = np.einsum("roi,ri->ro", result.affine_A, centres) + result.affine_c
    actual = net(plane.to_input(torch.as_tensor(centres))).numpy()
    assert np.abs(predicted - actual).max() < 1e-9 * max(1.0, np.abs(actual).max())


# -- vectors saved as vectors: one input or a stack of inputs, flat or in the input shape -----------


@pytest.mark.parametrize(
    ("shape", "count"),
    [((36,), 1), ((1, 36), 1), ((1, 6, 6), 1), ((6, 6), 1), ((3, 36), 3), ((3, 1, 6, 6), 3), ((3, 6, 6), 3)],
)
def test_one_input_or_a_stack_reads_as_the_same_rows(shape, count):
    values = np.arange(count * 36, dtype=np.float32)
    rows = input_rows(values.reshape(shape), (1, 6, 6), "`anchors` a.npy", count)
    assert rows.dtype == F64 and rows.shape == (count, 36)
    np.testing.assert_array_equal(rows.numpy(), values.reshape(count, 36))


ONE = "expected one input of 36 values: shape [36] or [1, 6, 6]"
THREE = "expected three inputs of 36 values: shape [3, 36] or [3, 1, 6, 6]"


@pytest.mark.parametrize(
    ("shape", "count", "message"),
    [
        ((36,), 3, f"array of shape [36] holds one input; {THREE}"),
        ((2, 36), 1, f"array of shape [2, 36] holds 2 inputs; {ONE}"),
        (
            (3, 5, 5),
            3,
            f"array of shape [3, 5, 5] does not fit the model's inputs of shape [1, 6, 6]; {THREE}",
        ),
    ],
)
def test_inputs_of_the_wrong_shape_or_count_are_refused_naming_both(shape, count, message):
    with pytest.raises(UsageError) as refused:
        input_rows(np.zeros(shape), (1, 6, 6), "`anchors` a.npy", count)
    assert str(refused.value) == f"`anchors` a.npy: {message}"


def test_a_flat_origin_places_the_plane_of_a_one_row_origin(tmp_path):
    np.save(tmp_path / "flat.npy", np.array([0.5, -0.25, 1.0]))
    np.save(tmp_path / "row.npy", np.array([[0.5, -0.25, 1.0]]))
    np.savez(tmp_path / "directions.npz", x=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    planes = [
        PlaneOptions(
            bounds="-1,1,-1,1", origin=tmp_path / name, directions=tmp_path / "directions.npz"
        ).planes((3,), None)[0][0]
        for name in ("flat.npy", "row.npy")
    ]
    for plane in planes:
        np.testing.assert_array_equal(plane.origin.numpy(), [0.5, -0.25, 1.0])
        np.testing.assert_array_equal(plane.directions.numpy(), [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def by_code(result) -> list[np.ndarray]:
    """Per tile, in the order of the tiles' codes (one tile per code): the code, the area, the
    outputs at the tile's vertex mean by its affine map (well conditioned even on a sliver, unlike
    the map's slopes), and the Jacobian norm."""
    order = np.lexsort(result.codes.T[::-1])
    assert len(np.unique(result.codes, axis=0)) == result.regions
    sizes = np.diff(result.offsets)
    means = np.add.reduceat(result.vertices, result.offsets[:-1], axis=0) / sizes[:, None]
    at_mean = np.einsum("toi,ti->to", result.affine_A, means) + result.affine_c
    return [a[order] for a in (result.codes, result.areas, at_mean, result.jacobian_norm)]


# one group, or groups split by a small budget (the engine's tests split the ResNet too)
@pytest.mark.parametrize(
    ("name", "budget"),
    [("convnet", None), ("convnet", 1 << 18), ("resnet", None), ("mlp", None), ("mlp", 1 << 18)],
)
def test_checkpoints_sliced_together_equal_each_sliced_alone(name, budget):
    nets = [lower(*build(name, seed)).to(dtype=F64) for seed in (0, 1, 2)]
    anchors = torch.randn(3, *nets[0].input_shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    plane = anchor_plane(anchors)
    options = analysis.SliceOptions(jacobian_norm=True, verify_samples=2, budget=budget)
    together = analysis.run_checkpoints(nets, plane, options)
    assert len(together) == len(nets)
    for net, one in zip(nets, together):
        alone = analysis.run(net, plane, options)
        assert one.regions == alone.regions and one.tiles_per_node == alone.tiles_per_node
        assert one.verify["passed"] and one.verify["tiles_checked"] == alone.regions
        # tile by tile, matched by code: the same area, affine map and Jacobian norm, to rounding
        mine, own = by_code(one), by_code(alone)
        np.testing.assert_array_equal(mine[0], own[0])
        np.testing.assert_allclose(mine[1], own[1], rtol=1e-9, atol=1e-13 * one.domain_area)
        for a, b in zip(mine[2:], own[2:]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())
        assert one.boundary_length == pytest.approx(alone.boundary_length, rel=1e-9, abs=1e-12)
        check_exact(net, plane, one, n_grid=40)


def test_a_checkpoint_past_max_regions_stops_its_stack():
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(lower(mlp((2, 8, 8, 1)).double(), (2,)).to(dtype=F64))
    plane = input_plane(2, (-3, 3, -3, 3))
    low, high = sorted(analysis.run(net, plane).regions for net in nets)
    assert low + 1 < high
    # the stack passes the limit while sweeping, then one checkpoint alone does
    for limit in (low, (low + high + 1) // 2):
        with pytest.raises(UsageError, match=f"more than `max_regions` {limit} regions"):
            analysis.run_checkpoints(nets, plane, analysis.SliceOptions(max_regions=limit))
    # past the limit together but not alone (sliced again one at a time), and within it together
    for limit in (high, low + high):
        results = analysis.run_checkpoints(nets, plane, analysis.SliceOptions(max_regions=limit))
        assert sorted(one.regions for one in results) == [low, high]
    assert analysis.run_checkpoints([], plane) == []
