"""`splinetool slice`: the exact tiles of a 2-D slice of input space, its decision boundary, renders."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from splinetool.analyses.defaults import PLANE_LISTS
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

COLORS = ("jacobian", "region", "layer", "class")


@with_shared(*MODEL, "shard", *OUTPUTS)
@with_plane("bounds", *ONE_PLANE, *PLANE_LISTS)
def command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="TorchScript archive, .pt2 export, or state dict.")],
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
    color: Annotated[str, typer.Option(help="Tile colours: jacobian, region, layer or class.")] = "jacobian",
    jacobian_norm: Annotated[
        bool,
        typer.Option(
            "--jacobian-norm",
            help="Also compute each tile's input-space Jacobian norm (for -o; pictures coloured by "
            "jacobian compute it anyway).",
        ),
    ] = False,
) -> None:
    """Exact linear regions of the network on a 2-D slice of its input space, and its decision boundary.

    The plane is the input space itself (2-D models, --bounds), the plane through three inputs
    (--anchors, or --data with --anchor-index) on a square scaled by --margin, or --origin and
    --directions with --bounds. With --anchors-list or --anchor-index-list, each plane of the list
    through its three anchors (one result per plane); the planes split into shares under torchrun
    and with --shard.
    """
    from splinetool.analyses import slice as analysis
    from splinetool.render import tables

    shared, places = Shared.of(ctx), plane_options(ctx)
    with reported_errors(ctx):
        # pictures coloured by the Jacobian need its norm
        wanted = jacobian_norm or (color == "jacobian" and bool(shared.figures))
        options = analysis.SliceOptions(
            max_regions, norm, 4 if verify else 0, shared.seed, jacobian_norm=wanted
        )
        if color not in COLORS:
            raise UsageError(f"--color {color!r}: expected one of {', '.join(COLORS)}")
        shared.check_outputs()
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
