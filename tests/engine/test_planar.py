"""The planar partition against analytic counts, area identities and degenerate constructions."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from splinetool.analyses.local_complexity import exact_planes
from splinetool.analyses.plane import anchor_plane, box, input_plane, polygon_areas
from splinetool.engine import planar
from splinetool.engine.planar import Sweep, TooManyRegions, count_tiles, partition
from splinetool.errors import UsageError
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from splinetool.ir.pl import SignKind
from tests.conftest import SAMPLES
from tests.zoo import (
    CANCELLING_BOX,
    build,
    concurrent_lines_net,
    first_layer_net,
    mlp,
    tangent_lines,
    tent_network,
)

F64 = torch.float64


def tiles_of(model: nn.Module, domain: torch.Tensor, max_regions=None):
    net = lower(model, (2,)).to(dtype=F64)
    part = partition(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), domain, max_regions)
    areas = polygon_areas(part.coords[part.verts.clamp(min=0)], part.count)
    return part, areas


@pytest.mark.parametrize("n", [1, 2, 5, 12, 30])
def test_lines_in_general_position_make_the_analytic_count(n):
    w, b = tangent_lines(n)
    domain = box(-20, 20, -20, 20)
    # every crossing lies inside the domain: the tangent point distance is 1 / cos(half the angle)
    assert 1 / math.cos(0.45 * math.pi) < 20
    part, areas = tiles_of(first_layer_net(w, b), domain)
    assert part.verts.shape[0] == 1 + n + n * (n - 1) // 2
    assert (areas > 0).all()
    assert abs(float(areas.sum()) - 1600.0) / 1600.0 < 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_random_lines_make_the_analytic_count_when_every_crossing_is_inside(seed):
    generator = torch.Generator().manual_seed(seed)
    n = 15
    w = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    # every pairwise crossing, to size a domain that holds them all
    i, j = torch.triu_indices(n, n, offset=1)
    crossings = torch.linalg.solve(torch.stack([w[i], w[j]], dim=1), -torch.stack([b[i], b[j]], dim=1))
    half = 1.5 * float(crossings.abs().max())
    part, areas = tiles_of(first_layer_net(w.float(), b.float()), box(-half, half, -half, half))
    assert part.verts.shape[0] == 1 + n + n * (n - 1) // 2
    assert abs(float(areas.sum()) - 4 * half * half) / (4 * half * half) < 1e-9


def test_concurrent_lines_through_one_vertex_make_no_empty_tiles():
    # x = 0, y = 0, x = y and x = -y all pass through the origin: 8 sectors
    part, areas = tiles_of(
        first_layer_net([[1, 0], [0, 1], [1, -1], [1, 1]], [0, 0, 0, 0]), box(-1, 1, -1, 1)
    )
    assert part.verts.shape[0] == 8
    assert (areas > 1e-6).all() and abs(float(areas.sum()) - 4) < 1e-12


@pytest.mark.parametrize("budget,max_resident", [(None, None), (1, 1)])
@pytest.mark.parametrize("bounds,tiles", [((-1, 1, -1, 1), 6), (CANCELLING_BOX, 1)])
def test_a_unit_that_cancels_exactly_cuts_nothing_however_the_plane_is_grouped(
    bounds, tiles, budget, max_resident
):
    # the second node is ±1e-16 where z0, z1 > 0, and 0 at the vertices where the three lines meet:
    # judged against noise it cut there, the more so in groups lying inside that region
    net = lower(concurrent_lines_net(), (2,)).to(dtype=F64)
    domain = box(*bounds)
    sweep = Sweep(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), domain, budget, max_resident)
    groups = list(sweep)
    assert sweep.tiles_per_node == [tiles, tiles]
    areas = torch.cat([polygon_areas(g.coords[g.verts.clamp(min=0)], g.count) for g in groups])
    assert (areas > 1e-3).all()


def test_coincident_and_scaled_copies_of_a_line_count_once():
    part, _ = tiles_of(
        first_layer_net([[1, 2], [1, 2], [2, 4], [-1, -2]], [0.5, 0.5, 1.0, -0.5]), box(-1, 1, -1, 1)
    )
    assert part.verts.shape[0] == 2


def test_parallel_lines_make_strips():
    offsets = [-0.75, -0.25, 0.25, 0.75]  # exact in float32
    part, areas = tiles_of(first_layer_net([[1, 0]] * 4, [-o for o in offsets]), box(-1, 1, -1, 1))
    assert part.verts.shape[0] == 5
    assert sorted(float(a) for a in areas) == [0.5, 0.5, 1.0, 1.0, 1.0]


def test_lines_on_the_domain_edge_or_outside_it_do_not_split():
    # x = 1 and y = -1 lie on the boundary; x = 3 misses the domain; x = 0 splits it once
    part, _ = tiles_of(first_layer_net([[1, 0], [0, 1], [1, 0], [1, 0]], [-1, 1, -3, 0]), box(-1, 1, -1, 1))
    assert part.verts.shape[0] == 2


def test_a_unit_that_touches_zero_without_changing_sign_does_not_split():
    # the second layer's pre-activation relu(x) is zero on a whole half-plane but never negative
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():
        for layer in (model[0], model[2], model[4]):
            layer.weight.zero_()
            layer.bias.zero_()
        model[0].weight[0, 0] = 1.0
        model[2].weight[0, 0] = 1.0
        model[4].weight[0, 0] = 1.0
    part, _ = tiles_of(model, box(-1, 1, -1, 1))
    assert part.verts.shape[0] == 2
    assert part.tiles_per_node == [2, 2]


@pytest.mark.parametrize("depth", [1, 3, 6, 9])
def test_tent_maps_make_two_to_the_depth_strips(depth):
    part, areas = tiles_of(tent_network(depth, dims=2, along=1), box(0, 1, 0, 1))
    assert part.verts.shape[0] == 2**depth
    assert torch.allclose(areas, torch.full_like(areas, 2.0**-depth), rtol=0, atol=1e-12)


def test_product_of_two_tent_maps_makes_a_grid():
    depth = 4
    part, _ = tiles_of(tent_network(depth, dims=2, along=2), box(0, 1, 0, 1))
    assert part.verts.shape[0] == 4**depth


def test_prefix_counts_are_non_decreasing_and_end_at_the_total():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    part, _ = tiles_of(model, box(-2, 2, -2, 2))
    counts = part.tiles_per_node
    assert counts == sorted(counts) and counts[-1] == part.verts.shape[0]


def test_too_many_regions_stops_early():
    w, b = tangent_lines(12)
    with pytest.raises(TooManyRegions, match="`max_regions`"):
        tiles_of(first_layer_net(w, b), box(-20, 20, -20, 20), max_regions=10)


@pytest.mark.parametrize("max_resident", [1, 7, 10**9])
def test_counting_in_groups_gives_the_partition_counts(max_resident):
    # groups of a few tiles each go through the later nodes alone: the counts must not change
    model = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 9))
    model.append(nn.ReLU())
    torch.manual_seed(4)
    net = lower(model, (2,)).to(dtype=F64)
    domain = box(-2, 2, -2, 2)
    part = partition(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), domain)
    counts = count_tiles(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), domain, max_resident)
    assert counts == part.tiles_per_node
    assert counts[-1] > 50


def test_counting_reaches_the_tent_product_count():
    net = lower(tent_network(5, dims=2, along=2), (2,)).to(dtype=F64)
    counts = count_tiles(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), box(0, 1, 0, 1), 64)
    assert counts == [4**k for k in range(1, 6)]


def test_max_pool_candidates_that_tie_everywhere_keep_their_cells():
    # rows 0 and 2 are the same unit: arg-max picks row 0 where they win, and no area may go missing
    linear = nn.Linear(2, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.3], [-0.5, 1.0], [1.0, 0.3], [0.0, 0.0]]))
        linear.bias.copy_(torch.tensor([0.1, 0.2, 0.1, 0.0]))
    model = nn.Sequential(linear, nn.Unflatten(1, (1, 4)), nn.MaxPool1d(4), nn.Flatten(), nn.Linear(1, 1))
    net = lower(model, (2,)).to(dtype=F64)
    part = partition(net, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), box(-2, 2, -2, 2))
    areas = polygon_areas(part.coords[part.verts.clamp(min=0)], part.count)
    assert part.tiles_per_node == [3]
    assert torch.isclose(areas.sum(), torch.tensor(16.0, dtype=F64))
    grid = torch.cartesian_prod(*[torch.linspace(-1.99, 1.99, 101, dtype=F64)] * 2)
    assert len(torch.unique(net.codes(grid), dim=0)) == 3


# -- groups, shared vertices ------------------------------------------------------------------------------


def zoo_plane(name: str):
    model, shape = build(name)
    net = lower(model, shape).to(dtype=F64)
    anchors = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    return net, anchor_plane(anchors)


def edge_uses(verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each undirected tile edge once, with how many tiles use it."""
    count = (verts >= 0).sum(dim=1, keepdim=True)
    position = torch.arange(verts.shape[1]).expand_as(verts)
    following = verts.gather(1, (position + 1) % count)
    valid = verts >= 0
    a, b = verts[valid], following[valid]
    edges = torch.stack([torch.minimum(a, b), torch.maximum(a, b)], dim=1)
    return torch.unique(edges, dim=0, return_counts=True)


