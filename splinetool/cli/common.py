"""What every command shares: option types, config files, device/dtype choice, error reporting."""

from __future__ import annotations

import contextlib
import functools
import glob
import inspect
import json
import os
import re
import sys
import tomllib
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from splinetool.errors import SplinetoolError, UsageError, is_out_of_memory
from splinetool.io.atomic import check_outputs as io_check_outputs

# the library (torch, numpy, h5py, matplotlib) is imported where a command runs, never at the top of
# a command-line module: --help and usage errors then answer without loading it
if TYPE_CHECKING:
    import torch

    from splinetool.data.loading import Dataset

stderr = Console(stderr=True)
# the width results are printed at when stdout is a file or a pipe: each table as wide as it needs
PIPED_WIDTH = 100_000

# trust in a checkpoint comes from the command line or this variable, never from a --config file
TRUST_ENVIRONMENT = "SPLINETOOL_TRUST_CHECKPOINT"
# options a --config file may not set: they run code from a file, or name the files that would
CODE_OPTIONS = {"trust_checkpoint", "checkpoint", "checkpoints"}
# text options that take a file or a name (a family, a built-in data set): a file beside the config wins
FILE_OR_NAME_OPTIONS = {"arch", "data"}


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Make a TOML file's values the defaults of this command's options (the command line wins).

    Paths in the file are relative to the file's folder, so that a config works from any directory:
    every value of a path option, and a text value (--arch, --data: a file or a name) where it names
    a file there.
    """
    if value is None:
        return value
    from splinetool.frontends.factories import imports_code

    try:
        table = tomllib.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise typer.BadParameter(f"{value}: cannot read as TOML ({err})", ctx, param) from None
    known = {p.name for p in ctx.command.params if p.name and p.name != "config"}
    paths = _path_options(ctx)
    defaults = {}
    for key, item in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise typer.BadParameter(
                f"{value}: unknown key {key!r}; this command's options are {', '.join(sorted(known))}",
                ctx,
                param,
            )
        if name in CODE_OPTIONS or (name == "arch" and isinstance(item, str) and imports_code(item)):
            raise typer.BadParameter(
                f"{value}: {key} = {item!r} may not come from a config file: checkpoints, trust and "
                f"architectures that import code are given on the command line (or {TRUST_ENVIRONMENT}=1 "
                "for trust)",
                ctx,
                param,
            )
        if name in paths or name in FILE_OR_NAME_OPTIONS:
            defaults[name] = _beside(value, item, always=name in paths)
        else:
            defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _path_options(ctx: typer.Context) -> set[str]:
    """The command's options whose values are paths: typed Path (or a list of paths) in its signature."""

    def names_paths(annotation: object) -> bool:
        return annotation is Path or any(names_paths(arg) for arg in typing.get_args(annotation))

    signature = inspect.signature(ctx.command.callback, eval_str=True)
    return {name for name, parameter in signature.parameters.items() if names_paths(parameter.annotation)}


def paths_as_paths(ctx: typer.Context) -> set[str]:
    """Hold the context's path options as `Path`s, as the signature types them (some Typer versions
    leave the command line's strings there); returns their names."""
    paths = _path_options(ctx)
    ctx.params.update({name: _as_paths(v) for name, v in ctx.params.items() if name in paths})
    return paths


def _as_paths(value: object) -> object:
    if isinstance(value, str):
        return Path(value)
    if isinstance(value, list | tuple):
        return type(value)(Path(item) if isinstance(item, str) else item for item in value)
    return value


