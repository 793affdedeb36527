"""Where the tiles are, on networks whose lines are placed by hand: every expected number below follows
from the lines alone (areas of rectangles, quarter discs and strips), never from the slicing engine."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from splinetool.analyses import slice as analysis
from splinetool.analyses import tile_placement
from splinetool.analyses.plane import input_plane
from splinetool.analyses.tile_placement import PlacementOptions, domain_diameter, place
from splinetool.errors import UsageError
from splinetool.ir import lower

BOUNDS = (-1.0, 1.0, -1.0, 1.0)
DOMAIN = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
DATA = np.zeros((1, 2))  # one data point, at the origin
BOUNDARY_X = 0.5  # the decision boundary is the line x = 0.5 at every step
DELTA = 0.1
# step -> (x, y) where the two moving lines x = a and y = b cross: through the data point, then moved
MOVES = {0: (0.0, 0.0), 1: (-0.6, -0.6)}


def lines_net(a: float, b: float) -> nn.Sequential:
    """One hidden layer on 2-D inputs: lines x = a and y = b (output weight 0), and x = 0.5 twice,
    relu(x - 0.5) - relu(0.5 - x) = x - 0.5, so that the output's zero set, the decision boundary, is
    the line x = 0.5 exactly. Its tiles are the six rectangles the lines x = a, x = 0.5, y = b cut."""
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]))
        m[0].bias.copy_(torch.tensor([-a, -b, -BOUNDARY_X, BOUNDARY_X]))
        m[2].weight.copy_(torch.tensor([[0.0, 0.0, 1.0, -1.0]]))
        m[2].bias.zero_()
    return m


def rectangles(a: float, b: float) -> list[tuple[float, float, float, float]]:
    xs, ys = sorted({-1.0, a, BOUNDARY_X, 1.0}), [-1.0, b, 1.0]
    return [(x0, x1, y0, y1) for x0, x1 in zip(xs, xs[1:]) for y0, y1 in zip(ys, ys[1:])]


def expected(a: float, b: float) -> dict:
    """The shares within DELTA, by hand. The disc of radius DELTA around the data point lies in the
    tiles meeting at it (a quarter disc in each of four, when the lines cross there) or in one tile;
    the strip |x - 0.5| <= DELTA crosses the rectangles on either side of x = 0.5."""
    tiles = rectangles(a, b)
    disc = math.pi * DELTA**2

    def area(t):
        return (t[1] - t[0]) * (t[3] - t[2])

    def disc_part(t):  # the rectangles meet the origin at a corner (through it) or hold it whole
        if t[0] < 0 < t[1] and t[2] < 0 < t[3]:
            return disc
        return disc / 4 if 0.0 in (t[0], t[1]) and 0.0 in (t[2], t[3]) else 0.0

    def strip_part(t):
        return max(0.0, min(t[1], BOUNDARY_X + DELTA) - max(t[0], BOUNDARY_X - DELTA)) * (t[3] - t[2])

    # tile edges off the border: vertical lines x = a, 0.5 (length 2), horizontal y = b (length 2)
    edges = 3 * 2.0
    through = (a, b) == (0.0, 0.0)
    near_data_edges = 4 * DELTA if through else 0.0  # two lines cross the disc along a diameter
    near_boundary_edges = 2.0 + 2 * DELTA  # the line x = 0.5 itself, and y = b across the strip
    return {
        "tiles": len(tiles),
        "data": {
            "tiles": sum(disc_part(t) / area(t) for t in tiles) / len(tiles),
            "edges": near_data_edges / edges,
            "area": disc / 4.0,
        },
        "boundary": {
            "tiles": sum(strip_part(t) / area(t) for t in tiles) / len(tiles),
            "edges": near_boundary_edges / edges,
            "area": 2 * DELTA * 2.0 / 4.0,
        },
        # within 0.4 of the origin, the annulus of each band is split among the tiles at the origin
        "near_density": sum(0.25 / area(t) for t in tiles if disc_part(t) == disc / 4)
        or 1.0 / area(next(t for t in tiles if disc_part(t) == disc)),
    }


def polygons(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    corners = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) for x0, x1, y0, y1 in rectangles(a, b)]
    return np.concatenate(corners), np.arange(len(corners) + 1) * 4


def strip_boundary() -> np.ndarray:
    return np.array([[[BOUNDARY_X, -1.0], [BOUNDARY_X, 1.0]]])


def check(placement, answer, rel=0.04) -> None:
    """A raster of side 2/512 measures areas to a few percent; edge lengths are exact."""
    for target in ("data", "boundary"):
        assert placement.tiles_within[target] == pytest.approx(answer[target]["tiles"], rel=rel, abs=1e-12)
        assert placement.edges_within[target] == pytest.approx(answer[target]["edges"], rel=1e-12, abs=1e-15)
        assert placement.area_within[target] == pytest.approx(answer[target]["area"], rel=rel)
    # bands of width 2√2/20 = 0.14: the first two lie within 0.4 of the data point, inside its tiles
    np.testing.assert_allclose(placement.density["data"][:2], answer["near_density"], rtol=rel)


@pytest.mark.parametrize("step", sorted(MOVES))
def test_placement_of_hand_placed_rectangles(step):
    a, b = MOVES[step]
    vertices, offsets = polygons(a, b)
    placement = place(vertices, offsets, DOMAIN, DATA, strip_boundary(), PlacementOptions(delta=DELTA))
    check(placement, expected(a, b))


def test_lines_moved_away_from_the_data_leave_it_with_fewer_tiles():
    before, after = expected(*MOVES[0]), expected(*MOVES[1])
    assert before["near_density"] == pytest.approx(1.5)  # 1/4 + 1/4 + 1/2 + 1/2 tiles per unit area
    assert after["near_density"] == pytest.approx(1 / 1.76)  # one tile of 1.1 × 1.6
    assert after["data"]["edges"] == 0.0 < before["data"]["edges"]


def test_densities_count_every_tile_once_over_the_domain():
    vertices, offsets = polygons(*MOVES[1])
    placement = place(vertices, offsets, DOMAIN, DATA, strip_boundary(), PlacementOptions(bins=8))
    edges = placement.bin_edges
    assert edges[-1] == pytest.approx(domain_diameter(DOMAIN)) and len(edges) == 9
    # density × band area, added up, gives back the 6 tiles; band areas from the raster's own
    # distances are what `place` divides by, so recompute them from a fine grid here
    n = 800
    centres = -1 + (np.arange(n) + 0.5) * 2 / n
    grid = np.stack(np.meshgrid(centres, centres), -1).reshape(-1, 2)
    band = np.minimum(np.searchsorted(edges, np.linalg.norm(grid, axis=1), side="right") - 1, 7)
    area = np.bincount(band, minlength=8) * (2 / n) ** 2
    density = np.nan_to_num(placement.density["data"])
    assert (density * area).sum() == pytest.approx(6, rel=0.01)


def test_the_default_delta_is_a_share_of_the_domains_diameter():
    vertices, offsets = polygons(0.0, 0.0)
    placement = place(vertices, offsets, DOMAIN, DATA, strip_boundary())
    assert placement.delta == pytest.approx(0.02 * 2 * math.sqrt(2))


def test_no_boundary_places_nothing_near_it():
    vertices, offsets = polygons(0.0, 0.0)
    placement = place(vertices, offsets, DOMAIN, DATA, np.zeros((0, 2, 2)))
    assert placement.tiles_within["boundary"] == placement.edges_within["boundary"] == 0.0
    assert np.isnan(placement.density["boundary"]).all()


@pytest.mark.parametrize(
    ("options", "message"), [({"bins": 0}, "`bins` 0"), ({"delta": -1.0}, "`delta` -1.0")]
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        PlacementOptions(**options)


def test_a_sliced_trajectory_of_moving_lines_gives_the_numbers_of_its_lines():
    nets = {step: lower(lines_net(*move), (2,)).to(dtype=torch.float64) for step, move in MOVES.items()}
    paths = [f"step-{step}.pt" for step in MOVES]
    job = analysis.TrajectoryJob(
        lambda path: (None, nets[int(path[5:-3])]),
        paths,
        list(MOVES),
        input_plane(2, BOUNDS),
        DATA,
        placement=PlacementOptions(delta=DELTA),
    )
    result = job.compute()
    assert result.steps == [0, 1] and result.checkpoints == paths
    for (a, b), one, placement in zip(MOVES.values(), result.slices, result.placements):
        assert one.regions == 6
        check(placement, expected(a, b))
    # shares of the checkpoints join into the whole
    joined = analysis.combine_trajectory([job.compute(range(0, 1)), job.compute(range(1, 2))])
    assert joined.steps == result.steps and joined.checkpoints == result.checkpoints
    assert [p.summary() for p in joined.placements] == [p.summary() for p in result.placements]


def test_checkpoints_sliced_in_stacks_of_any_size_or_graph_give_the_same_trajectory(monkeypatch):
    # checkpoints of one graph are sliced together; a checkpoint of another graph (a wider hidden
    # layer, the same inputs) starts a stack of its own: every split gives the same numbers
    wide = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    torch.manual_seed(0)
    nets = {
        "0": lower(lines_net(0.0, 0.0), (2,)).to(dtype=torch.float64),
        "1": lower(wide, (2,)).to(dtype=torch.float64),
        "2": lower(lines_net(-0.6, -0.6), (2,)).to(dtype=torch.float64),
        "3": lower(lines_net(0.3, -0.2), (2,)).to(dtype=torch.float64),
    }
    loads = []

    def load(path):
        loads.append(path)
        return None, nets[path]

    job = analysis.TrajectoryJob(
        load, list(nets), [0, 1, 2, 3], input_plane(2, BOUNDS), DATA, placement=PlacementOptions(delta=DELTA)
    )
    results = []
    for at_once in (1, 2, 16):
        monkeypatch.setattr(analysis, "CHECKPOINTS_AT_ONCE", at_once)
        loads.clear()
        results.append(job.compute())
        assert loads == list(nets)  # each checkpoint loaded once, in order
    # a limit the stack passes but no checkpoint alone: sliced again one at a time, the same numbers
    limit = max(one.regions for one in results[0].slices)
    results.append(dataclasses.replace(job, options=analysis.SliceOptions(max_regions=limit)).compute())
    for result in results:
        assert [one.regions for one in result.slices] == [6, results[0].slices[1].regions, 6, 6]
        assert [p.summary() for p in result.placements] == [p.summary() for p in results[0].placements]
    for (a, b), placement in zip([(0.0, 0.0), (-0.6, -0.6)], results[-1].placements[::2]):
        check(placement, expected(a, b))


def test_the_first_failing_checkpoint_is_reported_first():
    # checkpoint 0 has more tiles than allowed and checkpoint 1 cannot be loaded: 0's error comes first
    def load(path):
        if path == "1":
            raise UsageError("checkpoint 1: not a checkpoint")
        return None, lower(lines_net(0.0, 0.0), (2,)).to(dtype=torch.float64)

    job = analysis.TrajectoryJob(load, ["0", "1"], [0, 1], input_plane(2, BOUNDS), DATA)
    with pytest.raises(UsageError, match="more than `max_regions` 5"):
        dataclasses.replace(job, options=analysis.SliceOptions(max_regions=5)).compute()
    with pytest.raises(UsageError, match="checkpoint 1: not a checkpoint"):
        job.compute()


def test_a_placer_reused_over_tessellations_gives_what_place_gives_each():
    placer = tile_placement.Placer(DOMAIN, DATA, PlacementOptions(delta=DELTA))
    for a, b in [(0.0, 0.0), (-0.6, -0.6), (0.3, -0.2), (0.0, 0.0)]:
        vertices, offsets = polygons(a, b)
        again = placer.place(vertices, offsets, strip_boundary())
        alone = place(vertices, offsets, DOMAIN, DATA, strip_boundary(), PlacementOptions(delta=DELTA))
        assert again.summary() == alone.summary()


def test_checkpoints_of_another_input_size_are_refused():
    wide = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    nets = [lower(lines_net(0, 0), (2,)).to(dtype=torch.float64), lower(wide, (3,)).to(dtype=torch.float64)]
    job = analysis.TrajectoryJob(lambda i: (None, nets[i]), [0, 1], [0, 1], input_plane(2, BOUNDS), DATA)
    with pytest.raises(
        UsageError, match=r"checkpoint 1: its inputs have shape \(3,\), the trajectory's plane"
    ):
        job.compute()


def random_segments(rng, count: int, points: int = 0) -> np.ndarray:
    """`count` short segments in [-1, 1]², then `points` segments of length 0 (points)."""
    start = rng.uniform(-1, 1, (count, 2))
    segments = np.stack([start, start + rng.normal(0, 0.1, (count, 2))], axis=1)
    spots = np.repeat(rng.uniform(-1, 1, (points, 1, 2)), 2, axis=1)
    return np.concatenate([segments, spots])


def every_pair(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """[P, S] point-to-segment distances, each by projecting on the segment's line and clipping."""
    found = np.empty((len(points), len(segments)))
    for s, (a, b) in enumerate(segments):
        step = b - a
        length2 = step @ step
        t = np.clip((points - a) @ step / length2, 0, 1) if length2 > 0 else np.zeros(len(points))
        found[:, s] = np.linalg.norm(points - (a + t[:, None] * step), axis=1)
    return found


