"""Region counts against analytic values, the planar slice, and brute-force activation codes."""

import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn

from splinetool.analyses import count_regions as counting
from splinetool.analyses import count_regions_sweep as sweeps
from splinetool.analyses import slice as slicing
from splinetool.analyses.plane import anchor_plane, given_plane, input_plane
from splinetool.engine.planar import partition
from splinetool.ir import codes, lower
from tests.zoo import first_layer_net, mlp, tangent_lines, tent_network

F64 = torch.float64


def lowered(model, shape):
    return lower(model, shape).to(dtype=F64)


def segments(net, starts, ends):
    return counting.run(net, counting.Segments(torch.as_tensor(starts), torch.as_tensor(ends)))


def plane(net, bounds, **options):
    return counting.run(net, counting.Planes((input_plane(2, bounds),)), counting.CountOptions(**options))


@pytest.mark.parametrize("depth", [1, 3, 16])
def test_tent_map_composition_counts_two_to_the_depth(depth):
    result = segments(lowered(tent_network(depth), (1,)), torch.zeros(1, 1), torch.ones(1, 1))
    assert isinstance(result, counting.SegmentCount) and result.method == "exact-1d"
    assert result.regions == 2**depth
    assert result.per_layer == [2**k for k in range(1, depth + 1)]


@pytest.mark.parametrize("depth", [1, 2, 4, 6])
def test_product_of_two_tent_chains_has_four_to_the_depth_tiles(depth):
    net = lowered(tent_network(depth, dims=2, along=2), (2,))
    result = plane(net, (0, 1, 0, 1), max_resident=500)
    assert result.regions == 4**depth
    assert result.per_layer == [4**k for k in range(1, depth + 1)]


@pytest.mark.parametrize("n", [1, 4, 9, 20])
def test_lines_in_general_position(n):
    w, b = tangent_lines(n)
    result = plane(lowered(first_layer_net(w, b), (2,)), (-10, 10, -10, 10))
    assert result.regions == 1 + n + n * (n - 1) // 2


def test_pieces_along_a_segment_are_the_slice_tiles_it_crosses():
    torch.manual_seed(7)
    net = lowered(mlp((2, 16, 16, 16, 3)), (2,))
    tiles = slicing.run(net, input_plane(2, (-2, 2, -2, 2))).to_shapely()
    g = np.random.default_rng(3)
    starts, ends = g.uniform(-1.9, 1.9, size=(2, 6, 2))
    result = segments(net, starts, ends)
    for s in range(6):
        line = shapely.LineString([starts[s], ends[s]])
        crossed = sum(1 for tile in tiles if tile.intersection(line).length > 1e-9)
        assert result.pieces[s] == crossed


def test_prefix_counts_grow_and_match_brute_force_codes():
    torch.manual_seed(3)
    net = lowered(mlp((3, 11, 13, 5, 2)), (3,))  # node codes straddle byte boundaries
    x = torch.rand(4000, 3, dtype=F64) * 4 - 2
    packed = counting.region_codes(net, x)
    per_layer, region = counting.prefix_counts(packed, [n.code_bits for n in net.pl_nodes])
    assert all(a <= b for a, b in zip(per_layer, per_layer[1:]))
    widths = [n.code_bits for n in net.pl_nodes]
    bits = net.code_bits(x).split(widths, dim=1)
    for k in range(len(bits)):
        assert per_layer[k] == len(torch.unique(torch.cat(bits[: k + 1], dim=1), dim=0))
    unique, inverse = torch.unique(net.codes(x), dim=0, return_inverse=True)
    assert per_layer[-1] == len(unique)
    assert torch.equal(packed, net.codes(x))
    # two points share a region exactly when they share a code
    assert torch.equal(region[:, None] == region[None, :200], inverse[:, None] == inverse[None, :200])


def test_unique_rows_agrees_with_torch_unique_even_when_every_mix_collides(monkeypatch):
    g = torch.Generator().manual_seed(0)
    keys = torch.randint(0, 3, (500, 4), generator=g)
    expected, inverse = torch.unique(keys, dim=0, return_inverse=True)
    for mix in (codes._MIX, (0, 0, 0)):  # all-zero multipliers: every row mixes to the same key
        monkeypatch.setattr(codes, "_MIX", mix)
        found, count = codes.unique_rows(keys)
        assert count == len(expected)
        assert torch.equal(found[:, None] == found[None, :], inverse[:, None] == inverse[None, :])


