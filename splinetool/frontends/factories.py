"""Architectures from code: `package.module:factory` or `package.module:factory(key=literal, ...)`.

The module is imported (from the current directory first, as `python -c` would find it) and the
factory called with the keyword arguments. The arguments are parsed with `ast`, each value with
`ast.literal_eval`: numbers, strings, booleans, None, and lists, tuples, sets and dicts of them. Nothing
in the specification itself is evaluated as code.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from splinetool.errors import UsageError

if TYPE_CHECKING:
    import torch

FACTORY = re.compile(r"\s*(?P<module>[A-Za-z_][\w.]*):(?P<name>[A-Za-z_]\w*)\s*(?P<call>\(.*)?\s*", re.DOTALL)


def is_factory(spec: str) -> bool:
    """Whether an `arch` has the form of a package.module:factory, with or without arguments."""
    return FACTORY.fullmatch(spec) is not None


def imports_code(spec: str) -> bool:
    """Whether an `arch` names a package.module:factory, which is imported and called (read before
    any command runs, to refuse one in a config file: this module imports no torch until a call)."""
    is_file = spec.endswith(".toml") or Path(spec).is_file()
    return not is_file and is_factory(spec)


def factory_arguments(spec: str) -> dict[str, object]:
    """The keyword arguments written after the factory's name, parsed without evaluating code."""
    match = FACTORY.fullmatch(spec)
    if match is None or match["call"] is None:
        return {}
    try:
        call = ast.parse(f"factory{match['call']}", mode="eval").body
    except SyntaxError as err:
        raise UsageError(f"`arch` {spec}: the arguments are not a call's argument list ({err.msg})") from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise UsageError(
            f"`arch` {spec}: give the factory's arguments by keyword, as key=value, e.g. "
            "torchvision.models:resnet18(num_classes=10)"
        )
    arguments = {}
    for keyword in call.keywords:
        try:
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise UsageError(
                f"`arch` {spec}: {keyword.arg}={ast.unparse(keyword.value)} is not a literal; arguments "
                "may be numbers, strings, True/False/None, and lists, tuples and dicts of them"
            ) from None
    return arguments


@contextlib.contextmanager
def importable_from_cwd() -> Iterator[None]:
    """Let imports find modules in the current directory, as `python` run there would, for as long
    as the block runs: a factory's module, or the class of a trusted pickled module."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def call_factory(spec: str) -> torch.nn.Module:
    """Import a factory's module and call it with the specification's keyword arguments."""
    import torch

    match = FACTORY.fullmatch(spec)
    if match is None:
        raise UsageError(f"`arch` {spec}: expected package.module:factory, optionally with (key=value, ...)")
    module_name, attr = match["module"], match["name"]
    arguments = factory_arguments(spec)
    try:
        with importable_from_cwd():
            factory = getattr(importlib.import_module(module_name), attr)
    except SyntaxError as err:  # IndentationError too: the file and line say where
        raise UsageError(
            f"`arch` {spec}: {err.filename}, line {err.lineno}: {type(err).__name__}: {err.msg}"
        ) from None
    except (ImportError, AttributeError) as err:
        raise UsageError(f"`arch` {spec}: cannot import {attr} from {module_name} ({err})") from None
    except (Exception, SystemExit) as err:  # user code run by the import: report it, do not crash
        raise UsageError(f"`arch` {spec}: importing {module_name} raised {raised(err)}") from None
    try:
        model = factory(**arguments)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - user code: report it, do not crash
        raise UsageError(f"`arch` {spec}: the factory raised {raised(err)}") from None
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"`arch` {spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def raised(err: BaseException) -> str:
    """An exception from user code in one line: its type, message and the line that raised it."""
    ours = ("<frozen", __file__)  # the import machinery and the call into user code
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(ours)]
    where = f" at {frames[-1].filename}, line {frames[-1].lineno}" if frames else ""
    what = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return what + where
