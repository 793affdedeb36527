"""What every command shares: option types, config files, device/dtype choice, error reporting."""

from __future__ import annotations

import contextlib
import glob
import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from splinetool.data.loading import Dataset, load_data
from splinetool.errors import SplinetoolError, UsageError, is_out_of_memory
from splinetool.io.atomic import check_target

stdout = Console()
stderr = Console(stderr=True)

DTYPES = {"float64": torch.float64, "float32": torch.float32}
# trust in a checkpoint comes from the command line or this variable, never from a --config file
TRUST_ENVIRONMENT = "SPLINETOOL_TRUST_CHECKPOINT"
# options a --config file may not set: they run code from a file, or name the files that would
CODE_OPTIONS = {"trust_checkpoint", "checkpoint", "checkpoints"}


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Make a TOML file's values the defaults of this command's options (the command line wins)."""
    from splinetool.frontends.loading import imports_code

    if value is None:
        return value
    try:
        table = tomllib.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise typer.BadParameter(f"{value}: cannot read as TOML ({err})", ctx, param) from None
    known = {p.name for p in ctx.command.params if p.name and p.name != "config"}
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
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


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
        "or package.module:factory."
    ),
]
InputShapeOption = Annotated[
    str | None,
    typer.Option(help="Per-sample input shape, e.g. 64 or 1,8,8 (when the checkpoint does not record it)."),
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


def check_outputs(
    ctx: typer.Context,
    output: Path | None,
    png: Path | None,
    svg: Path | None,
    figures: dict[str, Path | None] | None = None,
) -> None:
    """Refuse unwritable or unsafe outputs before the work, so that nothing is written if one fails.

    An output must be a new path or a regular file, and none of the command's input files: writing
    replaces what is there, and replacing a device, a FIFO, the file a symbolic link stands for or the
    checkpoint being measured is never what was meant. `figures`: other picture options
    (name -> path) that take either a .png or an .svg file.
    """
    checks = [("-o", output, None), ("--png", png, (".png",)), ("--svg", svg, (".svg",))]
    checks += [(option, path, (".png", ".svg")) for option, path in (figures or {}).items()]
    inputs = _input_files(ctx, {"--output", *(option for option, _, _ in checks)})
    for option, path, suffixes in checks:
        if path is None:
            continue
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise UsageError(f"{option} {path}: expected a file name ending in {' or '.join(suffixes)}")
        if not path.parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {path.parent} does not exist")
        check_target(path, option)
        for source, found in inputs:
            if path.exists() and found.exists() and path.samefile(found):
                raise UsageError(
                    f"{option} {path} is also an input of this command ({source} {found}): writing it "
                    "would replace that input; write to another file"
                )


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


def parse_floats(text: str | None, count: int, option: str) -> tuple[float, ...] | None:
    return _parse_list(text, count, option, float, "numbers")


def parse_ints(text: str | None, count: int, option: str) -> tuple[int, ...] | None:
    return _parse_list(text, count, option, int, "integers")


def _parse_list(text: str | None, count: int, option: str, kind: type, noun: str) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(kind(part) for part in text.split(","))
    except ValueError:
        values = ()
    # nan != nan, and inf is no usable bound either
    if len(values) != count or any(v != v or abs(v) == float("inf") for v in values):
        raise UsageError(f"{option} {text!r}: expected {count} {noun} separated by commas")
    return values


def load_net(checkpoint: Path, arch, input_shape, trust: bool, device: str, dtype: str):
    """Open, lower and place a checkpoint: (LoadedModel, PLNet on the chosen device and dtype)."""
    from splinetool.frontends.loading import load_model
    from splinetool.ir import lower

    loaded = load_model(checkpoint, arch=arch, input_shape=parse_shape(input_shape), trust=trust)
    return loaded, lower(loaded).to(device=parse_device(device), dtype=parse_dtype(dtype))


def parse_shape(text: str | None, option: str = "--input-shape") -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise UsageError(f"{option} {text!r}: expected positive integers separated by commas, e.g. 1,8,8")
    return shape


def parse_device(text: str) -> torch.device:
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        from splinetool.parallel import cuda_device

        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) present")
        device = cuda_device(device.index)  # under torchrun: cuda:LOCAL_RANK
    return device


def parse_dtype(text: str) -> torch.dtype:
    if text not in DTYPES:
        raise UsageError(f"--dtype {text!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[text]


@contextlib.contextmanager
def progress_bar(quiet: bool, label: str, unit: str) -> Iterator[Callable[..., None] | None]:
    """A rich progress bar on stderr (None with --quiet): report(done, total, note="")."""
    if quiet:
        yield None
        return
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
    from splinetool.parallel import is_leader

    try:
        if ctx is not None:
            check_integers(ctx)
        yield
    except SplinetoolError as err:
        if is_leader():
            stderr.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(err.exit_code) from None
    except (MemoryError, RuntimeError) as err:
        # the engines size their work to the memory they may use; an allocation can still fail
        # where that estimate is off (another process took the memory, a limit it cannot read)
        if not is_out_of_memory(err):
            raise
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
    if data is None:
        if split is not None:
            raise UsageError(f"--split {split!r} picks a part of a --data file: give --data too")
        return None
    return load_data(data, split=split, seed=seed)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