@pytest.mark.parametrize("count", [3, 40, 400])
def test_nearest_segment_search_equals_every_pair(count):
    rng = np.random.default_rng(count)
    segments = random_segments(rng, count, points=count // 4)
    grid = np.stack(np.meshgrid(*[np.linspace(-1.2, 1.2, 90)] * 2), -1).reshape(-1, 2)
    points = np.concatenate([grid, rng.uniform(-1, 1, (3000, 2)), segments[:5, 0]])
    found = tile_placement._distance(points, tile_placement._Segments(segments))
    np.testing.assert_allclose(found, every_pair(points, segments).min(axis=1), rtol=1e-12, atol=1e-15)


def test_bands_and_delta_sides_equal_those_of_exact_distances():
    rng = np.random.default_rng(5)
    segments = random_segments(rng, 120)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 200)] * 2), -1).reshape(-1, 2)
    edges, delta = np.linspace(0, 2 * math.sqrt(2), 21), 0.05
    band, near = tile_placement._classify(
        grid, tile_placement._Blocks(grid, 16), tile_placement._Segments(segments), edges, delta
    )
    exact = every_pair(grid, segments).min(axis=1)
    np.testing.assert_array_equal(band, np.minimum(np.searchsorted(edges, exact, side="right") - 1, 19))
    np.testing.assert_array_equal(near, exact <= delta)


