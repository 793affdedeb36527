"""`splinetool local-complexity`: LC per point and per node, over a training trajectory, and as a CI gate."""

from __future__ import annotations

import glob
import re
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from splinetool.analyses import local_complexity as analysis
from splinetool.analyses import local_complexity_gate as gating
from splinetool.cli.common import (
    ArchOption,
    ConfigOption,
    DeviceOption,
    DtypeOption,
    InputShapeOption,
    JsonOption,
    OutputOption,
    PngOption,
    QuietOption,
    SeedOption,
    ShardOption,
    SvgOption,
    TrustOption,
    check_outputs,
    load_net,
    parse_device,
    parse_ints,
    print_json,
    reported_errors,
    stderr,
    stdout,
)
from splinetool.cli.sharing import check_shard, run_work, write_shard
from splinetool.data.loading import load_data
from splinetool.errors import UsageError
from splinetool.parallel import Work

GLOB_CHARACTERS = set("*?[")
GROUP = "local_complexity"  # the run file's group


def command(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="One checkpoint, or several (or a quoted glob such as 'run/step-*.pt') forming a "
            "training trajectory, ordered by the step in each file name or by --steps.",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(help="Points to measure around: a data file (x, optional labels y) or a generator."),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(help="train or test, for files holding both; repeat (or comma-separate) for several."),
    ] = None,
    random: Annotated[
        int, typer.Option(help="Also measure this many points uniform in the data's bounding box.", min=0)
    ] = 0,
    directions: Annotated[
        int | None,
        typer.Option(
            help=f"P, the number of orthonormal directions, 2P vertices per point (default "
            f"{analysis.DEFAULT_DIRECTIONS}, or the input dimension if smaller).",
            show_default=False,
        ),
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option(
            help="r, in input units (default: --relative-radius × the data's scale).", show_default=False
        ),
    ] = None,
    relative_radius: Annotated[
        float, typer.Option(help="r as a multiple of the RMS distance of the data points to their mean.")
    ] = analysis.DEFAULT_RELATIVE_RADIUS,
    frame: Annotated[
        str, typer.Option(help="shared: one random frame for all points; per-point: a fresh frame per point.")
    ] = "shared",
    include_output: Annotated[
        bool,
        typer.Option("--include-output", help="Count the output units too (the reference MLP code does)."),
    ] = False,
    steps: Annotated[
        str | None,
        typer.Option(help="Training step of each checkpoint, comma-separated, in the given order."),
    ] = None,
    max_lc: Annotated[float | None, typer.Option(help="Gate: mean LC must be at most this.")] = None,
    gate: Annotated[
        Path | None, typer.Option(help="Gate: TOML file with bounds on mean, median, p95 and per node.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="Gate: a previous run's --json output that LC may not exceed by much.")
    ] = None,
    max_increase: Annotated[
        float | None,
        typer.Option(
            help=f"Relative increase over --baseline allowed (default: the gate file's, else "
            f"{gating.DEFAULT_MAX_INCREASE:g}).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Points per forward batch (default: about 1,000 vertices per batch on a CPU; on a GPU, "
            "as many as fit in 256 MiB of activations)."
        ),
    ] = None,
    arch: ArchOption = None,
    input_shape: InputShapeOption = None,
    trust_checkpoint: TrustOption = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float64",
    seed: SeedOption = 0,
    shard: ShardOption = None,
    output: OutputOption = None,
    png: PngOption = None,
    svg: SvgOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Local complexity: how many neuron boundaries cross a small neighbourhood of each data point.

    Around each point x, P random orthonormal directions u_p (seeded; one frame shared by all points,
    or --frame per-point) and a radius r give a cross-polytope with the 2P vertices x ± r·u_p. A
    neuron counts when its pre-activation does not keep one sign over the vertices; LC(x) is the
    number of counted neurons over every hidden PL node (and the output units with --include-output).
    Convolutional nodes count each (channel, position); hardtanh/ReLU6/clamp count each of their two
    breakpoints; a max-pool window counts when its arg-max changes. Defaults: P = 25 and
    r = 0.05 × the RMS distance of the data points to their mean; both are printed with every result
    (Humayun, Balestriero & Baraniuk, "Deep networks always grok and here is why", ICML 2024).

    With several checkpoints, LC is measured on each with the same frame and radius (a training
    trajectory). With --max-lc, --gate or --baseline, exit 1 when a check fails. The points split
    into shares under torchrun and with --shard (each share measured on every checkpoint).
    """
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: a data file (x, optional y) or a generator such as moons:500")
        if max_increase is not None and baseline is None:
            raise UsageError("--max-increase bounds the increase over --baseline: give --baseline too")
        if max_lc is not None and not 0 <= max_lc < float("inf"):
            raise UsageError(f"--max-lc {max_lc}: expected a finite number >= 0")
        gates = {"--max-lc": max_lc, "--gate": gate, "--baseline": baseline, "--png": png, "--svg": svg}
        share = check_shard(shard, output, gates)
        check_outputs(ctx, output, png, svg)
        paths, step_numbers = _trajectory(checkpoints, steps)
        the_gate = gating.load_gate(gate) if gate is not None else gating.Gate()
        base = gating.read_baseline(baseline) if baseline is not None else None
        where = parse_device(device)

        def prepare() -> Work:
            sets = _point_sets(data, split, random, seed)
            shas: list[str] = []

            def nets():
                for path in paths:
                    loaded, net = load_net(path, arch, input_shape, trust_checkpoint, device, dtype)
                    shas.append(loaded.sha256)
                    yield net

            def compute(rows: range, report) -> analysis.LCResult:
                result = analysis.run(
                    nets(),
                    sets,
                    directions=directions,
                    radius=radius,
                    relative_radius=relative_radius,
                    frame=frame,
                    include_output=include_output,
                    seed=seed,
                    chunk_size=batch_size,
                    checkpoints=[str(p) for p in paths],
                    steps=step_numbers,
                    progress=report,
                    rows=rows,
                )
                result.checkpoint_sha256 = shas
                return result

            return Work(sum(len(s.x) for s in sets), compute)

        outcome = run_work(prepare, share, where, quiet, "local complexity", "points")
        if outcome is None:
            return  # a rank other than 0: rank 0 reports
        result = outcome.result
        if share is not None:
            sha = ",".join(result.checkpoint_sha256)
            write_shard(ctx, outcome, "local-complexity", GROUP, output, sha, where, seed, json, quiet)
            return
        limits = list(the_gate.limits)
        if max_lc is not None:
            limits.insert(0, gating.Limit("lc_mean", None, max_lc, "--max-lc"))
        if base is not None:
            limits += gating.baseline_limits(base, baseline, result, the_gate, max_increase)
        checks = gating.evaluate(result, limits, the_gate.points) if limits else []
        _write(result, output, png, svg, device, seed)
    several = len(result.checkpoints) > 1
    failed = [c.message(several) for c in checks if not c.passed]
    if json:
        payload = result.summary()
        if checks:
            payload |= {"passed": not failed, "failed_checks": failed, "checks": [_check(c) for c in checks]}
        print_json(payload)
    elif not quiet:
        _print(result, checks, several)
    if failed:
        for message in failed:
            stderr.print(f"[bold red]failed:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _trajectory(checkpoints: list[Path], steps: str | None) -> tuple[list[Path], list[int] | None]:
    """Expand quoted globs; with several checkpoints (or --steps), order them by training step."""
    paths: list[Path] = []
    for path in checkpoints:
        if not path.exists() and GLOB_CHARACTERS & set(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path)))
            if not found:
                raise UsageError(f"checkpoint pattern {path}: no file matches it")
            paths += found
        else:
            paths.append(path)
    if steps is not None:
        numbers = list(parse_ints(steps, len(paths), "--steps"))
        if min(numbers) < 0:
            raise UsageError(f"--steps {steps}: training steps count from 0")
    elif len(paths) > 1:
        numbers = [_step_from_name(p) for p in paths]
    else:
        return paths, None
    if len(set(numbers)) != len(numbers):
        raise UsageError(f"two checkpoints have the same training step ({numbers}); give --steps")
    order = sorted(range(len(paths)), key=numbers.__getitem__)
    return [paths[i] for i in order], [numbers[i] for i in order]


def _step_from_name(path: Path) -> int:
    # the last number before the name's first dot: step-001000.ts.pt -> 1000, run2_epoch12.pt -> 12
    numbers = re.findall(r"\d+", path.name.split(".")[0]) or re.findall(r"\d+", path.name)
    if not numbers:
        raise UsageError(
            f"checkpoint {path}: no training step in its file name (such as step-001000.pt); give --steps"
        )
    return int(numbers[-1])


def _point_sets(data: str, split: list[str] | None, random: int, seed: int) -> list[analysis.PointSet]:
    names = [s.strip() for item in split or [] for s in item.split(",") if s.strip()]
    if split and not names:
        raise UsageError(f"--split {split[0]!r}: expected split names such as train or test")
    if len(set(names)) != len(names):
        raise UsageError(f"--split {', '.join(names)}: a split is named twice")
    if random and "random" in names:
        raise UsageError("--split random and --random would both be called 'random': measure one of them")
    loaded = [(name, load_data(data, split=name, seed=seed)) for name in names] or [
        ("data", load_data(data, seed=seed))
    ]
    sets = [analysis.PointSet(name, d.x.reshape(len(d.x), -1), d.y, d.source) for name, d in loaded]
    if random:
        sets.append(analysis.random_points(sets, random, seed))
    return sets


def _write(result, output, png, svg, device, seed) -> None:
    if output is not None:
        from splinetool.io import Provenance, write

        provenance = Provenance(
            "local-complexity", sys.argv, ",".join(result.checkpoint_sha256), str(device), seed
        )
        write(output, {GROUP: result}, provenance)
    if png is not None or svg is not None:
        from splinetool.render.local_complexity import draw_local_complexity
        from splinetool.render.slice import save_figure

        paths = [Path(c) for c in result.checkpoints]
        # a trajectory is usually one folder of checkpoints: name it after the folder
        title = (
            paths[0].name
            if len(paths) == 1
            else paths[0].parent.name
            if len({p.parent for p in paths}) == 1
            else None
        )
        figure = draw_local_complexity(result, title=title)
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)


def _check(check: gating.Check) -> dict:
    return {
        "check": check.limit.label,
        "value": check.value,
        "bound": check.limit.bound,
        "source": check.limit.source,
        "checkpoint": check.checkpoint,
        "passed": check.passed,
    }


def _print(result: analysis.LCResult, checks: list[gating.Check], several: bool) -> None:
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
            table.add_row("accuracy", "", "", *[_percent(s["accuracy"]) for s in stats])
        table.add_row("points", "", "", *[f"{s['points']:,}" for s in stats])
    else:
        table = Table(title="mean LC over the trajectory", title_justify="left")
        table.add_column("step" if result.steps is not None else "checkpoint", justify="right")
        for name in result.set_names:
            table.add_column(f"LC {name}", justify="right")
        labelled = [n for i, n in enumerate(result.set_names) if not np.isnan(result.accuracy[:, i]).all()]
        for name in labelled:
            table.add_column(f"acc. {name}", justify="right")
        for c, checkpoint in enumerate(result.checkpoints):
            first = str(result.steps[c]) if result.steps is not None else Path(checkpoint).name
            cells = [f"{result.stats(c, n)['lc_mean']:.3f}" for n in result.set_names]
            cells += [_percent(result.stats(c, n)["accuracy"]) for n in labelled]
            table.add_row(escape(first), *cells)
    stdout.print(table)
    stdout.print(
        f"radius {result.radius:.6g} ({result.radius_rule}); {result.directions} directions, "
        f"{2 * result.directions} vertices per point, {result.frame} frame, seed {result.seed}, "
        f"{result.dtype}{', output units counted' if result.include_output else ''}; {result.seconds:.2f} s",
        soft_wrap=True,
        highlight=False,
    )
    for check in checks:
        mark = "[green]ok[/]" if check.passed else "[bold red]FAILED[/]"
        stdout.print(f"gate: {escape(check.message(several))} {mark}", soft_wrap=True, highlight=False)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