def _beside(config: Path, item: object, always: bool) -> object:
    """A config file's relative path `item` as a path from the current directory: resolved against the
    config's folder `always`, or else only where it names a file there."""
    if isinstance(item, list):
        return [_beside(config, one, always) for one in item]
    if not isinstance(item, str) or not item or Path(item).is_absolute():
        return item
    there = config.parent / item
    # normalised: configs/bn-density/../arch/x.toml is configs/arch/x.toml, as a user would name it
    return os.path.normpath(there) if always or there.is_file() else item


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file whose keys set this command's option defaults; the command line wins.",
        is_eager=True,
        callback=_load_config,
        dir_okay=False,
    ),
]
ArchOption = Annotated[
    str | None,
    typer.Option(
        help="Architecture for a state-dict checkpoint: a TOML file (configs/arch/*.toml), a built-in "
        "family with options such as 'mlp{widths=[20,20], outputs=1, input_shape=[2]}', "
        "or package.module:factory, with literal keyword arguments if it takes any: "
        "'torchvision.models:resnet18(num_classes=10)'."
    ),
]
InputShapeOption = Annotated[
    str | None,
    typer.Option(
        help="Per-sample input shape, e.g. 64 or 1,8,8 (when neither the checkpoint, its first Linear "
        "layer nor --data tells it)."
    ),
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        envvar=TRUST_ENVIRONMENT,
        help="Allow checkpoints whose loading runs code from the file: a pickled whole module, a .pt2 "
        "with pickled payloads, a TorchScript class with __setstate__. Never read from --config.",
    ),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DtypeOption = Annotated[str, typer.Option(help="float64 (default, for exact geometry) or float32.")]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SeedOption = Annotated[int, typer.Option(help="Seed for every random choice.", min=INT64_MIN, max=INT64_MAX)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print only the result as JSON on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the results to this HDF5 file.")
]
PngOption = Annotated[Path | None, typer.Option(help="Draw the result to this PNG file.")]
SvgOption = Annotated[Path | None, typer.Option(help="Draw the result to this SVG file.")]
ShardOption = Annotated[
    str | None,
    typer.Option(
        help="i/n: compute only share i (counted from 0) of n and write it to -o as a shard file, for "
        "job arrays; `splinetool merge` joins the n shard files.",
        show_default=False,
    ),
]


# every shared option: (its type, its default), in the order --help lists them after a command's own
SHARED_OPTIONS = {
    "arch": (ArchOption, None),
    "input_shape": (InputShapeOption, None),
    "trust_checkpoint": (TrustOption, False),
    "device": (DeviceOption, "auto"),
    "dtype": (DtypeOption, "float64"),
    "seed": (SeedOption, 0),
    "shard": (ShardOption, None),
    "output": (OutputOption, None),
    "png": (PngOption, None),
    "svg": (SvgOption, None),
    "json": (JsonOption, False),
    "quiet": (QuietOption, False),
    "config": (ConfigOption, None),
}
MODEL = ("arch", "input_shape", "trust_checkpoint", "device", "dtype", "seed")
OUTPUTS = ("output", "png", "svg", "json", "quiet", "config")


def with_options(table: dict[str, tuple[object, object]], *names: str) -> Callable[[Callable], Callable]:
    """Give a command the options `names` of `table` (name -> (type, default)) after its own: Typer
    reads them from the signature, and the body reads them from the context (`Shared.of(ctx)`,
    `plane_options(ctx)`), so that no command declares them again."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
            for name, (kind, default) in table.items()
            if name in names
        ]

        @functools.wraps(command)
        def run(*args, **kwargs):
            ctx = kwargs.get("ctx", args[0] if args else None)  # every command's first parameter
            if ctx is not None:
                paths = paths_as_paths(ctx)
                kwargs.update({n: _as_paths(v) for n, v in kwargs.items() if n in paths})
            for name in names:
                kwargs.pop(name, None)
            return command(*args, **kwargs)

        run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])
        return run

    return decorate


def with_shared(*names: str) -> Callable[[Callable], Callable]:
    return with_options(SHARED_OPTIONS, *names)


def _input_files(ctx: typer.Context, outputs: set[str]) -> list[tuple[str, Path]]:
    """(option, path) for every existing file the command's parameters but `outputs` name, globs
    expanded."""
    found = []
    for param in ctx.command.params:
        if outputs.intersection(param.opts):
            continue
        value = ctx.params.get(param.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        option = param.opts[0] if param.opts else param.name
        for item in values:
            if not isinstance(item, (str, Path)) or not str(item):
                continue
            names = glob.glob(str(item)) if glob.has_magic(str(item)) else [str(item)]
            found += [(option, Path(name)) for name in names if Path(name).is_file()]
    return found


@contextlib.contextmanager
def progress_bar(quiet: bool, label: str, unit: str) -> Iterator[Callable[..., None] | None]:
    """A rich progress bar on stderr (None with --quiet): report(done, total, note="")."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit + " {task.fields[note]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None, note="")

        def report(done: int, total: int, note: str = "") -> None:
            bar.update(task, completed=done, total=total, note=note)

        yield report


