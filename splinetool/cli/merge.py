"""`splinetool merge`: join the shard files of a job array into the file one whole run writes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from splinetool.cli.common import JsonOption, QuietOption, Shared, report, reported_errors
from splinetool.errors import UsageError


def command(
    ctx: typer.Context,
    shards: Annotated[
        list[Path],
        typer.Argument(
            help="The shard files (written by COMMAND --shard i/n -o FILE), every share once.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged HDF5 file to write.")],
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check that shard files are the shares of one run and write them as one run file.

    The shards must come from the same command with the same parameters and checkpoint contents, and
    every share 0..n-1 must be given exactly once, and each shard's results must hold exactly the
    items its header declares; otherwise nothing is written and the message says which share is
    missing, duplicated or which file differs in what.
    """
    from splinetool.io.shards import merge
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        if output.resolve() in {s.resolve() for s in shards}:
            raise UsageError(f"-o {output} is one of the shard files: write the merged file elsewhere")
        shared.check_outputs()
        info, results = merge(shards, output, sys.argv)
    counts = {"command": info.command, "shards": info.count, "items": info.total, "output": str(output)}
    summary = counts | {name: result.summary() for name, result in results.items()}
    report(shared, summary, tables.print_merged, info.command, info.count, info.total, output)
