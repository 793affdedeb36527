"""Draw local complexity: its distribution over points and nodes, or its curve over a training run."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from splinetool.analyses.local_complexity import LCResult
from splinetool.render.layout import legend_beside, legend_right_of

COLOURS = {"train": "tab:blue", "test": "tab:orange", "random": "tab:green", "data": "tab:blue"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
MAX_INTEGER_BINS = 80  # beyond this many distinct LC values, bins span several integers


def draw_local_complexity(result: LCResult, title: str | None = None) -> Figure:
    """A histogram and per-node bars for one checkpoint; LC against training step for a trajectory."""
    if result.steps is None and len(result.checkpoints) == 1:
        return _draw_distribution(result, title)
    return _draw_trajectory(result, title)


def _colour(name: str, index: int) -> str:
    return COLOURS.get(name, OTHER_COLOURS[index % len(OTHER_COLOURS)])


def _parameters(result: LCResult) -> str:
    return f"r = {result.radius:.3g}, {2 * result.directions} vertices per point ({result.frame} frame)"


def _draw_distribution(result: LCResult, title: str | None) -> Figure:
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    hist, bars = fig.subplots(1, 2, width_ratios=[1.2, 1])
    totals = {name: result.lc(0, name) for name in result.set_names}
    top = max(int(t.max()) for t in totals.values())
    width = max(1, int(np.ceil((top + 1) / MAX_INTEGER_BINS)))
    edges = np.arange(0, top + width + 1, width) - 0.5  # integer LC values sit mid-bin
    for i, (name, lc) in enumerate(totals.items()):
        colour = _colour(name, i)
        hist.hist(lc, bins=edges, histtype="step", linewidth=1.5, color=colour, density=True, label=name)
        hist.axvline(lc.mean(), color=colour, linestyle="--", linewidth=1)
    hist.set_xlabel("LC: neurons whose boundary crosses the neighbourhood")
    hist.set_ylabel("fraction of points")
    hist.set_title("per point (dashed: mean)", fontsize=10)
    legend_right_of(hist, fontsize=9)

    nodes = np.arange(len(result.node_names))
    step = 0.8 / len(result.set_names)
    for i, name in enumerate(result.set_names):
        means = [result.stats(0, name)["per_node_mean"][n] for n in result.node_names]
        bars.bar(nodes - 0.4 + step * (i + 0.5), means, width=step, color=_colour(name, i), label=name)
    bars.set_xticks(nodes, result.node_names, rotation=30, ha="right", fontsize=8)
    bars.set_ylabel("mean LC")
    bars.set_title("per PL node", fontsize=10)
    fig.suptitle(f"{title + ': ' if title else ''}local complexity, {_parameters(result)}", fontsize=11)
    return fig


def _draw_trajectory(result: LCResult, title: str | None) -> Figure:
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    steps = np.asarray(result.steps if result.steps is not None else range(len(result.checkpoints)))
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    accuracy = None
    for i, name in enumerate(result.set_names):
        colour = _colour(name, i)
        lc = np.stack([result.lc(int(c), name) for c in order])  # [checkpoints, points]
        ax.plot(steps, lc.mean(axis=1), marker="o", markersize=4, color=colour, label=f"LC, {name}")
        low, high = np.percentile(lc, [25, 75], axis=1)
        ax.fill_between(steps, low, high, color=colour, alpha=0.1, linewidth=0)
        acc = result.accuracy[order, i]
        if not np.isnan(acc).all():
            accuracy = accuracy or ax.twinx()
            accuracy.plot(steps, acc, linestyle=":", color=colour, label=f"accuracy, {name}")
    positive = steps[steps > 0]
    if len(positive):
        # symlog keeps step 0 (the initialisation) on an otherwise logarithmic axis
        ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean LC (band: 25–75th percentile)")
    handles = ax.get_legend_handles_labels()[0]
    if accuracy is not None:
        accuracy.set_ylabel("accuracy (dotted)")
        accuracy.set_ylim(0, 1.02)
        more = accuracy.get_legend_handles_labels()[0]
        handles = handles + more
    legend_beside(fig, handles, fontsize=8)
    ax.set_title(f"{title + ': ' if title else ''}{_parameters(result)}", fontsize=10)
    return fig
