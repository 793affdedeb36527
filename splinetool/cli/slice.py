"""`splinetool slice`: the exact tiles of a 2-D slice of input space, its decision boundary, renders."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from splinetool.analyses.defaults import DEFAULT_PLACEMENT_BINS, DEFAULT_PLACEMENT_RELATIVE_DELTA, PLANE_LISTS
from splinetool.cli.common import (
    MODEL,
    OUTPUTS,
    Shared,
    load_dataset,
    report,
    reported_errors,
    with_shared,
    write_outputs,
)
from splinetool.cli.planes import ONE_PLANE, SplitOption, plane_options, with_plane
from splinetool.cli.sharing import run_shares
from splinetool.errors import UsageError

if TYPE_CHECKING:
    from splinetool.analyses import slice as analysis

Color = Literal["jacobian", "region", "layer", "class"]  # checked by the parser, before any import


@with_shared(*MODEL, "shard", *OUTPUTS)
@with_plane("bounds", *ONE_PLANE, *PLANE_LISTS)
def command(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="TorchScript archive, .pt2 export, or state dict (.pt, .ckpt, .safetensors); several (or a "
            "quoted glob such as "
            "'run/step-*.pt') form a training trajectory, ordered by the step in each file name or by "
            "--steps.",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None, typer.Option(help="Data file or generator (e.g. moons:200): drawn, and anchors.")
    ] = None,
    split: SplitOption = None,
    project: Annotated[bool, typer.Option(help="Draw every data point, projected onto the plane.")] = False,
    max_regions: Annotated[
        int, typer.Option(help="Stop (writing nothing) beyond this many tiles.", min=1)
    ] = 2_000_000,
    norm: Annotated[str, typer.Option(help="Norm of the input-space Jacobian per tile: 2 or fro.")] = "2",
    verify: Annotated[bool, typer.Option(help="Check every tile's code at random interior points.")] = False,
    color: Annotated[Color, typer.Option(help="Tile colours: jacobian, region, layer or class.")] = (
        "jacobian"
    ),
    jacobian_norm: Annotated[
        bool,
        typer.Option(
            "--jacobian-norm",
            help="Also compute each tile's input-space Jacobian norm (for -o; pictures coloured by "
            "jacobian compute it anyway).",
        ),
    ] = False,
    steps: Annotated[
        str | None,
        typer.Option(help="Training step of each checkpoint, comma-separated, in the given order."),
    ] = None,
    bins: Annotated[
        int,
        typer.Option(
            help="Trajectory: distance bands of the tile densities (of the domain's diameter).", min=1
        ),
    ] = DEFAULT_PLACEMENT_BINS,
    delta: Annotated[
        float | None,
        typer.Option(
            help="Trajectory: δ of the shares of tiles and edges near the data and the decision boundary, "
            f"in plane coordinates [default: {DEFAULT_PLACEMENT_RELATIVE_DELTA:g} × the domain's diameter].",
            show_default=False,
        ),
    ] = None,
    animate: Annotated[
        Path | None, typer.Option(help="Trajectory: a GIF with one frame per checkpoint.", show_default=False)
    ] = None,
) -> None:
    """Exact linear regions of the network on a 2-D slice of its input space, and its decision boundary.

    The plane is the input space itself (2-D models, --bounds), the plane through three inputs
    (--anchors, or --data with --anchor-index) on a square scaled by --margin, or --origin and
    --directions with --bounds. With --anchors-list or --anchor-index-list, each plane of the list
    through its three anchors (one result per plane); the planes split into shares under torchrun
    and with --shard.

    With several checkpoints (a training trajectory), each is sliced on the same plane, placed by
    the first one's inputs, and the table says where its tiles are: the shares of the domain's area,
    of the tiles and of the tile edges within δ (--delta) of the data points in the plane (every
    point with --project) and of the decision boundary; --json adds the tile density per distance
    band (--bins). The checkpoints split into shares under torchrun and with --shard.
    """
    from splinetool.analyses import slice as analysis
    from splinetool.render import tables

    shared, places = Shared.of(ctx), plane_options(ctx)
    with reported_errors(ctx):
        # pictures coloured by the Jacobian need its norm
        wanted = jacobian_norm or (color == "jacobian" and (bool(shared.figures) or animate is not None))
        options = analysis.SliceOptions(
            max_regions, norm, 4 if verify else 0, shared.seed, jacobian_norm=wanted
        )
        shared.check_outputs()
        from splinetool.analyses.tile_placement import PlacementOptions
        from splinetool.analyses.trajectory import trajectory

        paths, step_numbers = trajectory(checkpoints, steps)
        if step_numbers is not None:
            placement = PlacementOptions(bins, delta)
            drawing = dict(color=color, project=project, animate=animate)
            _trajectory(shared, places, paths, step_numbers, data, split, options, placement, drawing)
            return
        alone = {
            "--animate": animate,
            "--delta": delta,
            "--bins": None if bins == DEFAULT_PLACEMENT_BINS else bins,
        }
        given = [flag for flag, value in alone.items() if value is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)} describe(s) a training trajectory: give several checkpoints (or --steps)"
            )
        checkpoint = paths[0]
        listed = places.listed
        if shared.shard is not None and not listed:
            raise UsageError(
                f"--shard {shared.shard} splits a list of planes: give --anchors-list or --anchor-index-list"
            )

        def prepare() -> analysis.SliceJob:
            from splinetool.io import stream

            loaded, net = shared.load(checkpoint)
            dataset = load_dataset(data, split, shared.seed)
            planes, rows = places.planes(net.input_shape, dataset)
            # one plane: its tiles go to -o as they are found
            to_file = None if listed or shared.output is None else shared.provenance("slice", loaded.sha256)
            return analysis.SliceJob(
                net,
                planes,
                options,
                listed=listed,
                anchor_rows=rows,
                data=dataset,
                checkpoint_sha256=loaded.sha256,
                stream=None if to_file is None else partial(stream, shared.output, to_file),
            )

        unit = "planes" if listed else "‰ of the area"
        outcome = run_shares(shared, "slice", prepare, "slicing", unit)
        if outcome is None:
            return
        job, result = outcome.job, outcome.result
        _write(shared, job, result, color=color, project=project, title=checkpoint.name)
    if listed:
        summary = job.summary(result)
        report(shared, summary, tables.print_slice_list, summary, job.anchor_rows)
    else:
        summary = result.slices[0].summary()
        report(shared, summary, tables.print_slice, summary)
    if any(one.verify is not None and not one.verify["passed"] for one in result.slices):
        raise typer.Exit(1)


def _trajectory(shared: Shared, places, paths, steps, data, split, options, placement, drawing) -> None:
    """One plane through every checkpoint of a trajectory: sliced, placed, written, drawn, printed."""
    from splinetool.analyses import slice as analysis
    from splinetool.io.atomic import check_outputs
    from splinetool.render import tables

    ctx = shared.ctx
    with reported_errors(ctx):
        if places.listed:
            raise UsageError(
                "--anchors-list and --anchor-index-list slice one checkpoint; a trajectory is sliced on "
                "one plane (--anchors, --anchor-index, or --origin and --directions)"
            )
        check_outputs([("--animate", drawing["animate"], (".gif",))], [("CHECKPOINT", p) for p in paths])
        labels: list = []

        def prepare() -> analysis.TrajectoryJob:
            loaded, net = shared.load(paths[0])
            dataset = load_dataset(data, split, shared.seed)
            (plane,), _ = places.planes(net.input_shape, dataset)
            points, point_labels = analysis.points_in_plane(plane, dataset, drawing["project"])
            if points is None or not len(points):
                raise UsageError(
                    "a trajectory's tiles are placed relative to the data in the plane: give --data with "
                    "anchors from it (--anchor-index), or --project to measure to every point projected"
                )
            labels[:] = [point_labels]
            return analysis.TrajectoryJob(
                shared.load, paths, steps, plane, points, options, placement, loaded.sha256
            )

        outcome = run_shares(
            shared, "slice", prepare, "slicing", "checkpoints", {"--animate": drawing["animate"]}
        )
        if outcome is None:
            return
        result = outcome.result
        title = paths[0].parent.name or None
        figure = partial(_trajectory_figure, result, drawing["color"], labels[0], title)
        write_outputs(shared, "slice", result, outcome.job.checkpoint_sha256, figure)
        if drawing["animate"] is not None:
            from splinetool.render.slice_trajectory import animate_slice_trajectory

            animate_slice_trajectory(result, drawing["animate"], drawing["color"], labels[0], title)
    report(shared, result.summary(), tables.print_slice_trajectory, result.summary())


def _trajectory_figure(result, color, labels, title):
    from splinetool.render.slice_trajectory import draw_slice_trajectory

    return draw_slice_trajectory(result, color, labels, title)


def _write(shared: Shared, job: analysis.SliceJob, result: analysis.SliceList, **drawing) -> None:
    """-o for a plane list (one plane's tiles went to -o as they were found), and a picture per plane
    (NAME-0003.png for plane 3 of a list); `drawing`: color, project and title."""
    if job.listed:
        write_outputs(replace(shared, png=None, svg=None), "slice", result, job.checkpoint_sha256)
    for i, one in enumerate(result.slices):
        pictures = replace(shared, output=None)
        if job.listed:
            pictures = replace(pictures, png=plane_file(shared.png, i), svg=plane_file(shared.svg, i))
        write_outputs(
            pictures, "slice", one, job.checkpoint_sha256, partial(_figure, shared, job, i, one, **drawing)
        )


def _figure(
    shared: Shared, job: analysis.SliceJob, i: int, one: analysis.SliceResult, *, color, project, title
):
    from splinetool.render.slice import draw_slice, draw_slice_file

    points, labels = job.points_in_plane(i, project)
    title = f"{title}, plane {i}" if job.listed else title
    drawing = dict(color=color, data=points, labels=labels, title=title)
    if one.streamed is not None:  # its tiles are in the run file only
        return draw_slice_file(shared.output, **drawing)
    return draw_slice(one, **drawing)


def plane_file(path: Path | None, index: int) -> Path | None:
    """The picture of plane `index` of a list: NAME-0003.png for --png NAME.png."""
    return None if path is None else path.with_name(f"{path.stem}-{index:04d}{path.suffix}")
