"""Draw region counts: the output along segments with their breakpoints, prefix counts, and sweeps."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from splinetool.analyses.count_regions import PlaneCount, SampledCount, SegmentCount
from splinetool.analyses.count_regions_sweep import SweepResult
from splinetool.render.layout import legend_beside, legend_right_of

MAX_OUTPUT_CURVES = 10
MAX_MARKED_BREAKPOINTS = 3000  # beyond this, breakpoints are drawn as a rug, not as lines


def _node_colours(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, count - 1)) for i in range(count)]


def draw_segments(result: SegmentCount, title: str | None = None) -> Figure:
    """The output along the first segment with its breakpoints; with several, their pieces' histogram."""
    several = len(result.pieces) > 1
    fig = Figure(figsize=(11 if several else 8, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1.6, 1]) if several else [fig.subplots()]
    ax = axes[0]
    t = result.segment_breakpoints(0)
    rows = slice(result.offsets[0], result.offsets[1])
    outputs = result.outputs[rows]
    # a 1-D model's segment is an interval of its input: draw against the input itself
    scalar_input = result.starts.shape[1] == 1
    x = result.starts[0, 0] + t * (result.ends[0, 0] - result.starts[0, 0]) if scalar_input else t
    for k in range(min(outputs.shape[1], MAX_OUTPUT_CURVES)):
        ax.plot(x, outputs[:, k], linewidth=1, label=f"output {k}" if outputs.shape[1] > 1 else "output")
    nodes = result.breakpoint_nodes[rows]
    colours = _node_colours(len(result.node_names))
    inner = nodes >= 0
    if inner.sum() <= MAX_MARKED_BREAKPOINTS:
        for k, name in enumerate(result.node_names):
            at = x[nodes == k]
            if len(at):
                ax.vlines(
                    at,
                    0,
                    1,
                    transform=ax.get_xaxis_transform(),
                    colors=[to_rgba(colours[k], 0.35)],
                    linewidth=0.6,
                    label=f"{name} breakpoints",
                )
    else:
        ax.plot(
            x[inner],
            np.zeros(int(inner.sum())),
            "|",
            color="k",
            markersize=4,
            transform=ax.get_xaxis_transform(),
            label="breakpoints",
        )
    ax.set_xlabel("input" if scalar_input else "t along the segment (0: start, 1: end)")
    ax.set_ylabel("network output")
    ax.set_title(f"{result.pieces[0]:,} pieces along {'the' if not several else 'the first'} segment")
    if len(result.node_names) + outputs.shape[1] <= 14:
        for mark in legend_right_of(ax).legend_handles:
            mark.set_alpha(1.0)  # the breakpoints are faint lines; their legend entries need not be
    if several:
        hist = axes[1]
        pieces = result.pieces
        hist.hist(pieces, bins=min(40, max(5, len(np.unique(pieces)))), color="tab:blue")
        hist.axvline(pieces.mean(), color="k", linestyle="--", linewidth=1)
        hist.set_xlabel(f"pieces per segment (dashed: the mean, {pieces.mean():.1f})")
        hist.set_ylabel("segments")
        hist.set_title(f"{len(pieces):,} segments, {result.distinct_regions:,} distinct regions crossed")
    if title:
        fig.suptitle(title)
    return fig


def draw_per_layer(result: PlaneCount | SampledCount, title: str | None = None) -> Figure:
    """Regions of each prefix network: the tiles of planes, or the codes among samples."""
    fig = Figure(figsize=(max(5.0, 0.6 * len(result.per_layer) + 3), 4), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(result.per_layer))
    ax.bar(positions, result.per_layer, color=_node_colours(len(result.per_layer)))
    ax.set_xticks(positions, [f"1..{k + 1}\n{name}" for k, name in enumerate(result.node_names)], fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("prefix network: PL nodes")
    if isinstance(result, PlaneCount):
        planes = f", {len(result.origins)} planes" if len(result.origins) != 1 else ""
        ax.set_ylabel(f"tiles{planes}")
    else:
        ax.set_ylabel("distinct codes among the samples")
    if isinstance(result, SampledCount):
        ax.axhline(
            result.estimate,
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"Chao1 estimate {result.estimate:,.0f}",
        )
        legend_right_of(ax, fontsize=8)
        ax.set_title(f"at least {result.regions:,} regions among {result.samples:,} samples")
    else:
        ax.set_title(f"{result.regions:,} tiles")
    if title:
        fig.suptitle(title)
    return fig


def draw_sweep(result: SweepResult, title: str | None = None) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_depth, by_width = fig.subplots(1, 2)
    stats = result.by_depth()
    for ax, key in ((by_depth, "depth"), (by_width, "width")):
        x = np.array([row[key] for row in stats])
        ax.fill_between(
            x,
            [row["min"] for row in stats],
            [row["max"] for row in stats],
            alpha=0.25,
            color="tab:blue",
            label="min–max over seeds",
        )
        ax.plot(x, [row["median"] for row in stats], "o-", color="tab:blue", label="median")
        ax.scatter(getattr(result, key), result.regions, s=8, color="k", alpha=0.5, label="one seed")
        ax.set_xlabel(f"{key} (hidden layers)" if key == "depth" else "width (neurons per layer)")
        ax.set_ylabel("tiles" if result.method == "exact-2d" else "pieces per segment")
        ax.set_yscale("log")
        ax.set_xticks(x)
    legend_beside(fig, by_depth.get_legend_handles_labels()[0], fontsize=8)
    by_depth.set_title(f"{result.neurons} hidden neurons, {len(set(result.seed.tolist()))} seeds")
    by_width.set_title(result.init, fontsize=9)
    fig.suptitle(title or f"{result.family}: {result.measure}", fontsize=10)
    return fig
