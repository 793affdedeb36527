"""Options that place a 2-D plane in input space, shared by the commands that work on planes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from splinetool.cli.common import with_options

if TYPE_CHECKING:
    from splinetool.analyses.plane import PlaneOptions

BoundsOption = Annotated[
    str | None,
    typer.Option(
        help="xmin,xmax,ymin,ymax in plane coordinates (2-D inputs, or with --origin and --directions)"
    ),
]
AnchorsOption = Annotated[Path | None, typer.Option(help="File with three inputs: the plane through them.")]
SplitOption = Annotated[str | None, typer.Option(help="train or test, for data files holding both.")]
AnchorIndexOption = Annotated[str | None, typer.Option(help="i,j,k: three rows of --data as anchors.")]
MarginOption = Annotated[float, typer.Option(help="Half-width of the square domain / largest anchor radius.")]
OriginOption = Annotated[Path | None, typer.Option(help="File with the plane's origin (one input).")]
AnchorsListOption = Annotated[
    Path | None,
    typer.Option(
        help="Many planes: a .npy/.npz/.h5/.pt array x of shape [planes, 3, ...], three inputs per plane.",
        show_default=False,
    ),
]
AnchorIndexListOption = Annotated[
    Path | None,
    typer.Option(
        help="Many planes: a text file with one plane per line, three rows of --data "
        "(i,j,k or i j k; # starts a comment).",
        show_default=False,
    ),
]
DirectionsOption = Annotated[Path | None, typer.Option(help="File with the plane's two directions.")]

# the options that place planes, in the order --help lists them: (type, default)
PLANE_OPTIONS = {
    "bounds": (BoundsOption, None),
    "anchors": (AnchorsOption, None),
    "anchor_index": (AnchorIndexOption, None),
    "anchors_list": (AnchorsListOption, None),
    "anchor_index_list": (AnchorIndexListOption, None),
    "margin": (MarginOption, 1.25),
    "origin": (OriginOption, None),
    "directions": (DirectionsOption, None),
}
# `bounds` means more than a plane to some commands: each declares its own
ONE_PLANE = ("anchors", "anchor_index", "margin", "origin", "directions")


def with_plane(*names: str) -> Callable[[Callable], Callable]:
    """Give a command the plane options `names` (see `with_options`)."""
    return with_options(PLANE_OPTIONS, *names)


def plane_options(ctx: typer.Context) -> PlaneOptions:
    """Where the command's planes lie, from its options."""
    from splinetool.analyses.plane import PlaneOptions

    return PlaneOptions(**{f.name: ctx.params[f.name] for f in fields(PlaneOptions) if f.name in ctx.params})