def test_one_segments_prefix_counts_are_its_pieces():
    torch.manual_seed(5)
    net = lowered(mlp((4, 10, 10, 10, 1)), (4,))
    g = torch.Generator().manual_seed(1)
    result = segments(net, torch.randn(1, 4, generator=g), torch.randn(1, 4, generator=g))
    assert result.per_layer == result.pieces_per_node[0].tolist() == result.distinct_per_layer
    assert result.regions == result.pieces[0] == result.distinct_regions
    # convexity, checked: the pieces' codes are all different, under every prefix network too
    codes = torch.as_tensor(result.piece_codes)
    assert counting.prefix_counts(codes, result.node_code_bits)[0] == result.per_layer


def test_distinct_regions_of_many_segments():
    # segments along the same line, overlapping: together they cross as many regions as their union
    torch.manual_seed(2)
    net = lowered(mlp((2, 12, 12, 1)), (2,))
    a, b = torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.5])
    point = lambda t: a + t * (b - a)  # noqa: E731
    starts = torch.stack([point(0.0), point(0.3), point(0.5)])
    ends = torch.stack([point(0.6), point(0.8), point(1.0)])
    together = segments(net, starts, ends)
    whole = segments(net, point(0.0)[None], point(1.0)[None])
    assert together.distinct_regions == whole.regions == whole.distinct_regions
    assert together.regions == together.pieces.sum() > whole.regions