def test_edge_length_within_delta_is_exact():
    # an edge along the x axis under a point at height 0.06: a chord of the disc of radius 0.1, 0.16 long;
    # a second point overlapping it adds only its own part; a segment alongside covers its length
    edges = np.array([[[-2.0, 0.0], [2.0, 0.0]], [[0.0, 5.0], [1.0, 5.0]]])
    lengths = np.linalg.norm(edges[:, 1] - edges[:, 0], axis=1)
    spots = np.array([[[0.0, 0.06]] * 2, [[0.1, 0.06]] * 2])
    assert tile_placement._length_within(edges, lengths, spots, 0.1) == pytest.approx(0.26, rel=1e-12)
    alongside = np.array([[[0.25, 5.05], [0.5, 5.05]]])
    assert tile_placement._length_within(edges, lengths, alongside, 0.1) == pytest.approx(
        0.25 + 2 * math.sqrt(0.1**2 - 0.05**2), rel=1e-12
    )


def test_edge_length_within_delta_equals_fine_sampling():
    rng = np.random.default_rng(7)
    segments = random_segments(rng, 60, points=20)
    edges = random_segments(rng, 300)
    lengths = np.linalg.norm(edges[:, 1] - edges[:, 0], axis=1)
    t = (np.arange(4000) + 0.5) / 4000
    sampled = 0.0
    for (a, b), length in zip(edges, lengths):
        near = every_pair(a + t[:, None] * (b - a), segments).min(axis=1) <= 0.08
        sampled += near.mean() * length
    found = tile_placement._length_within(edges, lengths, segments, 0.08)
    assert found == pytest.approx(sampled, rel=1e-3)


