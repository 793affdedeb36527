"""The results as text tables on a rich console: what each command prints when not asked for JSON.

Each `print_*` takes the console to print on first; only rich is imported here, so that printing a
table never loads matplotlib.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from splinetool.analyses import (
    bn_density,
    condition,
    count_regions,
    count_regions_sweep,
    debias_sample,
    info,
    local_complexity,
    local_complexity_gate,
)


def print_count(console: Console, result: count_regions.RegionCount, label: str) -> None:
    noun, several = NOUNS[type(result)]
    per_item = getattr(result, {"segments": "pieces", "planes": "tiles"}.get(several, ""), [])
    distinct = isinstance(result, count_regions.SegmentCount) and len(per_item) > 1
    table = Table(title=f"{noun} per prefix network: {escape(label)} ({result.method})", title_justify="left")
    for name in ("PL nodes", "last node", "kind", noun, *(["distinct regions"] if distinct else [])):
        table.add_column(name, justify="right" if name in (noun, "distinct regions") else "left")
    for k, (name, kind) in enumerate(zip(result.node_names, result.node_kinds)):
        cells = [f"{result.per_layer[k]:,}"] + ([f"{result.distinct_per_layer[k]:,}"] if distinct else [])
        table.add_row(f"1..{k + 1}", escape(name), kind, *cells)
    _show(console, table)
    lines = []
    if len(per_item) > 1:
        lines.append(
            f"{len(per_item):,} {several}: {noun} per {several[:-1]} mean {per_item.mean():.1f}, median "
            f"{np.median(per_item):g}, min {per_item.min():,}, max {per_item.max():,}; "
            f"{result.regions:,} in all" + _distinct_note(result)
        )
    if isinstance(result, count_regions.SampledCount):
        lines.append(
            f"at least {result.regions:,} regions (distinct codes among {result.samples:,} points, "
            f"{result.sampling}); Chao1 estimate {result.estimate:,.1f} (f1 = {result.singletons:,}, "
            f"f2 = {result.doubletons:,})" + (f"; {result.estimate_caveat}" if result.estimate_caveat else "")
        )
    for line in [*lines, f"{result.dtype}; {result.seconds:.2f} s"]:
        _line(console, line)


def _distinct_note(result: count_regions.RegionCount) -> str:
    """The regions that several segments cross, or several planes meet, together (each once)."""
    if isinstance(result, count_regions.SegmentCount):
        return f", {result.distinct_regions:,} distinct regions crossed"
    if isinstance(result, count_regions.PlaneCount) and result.distinct_regions is not None:
        return f", {result.distinct_regions:,} distinct regions met"
    return ""


# what each result counts, and over what when there are several
NOUNS = {
    count_regions.SegmentCount: ("pieces", "segments"),
    count_regions.PlaneCount: ("tiles", "planes"),
    count_regions.SampledCount: ("distinct codes", ""),
}


def print_sweep(console: Console, result: count_regions_sweep.SweepResult, label: str) -> None:
    unit = "tiles" if result.method == "exact-2d" else "pieces per segment"
    table = Table(
        title=f"sweep {escape(label)}: {result.neurons} hidden neurons ({unit})", title_justify="left"
    )
    for name in ("depth", "width", "median", "min", "max"):
        table.add_column(name, justify="right")
    for row in result.by_depth():
        table.add_row(*(f"{row[k]:,g}" for k in ("depth", "width", "median", "min", "max")))
    _show(console, table)
    _line(console, f"{result.measure}; {result.init}; {result.seconds:.2f} s")


def print_condition(console: Console, result: condition.ConditionResult) -> None:
    number = partial(_formatted, spec=".3g", missing="∞")  # a singular map's κ is infinite
    several = len(result.models) > 1
    table = Table(title="loss Hessian per layer (patterns fixed)", title_justify="left")
    if several:
        table.add_column("model")
    for label in ("layer", "params", "method", "λ_max", "λ_min≠0", "κ", "rank", "zero λ"):
        table.add_column(label, justify="left" if label in ("layer", "method") else "right")
    for model in result.models:
        for layer in model.layers:
            s = layer.summary()
            kappa = number(s["condition_number"])
            if s["condition_number_is_lower_bound"]:
                kappa = "≥ " + kappa
            cells = [
                escape(layer.name), f"{layer.params:,}", layer.method, number(s["lambda_max"]),
                number(s["lambda_min_nonzero"]), kappa,
                "?" if s["rank"] is None else f"{s['rank']:,}",
                "?" if s["zero_eigenvalues"] is None else f"{s['zero_eigenvalues']:,}",
            ]  # fmt: skip
            table.add_row(*([escape(Path(model.checkpoint).name)] if several else []), *cells)
        table.add_section()
    _show(console, table)
    blocks = Table(title="block Jacobians (κ = σ_max / σ_min, ∞ when singular)", title_justify="left")
    if several:
        blocks.add_column("model")
    for label in ("block", "skip", "in → out", "κ median", "κ p95", "κ max", "singular"):
        blocks.add_column(label, justify="left" if label == "block" else "right")
    for model in result.models:
        for block in model.blocks:
            s = block.summary()
            cells = [
                escape(block.name), "yes" if block.residual else "no", f"{block.in_dim} → {block.out_dim}",
                number(s["kappa_median"]), number(s["kappa_p95"]), number(s["kappa_max"]),
                f"{s['singular_share']:.1%}",
            ]  # fmt: skip
            blocks.add_row(*([escape(Path(model.checkpoint).name)] if several else []), *cells)
        blocks.add_section()
    _show(console, blocks)
    losses = ", ".join(f"{Path(m.checkpoint).name} {m.loss:.4g}" for m in result.models if m.loss is not None)
    block_points = len(result.models[0].block_points) if result.models else 0
    _line(
        console,
        f"{result.points:,} points, {result.outputs} outputs; targets: {result.targets}"
        f"{'; loss ' + losses if losses else ''}; blocks at {block_points:,} points; "
        f"zero: eigenvalues ≤ λ_max · side · eps; {result.dtype}; {result.seconds:.1f} s",
    )


def print_bn_density(console: Console, result: bn_density.BNDensityResult) -> None:
    distance = partial(_formatted, spec=".4g")
    table = Table(title=f"boundaries relative to the data: {escape(result.source)}", title_justify="left")
    table.add_column("init")
    for column in ("layer", "in view", "mean dist.", "median dist.", "within δ", "mean lin. dist."):
        table.add_column(column, justify="right")
    for i, init in enumerate(result.inits):
        for k in range(len(result.node_names)):
            s = result.node_summary(i, k)
            share = "–" if s["share_within_delta"] is None else f"{s['share_within_delta']:.1%}"
            table.add_row(
                init if k == 0 else "", str(s["layer"]), f"{s['boundaries_in_view']:,}/{s['units']:,}",
                distance(s["mean_distance_to_data"]), distance(s["median_distance_to_data"]), share,
                distance(s["mean_linearised_distance"]),
            )  # fmt: skip
        table.add_section()
    _show(console, table)
    names = ", ".join(
        f"{layer} = {escape(name)}" for layer, name in zip(result.node_layers, result.node_names)
    )
    how = "the exact partition" if result.exact else "crossed grid cells"
    diagonal = float(np.hypot(result.x_edges[1] - result.x_edges[0], result.y_edges[1] - result.y_edges[0]))
    _line(
        console,
        f"layers: {names}\n{len(result.data)} data points ({escape(result.data_source)}); "
        f"grid {result.grid} x {result.grid} over [{result.x_edges[0]:.3g}, {result.x_edges[-1]:.3g}] x "
        f"[{result.y_edges[0]:.3g}, {result.y_edges[-1]:.3g}] (cell diagonal {diagonal:.3g}); "
        f"dist.: in the plane, from {how}; lin. dist.: in input space, |z|/|grad z|; "
        f"δ = {result.delta:.3g}; seed {result.seed}, {result.dtype}; {result.seconds:.2f} s",
    )


def print_debias(console: Console, result: debias_sample.DebiasResult, checkpoint: Path) -> None:
    four_places = partial(_formatted, spec=".4f")
    summary = result.summary()
    table = Table(title=f"debiased sampling: {escape(str(checkpoint))}", title_justify="left")
    for column in ("ρ", "ESS", "ESS / pool", "mean log-volume drawn", "distinct draws"):
        table.add_column(column, justify="right")
    rows = [(0.0, None, result.baseline_index)] if 0.0 not in result.rho else []
    rows += [(float(r), float(e), i) for r, e, i in zip(result.rho, result.ess, result.selected_index)]
    pool = len(result.pool_latents)
    for r, ess, index in rows:
        ess = float(pool) if ess is None else ess
        mean = debias_sample.finite_mean(result.log_volume[index])
        table.add_row(
            f"{r:g}{' (baseline)' if r == 0 else ''}", f"{ess:,.1f}", f"{ess / pool:.1%}", four_places(mean),
            f"{len(set(index.tolist())):,}",
        )  # fmt: skip
    _show(console, table)
    _line(
        console,
        f"pool {pool:,} ({result.prior} prior, seed {result.seed}), n {result.selected_index.shape[1]:,} "
        f"{'with' if result.replace else 'without'} replacement; log-volume over the pool: mean "
        f"{four_places(summary['log_volume_mean'])}, std {four_places(summary['log_volume_std'])}; "
        f"{summary['distinct_tiles']:,} distinct tiles, "
        f"{result.collapsed:,} collapsed; {result.volume_label()}; d = {result.pool_latents.shape[1]}, "
        f"D = {result.samples.shape[-1]}, {result.jacobian_mode}-mode Jacobians, {result.dtype}; "
        f"{result.seconds:.2f} s",
    )


def print_info(console: Console, result: info.InfoResult) -> None:
    table = Table(title=f"{result.checkpoint} ({result.format})", title_justify="left")
    for column in ("#", "PL node", "kind", "neurons", "output shape"):  # "#": a gate file's `node 3`
        table.add_column(column, justify="right" if column in ("#", "neurons") else "left")
    for node in result.nodes:
        shape = "×".join(map(str, node.out_shape))
        table.add_row(str(node.position), node.name, node.kind, f"{node.neurons:,}", shape)
    _show(console, table)
    if result.renamed:
        renamed = Table(title="checkpoint tensors renamed", title_justify="left")
        renamed.add_column("checkpoint tensor")
        renamed.add_column("architecture parameter")
        for theirs, ours in result.renamed.items():
            renamed.add_row(escape(theirs), escape(ours))
        _show(console, renamed)
    transforms = f" then {', '.join(result.output_transforms)} (dropped)" if result.output_transforms else ""
    console.print(
        f"input {'×'.join(map(str, result.input_shape))} → output {'×'.join(map(str, result.output_shape))}"
        f"{transforms}; {result.parameters:,} parameters; "
        f"{result.neurons:,} neurons in {len(result.nodes)} PL nodes",
        soft_wrap=True,
    )
    verdict = "[green]ok[/]" if result.passed else "[bold red]MISMATCH[/]"
    console.print(
        f"lowering check on {result.check_inputs} random inputs ({result.check_dtype}): "
        f"max |PLNet − model| = {result.max_abs_diff:.3g} (tolerance {result.tolerance:.1g}) {verdict}",
        soft_wrap=True,
    )


def print_local_complexity(
    console: Console, result: local_complexity.LCResult, checks: local_complexity_gate.GateResult
) -> None:
    several = checks.several
    if result.steps is None and not several:
        table = Table(title=f"mean LC per PL node: {escape(result.checkpoints[0])}", title_justify="left")
        table.add_column("PL node")
        table.add_column("kind")
        table.add_column("neurons", justify="right")
        for name in result.set_names:
            table.add_column(name, justify="right")
        stats = [result.stats(0, name) for name in result.set_names]
        for i, node in enumerate(result.node_names):
            cells = [f"{s['per_node_mean'][node]:.3f}" for s in stats]
            table.add_row(escape(node), result.node_kinds[i], f"{result.node_units[i]:,}", *cells)
        table.add_section()
        for label, key in (("LC mean", "lc_mean"), ("LC median", "lc_median"), ("LC p95", "lc_p95")):
            table.add_row(label, "", "", *[f"{s[key]:.3f}" for s in stats])
        if any(s["accuracy"] is not None for s in stats):
            table.add_row("accuracy", "", "", *[_formatted(s["accuracy"], ".1%") for s in stats])
        for label, key, form in _exact_columns(result):
            table.add_row(label, "", "", *[_formatted(s[key], form) for s in stats])
        table.add_row("points", "", "", *[f"{s['points']:,}" for s in stats])
    else:
        table = Table(title="mean LC over the trajectory", title_justify="left")
        table.add_column("step" if result.steps is not None else "checkpoint", justify="right")
        for name in result.set_names:
            table.add_column(f"LC {name}", justify="right")
        labelled = [n for i, n in enumerate(result.set_names) if not np.isnan(result.accuracy[:, i]).all()]
        for name in labelled:
            table.add_column(f"acc. {name}", justify="right")
        exact = [
            (f"{label} {name}", key, form, name)
            for label, key, form in _exact_columns(result, short=True)
            for name in result.set_names
        ]
        for label, *_ in exact:
            table.add_column(label, justify="right")
        for c, checkpoint in enumerate(result.checkpoints):
            first = str(result.steps[c]) if result.steps is not None else Path(checkpoint).name
            cells = [f"{result.stats(c, n)['lc_mean']:.3f}" for n in result.set_names]
            cells += [_formatted(result.stats(c, n)["accuracy"], ".1%") for n in labelled]
            cells += [_formatted(result.stats(c, name)[key], form) for _, key, form, name in exact]
            table.add_row(escape(first), *cells)
    _show(console, table)
    _line(
        console,
        f"radius {result.radius:.6g} ({result.radius_rule}); {result.directions} directions, "
        f"{2 * result.directions} vertices per point, {result.frame} frame, seed {result.seed}, "
        f"{result.dtype}{', output units counted' if result.include_output else ''}; {result.seconds:.2f} s",
    )
    if result.exact is not None:
        rate = result.exact_tiles / result.exact_seconds if result.exact_seconds > 0 else None
        planes = result.exact.shape[2]
        _line(
            console,
            f"exact: tiles meeting the disc of radius {result.radius:.6g} on {planes} random "
            f"plane{'s' if planes != 1 else ''} per point; {result.exact_tiles:,} tiles partitioned in "
            f"{result.exact_seconds:.2f} s" + (f" ({rate:,.0f} tiles/s)" if rate is not None else ""),
        )
    for check in checks.checks:
        mark = "[green]ok[/]" if check.passed else "[bold red]FAILED[/]"
        _line(console, f"gate: {escape(check.message(several))} {mark}")


def _exact_columns(result: local_complexity.LCResult, short: bool = False) -> list[tuple[str, str, str]]:
    """(label, stats key, format) of the exact local counts, when measured."""
    if result.exact is None:
        return []
    if short:
        return [("exact", "exact_mean", ".3f"), ("ρ", "exact_spearman", ".3f")]
    return [("exact mean", "exact_mean", ".3f"), ("Spearman ρ (LC, exact)", "exact_spearman", ".3f")]


def print_slice_list(console: Console, summary: dict, rows: list | None) -> None:
    table = Table(title=f"{summary['planes']} planes", title_justify="left")
    for column in ("plane", "anchors", "regions", "boundary segments", "boundary length", "seconds"):
        table.add_column(column, justify="left" if column == "anchors" else "right")
    for i, entry in enumerate(summary["slices"]):
        table.add_row(
            str(i),
            ",".join(map(str, rows[i])) if rows is not None else "–",
            f"{entry['regions']:,}",
            f"{entry['boundary_segments']:,}",
            f"{entry['boundary_length']:.4g}",
            f"{entry['seconds']:.2f}",
        )
    _show(console, table)


def print_slice_trajectory(console: Console, summary: dict) -> None:
    """Checkpoints × where their tiles are: within δ of the data and of the decision boundary, the
    shares of the domain's area, of the tiles and of the tile edges by length."""
    table = Table(title="where the tiles are, per checkpoint (shares within δ)", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("tiles", justify="right")
    for target in ("data", "boundary"):
        for what in ("area", "tiles", "edges"):
            table.add_column(f"{what} near {target}", justify="right")
    for entry in summary["checkpoints"]:
        placed = entry["placement"]
        shares = [
            placed[t][f"{w}_within_delta"] for t in ("data", "boundary") for w in ("area", "tiles", "edges")
        ]
        table.add_row(f"{entry['step']:,}", f"{entry['regions']:,}", *(f"{share:.2%}" for share in shares))
    _show(console, table)
    _line(
        console,
        f"δ = {summary['delta']:.4g} (plane coordinates); {summary['data_points']:,} data points "
        "in the plane; "
        "tile densities per distance band in --json",
    )


def print_slice(console: Console, summary: dict) -> None:
    table = Table(title="tiles after each PL node (prefix networks)", title_justify="left")
    table.add_column("PL node")
    table.add_column("tiles", justify="right")
    for name, tiles in summary["tiles_per_node"].items():
        table.add_row(name, f"{tiles:,}")
    _show(console, table)
    console.print(
        f"{summary['regions']:,} regions covering {summary['covered_area']:.6g} of the domain's "
        f"{summary['domain_area']:.6g}; decision boundary: {summary['boundary_segments']:,} segments, "
        f"length {summary['boundary_length']:.4g}; {summary['seconds']:.2f} s "
        f"({summary['tiles_per_second']:,.0f} tiles/s, peak memory "
        f"{summary['peak_memory_bytes'] / 2**20:,.0f} MiB)",
        soft_wrap=True,
    )
    if "verify" in summary:
        v = summary["verify"]
        verdict = "[green]ok[/]" if v["passed"] else f"[bold red]{v['tiles_mismatched']} tiles MISMATCHED[/]"
        console.print(f"verify: {v['points']:,} interior points in {v['tiles_checked']:,} tiles {verdict}")


def print_shard(console: Console, summary: dict, output: Path) -> None:
    (start, stop), total = summary["items"], summary["total"]
    _line(
        console,
        f"share {summary['shard']}: items {start}:{stop} of {total} written to {output}; join the shares "
        "with splinetool merge",
    )


def print_merged(console: Console, command: str, shards: int, items: int, output: Path) -> None:
    _line(
        console,
        f"merged {shards} shards of '{command}' ({items:,} items) into {output}",
    )


def _formatted(value: float | None, spec: str, missing: str = "–") -> str:
    """`value` in the format `spec`; `missing` where there is none (no boundary in view, no labels)."""
    return missing if value is None else format(value, spec)


def _show(console: Console, table: Table) -> None:
    """Print `table`; where the console is too narrow for it, its cells fold onto more lines rather than
    end in `…`, so that every digit of every number is shown."""
    for column in table.columns:
        column.overflow = "fold"
    console.print(table)


def _line(console: Console, text: str) -> None:
    """One line of text, neither wrapped nor cut at the console's width, its numbers not coloured."""
    console.print(text, soft_wrap=True, highlight=False)
