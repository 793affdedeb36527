"""The `splinetool` command line: a thin Typer shell over the analyses."""

from __future__ import annotations

import signal
import sys
import warnings

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
from splinetool.engine.memory import keep_freed_memory
from splinetool.errors import Stopped
from splinetool.io.atomic import request_stop, stop_requested

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


def _stop(signum: int, frame: object) -> None:
    # a second signal must not cut the clean-up of the first short
    for caught in STOP_SIGNALS:
        signal.signal(caught, signal.SIG_IGN)
    request_stop(signum)
    raise Stopped(signum)


# installed even where the shell started the process with SIGINT ignored (a background job): a
# signal sent on purpose stops the run cleanly rather than being lost
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def main() -> None:
    # torch.export's own deprecation notice (torch 2.13), printed for every model it traces: noise
    # about torch's internals that a user can do nothing about
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    for caught in STOP_SIGNALS:
        signal.signal(caught, _stop)
    keep_freed_memory()
    try:
        app()
    except Stopped as stop:
        _stopped(stop.signum)
    except SystemExit:
        if stop_requested() is None:
            raise
    if stop_requested() is not None:  # the handler's exception was swallowed: still stop
        _stopped(stop_requested())


def _stopped(signum: int) -> None:
    name = signal.Signals(signum).name
    sys.stderr.write(f"splinetool: stopped by {name}; unfinished output files were removed\n")
    sys.exit(128 + signum)
