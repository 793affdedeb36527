"""Draw `condition` results: each layer's Hessian spectrum (models overlaid) and block condition numbers."""

from __future__ import annotations

import math
from pathlib import PurePath

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from splinetool.analyses.condition import ConditionResult, LayerSpectrum, ModelCondition

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
MAX_COLUMNS = 4


def _panels(result: ConditionResult) -> list[list[tuple[int, LayerSpectrum]]]:
    """The spectrum panels: one per layer, shared by the models having a layer of the same name and
    size (the same architecture's checkpoints); layers of unrelated models never share one."""
    panels: dict[tuple[str, int], list[tuple[int, LayerSpectrum]]] = {}
    for m, model in enumerate(result.models):
        for layer in model.layers:
            panels.setdefault((layer.name, layer.params), []).append((m, layer))
    return list(panels.values())


def _model_name(model: ModelCondition) -> str:
    return PurePath(model.checkpoint).name


def draw_condition(result: ConditionResult, title: str | None = None) -> Figure:
    """One panel per layer (eigenvalues of H above the rank tolerance, descending, log scale, one line
    per model having that layer; Lanczos extremes as dots), titled with the layer and its models; then
    box plots of log10 κ of every block over its non-singular points, labelled with its model and its
    share of singular points. Each model has one colour throughout."""
    panels = _panels(result)
    count = len(panels)
    columns = min(MAX_COLUMNS, count + 1)
    rows = math.ceil((count + 1) / columns)
    fig = Figure(figsize=(3.3 * columns, 2.9 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for position, panel in enumerate(panels):
        ax = axes[position]
        for m, layer in panel:
            colour = COLOURS[m % len(COLOURS)]
            values = layer.nonzero
            if layer.method == "lanczos" and not layer.exact:
                top = values[: result.k]
                bottom = values[len(values) - min(result.k, len(values) - len(top)) :]
                ax.plot(np.arange(1, len(top) + 1), top, ".", color=colour, markersize=3)
                # the bottom Ritz values' places in the spectrum are unknown while the rank is:
                # they are drawn at the end of the largest possible non-zero spectrum
                last = min(layer.params, layer.rows)
                ax.plot(last - np.arange(len(bottom))[::-1], bottom, ".", color=colour, markersize=3)
            else:
                ax.plot(np.arange(1, len(values) + 1), values, color=colour, linewidth=1.2)
        models = ", ".join(_model_name(result.models[m]) for m, _ in panel)
        ax.set_yscale("log")
        ax.set_title(f"{panel[0][1].name}\n{models}", fontsize=8)
        ax.tick_params(labelsize=7)
        if position % columns == 0:
            ax.set_ylabel("eigenvalue of H", fontsize=8)
        ax.set_xlabel("index (descending)", fontsize=7)
    _draw_blocks(axes[count], result)
    for ax in axes[count + 1 :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=COLOURS[m % len(COLOURS)], label=_model_name(model))
        for m, model in enumerate(result.models)
    ]
    fig.legend(handles=handles, loc="outside upper right", fontsize=8, frameon=False)
    fig.suptitle(
        f"{title + ': ' if title else ''}loss Hessian per layer and block conditioning, "
        f"{result.points} points",
        fontsize=10,
    )
    return fig


def _draw_blocks(boxes, result: ConditionResult) -> None:
    """Box plots of log10 κ per block, each box and its label in its model's colour, medians black."""
    data, labels, colours = [], [], []
    for m, model in enumerate(result.models):
        for block in model.blocks:
            kappa = block.kappa
            finite = kappa[np.isfinite(kappa)]
            data.append(np.log10(finite) if len(finite) else np.array([np.nan]))
            share = block.singular.mean() if len(kappa) else 0.0
            skip = " (skip)" if block.residual else ""
            labels.append(f"{_model_name(model)}: {block.name}{skip}, {share:.0%} singular")
            colours.append(COLOURS[m % len(COLOURS)])
    if data:
        # vertical boxes are the default; the `vert` argument is deprecated
        parts = boxes.boxplot(
            data, patch_artist=True, showfliers=True, widths=0.6, medianprops={"color": "black"}
        )
        for patch, colour in zip(parts["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.5)
        boxes.set_xticks(np.arange(1, len(labels) + 1), labels, rotation=90, fontsize=6)
        for tick, colour in zip(boxes.get_xticklabels(), colours):
            tick.set_color(colour)
    boxes.set_ylabel("log10 κ of the block Jacobian", fontsize=8)
    boxes.set_title("blocks (non-singular points)", fontsize=8)
    boxes.tick_params(axis="y", labelsize=7)
