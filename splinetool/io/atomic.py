"""Write-then-rename, so a crash or an error never leaves a half-written output behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from splinetool.errors import Stopped, UsageError

# signals received (see request_stop): an output is not renamed into place once one has arrived
_stop_requested: list[int] = []


def request_stop(signum: int) -> None:
    """Record that the run must stop: no output is committed after this.

    The signal handler also raises Stopped where the program is; but a handler that runs inside a
    finaliser (a __del__, a weak-reference callback) has its exception printed and swallowed by
    Python, so the commit point checks again.
    """
    _stop_requested.append(signum)


def stop_requested() -> int | None:
    return _stop_requested[0] if _stop_requested else None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: the folder {target.parent} does not exist")
    check_target(target)
    # same folder, so os.replace is a rename within one file system; the caller creates the file,
    # which keeps the usual umask permissions (mkstemp would leave it readable by its owner only)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield temp
        if _stop_requested:
            raise Stopped(_stop_requested[0])
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def check_target(path: Path, option: str | None = None) -> None:
    """Refuse to replace anything at `path` but a regular file.

    The rename replaces whatever is there: a device node, a FIFO, a folder, or a symbolic link (the
    link itself, not the file it points to). Outputs go to new paths or replace regular files only.
    """
    what = f"{option} {path}" if option else f"cannot write {path}"
    if path.is_symlink():
        raise UsageError(
            f"{what}: that is a symbolic link; outputs replace only regular files, so give the path "
            f"it points to ({os.path.realpath(path)}) or a new one"
        )
    if path.is_dir():
        raise UsageError(f"{what}: that is a folder; expected a file name")
    if path.exists() and not path.is_file():
        raise UsageError(
            f"{what}: that is not a regular file (a device, FIFO or socket); outputs replace only "
            "regular files"
        )


def check_outputs(
    outputs: Sequence[tuple[str, Path | None, tuple[str, ...] | None]], inputs: Sequence[tuple[str, Path]]
) -> None:
    """Refuse unwritable or unsafe outputs before the work, so that nothing is written if one fails.

    `outputs`: (name, path or None, the suffixes it may end in or None); `inputs`: (name, path) of
    the files the work reads. An output must be a new path or a regular file (`check_target`), in an
    existing folder, and none of the inputs: writing replaces what is there, and replacing the
    checkpoint being measured is never what was meant.
    """
    for option, path, suffixes in outputs:
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