def assert_proper_subdivision(part, plane) -> None:
    """No two vertices at one point, every inner edge used by exactly two tiles (no T-junction)."""
    used = torch.unique(part.verts[part.verts >= 0])
    points = part.coords[used]
    extent = float(points.abs().max())
    gaps = torch.cdist(points, points) + torch.eye(len(points), dtype=F64) * extent
    assert float(gaps.min()) > 1e-9 * extent
    edges, uses = edge_uses(part.verts)
    assert int(uses.max()) == 2
    # edges used once lie on the square domain's boundary
    ends = part.coords[edges[uses == 1]]
    half = float(plane.domain.abs().max())
    on_side = ((ends.abs() - half).abs() < 1e-9 * half).all(dim=1).any(dim=1)
    assert bool(on_side.all())


@pytest.mark.parametrize("name", ["convnet", "resnet", "mlp", "clamps"])
def test_tiles_share_their_vertices(name):
    net, plane = zoo_plane(name)
    assert_proper_subdivision(partition(net, plane.origin, plane.directions, plane.domain), plane)


def test_a_stage_inserts_the_points_its_neighbours_made_on_a_common_edge(monkeypatch):
    # a stage ends before every tile has reached every unit, so a tile may lack a point that its
    # neighbour made on their common edge; the stage's end inserts it (searching only along edges
    # that some tile lacks a point of), or the tiles would meet in T-junctions
    inserted = []
    conform = planar._Stage._conform

    def counted(stage, *args):
        corners = int(stage.tiles.count.sum())
        conform(stage, *args)
        inserted.append(int(stage.tiles.count.sum()) - corners)

    monkeypatch.setattr(planar._Stage, "_conform", counted)
    torch.manual_seed(0)
    net = lower(mlp((2, 32, 32, 1)), (2,)).to(dtype=F64)
    plane = input_plane(2, (-1, 1, -1, 1))
    part = partition(net, plane.origin, plane.directions, plane.domain)
    assert sum(inserted) > 0
    assert_proper_subdivision(part, plane)


