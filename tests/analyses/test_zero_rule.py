"""One zero rule for every sign decision (splinetool/ir/pl.py), on exact cancellation: the issue's
concurrent lines and plane inside a hyperplane, integer-weight networks against exact rational
arithmetic, local complexity and bn-density on a unit that is zero, and `--verify` on zoo slices."""

from dataclasses import replace

import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from splinetool.analyses import bn_density as bd
from splinetool.analyses import count_regions as counting
from splinetool.analyses import local_complexity as lc
from splinetool.analyses import slice as slicing
from splinetool.analyses.plane import given_plane, input_plane
from splinetool.engine.planar import partition
from splinetool.ir import lower
from tests.exact import exact_codes, exact_region_count, exact_tile_count, integer_mlp
from tests.zoo import CANCELLING_BOX, ZOO, build, concurrent_lines_net

F64 = torch.float64


def lowered(model, shape=(2,)):
    return lower(model, shape).to(dtype=F64)


def uniform(n, bounds, seed):
    xmin, xmax, ymin, ymax = bounds
    g = np.random.default_rng(seed)
    return np.stack([g.uniform(xmin, xmax, n), g.uniform(ymin, ymax, n)], axis=1)


# -- the concurrent lines ------------------------------------------------------------------


@pytest.fixture(scope="module")
def concurrent():
    return lowered(concurrent_lines_net())


@pytest.mark.parametrize("budget", [None, 1])
def test_concurrent_lines_make_six_tiles_and_pass_verify(concurrent, budget):
    plane = input_plane(2, (-1, 1, -1, 1))
    assert counting.run(concurrent, counting.Planes((plane,))).regions == 6
    result = slicing.run(concurrent, plane, slicing.SliceOptions(verify_samples=8, budget=budget))
    assert result.regions == 6 and result.verify["passed"]
    assert len(np.unique(result.codes, axis=0)) == 6


def test_concurrent_lines_segments_and_samples_see_six_regions(concurrent):
    plane = input_plane(2, (-1, 1, -1, 1))
    tiles = slicing.run(concurrent, plane).to_shapely()
    starts, ends = uniform(200, (-1, 1, -1, 1), 0), uniform(200, (-1, 1, -1, 1), 1)
    result = counting.run(concurrent, counting.Segments(torch.as_tensor(starts), torch.as_tensor(ends)))
    assert result.distinct_regions == 6
    # each segment's pieces are the tiles it crosses
    for s in range(200):
        line = shapely.LineString([starts[s], ends[s]])
        assert result.pieces[s] == sum(1 for t in tiles if t.intersection(line).length > 1e-9)
    points = torch.as_tensor(uniform(200_000, (-1, 1, -1, 1), 2))
    assert counting.run(concurrent, counting.Samples(points, "bbox")).regions == 6


def test_inside_the_cancelling_region_everything_sees_one_region(concurrent):
    plane = input_plane(2, CANCELLING_BOX)
    assert counting.run(concurrent, counting.Planes((plane,))).regions == 1
    result = slicing.run(concurrent, plane, slicing.SliceOptions(verify_samples=16, budget=1))
    assert result.regions == 1 and result.verify["passed"]
    starts, ends = uniform(200, CANCELLING_BOX, 3), uniform(200, CANCELLING_BOX, 4)
    segments = counting.run(concurrent, counting.Segments(torch.as_tensor(starts), torch.as_tensor(ends)))
    assert segments.regions == 200 and segments.distinct_regions == 1
    points = torch.as_tensor(uniform(2000, CANCELLING_BOX, 5))
    assert counting.run(concurrent, counting.Samples(points, "bbox")).regions == 1


def test_local_complexity_does_not_count_a_unit_that_is_zero_around_the_points(concurrent):
    # the second node is ±1e-16 around every point, the first node's lines are far away
    points = uniform(100, (-0.1, 0.5, 0.0, 0.6), 6)
    result = lc.run(concurrent, [lc.PointSet("data", points)], lc.LCOptions(directions=2, radius=0.05))
    assert result.per_point.sum() == 0
    assert result.stats()["lc_mean"] == 0
    # on z0's line (x = -0.5 / 0.8125) z0 changes sign and counts; the second unit is -z0 > 0 on one
    # side and 0 on the other: it touches zero without changing sign, and does not count
    on_line = np.array([[-0.5 / 0.8125, 0.3]])
    counted = lc.run(concurrent, [lc.PointSet("data", on_line)], lc.LCOptions(directions=2, radius=0.05))
    assert counted.per_point[0, 0].tolist() == [1, 0]


def test_bn_density_counts_no_crossing_of_a_unit_that_is_zero(concurrent):
    plane = input_plane(2, CANCELLING_BOX)
    x_edges = torch.linspace(CANCELLING_BOX[0], CANCELLING_BOX[1], 33, dtype=F64)
    y_edges = torch.linspace(CANCELLING_BOX[2], CANCELLING_BOX[3], 33, dtype=F64)
    counts, in_view = bd.crossings(concurrent, plane, x_edges, y_edges, [0, 1])
    assert counts.sum() == 0 and in_view.tolist() == [0, 0]


