"""The `splinetool` command line: a thin Typer shell over the analyses."""

from __future__ import annotations

import typer

from splinetool.cli import (
    bn_density,
    condition,
    count_regions,
    debias_sample,
    info,
    local_complexity,
    merge,
    slice,
)

app = typer.Typer(
    name="splinetool",
    help="Measure the affine-spline geometry of saved PyTorch networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info")(info.command)
app.command("slice")(slice.command)
app.command("count-regions")(count_regions.command)
app.command("local-complexity")(local_complexity.command)
app.command("bn-density")(bn_density.command)
app.command("condition")(condition.command)
app.command("debias-sample")(debias_sample.command)
app.command("merge")(merge.command)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"splinetool {version('splinetool')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Measure the affine-spline geometry of saved PyTorch networks."""


def main() -> None:
    app()
