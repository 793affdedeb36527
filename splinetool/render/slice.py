"""Draw a planar slice the way the SplineCam figures do: tiles, their edges, and the decision boundary."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.io.atomic import atomic_path

COLOURINGS = ("jacobian", "region", "layer", "class")
FORMATS = {".png": "png", ".svg": "svg"}
THIN_EDGES_ABOVE = 5_000
NO_EDGES_ABOVE = 50_000
NORM_LABELS = {"2": r"$\|A_\omega\|_2$", "fro": r"$\|A_\omega\|_F$"}


def draw_slice(
    result: SliceResult,
    color: str = "jacobian",
    data: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    if color not in COLOURINGS:
        raise UsageError(f"unknown colouring '{color}'; expected one of {', '.join(COLOURINGS)}")
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    tiles = PolyCollection(np.split(result.vertices, result.offsets[1:-1]), zorder=1)
    ax.add_collection(tiles)
    width, note = _edge_width(result.regions)
    tiles.set_linewidth(width)
    tiles.set_edgecolor("0.15" if width else "none")
    if color == "jacobian":
        tiles.set_array(result.jacobian_norm)
        tiles.set_cmap("viridis")
        fig.colorbar(tiles, ax=ax, shrink=0.8, label=NORM_LABELS.get(result.norm, result.norm))
    elif color == "region":
        tiles.set_facecolor(_region_colours(result))
    elif color == "layer":
        tiles.set_facecolor("0.94")
        tiles.set_edgecolor("none")
        if not width:
            # the edges are this picture's content: very thin for huge slices, but never dropped
            width, note = 0.05, f"{result.regions:,} tiles: edges drawn very thin"
        _draw_layer_edges(ax, result, width)
    else:
        _colour_by_class(ax, tiles, result)
    if len(result.boundary):
        ax.add_collection(LineCollection(result.boundary, colors="red", linewidths=1.5, zorder=3))
    if data is not None:
        _draw_data(ax, data, labels)
    if result.anchors is not None:
        anchors = np.asarray(result.anchors)
        ax.scatter(anchors[:, 0], anchors[:, 1], marker="*", s=160, c="white", edgecolors="black", zorder=5)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.3", zorder=6)
    low, high = result.domain.min(axis=0), result.domain.max(axis=0)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    ax.set_xlabel("t₁")
    ax.set_ylabel("t₂")
    if title:
        ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write `fig` as PNG (150 dpi) or SVG, chosen by the file's extension, atomically."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot save a figure as {path}: expected a file name ending in .png or .svg")
    with atomic_path(path) as temp:
        fig.savefig(temp, format=fmt, dpi=150, bbox_inches="tight")


def _edge_width(regions: int) -> tuple[float, str | None]:
    """Edges wide enough to see, but not so many that they paint over the tiles."""
    if regions > NO_EDGES_ABOVE:
        return 0.0, f"{regions:,} tiles: edges not drawn"
    if regions > THIN_EDGES_ABOVE:
        return 0.1, f"{regions:,} tiles: edges thinned"
    return 0.3, None


def _region_colours(result: SliceResult, seed: int = 0, rounds: int = 50) -> np.ndarray:
    """A random palette colour per tile, redrawn where two tiles that share a vertex got the same one."""
    palette = np.array(colormaps["tab20"].colors)
    rng = np.random.default_rng(seed)
    choice = rng.integers(len(palette), size=result.regions)
    pairs = _touching_tiles(result)
    for _ in range(rounds):
        clash = pairs[choice[pairs[:, 0]] == choice[pairs[:, 1]], 1]
        if not len(clash):
            break
        choice[clash] = rng.integers(len(palette), size=len(clash))
    return palette[choice]


def _touching_tiles(result: SliceResult) -> np.ndarray:
    """[K, 2] pairs of distinct tiles that share a vertex (exactly equal coordinates)."""
    _, vertex = np.unique(result.vertices, axis=0, return_inverse=True)
    tile = np.repeat(np.arange(result.regions), np.diff(result.offsets))
    order = np.argsort(vertex.ravel(), kind="stable")
    vertex, tile = vertex.ravel()[order], tile[order]
    pairs, shift = [np.zeros((0, 2), dtype=np.int64)], 1
    while shift < len(vertex) and (same := vertex[shift:] == vertex[:-shift]).any():
        pairs.append(np.stack([tile[:-shift][same], tile[shift:][same]], axis=1))
        shift += 1
    pairs = np.concatenate(pairs)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def _draw_layer_edges(ax, result: SliceResult, width: float) -> None:
    following = np.arange(len(result.vertices)) + 1
    following[result.offsets[1:] - 1] = result.offsets[:-1]
    segments = np.stack([result.vertices, result.vertices[following]], axis=1)
    node_colours = _node_colours(len(result.node_names))
    colours = np.where(
        (result.edge_node >= 0)[:, None], node_colours[result.edge_node.clip(min=0)], [0.0, 0.0, 0.0]
    )
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=width, zorder=2))
    drawn = np.unique(result.edge_node)
    handles = [Line2D([], [], color=node_colours[i], label=result.node_names[i]) for i in drawn if i >= 0]
    handles.append(Line2D([], [], color="black", label="domain edge"))
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.85)


def _node_colours(count: int) -> np.ndarray:
    # red is left out: it belongs to the decision boundary drawn on top
    if count <= 9:
        return np.delete(colormaps["tab10"].colors, 3, axis=0)[:count]
    if count <= 18:
        return np.delete(colormaps["tab20"].colors, [6, 7], axis=0)[:count]
    return colormaps["turbo"](np.linspace(0.05, 0.95, count))[:, :3]


def _colour_by_class(ax, tiles: PolyCollection, result: SliceResult) -> None:
    counts = np.diff(result.offsets)
    centroids = np.add.reduceat(result.vertices, result.offsets[:-1]) / counts[:, None]
    scores = np.einsum("rok,rk->ro", result.affine_A, centroids) + result.affine_c
    classes = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)
    # lightened, so that data points coloured by their label stay visible on their own class
    palette = 0.55 * np.array(colormaps["tab10"].colors) + 0.45
    tiles.set_facecolor(palette[classes % 10])
    present = np.unique(classes)
    if len(present) <= 10:
        handles = [Patch(color=palette[k % 10], label=f"class {k}") for k in present]
        ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.85)


def _draw_data(ax, data: np.ndarray, labels: np.ndarray | None) -> None:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 2:
        raise UsageError(f"data points to draw must be plane coordinates of shape [N, 2], got {data.shape}")
    if labels is None:
        ax.scatter(data[:, 0], data[:, 1], s=6, c="black", linewidths=0, zorder=4)
        return
    labels = np.asarray(labels).ravel()
    if len(labels) != len(data):
        raise UsageError(f"got {len(labels)} labels for {len(data)} data points")
    colours = np.array(colormaps["tab10"].colors)[labels.astype(int) % 10]
    ax.scatter(data[:, 0], data[:, 1], s=8, c=colours, edgecolors="black", linewidths=0.3, zorder=4)