@pytest.mark.parametrize("name", ["convnet", "resnet", "mlp"])
def test_a_finished_slice_holds_only_the_vertices_its_tiles_use(name):
    # two families that cut a common edge each make its point, and a stage's end keeps one: the
    # other copy must not be pushed through the later layers, nor handed out with the tiles
    net, plane = zoo_plane(name)
    part = partition(net, plane.origin, plane.directions, plane.domain)
    used = torch.unique(part.verts[part.verts >= 0])
    assert torch.equal(used, torch.arange(part.coords.shape[0]))
    assert part.outputs.shape[0] == part.coords.shape[0]
    assert_proper_subdivision(part, plane)


def test_a_stage_works_on_the_tiles_its_units_cross_and_leaves_the_others_as_they_were(monkeypatch):
    # a unit that crosses a common edge of two tiles crosses both, so every point a stage makes
    # lands on tiles that have units to cut: the others are neither relabelled nor searched
    untouched = []
    start, close = planar._Stage.__init__, planar._Stage.close

    def opened(stage, tiles, vertices, nodes, rows):
        others = torch.ones(tiles.n, dtype=torch.bool)
        others[rows] = False
        stage.others = torch.nonzero(others).flatten()
        stage.before = tiles.verts[stage.others].clone(), tiles.labels[stage.others].clone()
        start(stage, tiles, vertices, nodes, rows)

    def closed(stage):
        close(stage)
        verts, labels = stage.before
        untouched.append(stage.others.numel())
        assert torch.equal(stage.tiles.verts[stage.others, : verts.shape[1]], verts)
        assert torch.equal(stage.tiles.labels[stage.others, : labels.shape[1]], labels)

    monkeypatch.setattr(planar._Stage, "__init__", opened)
    monkeypatch.setattr(planar._Stage, "close", closed)
    torch.manual_seed(0)
    net = lower(mlp((2, 32, 32, 1)), (2,)).to(dtype=F64)
    plane = input_plane(2, (-1, 1, -1, 1))
    assert_proper_subdivision(partition(net, plane.origin, plane.directions, plane.domain), plane)
    assert sum(untouched) > 0


