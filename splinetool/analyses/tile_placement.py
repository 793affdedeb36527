"""Where the tiles of a planar slice are: near the data, near the decision boundary, or away from both.

Every number is computed from the slice's polygons, the data points and the decision-boundary
segments alone (plane coordinates, in the plane's own units), so it does not depend on how the tiles
were found. Two distances are measured at every point p of the domain: d_data(p), to the nearest
data point drawn in the plane, and d_boundary(p), to the nearest decision-boundary segment (infinite
where the slice has no boundary).

- **Raster.** Areas in distance bands are measured on a raster of the domain's bounding box,
  `RASTER` cells along its longer side (square cells of side h), each cell counted at its centre and
  belonging to the tile that covers its centre. A tile too small to hold a cell centre counts whole
  at its vertex mean. Areas are thus exact up to the cells that straddle a band's or a tile's
  border (an error of order h times the border's length), not exact by polygon clipping.
- **A tile's share of a band** is the share of its cells in the band: a tile half within δ of the
  data counts as one half of a tile there.
- **Tile density** in a band of distance [a, b) is the tiles' shares in the band added up, divided by
  the band's area (tiles per unit area). Bands: `bins` of width w = D / bins, where D is the domain's
  diameter (its longest distance between two corners, which bounds every distance inside it); the
  last band also takes distances beyond D. A band with no area has no density (NaN).
- **Within δ** (of the data, of the boundary): the share of tiles is the tiles' shares of the region
  d ≤ δ added up over the number of tiles; the share of edges is the length of tile edges there over
  the length of all tile edges, each side two tiles share counted once and the domain's border left
  out. Edge lengths are exact: the part of an edge within δ of one segment is an interval (the
  segment's δ-neighbourhood is convex), and an edge counts the union of its intervals. The share of
  the domain's area within δ is given beside them: tiles spread evenly over the plane would put that
  share of themselves there.
- **Distances** are exact. Points are grouped in small square blocks; the triangle inequality bounds
  every distance in a block by its centre's, so a block that lies inside one band and on one side of
  δ needs no distance of its own points, and a block that does searches only the segments that can
  be nearest to one of its points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from splinetool.analyses.defaults import DEFAULT_PLACEMENT_BINS as DEFAULT_BINS
from splinetool.analyses.defaults import DEFAULT_PLACEMENT_RELATIVE_DELTA as DEFAULT_RELATIVE_DELTA
from splinetool.errors import UsageError

RASTER = 512  # cells along the longer side of the domain's bounding box
PAIRS_AT_ONCE = 1 << 20  # point-segment pairs measured at once with numpy
COVER_TOLERANCE = 1e-9  # cells: how far off a tile a cell centre may lie and still count as covered
POINTS_PER_BLOCK = 64  # points per block of the nearest-segment search, on average
CLASSIFIED_PER_BLOCK = 16  # points per block classified by its centre's distance, on average
BRUTE_FORCE_SEGMENTS = 16  # with no more segments, every point is measured to every one
TARGETS = ("data", "boundary")  # what the distances are measured to


@dataclass(frozen=True)
class PlacementOptions:
    bins: int = DEFAULT_BINS
    delta: float | None = None  # None: DEFAULT_RELATIVE_DELTA × the domain's diameter
    raster: int = RASTER

    def __post_init__(self):
        if self.bins < 1:
            raise UsageError(f"`bins` {self.bins}: expected a positive number of distance bands")
        if self.delta is not None and not (math.isfinite(self.delta) and self.delta > 0):
            raise UsageError(f"`delta` {self.delta}: expected a positive distance (plane coordinates)")
        if self.raster < 2:
            raise UsageError(f"`raster` {self.raster}: expected at least 2 cells")


@dataclass
class Placement:
    """The numbers of one slice. Per target (data, boundary): density [bins] (NaN: a band of no
    area), and within δ the shares of tiles, of edge length and of the domain's area."""

    bin_edges: np.ndarray  # [bins + 1]; the last band also takes every distance beyond its edge
    delta: float
    density: dict[str, np.ndarray]
    tiles_within: dict[str, float]
    edges_within: dict[str, float]
    area_within: dict[str, float]

    def summary(self) -> dict:
        return {
            "delta": self.delta,
            "bin_edges": self.bin_edges.tolist(),
            **{
                target: {
                    "density": [None if math.isnan(v) else float(v) for v in self.density[target]],
                    "tiles_within_delta": self.tiles_within[target],
                    "edges_within_delta": self.edges_within[target],
                    "area_within_delta": self.area_within[target],
                }
                for target in TARGETS
            },
        }


