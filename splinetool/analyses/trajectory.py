"""A training trajectory: checkpoint files (quoted globs expanded) ordered by their training step."""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path

from splinetool.errors import UsageError
from splinetool.parsing import numbers as parse_numbers


def trajectory(
    checkpoints: Sequence[Path], steps: str | Sequence[int] | None = None
) -> tuple[list[Path], list[int] | None]:
    """The checkpoint files (quoted globs expanded) and their training steps, ordered by step: the
    given `steps` (integers, or comma-separated in a string), or with several checkpoints the step in
    each file name; (files, None) for one checkpoint without steps."""
    paths: list[Path] = []
    for path in map(Path, checkpoints):
        if not path.exists() and glob.has_magic(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path)))
            if not found:
                raise UsageError(f"checkpoint pattern {path}: no file matches it")
            paths += found
        else:
            paths.append(path)
    if steps is not None:
        text = steps if isinstance(steps, str) else ",".join(map(str, steps))
        numbers = list(parse_numbers(text, len(paths), "steps", int))
        if min(numbers) < 0:
            raise UsageError(f"`steps` {text}: training steps count from 0")
    elif len(paths) > 1:
        numbers = [_step_from_name(p) for p in paths]
    else:
        return paths, None
    if len(set(numbers)) != len(numbers):
        raise UsageError(f"two checkpoints have the same training step ({numbers}); give `steps`")
    order = sorted(range(len(paths)), key=numbers.__getitem__)
    return [paths[i] for i in order], [numbers[i] for i in order]


def _step_from_name(path: Path) -> int:
    # the last number before the name's first dot: step-001000.ts.pt -> 1000, run2_epoch12.pt -> 12
    numbers = re.findall(r"\d+", path.name.split(".")[0]) or re.findall(r"\d+", path.name)
    if not numbers:
        raise UsageError(
            f"checkpoint {path}: no training step in its file name (such as step-001000.pt); give `steps`"
        )
    return int(numbers[-1])
