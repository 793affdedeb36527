"""Draw a planar slice the way the SplineCam figures do: tiles, their edges, and the decision boundary.

Up to `LUMP_ABOVE` tiles, every tile is its own polygon. Beyond that, the tiles of one colour are
drawn together as a few compound paths (one colour map entry, class or palette colour each), which
draws a million tiles in seconds. Those are filled without antialiasing, so that no background
shows through between tiles: a pixel shared by tiles of several colours takes one of them. Beyond
`NO_EDGES_ABOVE` tiles the tile layer (and, for the layer colouring, the edges) is rasterised in SVG
output, while the decision boundary, data and anchors stay vectors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path as MplPath

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.io.atomic import atomic_path
from splinetool.render.layout import colour_bar_beside, legend_beside, note

COLOURINGS = ("jacobian", "region", "layer", "class")
FORMATS = {".png": "png", ".svg": "svg"}
THIN_EDGES_ABOVE = 5_000
NO_EDGES_ABOVE = 50_000  # and beyond this the tiles are rasterised in vector output
LUMP_ABOVE = 100_000
POLYGONS_PER_PATH = 20_000  # keeps each compound path well inside Agg's limits
READ_BYTES = 256 << 20  # about how much of a file draw_slice_file holds at once, besides what it keeps
NORM_LABELS = {"2": r"$\|A_\omega\|_2$", "fro": r"$\|A_\omega\|_F$"}


@dataclass
class _Tiles:
    """What a picture needs of a slice's tiles: all of them, or gathered part by part from a file."""

    vertices: np.ndarray
    offsets: np.ndarray
    values: np.ndarray | None  # per tile: the Jacobian norm ("jacobian") or the predicted class ("class")
    edge_node: np.ndarray | None  # per vertex ("layer" only)
    boundary: np.ndarray

    @property
    def regions(self) -> int:
        return len(self.offsets) - 1


