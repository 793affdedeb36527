"""Draw a slice trajectory: one panel per checkpoint on one colour scale, tile density against the
distance to the data and to the decision boundary coloured by step, and an animation of the panels."""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from splinetool.analyses.slice import SliceTrajectory
from splinetool.analyses.tile_placement import TARGETS
from splinetool.errors import UsageError
from splinetool.io.atomic import atomic_path
from splinetool.render.layout import colour_bar_beside, legend_beside
from splinetool.render.slice import NORM_LABELS, draw_panel

PANELS_PER_ROW = 4
DISTANCE_LABELS = {
    "data": "distance to the nearest data point",
    "boundary": "distance to the decision boundary",
}
FRAMES_PER_SECOND = 2


def draw_slice_trajectory(
    result: SliceTrajectory,
    color: str = "jacobian",
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    """The panels (one per checkpoint, in step order, the Jacobian norms on one colour scale) above
    the density-versus-distance curves of every step."""
    count = len(result.slices)
    columns = min(PANELS_PER_ROW, count)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(3.2 * columns + 1.5, 3.2 * rows + 3.4), layout="constrained")
    grid = fig.add_gridspec(rows + 1, 2 * columns, height_ratios=[1.0] * rows + [1.1])
    panels = [
        fig.add_subplot(grid[i // columns, 2 * (i % columns) : 2 * (i % columns) + 2]) for i in range(count)
    ]
    norm = _shared_scale(result) if color == "jacobian" else None
    handles = []
    for ax, step, one in zip(panels, result.steps, result.slices):
        drawn, _ = draw_panel(ax, one, color, result.data, labels, norm)
        handles = handles or drawn
        ax.set_title(f"step {step:,}: {one.regions:,} tiles", fontsize=9)
    if norm is not None:
        mappable = ScalarMappable(norm=norm, cmap=colormaps["viridis"])
        colour_bar_beside(
            fig, mappable, panels, NORM_LABELS.get(result.slices[0].norm, result.slices[0].norm)
        )
    legend_beside(fig, handles)
    half = columns
    curves = [fig.add_subplot(grid[rows, :half]), fig.add_subplot(grid[rows, half:])]
    _draw_curves(fig, curves, result)
    if title:
        fig.suptitle(title)
    return fig


def animate_slice_trajectory(
    result: SliceTrajectory,
    path: str | os.PathLike,
    color: str = "jacobian",
    labels: np.ndarray | None = None,
    title: str | None = None,
) -> None:
    """A GIF with one frame per checkpoint (matplotlib's PillowWriter), on one colour scale, written
    atomically."""
    from matplotlib.animation import PillowWriter

    if not str(path).lower().endswith(".gif"):
        raise UsageError(f"`animate` {path}: expected a file name ending in .gif")
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    norm = _shared_scale(result) if color == "jacobian" else None
    if norm is not None:
        mappable = ScalarMappable(norm=norm, cmap=colormaps["viridis"])
        colour_bar_beside(fig, mappable, [ax], NORM_LABELS.get(result.slices[0].norm, result.slices[0].norm))
    writer = PillowWriter(fps=FRAMES_PER_SECOND)
    with atomic_path(path) as temp:
        gif = temp.with_name(temp.name + ".gif")  # Pillow picks the format from the file's extension
        try:
            with writer.saving(fig, str(gif), dpi=100):
                for step, one in zip(result.steps, result.slices):
                    ax.clear()
                    draw_panel(ax, one, color, result.data, labels, norm)
                    name = f"{title}, " if title else ""
                    ax.set_title(f"{name}step {step:,}: {one.regions:,} tiles")
                    writer.grab_frame()
            os.replace(gif, temp)
        finally:
            gif.unlink(missing_ok=True)


def _shared_scale(result: SliceTrajectory) -> Normalize:
    """One colour scale over every checkpoint's Jacobian norms."""
    values = np.concatenate([np.asarray(s.jacobian_norm, dtype=np.float64) for s in result.slices])
    norm = Normalize()
    finite = values[np.isfinite(values)]
    norm.autoscale_None(finite if len(finite) else np.zeros(1))
    return norm


def _draw_curves(fig: Figure, axes, result: SliceTrajectory) -> None:
    steps = np.asarray(result.steps, dtype=np.float64)
    # steps usually grow geometrically: colour by log step where they allow it
    positions = np.log10(steps + 1.0)
    step_norm = Normalize(positions.min(), max(positions.max(), positions.min() + 1e-12))
    cmap = colormaps["plasma"]
    for ax, target in zip(axes, TARGETS):
        for position, placement in zip(positions, result.placements):
            edges = placement.bin_edges
            centres = (edges[:-1] + edges[1:]) / 2
            ax.plot(centres, placement.density[target], color=cmap(step_norm(position)), marker=".")
        ax.set_xlabel(DISTANCE_LABELS[target])
        ax.set_ylabel("tiles per unit area")
        ax.set_yscale("symlog", linthresh=1.0)
    bar = fig.colorbar(ScalarMappable(norm=step_norm, cmap=cmap), ax=list(axes), shrink=0.9)
    ticks = [t for t in positions]
    bar.set_ticks(ticks, labels=[f"{int(s):,}" for s in steps])
    bar.set_label("training step")
