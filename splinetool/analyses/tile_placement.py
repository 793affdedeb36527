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
  the length of all tile edges, edges along the domain's border left out (each edge between two
  tiles appears in both, which changes no share). Edges are measured at the midpoints of pieces of
  length at most h. The share of the domain's area within δ is given beside them: tiles spread
  evenly over the plane would put that share of themselves there.
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

    vertices, domain = np.asarray(vertices, dtype=np.float64), np.asarray(domain, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    diameter = domain_diameter(domain)
    delta = options.delta if options.delta is not None else DEFAULT_RELATIVE_DELTA * diameter
    edges = np.linspace(0.0, diameter, options.bins + 1)
    centres, tile_of, h = _raster(vertices, offsets, domain, options.raster)
    pieces = _edge_pieces(vertices, offsets, domain, h)
    weights = np.linalg.norm(pieces[:, 1] - pieces[:, 0], axis=1)
    midpoints = pieces.mean(axis=1)
    # a tile's cells (and a tile with none: its vertex mean, counted as one cell)
    regions = len(offsets) - 1
    cells = np.bincount(tile_of, minlength=regions).astype(np.float64)
    missing = np.flatnonzero(cells == 0)
    points = np.concatenate([centres, _vertex_means(vertices, offsets)[missing]])
    owner = np.concatenate([tile_of, missing])
    cells[missing] = 1.0
    share = 1.0 / cells[owner]  # each point's share of its tile
    is_cell = np.concatenate([np.ones(len(centres), dtype=bool), np.zeros(len(missing), dtype=bool)])
    result = Placement(edges, float(delta), {}, {}, {}, {})
    data = np.asarray(data, dtype=np.float64).reshape(-1, 1, 2)
    sources = {
        "data": np.concatenate([data, data], axis=1),  # each point a segment of length 0
        "boundary": np.asarray(boundary, dtype=np.float64).reshape(-1, 2, 2),
    }
    for target, segments in sources.items():
        d, at_edges = _distance(points, segments), _distance(midpoints, segments)
        band = np.minimum(np.searchsorted(edges, d, side="right") - 1, options.bins - 1)
        finite = np.isfinite(d)
        tiles = np.bincount(band[finite], weights=share[finite], minlength=options.bins)
        area = np.bincount(band[finite & is_cell], minlength=options.bins) * h * h
        with np.errstate(invalid="ignore", divide="ignore"):
            result.density[target] = np.where(area > 0, tiles / area, np.nan)
        near = d <= delta
        result.tiles_within[target] = float(share[near].sum() / regions) if regions else 0.0
        length = weights.sum()
        result.edges_within[target] = float(weights[at_edges <= delta].sum() / length) if length else 0.0
        result.area_within[target] = float(near[is_cell].mean()) if len(centres) else 0.0
    return result


def _raster(vertices, offsets, domain, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell centres covered by a tile, the tile covering each, and the cell side."""
    import shapely

    low, high = domain.min(axis=0), domain.max(axis=0)
    h = float((high - low).max()) / size
    counts = np.maximum(1, np.round((high - low) / h).astype(np.int64))
    xs, ys = (low[k] + (np.arange(counts[k]) + 0.5) * h for k in range(2))
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    polygons = [shapely.Polygon(vertices[offsets[r] : offsets[r + 1]]) for r in range(len(offsets) - 1)]
    if not polygons:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), h
    cell, tile = shapely.STRtree(polygons).query(shapely.points(grid), predicate="covered_by")
    first = np.unique(cell, return_index=True)[1]  # a centre on a shared edge goes to one tile
    return grid[cell[first]], tile[first].astype(np.int64), h


def _vertex_means(vertices, offsets) -> np.ndarray:
    sizes = np.diff(offsets)
    sums = np.add.reduceat(vertices, offsets[:-1], axis=0) if len(vertices) else np.zeros((0, 2))
    return sums / np.maximum(sizes, 1)[:, None]


def _edge_pieces(vertices, offsets, domain, h: float) -> np.ndarray:
    """[E, 2, 2] the tiles' edges off the domain's border, cut into pieces of length at most h."""
    following = np.arange(len(vertices)) + 1
    following[offsets[1:] - 1] = offsets[:-1]  # each polygon's last vertex closes on its first
    ends = np.stack([vertices, vertices[following]], axis=1)
    ends = ends[~_on_border(ends, domain)]
    length = np.linalg.norm(ends[:, 1] - ends[:, 0], axis=1)
    parts = np.maximum(1, np.ceil(length / h).astype(np.int64))
    edge = np.repeat(np.arange(len(ends)), parts)
    k = np.arange(len(edge)) - np.repeat(np.cumsum(parts) - parts, parts)
    a = (k / parts[edge])[:, None]
    b = ((k + 1) / parts[edge])[:, None]
    start, step = ends[edge, 0], ends[edge, 1] - ends[edge, 0]
    return np.stack([start + a * step, start + b * step], axis=1)


def _on_border(ends: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Whether both ends of each edge lie on one side of the (convex) domain."""
    scale = max(float(np.abs(domain).max()), 1.0)
    on = np.zeros(len(ends), dtype=bool)
    for p, q in zip(domain, np.roll(domain, -1, axis=0)):
        normal = np.array([q[1] - p[1], p[0] - q[0]]) / np.linalg.norm(q - p)
        off = np.abs((ends - p) @ normal)  # [E, 2] distances of both ends to the side's line
        on |= (off < 1e-9 * scale).all(axis=1)
    return on


def _distance(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """[P] distance of each point to the nearest of `segments` [S, 2, 2] (infinite without any):
    every pair, a block of points at a time, where that is little work (a few data points), else
    shapely's nearest-neighbour search (hundreds of boundary segments)."""
    found = np.full(len(points), np.inf)
    if not len(segments) or not len(points):
        return found
    if len(points) * len(segments) > 8 * PAIRS_AT_ONCE:
        import shapely

        tree = shapely.STRtree(shapely.linestrings(segments))
        query = shapely.points(points)
        (index, _), distance = tree.query_nearest(query, return_distance=True, all_matches=False)
        found[index] = distance
        return found
    start, step = segments[:, 0], segments[:, 1] - segments[:, 0]
    squared = np.maximum((step * step).sum(axis=1), np.finfo(np.float64).tiny)  # a point: length 0
    block = max(1, PAIRS_AT_ONCE // len(segments))
    for first in range(0, len(points), block):
        p = points[first : first + block, None, :] - start[None]  # [B, S, 2]
        along = np.clip((p * step[None]).sum(axis=-1) / squared, 0.0, 1.0)
        gap = p - along[..., None] * step[None]
        found[first : first + block] = np.sqrt((gap * gap).sum(axis=-1).min(axis=1))
    return found
