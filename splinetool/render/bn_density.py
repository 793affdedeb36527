"""Draw boundary densities: heatmaps with rows = initialisations and columns = PL nodes, data on top;
and the exact boundaries of a small network, the last node's drawn over the earlier ones."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from splinetool.analyses.bn_density import BNDensityResult
from splinetool.errors import UsageError
from splinetool.render.layout import colour_bar_beside, note

PANEL_INCHES = 2.6
SCALES = ("shared", "row")  # one colour scale for every panel, or one per initialisation (row)


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UsageError(f"`scale` {scale!r}: expected one of {', '.join(SCALES)}")


def _data(ax, result: BNDensityResult) -> None:
    ax.scatter(
        result.data[:, 0], result.data[:, 1], s=7, c="white", edgecolors="black", linewidths=0.5, zorder=4
    )


def _frame(ax, result: BNDensityResult) -> None:
    ax.set_xlim(result.x_edges[0], result.x_edges[-1])
    ax.set_ylim(result.y_edges[0], result.y_edges[-1])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_bn_density(result: BNDensityResult, title: str | None = None, scale: str = "shared") -> Figure:
    """One heatmap per (initialisation, node) with the data points, on one colour scale (`scale`
    "shared") or on one per initialisation ("row": a sparse initialisation beside a dense one)."""
    check_scale(scale)
    rows, cols = len(result.inits), len(result.node_names)
    fig = Figure(figsize=(PANEL_INCHES * cols + 1.2, PANEL_INCHES * rows + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    extent = (result.x_edges[0], result.x_edges[-1], result.y_edges[0], result.y_edges[-1])
    label = f"{result.measure} (square-root scale)"
    for i, init in enumerate(result.inits):
        # the square root keeps sparse panels visible beside a dense spot
        top = result.density.max() if scale == "shared" else result.density[i].max()
        norm = PowerNorm(0.5, 0.0, max(float(top), 1e-12))
        for k, name in enumerate(result.node_names):
            ax = axes[i, k]
            image = ax.imshow(
                result.density[i, k], origin="lower", extent=extent, cmap="magma", norm=norm, aspect="equal"
            )
            _data(ax, result)
            _frame(ax, result)
            share = result.share_within_delta[i, k]
            text = f"{result.boundaries_in_view[i, k]} in view"
            text += "" if np.isnan(share) else f", {share:.0%} within δ"
            note(ax, text, 0.02, 0.02)
            if i == 0:
                ax.set_title(f"layer {result.node_layers[k]} ({name})", fontsize=9)
            if k == 0:
                ax.set_ylabel(init, fontsize=10)
        if scale == "row":
            colour_bar_beside(fig, image, [axes[i, -1]], label if i == rows // 2 else None)
    if scale == "shared":
        colour_bar_beside(fig, image, list(axes[:, -1]), label)
    head = f"{title}: " if title else ""
    rowwise = ", one colour scale per row" if scale == "row" else ""
    fig.suptitle(f"{head}boundary density, δ = {result.delta:.3g}, seed {result.seed}{rowwise}", fontsize=11)
    return fig


def draw_tessellation(result: BNDensityResult, title: str | None = None) -> Figure:
    """Per initialisation, the exact boundaries: earlier nodes thin and grey, the last chosen node on top."""
    if result.segments is None:
        raise UsageError("the tessellation view needs the exact partition's edges (run with `segments`)")
    last = result.node_layers[-1]
    fig = Figure(figsize=(PANEL_INCHES * 1.4 * len(result.inits), PANEL_INCHES * 1.5), layout="constrained")
    axes = np.asarray(fig.subplots(1, len(result.inits), squeeze=False))[0]
    for ax, init, segments, layers in zip(axes, result.inits, result.segments, result.segment_layers):
        earlier = segments[layers < last]
        ax.add_collection(LineCollection(earlier, colors="0.65", linewidths=0.5, zorder=1))
        ax.add_collection(
            LineCollection(segments[layers == last], colors="tab:red", linewidths=1.2, zorder=2)
        )
        _data(ax, result)
        _frame(ax, result)
        ax.set_title(init, fontsize=10)
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}boundaries of layer {last} (red) over layers before it (grey)", fontsize=11)
    return fig