def draw_slice(
    result: SliceResult,
    color: str = "jacobian",
    data: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    _check_colouring(color, result.jacobian_norm is not None)
    return _draw(result, _gather(result, color), color, data, labels, title)


def draw_slice_file(
    path: str | os.PathLike,
    group: str = "slice",
    color: str = "jacobian",
    data: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    """`draw_slice` of the slice in `group` of a run file, read a part at a time.

    Only what the picture needs is kept of each part (vertices, and the Jacobian norms, predicted
    classes or edge labels the colouring uses), so a slice bigger than memory in full can be drawn.
    """
    from splinetool.io import iter_slice, slice_info

    info = slice_info(path, group)
    _check_colouring(color, info.jacobian_norm)
    meta, parts = None, []
    for part in iter_slice(path, group, tiles=max(1, READ_BYTES // max(1, info.tile_bytes))):
        parts.append(_gather(part, color))
        meta = meta or _without_tiles(part)
    return _draw(meta, _joined(parts), color, data, labels, title)


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write `fig` as PNG (150 dpi) or SVG, chosen by the file's extension, atomically."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot save a figure as {path}: expected a file name ending in .png or .svg")
    with atomic_path(path) as temp:
        fig.savefig(temp, format=fmt, dpi=150, bbox_inches="tight")


def _check_colouring(color: str, has_jacobian_norm: bool) -> None:
    if color not in COLOURINGS:
        raise UsageError(f"unknown colouring '{color}'; expected one of {', '.join(COLOURINGS)}")
    if color == "jacobian" and not has_jacobian_norm:
        raise UsageError(
            "cannot colour the tiles by their Jacobian norm: it was not computed for this slice; "
            "colour them by region, layer or class, or slice again with the Jacobian norm computed"
        )


def _gather(result: SliceResult, color: str) -> _Tiles:
    values = {"jacobian": result.jacobian_norm, "class": _classes(result) if color == "class" else None}
    return _Tiles(
        vertices=result.vertices,
        offsets=result.offsets,
        values=values.get(color),
        edge_node=result.edge_node if color == "layer" else None,
        boundary=result.boundary,
    )


def _joined(parts: list[_Tiles]) -> _Tiles:
    if len(parts) == 1:
        return parts[0]
    counts = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    def joined(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    names = ["vertices", "values", "edge_node", "boundary"]
    return _Tiles(offsets=offsets, **{name: joined(name) for name in names})


def _without_tiles(part: SliceResult) -> SliceResult:
    """What a picture needs of a part besides its tiles (domain, anchors, names), holding no rows."""
    empty = {name: None for name in ["vertices", "offsets", "codes", "affine_A", "affine_c", "edge_node"]}
    return SliceResult(
        **empty,
        jacobian_norm=None,
        boundary=None,
        origin=part.origin,
        directions=part.directions,
        domain=part.domain,
        node_names=part.node_names,
        node_kinds=part.node_kinds,
        node_code_bits=part.node_code_bits,
        norm=part.norm,
        anchors=part.anchors,
    )


def _draw(meta: SliceResult, tiles: _Tiles, color: str, data, labels, title) -> Figure:
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    handles, mappable = _draw_tiles(ax, meta, tiles, color, data, labels)
    if mappable is not None:
        colour_bar_beside(fig, mappable, [ax], NORM_LABELS.get(meta.norm, meta.norm))
    legend_beside(fig, handles)
    if title:
        ax.set_title(title)
    return fig


def draw_panel(
    ax, result: SliceResult, color: str, data=None, labels=None, norm: Normalize | None = None
) -> tuple[list, ScalarMappable | None]:
    """`result` drawn on `ax` as draw_slice draws it, the Jacobian norms on the colour scale `norm`
    (shared by several panels; None: the tiles' own range): the legend's handles and the colour scale."""
    _check_colouring(color, result.jacobian_norm is not None)
    return _draw_tiles(ax, result, _gather(result, color), color, data, labels, norm)


def _draw_tiles(ax, meta: SliceResult, tiles: _Tiles, color: str, data, labels, norm=None):
    regions = tiles.regions
    width, remark = _edge_width(regions)
    handles, mappable = [], None  # the legend's entries, in the order they are drawn
    if color == "jacobian":
        bins, palette, mappable = _jacobian_colours(tiles.values, norm)
    elif color == "region":
        bins, palette = _region_colours(tiles)
    elif color == "layer":
        bins, palette = np.zeros(regions, dtype=np.int64), np.array([[0.94, 0.94, 0.94, 1.0]])
        width = 0.0  # the tiles' own edges: the layer edges below are drawn instead
    else:
        bins, palette = _class_colours(tiles.values, handles)
    if regions > LUMP_ABOVE:
        ax.add_collection(_lumped_tiles(tiles, bins, palette), autolim=False)
    else:
        polygons = PolyCollection(np.split(tiles.vertices, tiles.offsets[1:-1]), zorder=1)
        polygons.set_facecolor(palette[bins])
        polygons.set_linewidth(width)
        polygons.set_edgecolor("0.15" if width else "none")
        # without edges, antialiased fills let the background show along every shared side
        polygons.set_antialiased(bool(width))
        polygons.set_rasterized(regions > NO_EDGES_ABOVE)
        ax.add_collection(polygons)
    if color == "layer":
        width = _edge_width(regions)[0]
        if not width:
            # the edges are this picture's content: very thin for huge slices, but never dropped
            width, remark = 0.05, f"{regions:,} tiles: edges drawn very thin"
        _draw_layer_edges(ax, tiles, meta.node_names, width, handles)
    if len(tiles.boundary):
        ax.add_collection(LineCollection(tiles.boundary, colors="red", linewidths=1.5, zorder=3))
        handles.append(Line2D([], [], color="red", linewidth=1.5, label="decision boundary"))
    if data is not None:
        _draw_data(ax, data, labels, handles, _under(data, meta.anchors))
    if meta.anchors is not None:
        anchors = np.asarray(meta.anchors)
        ax.scatter(anchors[:, 0], anchors[:, 1], marker="*", s=160, c="white", edgecolors="black", zorder=5)
        star = dict(marker="*", markersize=10, markerfacecolor="white", markeredgecolor="black")
        handles.append(Line2D([], [], linewidth=0, label="anchors", **star))
    if remark:
        note(ax, remark)
    low, high = meta.domain.min(axis=0), meta.domain.max(axis=0)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    # a plane that is the model's own 2-D input space is labelled by the input's coordinates
    first, second = ("x₁", "x₂") if _is_input_space(meta) else ("t₁", "t₂")
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    return handles, mappable


def _is_input_space(meta: SliceResult) -> bool:
    """Whether plane coordinates are the input itself: origin 0 and directions the identity in 2-D."""
    origin, directions = np.asarray(meta.origin), np.asarray(meta.directions)
    return origin.shape == (2,) and not origin.any() and np.array_equal(directions, np.eye(2))


def _edge_width(regions: int) -> tuple[float, str | None]:
    """Edges wide enough to see, but not so many that they paint over the tiles."""
    if regions > NO_EDGES_ABOVE:
        return 0.0, f"{regions:,} tiles: edges not drawn"
    if regions > THIN_EDGES_ABOVE:
        return 0.1, f"{regions:,} tiles: edges thinned"
    return 0.3, None


def _jacobian_colours(
    values: np.ndarray, norm: Normalize | None = None
) -> tuple[np.ndarray, np.ndarray, ScalarMappable]:
    """Each tile's entry of the colour map, as matplotlib would look it up (a last entry: no value),
    on the scale `norm` (None: the values' own range)."""
    cmap = colormaps["viridis"]
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if norm is None:
        norm = Normalize()
        norm.autoscale_None(values[finite] if finite.any() else np.zeros(1))
    bins = np.full(len(values), cmap.N, dtype=np.int64)
    scaled = np.asarray(norm(values[finite]), dtype=np.float64)
    bins[finite] = np.clip((scaled * cmap.N).astype(np.int64), 0, cmap.N - 1)
    palette = np.vstack([cmap(np.arange(cmap.N)), cmap.get_bad()])
    return bins, palette, ScalarMappable(norm=norm, cmap=cmap)


def _region_colours(tiles: _Tiles, seed: int = 0, rounds: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A random palette colour per tile, redrawn where two tiles that share a vertex got the same one."""
    palette = np.array(colormaps["tab20"].colors)
    rng = np.random.default_rng(seed)
    choice = rng.integers(len(palette), size=tiles.regions)
    pairs = _touching_tiles(tiles)
    for _ in range(rounds):
        clash = pairs[choice[pairs[:, 0]] == choice[pairs[:, 1]], 1]
        if not len(clash):
            break
        choice[clash] = rng.integers(len(palette), size=len(clash))
    return choice, palette


def _touching_tiles(tiles: _Tiles) -> np.ndarray:
    """[K, 2] pairs of distinct tiles that share a vertex (exactly equal coordinates)."""
    # a point as one complex number: sorting and comparing those is much faster than rows
    points = np.ascontiguousarray(tiles.vertices, dtype=np.float64).view(np.complex128).ravel()
    _, vertex = np.unique(points, return_inverse=True)
    tile = np.repeat(np.arange(tiles.regions), np.diff(tiles.offsets))
    order = np.argsort(vertex, kind="stable")
    vertex, tile = vertex[order], tile[order]
    pairs, shift = [np.zeros((0, 2), dtype=np.int64)], 1
    while shift < len(vertex) and (same := vertex[shift:] == vertex[:-shift]).any():
        pairs.append(np.stack([tile[:-shift][same], tile[shift:][same]], axis=1))
        shift += 1
    pairs = np.concatenate(pairs)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def _classes(result: SliceResult) -> np.ndarray:
    """The class each tile predicts, at its vertex mean (one output: its sign)."""
    counts = np.diff(result.offsets)
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    centroids = np.add.reduceat(result.vertices, result.offsets[:-1]) / counts[:, None]
    scores = np.einsum("rok,rk->ro", result.affine_A, centroids) + result.affine_c
    return (scores[:, 0] > 0).astype(np.int64) if scores.shape[1] == 1 else scores.argmax(axis=1)


def _class_colours(classes: np.ndarray, handles: list) -> tuple[np.ndarray, np.ndarray]:
    # lightened, so that data points coloured by their label stay visible on their own class
    palette = 0.55 * np.array(colormaps["tab10"].colors) + 0.45
    present = np.unique(classes)
    if len(present) <= 10:
        handles += [Patch(color=palette[k % 10], label=f"tiles: class {k}") for k in present]
    return classes % 10, palette


def _lumped_tiles(tiles: _Tiles, bins: np.ndarray, palette: np.ndarray) -> PathCollection:
    """The tiles as a few compound paths, one colour each, rasterised in vector output."""
    order = np.argsort(bins, kind="stable")
    counts = np.diff(tiles.offsets)[order]
    starts = tiles.offsets[:-1][order]
    # tile after tile in colour order, each closed by a repeat of its first vertex
    closed = counts + 1
    ends = np.cumsum(closed)
    local = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - closed, closed)
    last = local == np.repeat(counts, closed)
    rows = np.repeat(starts, closed) + np.where(last, 0, local)
    codes = np.full(len(rows), MplPath.LINETO, dtype=MplPath.code_type)
    codes[local == 0] = MplPath.MOVETO
    codes[last] = MplPath.CLOSEPOLY
    vertices = tiles.vertices[rows]
    # a new path where the colour changes, and every POLYGONS_PER_PATH tiles within one colour
    sorted_bins = bins[order]
    first_of_bin = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
    rank = np.arange(len(order)) - np.repeat(first_of_bin, np.diff(np.r_[first_of_bin, len(order)]))
    cuts = np.flatnonzero(rank % POLYGONS_PER_PATH == 0)
    bounds = np.r_[0, ends][np.r_[cuts, len(order)]]
    paths = [MplPath(vertices[a:b], codes[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    # aliased fills: antialiasing would let the background show along every edge between colours
    return PathCollection(
        paths,
        facecolors=palette[sorted_bins[cuts]],
        edgecolors="none",
        linewidths=0,
        antialiaseds=False,
        zorder=1,
        rasterized=True,
    )


def _draw_layer_edges(ax, tiles: _Tiles, node_names: list[str], width: float, handles: list) -> None:
    following = np.arange(len(tiles.vertices)) + 1
    following[tiles.offsets[1:] - 1] = tiles.offsets[:-1]
    node_colours = _node_colours(len(node_names))
    many = tiles.regions > LUMP_ABOVE
    if many:
        ax.add_collection(_lumped_edges(tiles, following, node_colours, width), autolim=False)
    else:
        segments = np.stack([tiles.vertices, tiles.vertices[following]], axis=1)
        colours = np.where(
            (tiles.edge_node >= 0)[:, None], node_colours[tiles.edge_node.clip(min=0)], [0.0, 0.0, 0.0]
        )
        lines = LineCollection(segments, colors=colours, linewidths=width, zorder=2)
        lines.set_rasterized(tiles.regions > NO_EDGES_ABOVE)
        ax.add_collection(lines)
    drawn = np.unique(tiles.edge_node)
    handles += [Line2D([], [], color=node_colours[i], label=node_names[i]) for i in drawn if i >= 0]
    handles.append(Line2D([], [], color="black", label="domain edge"))


def _lumped_edges(tiles: _Tiles, following: np.ndarray, node_colours, width: float) -> PathCollection:
    """Every tile edge, as a few compound paths per PL node (black: the domain's edge), rasterised."""
    paths, colours = [], []
    for node in np.unique(tiles.edge_node):
        rows = np.flatnonzero(tiles.edge_node == node)
        for chunk in np.array_split(rows, -(-len(rows) // POLYGONS_PER_PATH)):
            ends = np.stack([tiles.vertices[chunk], tiles.vertices[following[chunk]]], axis=1).reshape(-1, 2)
            codes = np.tile(np.array([MplPath.MOVETO, MplPath.LINETO], dtype=MplPath.code_type), len(chunk))
            paths.append(MplPath(ends, codes))
            colours.append(node_colours[node] if node >= 0 else [0.0, 0.0, 0.0])
    return PathCollection(
        paths, facecolors="none", edgecolors=colours, linewidths=width, zorder=2, rasterized=True
    )


def _node_colours(count: int) -> np.ndarray:
    # red is left out: it belongs to the decision boundary drawn on top
    if count <= 9:
        return np.delete(colormaps["tab10"].colors, 3, axis=0)[:count]
    if count <= 18:
        return np.delete(colormaps["tab20"].colors, [6, 7], axis=0)[:count]
    return colormaps["turbo"](np.linspace(0.05, 0.95, count))[:, :3]


def _under(data, anchors) -> np.ndarray | None:
    """Which data points sit under an anchor's star (the anchors are data points too, often)."""
    if data is None or anchors is None:
        return None
    data, anchors = np.asarray(data, dtype=np.float64), np.asarray(anchors, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 2 or not len(anchors):
        return None
    scale = max(float(np.abs(anchors).max()), 1.0)
    gaps = np.linalg.norm(data[:, None, :] - anchors[None, :, :2], axis=-1)
    return (gaps <= 1e-9 * scale).any(axis=1)


def _draw_data(ax, data: np.ndarray, labels: np.ndarray | None, handles: list, hidden=None) -> None:
    """The data points; the legend names what shows: not a class whose points all lie under anchors."""
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 2:
        raise UsageError(f"data points to draw must be plane coordinates of shape [N, 2], got {data.shape}")
    shown = np.ones(len(data), dtype=bool) if hidden is None else ~np.asarray(hidden)
    if labels is None:
        ax.scatter(data[:, 0], data[:, 1], s=6, c="black", linewidths=0, zorder=4)
        if shown.any():
            handles.append(Line2D([], [], marker="o", markersize=3, color="black", linewidth=0, label="data"))
        return
    labels = np.asarray(labels).ravel()
    if len(labels) != len(data):
        raise UsageError(f"got {len(labels)} labels for {len(data)} data points")
    palette = np.array(colormaps["tab10"].colors)
    classes = labels.astype(int)
    ax.scatter(
        data[:, 0], data[:, 1], s=8, c=palette[classes % 10], edgecolors="black", linewidths=0.3, zorder=4
    )
    present = np.unique(classes[shown])
    if len(present) <= 10:
        style = dict(marker="o", markersize=4, markeredgecolor="black", markeredgewidth=0.3, linewidth=0)
        handles += [Line2D([], [], color=palette[k % 10], label=f"data: class {k}", **style) for k in present]
