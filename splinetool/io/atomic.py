"""Write-then-rename, so a crash or an error never leaves a half-written output behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from splinetool.errors import UsageError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: the folder {target.parent} does not exist")
    # same folder, so os.replace is a rename within one file system; the caller creates the file,
    # which keeps the usual umask permissions (mkstemp would leave it readable by its owner only)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