def test_sampling_never_exceeds_the_exact_count():
    torch.manual_seed(11)
    net = lowered(mlp((2, 20, 20, 2)), (2,))
    exact = plane(net, (-1, 1, -1, 1))
    points, where = counting.sample_points(
        "bbox", 20000, 0, box=(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    )
    sampled = counting.run(net, counting.Samples(points, where))
    assert isinstance(sampled, counting.SampledCount) and sampled.method == "sampled"
    assert sampled.regions <= exact.regions
    assert all(s <= e for s, e in zip(sampled.per_layer, exact.per_layer))
    assert sampled.regions >= 0.8 * exact.regions  # 20,000 points find most of a few hundred tiles
    assert sampled.estimate >= sampled.regions


def test_chao1():
    assert counting.chao1(10, 4, 2) == 10 + 4 * 3 / (2 * 3)
    assert counting.chao1(7, 0, 0) == 7
    net = lowered(first_layer_net([[1.0, 0.0]], [0.0]), (2,))
    # two half-planes, 4 points: codes seen twice each, so nothing is unseen
    points = torch.tensor([[-1.0, 0.0], [-2.0, 0.0], [1.0, 0.0], [2.0, 3.0]], dtype=F64)
    result = counting.run(net, counting.Samples(points, "four points"))
    assert (result.regions, result.singletons, result.doubletons, result.estimate) == (2, 0, 2, 2.0)
    assert result.estimate_caveat is None
    # every code seen once: Chao1 can only say that most regions went unseen, and the result says so
    spread = counting.run(net, counting.Samples(points[[0, 2]], "two points"))
    assert (spread.singletons, spread.doubletons, spread.estimate) == (2, 0, 3.0)
    assert "seen exactly twice" in spread.summary()["estimate_caveat"]


def test_samples_fall_where_asked():
    data = np.array([[0.0, 0.0], [10.0, 10.0]])
    x, _ = counting.sample_points("ball", 2000, 1, data=data, radius=0.5)
    distance = np.minimum(np.linalg.norm(x.numpy(), axis=1), np.linalg.norm(x.numpy() - 10, axis=1))
    assert distance.max() <= 0.5 and distance.mean() > 0.3  # uniform in the disc: mean radius 2/3 r
    x, _ = counting.sample_points("box", 2000, 1, data=data, radius=0.5)
    assert np.minimum(np.abs(x.numpy()).max(axis=1), np.abs(x.numpy() - 10).max(axis=1)).max() <= 0.5
    x, _ = counting.sample_points("bbox", 2000, 1, data=data)
    assert x.min() >= 0 and x.max() <= 10


def write_sweep(tmp_path, body: str):
    path = tmp_path / "sweep.toml"
    path.write_text(body)
    return sweeps.load_sweep(path)


def test_sweep_of_zero_bias_single_layers_counts_lines_through_the_origin(tmp_path):
    # one hidden layer of w ReLUs without bias: w distinct lines through the origin make 2w sectors
    sweep = write_sweep(
        tmp_path,
        'family = "mlp"\nneurons = 12\ndepths = [1, 2]\nseeds = [0, 1]\n'
        "[options]\ninput_shape = [2]\noutputs = 1\n"
        "[init]\nweight_gain = 1.0\nbias_std = 0.0\n"
        "[measure]\nplane = [-1.0, 1.0, -1.0, 1.0]\n",
    )
    result = sweeps.run(sweep, sweeps.SweepOptions(torch.device("cpu"), F64))
    assert result.depth.tolist() == [1, 1, 2, 2] and result.width.tolist() == [12, 12, 6, 6]
    assert result.regions[:2].tolist() == [24.0, 24.0]
    for row in range(4):
        model = sweeps.build_network(sweep, int(result.depth[row]), int(result.seed[row]))
        net = lowered(model, (2,))
        assert result.regions[row] == plane(net, (-1, 1, -1, 1)).regions


def test_sweep_over_segments(tmp_path):
    sweep = write_sweep(
        tmp_path,
        'family = "mlp"\nneurons = 8\ndepths = [1, 4]\nseeds = [3]\n'
        "[options]\ninput_shape = [3]\noutputs = 2\n[measure]\nsegments = 5\nbox = [-2.0, 2.0]\n",
    )
    result = sweeps.run(sweep, sweeps.SweepOptions(torch.device("cpu"), F64))
    assert result.method == "exact-1d"
    # a single layer of 8 ReLUs cuts a segment at most 8 times
    assert 1 <= result.regions[0] <= 9
    assert [len(row) for row in result.per_layer] == [1, 4]


@pytest.mark.parametrize(
    "body, message",
    [
        ('family = "convnet"\nneurons = 8\ndepths = [1]\nseeds = [0]\n[measure]\nsegments = 2\n', "widths"),
        ('family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\ncolour = 1\n', "unknown key"),
        ('family = "mlp"\nneurons = 8\ndepths = [0]\nseeds = [0]\n[measure]\nsegments = 2\n', "depths"),
        ('family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\n', "[measure]"),
        (
            'family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\n[measure]\nplane = [1, 0, 0, 1]\n',
            "plane",
        ),
        (
            'family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\n[measure]\nplane = [-inf, 1, 0, 1]\n',
            "plane",
        ),
        ('family = "mlp"\nneurons = 8\ndepths = [true]\nseeds = [0]\n[measure]\nsegments = 2\n', "depths"),
        (
            'family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\ninit = 3\n[measure]\nsegments = 2\n',
            "table",
        ),
        (
            'family = "mlp"\nneurons = 8\ndepths = [1]\nseeds = [0]\n[init]\nweight_gain = -1.0\n'
            "[measure]\nsegments = 2\n",
            "weight_gain",
        ),
    ],
)
def test_bad_sweep_files_are_refused(tmp_path, body, message):
    with pytest.raises(counting.UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        write_sweep(tmp_path, body)


def test_no_pl_nodes_is_one_region():
    net = lowered(nn.Sequential(nn.Linear(2, 3)), (2,))
    assert plane(net, (-1, 1, -1, 1)).regions == 1
    result = segments(net, torch.zeros(2, 2), torch.ones(2, 2))
    assert result.distinct_regions == 1 and result.pieces.tolist() == [1, 1]


# --- distinct regions met by several planes ---------------------------------------------------------


def grid_codes(net, plane, steps=300):
    """Activation codes on a dense grid over the plane's (box) domain: brute force, no engine."""
    lo, hi = plane.domain.min(dim=0).values, plane.domain.max(dim=0).values
    a, b = (torch.linspace(lo[i], hi[i], steps, dtype=F64) for i in range(2))
    t = torch.cartesian_prod(a, b)
    return net.codes(plane.to_input(t))


def lifted_lines_net(n):
    """n ReLU lines in general position in (x1, x2), constant along x3: every region is a prism along x3."""
    w, b = tangent_lines(n)
    model = nn.Sequential(nn.Linear(3, n), nn.ReLU(), nn.Linear(n, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.cat([w, torch.zeros(n, 1, dtype=F64)], dim=1))
        model[0].bias.copy_(b)
    return lowered(model, (3,))


def test_distinct_regions_of_planes_are_the_union_of_brute_force_codes():
    torch.manual_seed(5)
    net = lowered(mlp((3, 7, 1)), (3,))
    g = torch.Generator().manual_seed(1)
    planes = [
        given_plane(torch.randn(3, generator=g), torch.randn(2, 3, generator=g), (-2, 2, -2, 2))
        for _ in range(3)
    ]
    result = counting.run(net, counting.Planes(tuple(planes)))
    codes = [grid_codes(net, p) for p in planes]
    # the grid finds every tile of each plane (so its codes are all the regions each plane meets) ...
    assert [len(torch.unique(c, dim=0)) for c in codes] == result.tiles.tolist()
    union = counting.region_keys(torch.cat(codes))
    # ... and the planes meet some regions together: the union is smaller than the sum
    assert result.distinct_regions == len(union) < result.regions
    np.testing.assert_array_equal(result.region_keys, union)


@pytest.mark.parametrize("n", [5, 12])
def test_parallel_planes_across_prisms_meet_the_same_regions(n):
    # every region is a prism along x3: the planes x3 = 0 and x3 = 1 meet the same 1 + n + n(n-1)/2
    net = lifted_lines_net(n)
    across = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=F64)
    low, high = (given_plane(torch.tensor([0, 0, z], dtype=F64), across, (-10, 10, -10, 10)) for z in (0, 1))
    result = counting.run(net, counting.Planes((low, high)))
    assert result.tiles.tolist() == [1 + n + n * (n - 1) // 2] * 2
    assert result.distinct_regions == 1 + n + n * (n - 1) // 2
    # a plane along x3 crosses only regions the others meet too
    along = given_plane(
        torch.zeros(3, dtype=F64), torch.tensor([[1.0, 0.3, 0], [0, 0, 1.0]]), (-10, 10, -5, 5)
    )
    assert counting.run(net, counting.Planes((low, high, along))).distinct_regions == result.distinct_regions


@pytest.mark.parametrize("width", [6, 80])  # codes of 12 bits (the key is the code) and 160 (a digest)
def test_coinciding_planes_count_the_regions_of_one(width):
    torch.manual_seed(3)
    net = lowered(mlp((3, width, width, 1)), (3,))
    anchors = 4 * torch.tensor([[0.1, 0.2, -0.3], [0.5, -0.4, 0.2], [-0.3, 0.1, 0.4]], dtype=F64)
    plane = anchor_plane(anchors)
    one = counting.run(net, counting.Planes((plane,)))
    assert one.distinct_regions is None and "distinct_regions" not in one.summary()  # one plane: its tiles
    twice = counting.run(net, counting.Planes((plane, plane)))
    assert twice.regions == 2 * one.regions and twice.distinct_regions == one.regions > 20
    assert twice.summary()["distinct_regions"] == one.regions


def test_shares_of_a_plane_list_combine_to_the_union_of_their_regions():
    net = lifted_lines_net(6)
    across = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=F64)
    planes = [given_plane(torch.tensor([0, 0, z], dtype=F64), across, (-10, 10, -10, 10)) for z in (0, 1, 2)]
    job = counting.CountJob(net, counting.Planes(tuple(planes)))
    whole = job.compute()
    shares = [job.compute(range(0, 1)), job.compute(range(1, 3)), job.compute(range(3, 3))]
    # each share keeps its keys, one plane or none included, and the merge takes their union
    assert [s.distinct_regions for s in shares] == [22, 22, 0]
    merged = counting.combine(shares)
    assert merged.distinct_regions == whole.distinct_regions == 22 and merged.regions == 66
    np.testing.assert_array_equal(merged.region_keys, whole.region_keys)


def test_region_keys_are_the_codes_up_to_sixteen_bytes_and_digests_beyond():
    short = torch.tensor([[1, 2], [1, 2], [0, 255]], dtype=torch.uint8)
    assert counting.region_keys(short).tolist() == [[0, 255] + [0] * 14, [1, 2] + [0] * 14]
    long = torch.zeros(4, 17, dtype=torch.uint8)
    long[1, 16] = 1  # differs from row 0 in its last bit only
    long[2, 0] = 128
    keys = counting.region_keys(long)
    assert keys.shape == (3, 16) and len(np.unique(keys, axis=0)) == 3


def test_tile_codes_read_inside_each_tile_are_the_engines_own_codes():
    torch.manual_seed(9)
    net = lowered(mlp((2, 16, 16, 16, 1)), (2,))
    plane = input_plane(2, (-2, 2, -2, 2))
    whole = partition(net, plane.origin, plane.directions, plane.domain)
    read = counting.tile_codes(net, plane.origin, plane.directions, whole)
    assert len(read) > 100 and torch.equal(read, whole.codes)