@pytest.mark.parametrize("name", ["convnet", "resnet"])
def test_groups_under_a_small_budget_give_the_same_tiles(name):
    # each group finishes the nodes alone with its own vertices: the tiles and codes must not change
    net, plane = zoo_plane(name)
    whole = partition(net, plane.origin, plane.directions, plane.domain)
    sweep = Sweep(net, plane.origin, plane.directions, plane.domain, budget=1 << 16, max_resident=64)
    groups = list(sweep)
    assert len(groups) > 3
    assert sweep.tiles_per_node == whole.tiles_per_node
    codes = torch.cat([g.codes for g in groups])
    assert sorted(map(bytes, codes.numpy())) == sorted(map(bytes, whole.codes.numpy()))
    area = sum(float(polygon_areas(g.coords[g.verts.clamp(min=0)], g.count).sum()) for g in groups)
    assert abs(area - plane.area) < 1e-9 * plane.area


@pytest.mark.parametrize("grouped", [False, True])  # one group, or groups split by a small budget
@pytest.mark.parametrize("name", ["convnet", "resnet", "mlp"])
def test_several_planes_in_one_sweep_give_each_planes_own_tiles(name, grouped):
    # planes through different anchors in one sweep: each plane's tiles are those of the plane
    # partitioned alone (the same codes and areas; coordinates to rounding, since the network's
    # layers run on other batches of vertices)
    net, _ = zoo_plane(name)
    planes = [
        anchor_plane(torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(s), dtype=F64))
        for s in (1, 2, 3, 4, 5)
    ]
    domain = 0.3 * planes[0].domain  # one domain for all: each plane's square, shrunk
    origins = torch.stack([p.origin for p in planes])
    directions = torch.stack([p.directions for p in planes])
    limits = {"budget": 1 << 16, "max_resident": 4} if grouped else {"budget": 1 << 62}
    parts = list(Sweep(net, origins, directions, domain, **limits))
    assert (len(parts) > 1) == grouped
    for b, plane in enumerate(planes):
        alone = partition(net, plane.origin, plane.directions, domain)
        tiles = []
        for part in parts:
            same = part.sheets[part.verts.clamp(min=0)] == part.sheets[part.verts[:, :1]]
            assert bool((same | (part.verts < 0)).all())  # no tile takes corners of two planes
            mine = part.sheets[part.verts[:, 0]] == b
            areas = polygon_areas(part.coords[part.verts[mine].clamp(min=0)], part.count[mine])
            tiles += list(zip(map(bytes, part.codes[mine].numpy()), areas.tolist()))
        areas = polygon_areas(alone.coords[alone.verts.clamp(min=0)], alone.count)
        own = sorted(zip(map(bytes, alone.codes.numpy()), areas.tolist()))
        assert [code for code, _ in sorted(tiles)] == [code for code, _ in own]
        np.testing.assert_allclose([a for _, a in sorted(tiles)], [a for _, a in own], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", ["convnet", "resnet"])
def test_codes_from_the_engine_equal_the_network_codes_inside_each_tile(name):
    net, plane = zoo_plane(name)
    part = partition(net, plane.origin, plane.directions, plane.domain)
    valid = (part.verts >= 0).to(F64)
    corners = part.coords[part.verts.clamp(min=0)]
    weights = (
        torch.rand(part.verts.shape, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    ) * valid
    inside = (corners * weights[..., None]).sum(dim=1) / weights.sum(dim=1, keepdim=True)
    x = plane.to_input(inside)
    assert torch.equal(net.codes(x), part.codes)


def test_softshrink_bands_give_the_tiles_of_their_lines_and_of_a_dense_grid():
    # three neurons at 0, 60 and 120 degrees: six lines, two parallel ones per neuron, each meeting the
    # four lines of the other neurons inside the box and no three at one point: 1 + 6 + 12 tiles
    angles = torch.tensor([0.0, math.pi / 3, 2 * math.pi / 3])
    model = nn.Sequential(nn.Linear(2, 3), nn.Softshrink(0.5), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.stack([angles.cos(), angles.sin()], dim=1))
        model[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    net = lower(model, (2,)).to(dtype=F64)
    plane = input_plane(2, (-2, 2, -2, 2))
    tiles = count_tiles(net, plane.origin, plane.directions, plane.domain)
    assert tiles == [19]
    side = torch.linspace(-1.999, 1.999, 500, dtype=F64)
    grid = torch.stack(torch.meshgrid(side, side, indexing="xy"), dim=-1).reshape(-1, 2)
    assert len(torch.unique(net.codes(grid), dim=0)) == 19


@pytest.mark.parametrize("name", ["mlp", "clamps", "shrinks", "convnet", "resnet"])
def test_sign_codes_read_from_corners_equal_the_codes_read_at_every_tile_mean(name, monkeypatch):
    # the shortcut reads a unit at the mean only where corners disagree; reading every unit there
    # (as max-pool nodes do) is the slower second implementation
    net, plane = zoo_plane(name)
    fast = partition(net, plane.origin, plane.directions, plane.domain)
    monkeypatch.setitem(SignKind.implementations, planar.CODES, planar._mean_codes)
    slow = partition(net, plane.origin, plane.directions, plane.domain)
    assert torch.equal(fast.verts, slow.verts)
    assert torch.equal(fast.codes, slow.codes)


def test_float32_max_pool_cells_of_sliver_tiles_are_cut_without_a_failed_solve():
    # a tiny square around a training digit on which float32 leaves tiles whose corners are collinear
    # in its rounding: their candidates' gradients are the least-norm solution, and the tiles still
    # cover the square (as float32 partitions do: to a few 1e-4 of its area)
    net = lower(load_model(SAMPLES / "digits-convnet.ts.pt")).to(dtype=torch.float32)
    digits = np.load(SAMPLES / "data" / "digits.npz")
    point = torch.as_tensor(digits["x_train"][2].reshape(-1), dtype=torch.float32)
    directions = torch.as_tensor(exact_planes(range(2, 3), 64, 4, 0)[0, 1], dtype=torch.float32)
    r = 0.107802
    square = r * torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    part = partition(net, point, directions, square)
    areas = polygon_areas(part.coords[part.verts.clamp(min=0)].double(), part.count)
    assert float(areas.sum()) == pytest.approx(4 * r * r, rel=1e-3)
    assert part.verts.shape[0] > 1000


@pytest.mark.parametrize("grouped", [False, True])  # one group, or groups split by a small budget
@pytest.mark.parametrize("name", ["convnet", "resnet", "mlp", "clamps"])
def test_several_networks_of_one_graph_in_one_sweep_give_each_its_own_tiles(name, grouped):
    # three "checkpoints" of one architecture on one plane, swept together: each plane's tiles are
    # those of its network alone (the same codes, areas and counts per node)
    nets = [lower(*build(name, seed)).to(dtype=F64) for seed in (0, 1, 2)]
    _, plane = zoo_plane(name)
    count = len(nets)
    # split into groups: a part of the plane (fewer tiles, so fewer groups to run)
    domain = 0.3 * plane.domain if grouped else plane.domain
    limits = {"budget": 1 << 16, "max_resident": 4} if grouped else {"budget": 1 << 62}
    origins, directions = plane.origin.expand(count, -1), plane.directions.expand(count, -1, -1)
    sweep = Sweep(nets[0], origins, directions, domain, networks=nets, **limits)
    parts = list(sweep)
    assert (len(parts) > 1) == grouped
    for b, net in enumerate(nets):
        alone = partition(net, plane.origin, plane.directions, domain)
        assert sweep.tiles_per_plane[b] == alone.tiles_per_node
        tiles = []
        for part in parts:
            mine = planar.by_plane(part, count)[b]
            areas = polygon_areas(mine.coords[mine.verts.clamp(min=0)], mine.count)
            tiles += list(zip(map(bytes, mine.codes.numpy()), areas.tolist()))
        areas = polygon_areas(alone.coords[alone.verts.clamp(min=0)], alone.count)
        own = sorted(zip(map(bytes, alone.codes.numpy()), areas.tolist()))
        assert [code for code, _ in sorted(tiles)] == [code for code, _ in own]
        # areas to the rounding of the domain's coordinates (the layers run on other batches)
        np.testing.assert_allclose(
            [a for _, a in sorted(tiles)], [a for _, a in own], rtol=1e-9, atol=1e-13 * plane.area
        )
    assert sweep.tiles_per_node == [sum(counts) for counts in zip(*sweep.tiles_per_plane)]


def test_networks_of_another_graph_or_number_are_refused():
    nets = [lower(build("mlp", seed)[0], (2,)).to(dtype=F64) for seed in (0, 1)]
    other = lower(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), (2,)).to(dtype=F64)
    plane = input_plane(2, (-1, 1, -1, 1))
    two = plane.origin.expand(2, -1), plane.directions.expand(2, -1, -1)
    with pytest.raises(UsageError, match="share `net`'s graph"):
        list(Sweep(nets[0], *two, plane.domain, networks=[nets[0], other]))
    with pytest.raises(UsageError, match="3 networks for 2 planes"):
        list(Sweep(nets[0], *two, plane.domain, networks=[*nets, nets[0]]))
    with pytest.raises(UsageError, match="share `net`'s graph"):  # another dtype is another graph
        list(Sweep(nets[0], *two, plane.domain, networks=[nets[0], nets[1].to(dtype=torch.float32)]))