def test_verify_catches_any_wrong_bit_even_of_a_unit_that_is_zero_on_the_tile(concurrent):
    plane = input_plane(2, (-1, 1, -1, 1))
    part = partition(concurrent, plane.origin, plane.directions, plane.domain)
    generator = torch.Generator().manual_seed(0)
    checked = {"points": 0, "tiles_mismatched": 0}
    slicing._verify(concurrent, plane.origin, plane.directions, part, 2, generator, checked)
    assert checked["tiles_mismatched"] == 0
    for tile in range(len(part.verts)):
        for bit in range(4):  # the second node's bit reads a unit that is zero on some tiles
            wrong = replace(part, codes=part.codes.clone())
            wrong.codes[tile, 0] ^= 0x80 >> bit
            checked = {"points": 0, "tiles_mismatched": 0}
            slicing._verify(concurrent, plane.origin, plane.directions, wrong, 2, generator, checked)
            assert checked["tiles_mismatched"] == 1, (tile, bit)


def test_verify_accepts_a_piece_whose_mean_reads_a_boundary_it_lies_against():
    # relu(x1): a piece cut later from a tile on the positive side inherits bit 1; a thin piece
    # against x1 = 0 has its corner mean within the zero tolerance of that line, where x1 reads zero
    # and the bit 0: its code is still right, since a corner reads it (the digits-resnet
    # slice through digits 3, 4, 5 has one such tile of 1.18 million). The scale is |x2|, about 0.9.
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU()).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model[0].bias.zero_()
    net = lowered(model)
    plane = input_plane(2, (-1, 1, -1, 1))

    def checked(corners, bit):
        coords = torch.tensor(corners, dtype=F64)
        part = replace(
            partition(net, plane.origin, plane.directions, plane.domain),
            coords=coords,
            verts=torch.tensor([[0, 1, 2]]),
            labels=torch.full((1, 3), -1),
            outputs=torch.zeros(3, 1, dtype=F64),
            codes=torch.tensor([[bit << 7]], dtype=torch.uint8),
        )
        counts = {"points": 0, "tiles_mismatched": 0}
        slicing._verify(
            net, plane.origin, plane.directions, part, 2, torch.Generator().manual_seed(0), counts
        )
        return counts["tiles_mismatched"]

    # x1 at the corners: 0, 0 and 1.5e-10, so 5e-11 at the mean, within the tolerance 9e-11 there
    against = [[0.0, 0.9], [0.0, 0.95], [1.5e-10, 0.92]]
    assert checked(against, 1) == 0  # the side a corner reaches
    assert checked(against, 0) == 0  # the mean's own reading
    # x1 within the tolerance at every corner: no corner reads 1, so bit 1 is wrong
    assert checked([[0.0, 0.9], [0.0, 0.95], [5e-11, 0.92]], 1) == 1
    # clear of zero at the mean: only the network's bit
    assert checked([[0.0, 0.9], [0.0, 0.95], [3e-9, 0.92]], 0) == 1
    assert checked([[0.0, 0.9], [0.0, 0.95], [3e-9, 0.92]], 1) == 0


# -- the plane inside a hyperplane -----------------------------------------------------------


def hyperplane_net():
    # the first unit x1 + x2 + x3 - 0.75 is 0 on the plane below: 2 tiles, cut by x1 = 0
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
        model[0].bias.copy_(torch.tensor([-0.75, 0.0]))
    return model


HYPERPLANE = (torch.tensor([[0.125, 0.25, 0.375]]), torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]))


@pytest.mark.parametrize("bounds", [(-1, 1, -1, 1), (-0.3, 0.7, -0.9, 0.2), (0.01, 0.4, -0.7, 0.6)])
def test_a_plane_inside_a_units_hyperplane_keeps_it_off(bounds):
    net = lowered(hyperplane_net(), (3,))
    plane = given_plane(*HYPERPLANE, bounds)
    result = slicing.run(net, plane, slicing.SliceOptions(verify_samples=16, budget=1))
    expected = 2 if bounds[0] < -0.125 < bounds[1] else 1  # x1 = 0.125 + t1 vanishes at t1 = -0.125
    assert result.regions == expected and result.verify["passed"]
    assert not np.unpackbits(result.codes, axis=1)[:, 0].any()  # the first unit reads 0 everywhere


# -- integer weights, against exact rational arithmetic ----------------------------------------------

# (widths, seed, cancel); with a second layer of one unit, nothing else at a point says how large zero is
INTEGER_NETS = [((2, 4, 4, 1), seed, cancel) for seed in range(4) for cancel in (False, True)]
INTEGER_NETS += [((2, 4, 1, 1), seed, True) for seed in range(4)]