def test_raster_cells_go_to_the_tile_covering_their_centre():
    shapely = pytest.importorskip("shapely")
    net = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 1))
    torch.manual_seed(3)
    one = analysis.run(lower(net.double(), (2,)).to(dtype=torch.float64), input_plane(2, BOUNDS))
    placer = tile_placement.Placer(DOMAIN, DATA, PlacementOptions(raster=64))
    cell, tile = tile_placement._raster(one.vertices, one.offsets, placer.low, placer.h, placer.counts)
    assert placer.h == pytest.approx(2 / 64) and len(cell) == 64 * 64
    centres = placer.low + (np.stack([cell % 64, cell // 64], axis=1) + 0.5) * placer.h
    for r in range(one.regions):
        polygon = shapely.Polygon(one.vertices[one.offsets[r] : one.offsets[r + 1]])
        inside = shapely.covered_by(shapely.points(centres), polygon)
        np.testing.assert_array_equal(tile == r, inside)


def strips(widths: list[float], height: float, scale: float = 1.0, shift: float = 0.0):
    """Rectangles side by side (cuts from bottom to top), scaled and shifted: (vertices, offsets, domain)."""
    xs = np.concatenate([[0.0], np.cumsum(widths)])
    corners = [np.array([[a, 0], [b, 0], [b, height], [a, height]]) for a, b in zip(xs, xs[1:])]
    vertices = np.concatenate(corners) * scale + shift
    domain = np.array([[0, 0], [xs[-1], 0], [xs[-1], height], [0, height]]) * scale + shift
    return vertices, np.arange(len(corners) + 1) * 4, domain


def test_cuts_from_side_to_side_whose_midpoints_lie_on_one_line():
    # two vertical cuts of a 3 x 3 square: their midpoints share y = 1.5; the point (0.5, 0.25) is 0.5
    # from the cut x = 1 (none of it within 0.3), the boundary x = 0.5, y <= 1 crosses nothing
    vertices, offsets, domain = strips([1.0, 1.0, 1.0], 3.0)
    boundary = np.array([[[1.0, 0.0], [1.0, 1.0]]])  # along the first cut's lower third
    placement = place(
        vertices, offsets, domain, np.array([[0.5, 0.25]]), boundary, PlacementOptions(delta=0.3)
    )
    assert placement.edges_within["data"] == 0.0
    # the first cut is within 0.3 of the boundary segment for y <= 1.3, the second (x = 2) never
    assert placement.edges_within["boundary"] == pytest.approx(1.3 / 6.0, rel=1e-12)


@pytest.mark.parametrize(("scale", "shift"), [(1e-3, 0.0), (1e-3, 1e6), (1e-9, 0.0), (1e6, -3e6)])
def test_edge_shares_do_not_depend_on_the_domains_size_or_place(scale, shift):
    vertices, offsets, domain = strips([0.5, 0.5], 1.0, scale, shift)
    data = np.array([[0.5, 0.5]]) * scale + shift
    placement = place(
        vertices, offsets, domain, data, np.zeros((0, 2, 2)), PlacementOptions(delta=0.25 * scale)
    )
    # the one inner edge, x = 0.5, runs through the data point: half its length lies within δ
    assert placement.edges_within["data"] == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("height", [0.002, 1e-4])
def test_a_domain_thinner_than_a_row_of_cells_is_measured(height):
    vertices, offsets, domain = strips([1.0], height)
    placement = place(vertices, offsets, domain, np.array([[0.5, height / 2]]), np.zeros((0, 2, 2)))
    assert placement.tiles_within["data"] <= 1.0 and placement.edges_within["data"] == 0.0


def test_distances_of_points_on_one_line_and_of_one_point():
    segments = random_segments(np.random.default_rng(3), 40)
    line = np.c_[np.linspace(-1, 1, 500), np.zeros(500)]
    for points in (line, line[:, ::-1], np.zeros((300, 2)), np.full((1, 2), 0.25)):
        found = tile_placement._distance(points, tile_placement._Segments(segments))
        np.testing.assert_allclose(found, every_pair(points, segments).min(axis=1), rtol=1e-12)


def test_a_tiny_delta_gives_its_chord_exactly():
    # a point δ/2 from a unit edge: the chord of the disc of radius δ along it is √3 δ long
    edges = np.array([[[0.0, 0.0], [1.0, 0.0]]])
    for delta in (1e-6, 1e-8, 1e-10):
        spot = np.array([[[0.5, delta / 2]] * 2])
        length = tile_placement._length_within(edges, np.ones(1), spot, delta)
        assert length == pytest.approx(math.sqrt(3) * delta, rel=1e-9)


def test_no_tiles_place_nothing():
    placement = place(np.zeros((0, 2)), np.zeros(1, dtype=np.int64), DOMAIN, DATA, strip_boundary())
    assert placement.tiles_within == placement.edges_within == {"data": 0.0, "boundary": 0.0}
    assert np.isnan(placement.density["data"]).all()


def test_a_side_two_groups_place_a_rounding_apart_is_counted_once():
    # the inner side x = 0.5 of two strips, listed by the right strip one ulp off at one end: still
    # one side, half of it within 0.25 of the data point at its middle
    vertices, offsets, _ = strips([0.5, 0.5], 1.0)
    vertices[4] = np.nextafter(vertices[4], 1.0)  # the right strip's corner (0.5, 0)
    placement = place(vertices, offsets, DOMAIN / 2 + 0.5, np.array([[0.5, 0.5]]), np.zeros((0, 2, 2)))
    inner = np.array([[[0.5, 0.0], [0.5, 1.0]]])
    assert len(tile_placement._once(tile_placement._edges(vertices, offsets)[1])) == 7
    assert placement.edges_within["data"] == pytest.approx(
        tile_placement._length_within(inner, np.ones(1), np.array([[[0.5, 0.5]] * 2]), placement.delta),
        rel=1e-9,
    )


def test_searches_split_in_strips_give_the_same_answers(monkeypatch):
    rng = np.random.default_rng(11)
    segments = random_segments(rng, 300)
    points = rng.uniform(-1, 1, (5000, 2))
    edges = random_segments(rng, 2000)
    lengths = np.linalg.norm(edges[:, 1] - edges[:, 0], axis=1)
    lines = tile_placement._Segments(segments)
    whole = (
        tile_placement._distance(points, lines),
        tile_placement._length_within(edges, lengths, segments, 0.05),
    )
    monkeypatch.setattr(tile_placement, "PAIRS_AT_ONCE", 256)  # strips of about 400 points
    assert len(tile_placement._strips(points, lines.count)) > 10
    np.testing.assert_array_equal(tile_placement._distance(points, lines), whole[0])
    assert tile_placement._length_within(edges, lengths, segments, 0.05) == pytest.approx(whole[1], rel=1e-12)