@contextlib.contextmanager
def reported_errors(ctx: typer.Context | None = None) -> Iterator[None]:
    """Turn library errors into a one-paragraph message on stderr and the error's exit code.

    With the command's context, integer options beyond 64 bits are refused first (see
    `check_integers`). Under torchrun every rank fails alike (bad options fail everywhere; a failed
    share fails every rank through parallel.run_shared), and rank 0 alone says why.
    """
    try:
        if ctx is not None:
            check_integers(ctx)
        yield
    except SplinetoolError as err:
        from splinetool.parallel import is_leader

        if is_leader():
            message = in_flags(str(err), ctx)
            stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(err.exit_code) from None
    except (MemoryError, RuntimeError) as err:
        # the engines size their work to the memory they may use; an allocation can still fail
        # where that estimate is off (another process took the memory, a limit it cannot read)
        if not is_out_of_memory(err):
            raise
        from splinetool.parallel import is_leader

        if is_leader():
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            stderr.print(
                f"[bold red]error:[/] ran out of memory ({escape(first)}); make the work smaller (a smaller "
                "plane or --max-regions, fewer points or a smaller --batch-size) or give the job more memory",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(2) from None


def check_integers(ctx: typer.Context) -> None:
    """Refuse integer options outside int64: numpy and torch take counts and sizes as 64-bit integers
    and fail with errors of their own (or an object array) on larger ones. Typer bounds none by default."""
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            option = param.opts[0] if param.opts else param.name
            raise UsageError(f"{option} {value}: expected an integer between {INT64_MIN} and {INT64_MAX}")


def load_dataset(data: str | None, split: str | None, seed: int) -> Dataset | None:
    """The --data points, or None without --data (when a --split would have nothing to pick from)."""
    from splinetool.data.loading import load_data

    if data is None:
        if split is not None:
            raise UsageError(f"--split {split!r} picks a part of a --data file: give --data too")
        return None
    return load_data(data, split=split, seed=seed)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    import torch

    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# library parameters whose command-line option has another name
FLAG_OF_PARAMETER = {
    "trust": "--trust-checkpoint",
    "verify_samples": "--verify",
    "segments": "--tessellation",
    # shard files are written by commands run with --shard; `merge`, which reads them, has no such option
    "shard": "--shard",
}
PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def in_flags(message: str, ctx: typer.Context | None) -> str:
    """A library message in the words of the command line: each `parameter` (the library writes
    parameter names in backticks) becomes the option that sets it, e.g. `relative_radius` becomes
    --relative-radius. Names that are no option of this command keep their backticks."""
    options = {}
    if ctx is not None:
        for param in ctx.command.params:
            flags = [opt for opt in param.opts if opt.startswith("--")] or list(param.opts)
            if param.name and flags:
                options[param.name] = flags[0]

    def flag(match: re.Match) -> str:
        name = match.group(1)
        return options.get(name) or FLAG_OF_PARAMETER.get(name) or match.group(0)

    return PARAMETER.sub(flag, message)


@dataclass
class Shared:
    """The options every command shares, read once from the command line.

    Commands declare them with the option types above; `Shared.of(ctx)` packs whichever of them the
    command has (absent ones keep these defaults), so that a command's body passes one object on.
    """

    ctx: typer.Context
    arch: str | None = None
    input_shape: str | None = None
    trust_checkpoint: bool = False
    device: str = "auto"
    dtype: str = "float64"
    seed: int = 0
    shard: str | None = None
    output: Path | None = None
    png: Path | None = None
    svg: Path | None = None
    json: bool = False
    quiet: bool = False

    @classmethod
    def of(cls, ctx: typer.Context) -> Shared:
        names = cls.__dataclass_fields__.keys() - {"ctx"}
        paths_as_paths(ctx)
        return cls(ctx, **{name: ctx.params[name] for name in names if name in ctx.params})

    @property
    def where(self) -> torch.device:
        from splinetool import parsing

        return parsing.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        from splinetool import parsing

        return parsing.dtype(self.dtype)

    @property
    def figures(self) -> list[Path]:
        return [path for path in (self.png, self.svg) if path is not None]

    def check_outputs(self, figures: dict[str, Path | None] | None = None) -> None:
        """Refuse unwritable or unsafe outputs before the work (see io.atomic.check_outputs), among
        them any of the command's input files. `figures`: other picture options (flag -> path) that
        take either a .png or an .svg file."""
        outputs = [("-o", self.output, None), ("--png", self.png, (".png",)), ("--svg", self.svg, (".svg",))]
        outputs += [(option, path, (".png", ".svg")) for option, path in (figures or {}).items()]
        inputs = _input_files(self.ctx, {"--output", *(option for option, _, _ in outputs)})
        io_check_outputs(outputs, inputs)

    def open(self, checkpoint: Path):
        """The LoadedModel of one checkpoint, not lowered (for commands that lower it themselves).
        Where neither the file, the architecture nor a first Linear layer gives the input shape, the
        command's --data points give it."""
        from dataclasses import replace

        from splinetool import parsing
        from splinetool.frontends.loading import load_model

        shape = parsing.shape(self.input_shape)
        loaded = load_model(checkpoint, arch=self.arch, input_shape=shape, trust=self.trust_checkpoint)
        return loaded if loaded.input_shape is not None else replace(loaded, input_shape=self._data_shape())

    def _data_shape(self) -> tuple[int, ...] | None:
        """One --data point's shape, for commands with that option (from its first --split, where a
        command takes several, comma-separated or repeated)."""
        from splinetool.parsing import names

        data = self.ctx.params.get("data")
        if not isinstance(data, str):
            return None
        splits = names(self.ctx.params.get("split"))
        return tuple(load_dataset(data, splits[0] if splits else None, self.seed).x.shape[1:])

    def load(self, checkpoint: Path):
        """(LoadedModel, PLNet) of one checkpoint, on the chosen device and dtype."""
        from splinetool.ir import lower

        loaded = self.open(checkpoint)
        return loaded, lower(loaded).to(device=self.where, dtype=self.torch_dtype)

    def provenance(self, command: str, checkpoint_sha256: str):
        from splinetool.io import Provenance

        return Provenance(command, sys.argv, checkpoint_sha256, str(self.where), self.seed)


def write_outputs(
    shared: Shared,
    command: str,
    result: object,
    checkpoint_sha256: str,
    figure: Callable[[], object] | None = None,
    title: str | None = None,
) -> None:
    """The run file (-o, the result in the command's group) and the pictures (--png, --svg).

    The picture is `figure()` when given, else the result's registered renderer with `title`.
    """
    if shared.output is not None:
        from splinetool.io import write

        write(shared.output, {command: result}, shared.provenance(command, checkpoint_sha256))
    if shared.figures:
        from splinetool.io.commands import kind_of
        from splinetool.render.slice import save_figure

        drawn = figure() if figure is not None else kind_of(result).drawer()(result, title=title)
        for path in shared.figures:
            save_figure(drawn, path)


def report(shared: Shared, summary: dict, table: Callable[..., None], *args: object) -> None:
    """The result on stdout: its summary as JSON with --json, else `table(stdout, *args)` (one of
    splinetool.render.tables) unless --quiet."""
    if shared.json:
        print_json(summary)
    elif not shared.quiet:
        table(stdout_console(), *args)


def stdout_console() -> Console:
    """The console for results: the terminal's width on a terminal (tables fold their cells to fit
    it); piped or written to a file, wide enough that no line is wrapped or cut for a script to read."""
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
