"""`splinetool info`: the PL nodes a checkpoint lowers to, and a check that the lowering is faithful."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from splinetool.cli.common import (
    MODEL,
    Shared,
    report,
    reported_errors,
    with_shared,
)


@with_shared(*MODEL, "json", "quiet", "config")
def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Argument(help="TorchScript archive, .pt2 export, or state dict (.pt, .ckpt, .safetensors)."),
    ],
    samples: Annotated[int, typer.Option(help="Random inputs used to check the lowering.", min=1)] = 8,
) -> None:
    """Load and lower a checkpoint; list its piecewise-linear nodes and check the lowering."""
    from splinetool.analyses import info as analysis
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        options = analysis.InfoOptions(shared.where, shared.torch_dtype, shared.seed, samples)
        result = analysis.run(shared.open(checkpoint), options)
    report(shared, result.summary(), tables.print_info, result)
    if not result.passed:
        raise typer.Exit(1)