def cancelling_box(model):
    """A box where the first layer's z0 and z1 (so z2 = z0 + z1) stay positive, so that the second
    layer's first unit cancels all over it (`integer_mlp(cancel=True)`); None if there is none."""
    w, b = model[0].weight.detach(), model[0].bias.detach()
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-2, 2, 41, dtype=F64)] * 2, indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    # z changes by at most |w|_1 h over a box of half-width h
    margin = ((grid @ w[:2].T + b[:2]) / w[:2].abs().sum(dim=1).clamp(min=1e-9)).amin(dim=1)
    best = int(margin.argmax())
    half = min(float(margin[best]), 0.5) * 0.9
    (x, y) = grid[best].tolist()
    return (x - half, x + half, y - half, y + half) if half > 0.01 else None


@pytest.mark.parametrize("widths,seed,cancel", INTEGER_NETS)
def test_integer_weight_networks_match_exact_arithmetic(widths, seed, cancel):
    model = integer_mlp(widths, seed, cancel=cancel)
    net = lowered(model)
    g = np.random.default_rng(seed)
    centre = g.uniform(-1.5, 1.5, 2)
    boxes = [(-2, 2, -2, 2), (centre[0] - 0.4, centre[0] + 0.4, centre[1] - 0.4, centre[1] + 0.4)]
    if cancel and cancelling_box(model) is not None:
        boxes.append(cancelling_box(model))
    for bounds in boxes:
        exact = exact_tile_count(model, bounds)
        assert exact_region_count(model, bounds) == exact  # two exact methods agree
        plane = input_plane(2, bounds)
        assert counting.run(net, counting.Planes((plane,))).regions == exact
        for budget in (None, 1):
            result = slicing.run(net, plane, slicing.SliceOptions(verify_samples=4, budget=budget))
            assert result.regions == exact and result.verify["passed"]
        starts, ends = uniform(200, bounds, seed + 10), uniform(200, bounds, seed + 20)
        segments = counting.run(net, counting.Segments(torch.as_tensor(starts), torch.as_tensor(ends)))
        assert segments.distinct_regions <= exact
        points = uniform(3000, bounds, seed + 30)
        assert counting.run(net, counting.Samples(torch.as_tensor(points), "bbox")).regions <= exact
        # every code is the exact one (a float that is zero in reals reads 0, as exact zero does)
        bits = net.code_bits(torch.as_tensor(points)).numpy()
        np.testing.assert_array_equal(bits, exact_codes(model, points))


def test_exact_counts_on_a_known_arrangement():
    # the exact counters themselves, on the concurrent lines (6 tiles) and lines in general position
    assert exact_tile_count(concurrent_lines_net(), (-1, 1, -1, 1)) == 6
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0]))  # three lines, no two parallel: 7 cells
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([1.0, -1.0]))  # constant units: no more lines
    assert exact_tile_count(model, (-3, 3, -3, 3)) == exact_region_count(model, (-3, 3, -3, 3)) == 7


# -- --verify on every zoo slice --------------------------------------------------------------------


def first_unit_hyperplane(net, shape, generator):
    """A plane inside the zero set of the first node's first boundary (affine in the input)."""
    x = torch.randn(1, *shape, generator=generator, dtype=F64, requires_grad=True)
    with torch.enable_grad():
        value = net.pl_nodes[0].pl.boundaries(net.preactivations(x)[0])[0, 0]
        (gradient,) = torch.autograd.grad(value, x)
    normal = gradient.reshape(-1)
    origin = x.detach().reshape(-1) - value.detach() * normal / (normal @ normal)
    d = torch.randn(2, normal.numel(), generator=generator, dtype=F64)
    d = d - (d @ normal)[:, None] * normal / (normal @ normal)
    return origin, d / d.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("name", sorted(ZOO))
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), inside=st.booleans(), grouped=st.booleans())
def test_verify_passes_on_every_zoo_slice(name, seed, inside, grouped):
    # float64, the geometry's default: in float32 the tolerance is 1e-5 of the scale, and tiles
    # thinner than that band hold points whose codes read a unit as zero
    model, shape = build(name)
    assume(not inside or np.prod(shape) > 2)  # a hyperplane of 2-D inputs holds no plane
    net = lowered(model, shape)
    generator = torch.Generator().manual_seed(seed)
    if inside:
        origin, directions = first_unit_hyperplane(net, shape, generator)
    else:
        origin = torch.randn(int(np.prod(shape)), generator=generator, dtype=F64)
        directions = torch.randn(2, origin.numel(), generator=generator, dtype=F64)
    half = 0.1 if name == "resnet" else 0.5
    plane = given_plane(origin, directions, (-half, half, -half, half))
    result = slicing.run(
        net, plane, slicing.SliceOptions(verify_samples=2, budget=1 << 16 if grouped else None)
    )
    assert result.verify["passed"], result.verify
    if inside:
        # the unit the plane lies in is zero all over it: one bit, the same in every tile
        first_bit = np.unpackbits(result.codes, axis=1)[:, 0]
        assert (first_bit == first_bit[0]).all()
