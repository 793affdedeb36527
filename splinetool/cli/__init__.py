"""The `splinetool` command line: a thin Typer shell over the analyses."""

from __future__ import annotations

import signal
import sys

import typer
from typer.core import TyperArgument, TyperCommand

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
from splinetool.errors import Stopped
from splinetool.io.atomic import request_stop, stop_requested

app = typer.Typer(
    name="splinetool",
    help="Measure the affine-spline geometry of saved PyTorch networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain text help: help texts are text, not rich markup (which would swallow `[N, D]`); paragraphs
    # are wrapped once, to the terminal; and the rich help renderer is not imported at every start
    rich_markup_mode=None,
)


class Command(TyperCommand):
    """A splinetool command: its help names arguments as click does (CHECKPOINT, [CHECKPOINT],
    CHECKPOINTS...), and once its options are read it makes the process-wide choices a run needs."""

    def invoke(self, ctx: typer.Context) -> object:
        # here rather than in `main`: it imports torch, which --help and a usage error never need
        from splinetool.engine.memory import keep_freed_memory

        keep_freed_memory()
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        arguments = [param for param in self.get_params(ctx) if isinstance(param, TyperArgument)]
        return [self.options_metavar, *(usage_name(argument) for argument in arguments)]

    def format_options(self, ctx: typer.Context, formatter) -> None:
        """Typer's sections, with each argument under its usage name rather than its Python type."""
        records = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                records["Arguments"].append((usage_name(param, bracketed=False), record[1]))
            else:
                records["Options"].append(record)
        for section, rows in records.items():
            if rows:
                with formatter.section(section):
                    formatter.write_dl(rows)


def usage_name(argument: TyperArgument, bracketed: bool = True) -> str:
    """CHECKPOINT for a required argument, [CHECKPOINT] for an optional one, CHECKPOINTS... for many."""
    name = argument.metavar or argument.name.upper()
    if bracketed and not argument.required:
        name = f"[{name}]"
    return name + ("..." if argument.nargs != 1 else "")


COMMANDS = {
    "info": info.command,
    "slice": slice.command,
    "count-regions": count_regions.command,
    "local-complexity": local_complexity.command,
    "bn-density": bn_density.command,
    "condition": condition.command,
    "debias-sample": debias_sample.command,
    "merge": merge.command,
}
for name, command in COMMANDS.items():
    # the docstring's first paragraph, whole: click would cut it at 45 characters in the list
    first = " ".join(command.__doc__.split("\n\n")[0].split())
    app.command(name, cls=Command, short_help=first)(command)


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


def _quiet_stops(unraisable) -> None:
    """`sys.unraisablehook` that says nothing of a stop raised inside a finaliser (a signal that
    arrived during a weak-reference callback or a __del__): Python swallows that exception and prints
    its traceback, while the stop itself still happens (`request_stop`). Anything else is reported as
    Python would."""
    if isinstance(unraisable.exc_value, Stopped):
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    sys.unraisablehook = _quiet_stops
    for caught in STOP_SIGNALS:
        signal.signal(caught, _stop)
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
