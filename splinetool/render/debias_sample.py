"""Draw debiased samples next to the plain ones: scatter plots for 2-D outputs, grids for images.

One panel per draw (the plain ρ = 0 draw first, unless ρ = 0 was asked for, then the ρ in the order
given: -1, 0, 1 gives the polarity paper's row of modes, plain, anti-modes), and a last panel with the
log-volume of the pool against that of each draw's latents.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from splinetool.analyses.debias_sample import DebiasResult
from splinetool.render.layout import legend_right_of

GRID_SIDE = 8  # image outputs: up to 8 × 8 samples per panel
SCATTER_POINTS = 5000  # 2-D outputs: at most this many samples per panel
PANEL_INCHES = 3.4
PLAIN_COLOUR = "0.35"
RHO_COLOURMAP = "coolwarm"  # blue for ρ < 0 (modes), red for ρ > 0 (anti-modes)


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) when a sample of this shape is an image (H×W, 1×H×W or 3×H×W)."""
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape
    return None


def draw_debias(result: DebiasResult, title: str | None = None) -> Figure:
    draws = _draws(result)
    image = image_shape(tuple(result.output_shape))
    scatter = image is None and result.samples.shape[-1] == 2
    columns = len(draws) + 1 if (scatter or image) else 1
    fig = Figure(figsize=(PANEL_INCHES * columns, PANEL_INCHES + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, columns))
    if scatter:
        _scatters(axes[:-1], result, draws)
    elif image is not None:
        _grids(axes[:-1], result, draws, image)
    _log_volumes(axes[-1], result, draws)
    what = "uniform on the manifold at ρ = 1" if 1.0 in result.rho else "polarity sampling"
    heading = f"{title + ': ' if title else ''}samples ∝ volume^ρ ({what}); {_volume_note(result)}"
    fig.suptitle(heading, fontsize=10)
    return fig


def _draws(result: DebiasResult) -> list[tuple[float, np.ndarray, np.ndarray, str]]:
    """(ρ, selected pool rows, samples, panel title) for each panel, the plain draw first."""
    draws = []
    if 0.0 not in result.rho:
        draws.append((0.0, result.baseline_index, result.baseline_samples, "ρ = 0: plain sampling"))
    for r, rho in enumerate(result.rho):
        label = f"ρ = {rho:g}: {_meaning(rho)}\nESS {result.ess[r]:,.0f} of {len(result.pool_latents):,}"
        draws.append((float(rho), result.selected_index[r], result.samples[r], label))
    return draws


def _meaning(rho: float) -> str:
    if rho == 0:
        return "plain sampling"
    if rho == 1:
        return "MaGNET (uniform)"
    return "towards the modes" if rho < 0 else "towards the anti-modes"


def _colour(rho: float, extent: float) -> str | tuple:
    if rho == 0:
        return PLAIN_COLOUR
    return colormaps[RHO_COLOURMAP](0.5 + 0.45 * rho / extent)


def _scatters(axes, result: DebiasResult, draws) -> None:
    shown = [samples[:SCATTER_POINTS] for _, _, samples, _ in draws]
    every = np.concatenate(shown)
    low, high = every.min(axis=0), every.max(axis=0)
    margin = 0.05 * np.maximum(high - low, 1e-12)
    extent = max(abs(result.rho).max(), 1e-12)
    size = max(1.0, 12.0 / math.sqrt(len(shown[0]) / 500))  # smaller dots as the draws grow
    for ax, (rho, _, _, label), points in zip(axes, draws, shown):
        ax.scatter(points[:, 0], points[:, 1], s=size, color=_colour(rho, extent), alpha=0.6, linewidths=0)
        ax.set_xlim(low[0] - margin[0], high[0] + margin[0])
        ax.set_ylim(low[1] - margin[1], high[1] + margin[1])
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)


def _grids(axes, result: DebiasResult, draws, image: tuple[int, int, int]) -> None:
    channels, height, width = image
    count = min(GRID_SIDE**2, len(draws[0][2]))
    side = math.ceil(math.sqrt(count))
    every = np.concatenate([samples[:count] for _, _, samples, _ in draws])
    low, high = np.percentile(every, [0.5, 99.5])  # one grey scale for every panel
    for ax, (_, _, samples, label) in zip(axes, draws):
        mosaic = np.full((side * (height + 1) - 1, side * (width + 1) - 1, channels), low)  # blank gaps
        for i, sample in enumerate(samples[:count]):
            row, col = divmod(i, side)
            tile = sample.reshape(channels, height, width).transpose(1, 2, 0)
            mosaic[
                row * (height + 1) : row * (height + 1) + height,
                col * (width + 1) : col * (width + 1) + width,
            ] = tile
        scaled = np.clip((mosaic - low) / max(high - low, 1e-12), 0, 1)
        if channels == 1:
            ax.imshow(scaled[..., 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(scaled, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)


def _log_volumes(ax, result: DebiasResult, draws) -> None:
    finite = result.log_volume[np.isfinite(result.log_volume)]
    if not len(finite):
        ax.text(0.5, 0.5, "every tile is collapsed", ha="center", va="center", transform=ax.transAxes)
        return
    edges = np.linspace(finite.min(), finite.max(), 41)
    extent = max(abs(result.rho).max(), 1e-12)
    ax.hist(finite, bins=edges, density=True, color="0.85", label=f"pool ({len(result.log_volume):,})")
    for rho, index, _, _ in draws:
        chosen = result.log_volume[index]
        chosen = chosen[np.isfinite(chosen)]
        ax.hist(
            chosen,
            bins=edges,
            density=True,
            histtype="step",
            color=_colour(rho, extent),
            label=f"ρ = {rho:g}",
        )
    ax.set_xlabel("log-volume Σ log σ_k", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.set_title("volume change of the latents drawn", fontsize=9)
    ax.tick_params(labelsize=7)
    legend_right_of(ax)


def _volume_note(result: DebiasResult) -> str:
    note = (
        "exact volumes"
        if result.proj_dim is None
        else f"volumes after a random projection to {result.proj_dim}-D"
    )
    if result.top_k is not None:
        note += f", top {result.top_k} singular values"
    return note
