"""The promise for bad input, checked alike everywhere: exit 2, one message, no traceback, no file."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from splinetool.cli import app

runner = CliRunner()


def refused(*args, names: str, folder: Path | None = None) -> str:
    """Run the CLI and check it refused with one `error:` line naming `names`, leaving nothing new in
    `folder` (the outputs' folder); return that line."""
    before = sorted(os.listdir(folder)) if folder is not None else None
    result = runner.invoke(app, [str(a) for a in args])
    # a traceback escaping the CLI surfaces as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and names in errors[0], result.output
    assert folder is None or sorted(os.listdir(folder)) == before, os.listdir(folder)
    return errors[0]
