"""Draw `condition` results: each layer's Hessian spectrum (models overlaid) and block condition numbers."""

from __future__ import annotations

import math
from pathlib import PurePath

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from splinetool.analyses.condition import ConditionResult

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
MAX_COLUMNS = 4


def draw_condition(result: ConditionResult, title: str | None = None) -> Figure:
    """One panel per layer position (eigenvalues of H above the rank tolerance, descending, log scale,
    one line per model; Lanczos extremes as dots), then box plots of log10 κ of every block over its
    non-singular points, labelled with its share of singular points."""
    depth = max(len(m.layers) for m in result.models)
    columns = min(MAX_COLUMNS, depth + 1)
    rows = math.ceil((depth + 1) / columns)
    fig = Figure(figsize=(3.3 * columns, 2.9 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for position in range(depth):
        ax = axes[position]
        names = []
        for m, model in enumerate(result.models):
            if position >= len(model.layers):
                continue
            layer = model.layers[position]
            names.append(layer.name)
            values = layer.nonzero
            if layer.method == "lanczos" and not layer.exact:
                top = values[: result.k]
                bottom = values[len(values) - min(result.k, len(values) - len(top)) :]
                ax.plot(np.arange(1, len(top) + 1), top, ".", color=COLOURS[m % len(COLOURS)], markersize=3)
                # the bottom Ritz values' places in the spectrum are unknown while the rank is:
                # they are drawn at the end of the largest possible non-zero spectrum
                last = min(layer.params, layer.rows)
                ax.plot(
                    last - np.arange(len(bottom))[::-1], bottom, ".",
                    color=COLOURS[m % len(COLOURS)], markersize=3,
                )  # fmt: skip
            else:
                ax.plot(np.arange(1, len(values) + 1), values, color=COLOURS[m % len(COLOURS)], linewidth=1.2)
        ax.set_yscale("log")
        ax.set_title(" | ".join(dict.fromkeys(names)), fontsize=8)
        ax.tick_params(labelsize=7)
        if position % columns == 0:
            ax.set_ylabel("eigenvalue of H", fontsize=8)
        ax.set_xlabel("index (descending)", fontsize=7)
    boxes = axes[depth]
    data, labels, colours = [], [], []
    for m, model in enumerate(result.models):
        for block in model.blocks:
            kappa = block.kappa
            finite = kappa[np.isfinite(kappa)]
            data.append(np.log10(finite) if len(finite) else np.array([np.nan]))
            share = block.singular.mean() if len(kappa) else 0.0
            labels.append(f"{block.name}{' (skip)' if block.residual else ''}\n{share:.0%} singular")
            colours.append(COLOURS[m % len(COLOURS)])
    if data:
        parts = boxes.boxplot(data, vert=True, patch_artist=True, showfliers=True, widths=0.6)
        for patch, colour in zip(parts["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.5)
        boxes.set_xticks(np.arange(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=6)
    boxes.set_ylabel("log10 κ of the block Jacobian", fontsize=8)
    boxes.set_title("blocks (non-singular points)", fontsize=8)
    boxes.tick_params(axis="y", labelsize=7)
    for ax in axes[depth + 1 :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=COLOURS[m % len(COLOURS)], label=PurePath(model.checkpoint).name)
        for m, model in enumerate(result.models)
    ]
    fig.legend(handles=handles, loc="outside upper right", fontsize=8, frameon=False)
    fig.suptitle(
        f"{title + ': ' if title else ''}loss Hessian per layer and block conditioning, "
        f"{result.points} points",
        fontsize=10,
    )
    return fig
