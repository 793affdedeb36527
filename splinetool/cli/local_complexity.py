"""`splinetool local-complexity`: LC per point and per node, over a training trajectory, and as a CI gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from splinetool.analyses.defaults import DEFAULT_DIRECTIONS, DEFAULT_MAX_INCREASE, DEFAULT_RELATIVE_RADIUS
from splinetool.cli.common import (
    MODEL,
    OUTPUTS,
    Shared,
    report,
    reported_errors,
    stderr,
    with_shared,
    write_outputs,
)
from splinetool.cli.sharing import run_shares
from splinetool.errors import UsageError


@with_shared(*MODEL, "shard", *OUTPUTS)
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
        typer.Option(
            help="train or test, for files holding both; repeat (or comma-separate) for several.",
            metavar="<str>",
        ),
    ] = None,
    random: Annotated[
        int, typer.Option(help="Also measure this many points uniform in the data's bounding box.", min=0)
    ] = 0,
    directions: Annotated[
        int | None,
        typer.Option(
            help=f"P, the number of orthonormal directions, 2P vertices per point (default "
            f"{DEFAULT_DIRECTIONS}, or the input dimension if smaller).",
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
    ] = DEFAULT_RELATIVE_RADIUS,
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
            f"{DEFAULT_MAX_INCREASE:g}).",
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
    exact_planes: Annotated[
        int | None,
        typer.Option(
            help="Also count exactly, on K random planes through each point, the tiles meeting the disc of "
            "radius r around it (the planar engine), with its rank correlation to LC.",
            metavar="K",
            show_default=False,
        ),
    ] = None,
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

    With --exact-planes K, each point also gets the exact number of tiles meeting the disc of radius
    r around it on K random planes through it (seeded by the point, the same for every checkpoint),
    their mean beside LC, and Spearman's rank correlation of the two over the points.
    """
    from splinetool.analyses import local_complexity as analysis
    from splinetool.analyses import local_complexity_gate as gating
    from splinetool.analyses.trajectory import trajectory
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: a data file (x, optional y) or a generator such as moons:500")
        gates = gating.GateOptions(max_lc, gate, baseline, max_increase)
        shared.check_outputs()
        paths, step_numbers = trajectory(checkpoints, steps)
        plan = gating.GatePlan.read(gates)
        options = analysis.LCOptions(
            directions, radius, relative_radius, frame, include_output, shared.seed, batch_size, exact_planes
        )

        def prepare() -> analysis.LCJob:
            sets = analysis.point_sets(data, split or [], random, shared.seed)
            return analysis.LCJob(shared.load, paths, sets, options, step_numbers)

        whole = {"--max-lc": max_lc, "--gate": gate, "--baseline": baseline}
        outcome = run_shares(shared, "local-complexity", prepare, "local complexity", "points", whole)
        if outcome is None:
            return
        result, sha = outcome.result, outcome.job.checkpoint_sha256
        checks = gating.run(result, plan)
        write_outputs(shared, "local-complexity", result, sha, title=_title(result.checkpoints))
    report(shared, result.summary() | checks.summary(), tables.print_local_complexity, result, checks)
    for message in checks.failed:
        stderr.print(f"[bold red]failed:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if checks.failed:
        raise typer.Exit(1)


def _title(checkpoints: list[str]) -> str | None:
    """One checkpoint's name; a trajectory is usually one folder of checkpoints: the folder's name."""
    paths = [Path(c) for c in checkpoints]
    if len(paths) == 1:
        return paths[0].name
    return paths[0].parent.name if len({p.parent for p in paths}) == 1 else None