def domain_diameter(domain: np.ndarray) -> float:
    corners = np.asarray(domain, dtype=np.float64)
    return float(np.linalg.norm(corners[:, None] - corners[None], axis=-1).max())


def place(
    vertices: np.ndarray,
    offsets: np.ndarray,
    domain: np.ndarray,
    data: np.ndarray,
    boundary: np.ndarray,
    options: PlacementOptions = PlacementOptions(),
) -> Placement:
    """The placement numbers of the tiles `vertices[offsets[r]:offsets[r+1]]` (convex polygons
    covering the convex `domain`), for `data` points [N, 2] and `boundary` segments [S, 2, 2]."""
    return Placer(domain, data, options).place(vertices, offsets, boundary)


class Placer:
    """`place` for many tessellations of one domain measured to the same data points (the
    checkpoints of a trajectory on one plane): the raster of the domain, its blocks and every cell's
    distance band to the data are computed once. `place` only reads them, so threads may share it."""

    def __init__(self, domain: np.ndarray, data: np.ndarray, options: PlacementOptions = PlacementOptions()):
        self.domain = np.asarray(domain, dtype=np.float64)
        self.options = options
        diameter = domain_diameter(self.domain)
        self.delta = float(options.delta if options.delta is not None else DEFAULT_RELATIVE_DELTA * diameter)
        self.edges = np.linspace(0.0, diameter, options.bins + 1)
        data = np.asarray(data, dtype=np.float64).reshape(-1, 1, 2)
        self.data = np.concatenate([data, data], axis=1)  # each point a segment of length 0
        low, high = self.domain.min(axis=0), self.domain.max(axis=0)
        self.h = float((high - low).max()) / options.raster
        self.low, self.counts = low, np.maximum(1, np.round((high - low) / self.h).astype(np.int64))
        index = np.arange(int(np.prod(self.counts)))
        self.centres = (
            self.low + (np.stack([index % self.counts[0], index // self.counts[0]], axis=1) + 0.5) * self.h
        )
        self.blocks = _Blocks(self.centres, CLASSIFIED_PER_BLOCK)
        self.to_data = self._cells(_Segments(self.data)) if len(self.data) else None

    def place(self, vertices: np.ndarray, offsets: np.ndarray, boundary: np.ndarray) -> Placement:
        vertices = np.asarray(vertices, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.int64)
        options, delta, edges, h = self.options, self.delta, self.edges, self.h
        cell, tile_of = _raster(vertices, offsets, self.low, self.h, self.counts)
        tile_edges = _once(_edges(vertices, offsets)[1])
        tile_edges = tile_edges[~_on_border(tile_edges, self.domain)]
        lengths = np.linalg.norm(tile_edges[:, 1] - tile_edges[:, 0], axis=1)
        # a tile's cells (and a tile with none: its vertex mean, counted as one cell)
        regions = len(offsets) - 1
        cells = np.bincount(tile_of, minlength=regions).astype(np.float64)
        missing = np.flatnonzero(cells == 0)
        means = _vertex_means(vertices, offsets)[missing]
        owner = np.concatenate([tile_of, missing])
        cells[missing] = 1.0
        share = 1.0 / cells[owner]  # each point's share of its tile
        is_cell = np.concatenate([np.ones(len(cell), dtype=bool), np.zeros(len(missing), dtype=bool)])
        result = Placement(edges, delta, {}, {}, {}, {})
        sources = {"data": self.data, "boundary": np.asarray(boundary, dtype=np.float64).reshape(-1, 2, 2)}
        total = lengths.sum()
        for target, segments in sources.items():
            if not len(segments) or not regions:  # nothing to be near, or no tile to place
                result.density[target] = np.full(options.bins, np.nan)
                result.tiles_within[target] = result.edges_within[target] = result.area_within[target] = 0.0
                continue
            lines = _Segments(segments)
            band_of_cell, near_cell = self.to_data if target == "data" else self._cells(lines)
            band_of_mean, near_mean = _bands(_distance(means, lines), edges, delta)
            band = np.concatenate([band_of_cell[cell], band_of_mean])
            near = np.concatenate([near_cell[cell], near_mean])
            tiles = np.bincount(band, weights=share, minlength=options.bins)
            area = np.bincount(band[is_cell], minlength=options.bins) * h * h
            with np.errstate(invalid="ignore", divide="ignore"):
                result.density[target] = np.where(area > 0, tiles / area, np.nan)
            result.tiles_within[target] = float(share[near].sum() / regions)
            within = _length_within(tile_edges, lengths, segments, delta)
            result.edges_within[target] = float(within / total) if total else 0.0
            result.area_within[target] = float(near[is_cell].mean()) if len(cell) else 0.0
        return result

    def _cells(self, lines: _Segments) -> tuple[np.ndarray, np.ndarray]:
        """The distance band of every cell of the raster's box, and whether it lies within δ."""
        return _classify(self.centres, self.blocks, lines, self.edges, self.delta)


def _raster(vertices, offsets, low, h: float, counts) -> tuple[np.ndarray, np.ndarray]:
    """The raster cells (row by row over the box from `low`, `counts` cells of side `h`) whose centre
    a tile covers, and the tile covering each.

    Tiles are convex, so each row of cell centres crosses a tile in one interval, from the least to
    the largest x at which the tile's edges cross the row. Each edge is evaluated with its ends in
    one order, so two tiles sharing it find the same crossings, and a centre on it (up to a tolerance
    of `COVER_TOLERANCE` cells) goes to the tile of lower index."""
    none = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(offsets) < 2:
        return none
    tile_of_edge, ends = _edges(vertices, offsets)
    lower_first = (ends[:, 0, 1] < ends[:, 1, 1]) | (
        (ends[:, 0, 1] == ends[:, 1, 1]) & (ends[:, 0, 0] <= ends[:, 1, 0])
    )
    ends = np.where(lower_first[:, None, None], ends, ends[:, ::-1])
    # rows j whose centre y = low + (j + 1/2) h the edge spans, in cell units
    y0, y1 = ((ends[:, k, 1] - low[1]) / h - 0.5 for k in range(2))
    first = np.maximum(np.ceil(y0 - COVER_TOLERANCE), 0).astype(np.int64)
    last = np.minimum(np.floor(y1 + COVER_TOLERANCE), counts[1] - 1).astype(np.int64)
    rows = np.maximum(last - first + 1, 0)
    edge, step = _runs(rows)
    row = first[edge] + step
    x0, x1 = ((ends[edge, k, 0] - low[0]) / h - 0.5 for k in range(2))
    rise = y1[edge] - y0[edge]
    along = np.clip((row - y0[edge]) / np.where(rise > 0, rise, 1.0), 0.0, 1.0)
    x = np.where(rise > 0, x0 + along * (x1 - x0), np.minimum(x0, x1))
    x_end = np.where(rise > 0, x, np.maximum(x0, x1))  # a level edge covers its whole length
    key = tile_of_edge[edge] * counts[1] + row
    if not len(key):  # no row of centres crosses the domain
        return none
    order = np.argsort(key, kind="stable")
    key, x, x_end = key[order], x[order], x_end[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    left = np.minimum.reduceat(x, starts)
    right = np.maximum.reduceat(x_end, starts)
    tile, row = np.divmod(key[starts], counts[1])
    col_first = np.maximum(np.ceil(left - COVER_TOLERANCE), 0).astype(np.int64)
    col_last = np.minimum(np.floor(right + COVER_TOLERANCE), counts[0] - 1).astype(np.int64)
    cols = np.maximum(col_last - col_first + 1, 0)
    run, step = _runs(cols)
    col = col_first[run] + step
    cell = row[run] * counts[0] + col
    tile = tile[run]
    order = np.lexsort((tile, cell))
    cell, tile = cell[order], tile[order]
    keep = np.r_[True, cell[1:] != cell[:-1]]  # a centre on a shared edge goes to one tile
    cell, tile = cell[keep], tile[keep]
    return cell, tile.astype(np.int64)


def _runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For consecutive runs of `counts[i]` items: each item's run i and its position in that run."""
    run = np.repeat(np.arange(len(counts)), counts)
    return run, np.arange(len(run)) - np.repeat(np.cumsum(counts) - counts, counts)


def _edges(vertices, offsets) -> tuple[np.ndarray, np.ndarray]:
    """The tile of each edge and its two ends [E, 2, 2], each polygon closed on its first vertex."""
    following = np.arange(len(vertices)) + 1
    following[offsets[1:] - 1] = offsets[:-1]
    tile = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return tile, np.stack([vertices, vertices[following]], axis=1)


def _vertex_means(vertices, offsets) -> np.ndarray:
    sizes = np.diff(offsets)
    sums = np.add.reduceat(vertices, offsets[:-1], axis=0) if len(vertices) else np.zeros((0, 2))
    return sums / np.maximum(sizes, 1)[:, None]


def _once(ends: np.ndarray) -> np.ndarray:
    """Edges [E, 2, 2] with each segment once: two tiles list their common side in opposite orders,
    and tiles of two groups of a slice may place its ends a few roundings apart (each group pushes
    its vertices through the network in batches of its own), so ends match to 2^-32 of the extent."""
    if not len(ends):
        return ends
    flat = ends.reshape(-1, 4)
    keys = np.round(flat * (2.0**32 / max(float(np.abs(flat).max()), 1e-300)))
    swap = (keys[:, 0] > keys[:, 2]) | ((keys[:, 0] == keys[:, 2]) & (keys[:, 1] > keys[:, 3]))
    flat = np.where(swap[:, None], flat[:, [2, 3, 0, 1]], flat)
    keys = np.where(swap[:, None], keys[:, [2, 3, 0, 1]], keys)
    order = np.lexsort(keys.T[::-1])
    keys, flat = keys[order], flat[order]
    fresh = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]
    return flat[fresh].reshape(-1, 2, 2)


def _on_border(ends: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Whether both ends of each edge lie on one side of the (convex) domain: within a billionth of
    its diameter, or of the rounding of coordinates as far from 0 as the domain lies."""
    eps = np.finfo(np.float64).eps
    tolerance = max(1e-9 * domain_diameter(domain), 64 * eps * float(np.abs(domain).max()))
    on = np.zeros(len(ends), dtype=bool)
    for p, q in zip(domain, np.roll(domain, -1, axis=0)):
        normal = np.array([q[1] - p[1], p[0] - q[0]]) / np.linalg.norm(q - p)
        off = np.abs((ends - p) @ normal)  # [E, 2] distances of both ends to the side's line
        on |= (off <= tolerance).all(axis=1)
    return on


def _classify(points: np.ndarray, blocks: _Blocks, lines: _Segments, edges: np.ndarray, delta: float):
    """Each point's distance band (`edges`, the last band open above) and whether it lies within
    `delta`, from the distance to the nearest segment. Points are grouped in small blocks: a block
    whose points all lie within r of its centre c has every distance within r of c's, so where no band
    edge and not δ lie in that range the whole block takes c's band and side of δ; the points of the
    other blocks are measured one by one."""
    at_centre = _distance(blocks.centre, lines)
    low, high = at_centre - blocks.radius, at_centre + blocks.radius
    slack = 1e-9 * np.maximum(np.abs(at_centre), 1.0)  # rounding in the distances
    thresholds = np.sort(np.r_[edges[1:-1], delta])  # 0 and the last edge change no band
    crossed = np.searchsorted(thresholds, low - slack, side="left") != np.searchsorted(
        thresholds, high + slack, side="right"
    )
    distance = at_centre[blocks.of]
    measured = crossed[blocks.of]
    distance[measured] = _distance(points[measured], lines)
    return _bands(distance, edges, delta)


def _bands(distance: np.ndarray, edges: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Each distance's band (`edges`, the last band open above) and whether it is within `delta`."""
    return np.minimum(np.searchsorted(edges, distance, side="right") - 1, len(edges) - 2), distance <= delta


def _distance(points: np.ndarray, lines: _Segments) -> np.ndarray:
    """[P] distance of each point to the nearest segment.

    Exact, and pruned where every pair would be much work: the points are grouped in square blocks,
    and a block whose points lie within r of its centre c only needs the segments s with
    d(c, s) <= min over segments of d(c, s) + 2r (a point's nearest segment is no farther from c than
    that, by the triangle inequality)."""
    found = np.full(len(points), np.inf)
    if not len(points):
        return found
    if lines.count <= BRUTE_FORCE_SEGMENTS:
        for segment in range(lines.count):
            np.minimum(found, lines.squared_distance(points, segment), out=found)
        return np.sqrt(found)
    strips = _strips(points, lines.count)
    if len(strips) > 1:
        for rows in strips:
            found[rows] = _distance(points[rows], lines)
        return found
    blocks = _Blocks(points)
    to_centre = blocks.distances(lines)
    reach = (to_centre.min(axis=1) + 2 * blocks.radius) * (1 + 1e-9)  # the tolerance covers rounding
    is_candidate = to_centre <= reach[:, None]
    counts = is_candidate.sum(axis=1)
    # candidate k of each block, nearest first; blocks with more candidates first, so that the
    # points still searching at rank k are a prefix of the points sorted by their block's rank
    ranked = np.argsort(np.where(is_candidate, to_centre, np.inf), axis=1, kind="stable")
    by_count = np.argsort(-counts, kind="stable")
    rank_of_block = np.empty_like(by_count)
    rank_of_block[by_count] = np.arange(len(by_count))
    block_of = blocks.of
    order = np.argsort(rank_of_block[block_of], kind="stable")
    block_of, points = block_of[order], points[order]
    searching = np.searchsorted(-counts[block_of], -np.arange(counts.max()), side="right")
    nearest = np.full(len(points), np.inf)
    for k, active in enumerate(searching):
        squared = lines.squared_distance(points[:active], ranked[block_of[:active], k])
        np.minimum(nearest[:active], squared, out=nearest[:active])
    found[order] = np.sqrt(nearest)
    return found


def _length_within(edges: np.ndarray, lengths: np.ndarray, segments: np.ndarray, delta: float) -> float:
    """The length of `edges` [E, 2, 2] within `delta` of any of `segments` [S, 2, 2], exactly: the
    points of an edge within δ of one segment (a stadium, convex) form one interval of the edge, and
    each edge counts the union of its intervals."""
    if not len(segments) or not len(edges):
        return 0.0
    lines = _Segments(segments)
    midpoints = edges.mean(axis=1)
    strips = _strips(midpoints, lines.count)
    if len(strips) > 1:
        return sum(_length_within(edges[rows], lengths[rows], segments, delta) for rows in strips)
    edge, segment = _pairs_within(midpoints, lengths / 2 + delta, lines)
    start, stop = _interval_within(edges[edge], segments[segment], delta)
    keep = start < stop
    edge, start, stop = edge[keep], start[keep], stop[keep]
    order = np.lexsort((start, edge))
    edge, start, stop = edge[order], start[order], stop[order]
    # one running maximum over all edges: edge e's intervals lie in [2e, 2e + 1]
    reach = np.maximum.accumulate(2.0 * edge + stop)
    covered_before = np.r_[-np.inf, reach[:-1]] - 2.0 * edge
    fresh = np.maximum(stop - np.maximum(start, covered_before), 0.0)
    return float((fresh * lengths[edge]).sum())


def _pairs_within(points: np.ndarray, reach: np.ndarray, lines: _Segments) -> tuple[np.ndarray, np.ndarray]:
    """Every (point, segment) with the segment within `reach[point]` of the point: the blocks'
    centres select candidates by the triangle inequality, then each candidate pair is measured."""
    blocks = _Blocks(points)
    block_reach = np.zeros(len(blocks.sizes))
    np.maximum.at(block_reach, blocks.of, reach)
    block, candidate = np.nonzero(
        blocks.distances(lines) <= ((block_reach + blocks.radius) * (1 + 1e-9))[:, None]
    )
    counts = np.bincount(block, minlength=len(blocks.sizes))
    point, local = _runs(counts[blocks.of])
    segment = candidate[(np.cumsum(counts) - counts)[blocks.of[point]] + local]
    near = lines.squared_distance(points[point], segment) <= reach[point] ** 2 * (1 + 1e-9)
    return point[near], segment[near]


def _interval_within(edges: np.ndarray, segments: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """For each edge A + t (B - A), t in [0, 1], and its segment: the t in [0, 1] within `delta` of
    the segment, [start, stop] (empty where start >= stop). The stadium around the segment is the
    union of the discs at its ends and the rectangle along it, so the interval spans the pieces."""
    a, step = edges[:, 0], edges[:, 1] - edges[:, 0]
    start, stop = np.full(len(edges), np.inf), np.full(len(edges), -np.inf)
    squared = np.maximum((step * step).sum(axis=1), np.finfo(np.float64).tiny)
    for end in (segments[:, 0], segments[:, 1]):
        offset = a - end
        half = (offset * step).sum(axis=1) / squared
        across = offset[:, 0] * step[:, 1] - offset[:, 1] * step[:, 0]  # |step| × the line's distance
        spread = (delta * delta - across * across / squared) / squared  # half the chord, squared, in t
        root = np.sqrt(np.maximum(spread, 0.0))
        hit = spread >= 0
        start = np.where(hit, np.minimum(start, -half - root), start)
        stop = np.where(hit, np.maximum(stop, -half + root), stop)
    axis = segments[:, 1] - segments[:, 0]
    length = np.linalg.norm(axis, axis=1)
    along = axis / np.maximum(length, np.finfo(np.float64).tiny)[:, None]
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    low, high = np.zeros(len(edges)), np.ones(len(edges))
    offset = a - segments[:, 0]
    for direction, lower, upper in ((along, 0.0, length), (across, -delta, delta)):
        value, rate = (offset * direction).sum(axis=1), (step * direction).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            first, second = (lower - value) / rate, (upper - value) / rate
        still = rate == 0
        inside = (value >= lower) & (value <= upper)
        low = np.maximum(low, np.where(still, np.where(inside, -np.inf, np.inf), np.minimum(first, second)))
        high = np.minimum(high, np.where(still, np.where(inside, np.inf, -np.inf), np.maximum(first, second)))
    band = (length > 0) & (low < high)
    start = np.where(band, np.minimum(start, low), start)
    stop = np.where(band, np.maximum(stop, high), stop)
    return np.maximum(start, 0.0), np.minimum(stop, 1.0)


def _strips(points: np.ndarray, segments: int) -> list[np.ndarray]:
    """The points' rows in strips across x, each few enough that its blocks' distances to every
    segment (one row of `segments` per block) stay within 8 PAIRS_AT_ONCE numbers."""
    rows = max(POINTS_PER_BLOCK, 8 * PAIRS_AT_ONCE * POINTS_PER_BLOCK // max(segments, 1))
    if len(points) <= rows:
        return [np.arange(len(points))]
    return np.array_split(np.argsort(points[:, 0], kind="stable"), math.ceil(len(points) / rows))


class _Blocks:
    """Points grouped in square blocks of about `POINTS_PER_BLOCK` points each: the block of each
    point, and each block's size, centre (mean point) and radius (its farthest point's distance)."""

    def __init__(self, points: np.ndarray, per_block: int = POINTS_PER_BLOCK):
        low, high = points.min(axis=0), points.max(axis=0)
        longest = float((high - low).max())
        # square blocks of the points' box, but never more along a side than the points there could
        # fill (points along one line: blocks along it)
        fits = per_block / len(points)
        side = max(math.sqrt(float(np.prod(high - low)) * fits), longest * fits) if longest > 0 else 1.0
        cells = np.floor((points - low) / side).astype(np.int64)
        key = cells[:, 0] * (int(cells[:, 1].max()) + 1) + cells[:, 1]
        present = np.bincount(key) > 0
        self.of = (np.cumsum(present) - 1)[key]  # blocks numbered without the empty ones
        self.sizes = np.bincount(self.of)
        self.centre = (
            np.stack([np.bincount(self.of, weights=points[:, k]) for k in range(2)], axis=1)
            / self.sizes[:, None]
        )
        spread_x, spread_y = (points[:, k] - self.centre[self.of, k] for k in range(2))
        self.radius = np.zeros(len(self.sizes))
        np.maximum.at(self.radius, self.of, np.sqrt(spread_x * spread_x + spread_y * spread_y))

    def distances(self, lines: _Segments) -> np.ndarray:
        """[blocks, S] from each block's centre to each segment."""
        chunk = max(1, PAIRS_AT_ONCE // lines.count)
        return np.sqrt(
            np.concatenate(
                [
                    lines.squared_distances(self.centre[k : k + chunk])
                    for k in range(0, len(self.centre), chunk)
                ]
            )
        )


class _Segments:
    """Segments [S, 2, 2] held as columns, for the squared distance of points to them (a segment of
    length 0 is a point)."""

    def __init__(self, segments: np.ndarray):
        start, step = segments[:, 0], segments[:, 1] - segments[:, 0]
        squared = np.maximum((step * step).sum(axis=1), np.finfo(np.float64).tiny)
        self.columns = np.stack([start[:, 0], start[:, 1], step[:, 0], step[:, 1], 1.0 / squared])
        self.count = len(segments)

    def squared_distances(self, points: np.ndarray) -> np.ndarray:
        """[P, S] from every point to every segment."""
        return self._squared(points[:, :1], points[:, 1:], *self.columns)

    def squared_distance(self, points: np.ndarray, segment: np.ndarray | int) -> np.ndarray:
        """[P] from each point to its segment (or all to one)."""
        return self._squared(points[:, 0], points[:, 1], *self.columns[:, segment])

    @staticmethod
    def _squared(x, y, start_x, start_y, step_x, step_y, inverse_length2):
        x, y = x - start_x, y - start_y
        along = np.clip((x * step_x + y * step_y) * inverse_length2, 0.0, 1.0)
        x -= along * step_x
        y -= along * step_y
        return x * x + y * y
