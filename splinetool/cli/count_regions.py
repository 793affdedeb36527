"""`splinetool count-regions`: exact region counts on segments and planes, sampled estimates, sweeps."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from splinetool.analyses.defaults import PLANE_LISTS
from splinetool.cli.common import (
    MODEL,
    OUTPUTS,
    Shared,
    load_dataset,
    progress_bar,
    report,
    reported_errors,
    with_shared,
    write_outputs,
)
from splinetool.cli.planes import ONE_PLANE, SplitOption, plane_options, with_plane
from splinetool.cli.sharing import run_shares
from splinetool.errors import UsageError

COMMAND = "count-regions"
# the options that place planes: beside --sample or segments, they are refused
PLANE_PLACES = tuple(name for name in (*ONE_PLANE, *PLANE_LISTS) if name not in ("margin", "directions"))


@with_shared(*MODEL, "shard", *OUTPUTS)
@with_plane(*ONE_PLANE, *PLANE_LISTS)
def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            help="TorchScript archive, .pt2 export, or state dict (.pt, .ckpt, .safetensors); not with "
            "--sweep.",
            show_default=False,
        ),
    ] = None,
    segment: Annotated[
        Path | None,
        typer.Option(help="File with two inputs (one segment), or an array [S, 2, ...] of S segments."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Data file or generator: ends of --pairs, anchors, or where to --sample."),
    ] = None,
    split: SplitOption = None,
    pairs: Annotated[
        str | None,
        typer.Option(help="Segments between rows of --data: 'i,j' for one, 'random:N' for N random pairs."),
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="1-D inputs: lo,hi (the segment). Otherwise the plane's xmin,xmax,ymin,ymax (2-D inputs, "
            "or with --origin/--directions); with --sample, the box to sample in."
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(help="Estimate by sampling this many points instead of counting exactly.", min=1),
    ] = None,
    around: Annotated[
        str,
        typer.Option(help="Where --sample draws: bbox (the data's bounding box, or --bounds), box or ball."),
    ] = "bbox",
    radius: Annotated[
        float | None,
        typer.Option(
            help="Half-width of the --around box or ball (default: 0.1 × the RMS distance of the data to "
            "its mean).",
            show_default=False,
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            help="Sweep file (configs/sweeps/*.toml): count random-initialised networks, no checkpoint."
        ),
    ] = None,
) -> None:
    """Count the network's linear regions: exactly on segments (1-D) and planes (2-D), or by sampling.

    Segments: --segment FILE, --data with --pairs i,j or random:N, or --bounds lo,hi for a model with
    1-D inputs; the result is the breakpoints along each segment, its pieces, and the distinct regions
    the segments cross together. Planes: the options of `slice`; the tiles are counted without being
    kept, and on a list of planes, the distinct regions they meet together. Every count is also given
    for each prefix network (PL nodes 1..k).

    --sample N estimates in any dimension: the distinct activation codes among N random points are a
    lower bound on the regions of the sampled domain. Beside it, the Chao1 estimate
    S + f1(f1 - 1) / (2(f2 + 1)) (f1, f2: codes seen once, twice) extrapolates to the unseen regions,
    assuming the points are independent and every region has a chance of being hit proportional to its
    share of the sampling distribution. It is itself a lower-bound estimator and says nothing of regions
    too small to be hit; with f2 = 0 it is unreliable.

    --sweep FILE counts random-initialised networks of one family over depths at a fixed neuron budget
    and seeds, on the same plane or segments, and plots count against depth and width.
    """
    from splinetool import parallel
    from splinetool.analyses import count_regions as analysis
    from splinetool.analyses import count_regions_sweep as sweeps
    from splinetool.render import tables

    shared, places = Shared.of(ctx), plane_options(ctx)
    with reported_errors(ctx):
        shared.check_outputs()
        if sweep is not None:
            given = [name for name in sweeps.NOT_WITH_A_SWEEP if ctx.params[name] is not None]
            sweeps.check_alone(checkpoint, shared.shard, given)
            plan = sweeps.load_sweep(sweep)
            with progress_bar(shared.quiet, "sweep", "networks") as bar:
                result = sweeps.run(plan, sweeps.SweepOptions(shared.where, shared.torch_dtype), bar)
            write_outputs(shared, COMMAND, result, "")
            return report(shared, result.summary(), tables.print_sweep, result, sweep.name)
        if checkpoint is None:
            raise UsageError("give a checkpoint to count, or --sweep FILE to count random networks")
        listed = places.listed
        world = parallel.world()
        if sample is not None and world is not None and world.size > 1:
            raise UsageError("--sample counts codes over all its points in one process: run it alone")
        planes_given = tuple(name for name in PLANE_PLACES if ctx.params[name] is not None)
        request = analysis.CountRequest(
            segment, pairs, bounds, sample, around, radius, shared.seed, planes_given
        )

        def prepare() -> analysis.CountJob:
            loaded, net = shared.load(checkpoint)
            dataset = load_dataset(data, split, shared.seed)
            planes = partial(places.planes, net.input_shape, dataset)  # (planes, data rows)
            where = analysis.inputs_for(net.input_shape, request, dataset, lambda: planes()[0])
            return analysis.CountJob(net, where, checkpoint_sha256=loaded.sha256)

        unit = "segments" if segment is not None or pairs is not None else "planes" if listed else ""
        outcome = run_shares(shared, COMMAND, prepare, "counting", unit, {"--sample": sample})
        if outcome is None:
            return
        result, sha = outcome.result, outcome.job.checkpoint_sha256
        write_outputs(shared, COMMAND, result, sha, title=checkpoint.name)
    report(shared, result.summary(), tables.print_count, result, checkpoint.name)
