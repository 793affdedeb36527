"""Errors the library raises for the CLI to turn into exit codes.

The library never prints or exits; every user-facing failure is one of these, carrying the
exit code the CLI should use and a message written for the person at the shell.
"""


class SplinetoolError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code = 2


class UsageError(SplinetoolError):
    """Bad input: a missing or malformed file, a wrong option value, a shape mismatch."""

    exit_code = 2


class CheckpointError(UsageError):
    """A checkpoint that cannot be opened as asked (format, keys, architecture)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run arbitrary code when unpickled."""


class Stopped(BaseException):
    """A SIGINT or SIGTERM turned into an exception, so that every `finally` (the removal of temporary
    output files among them) runs before the process exits. A BaseException, like KeyboardInterrupt,
    so that no `except Exception` mistakes it for a failure to report."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class UnsupportedModelError(SplinetoolError):
    """A model containing operations that are not piecewise-linear (or not supported yet)."""

    exit_code = 3

    def __init__(self, unsupported: list[tuple[str, str, str]], supported: list[str]):
        self.unsupported = unsupported
        self.supported = supported
        lines = [f"  {name}: {op} ({why})" if why else f"  {name}: {op}" for name, op, why in unsupported]
        super().__init__(
            f"the model has {len(unsupported)} unsupported operation(s):\n"
            + "\n".join(lines)
            + "\nsupported operations: "
            + ", ".join(sorted(supported))
        )


# what torch's allocators say when an allocation fails (CPU, CUDA)
OUT_OF_MEMORY_MESSAGES = ("can't allocate memory", "out of memory")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether an exception is an allocation that failed: MemoryError, or torch's RuntimeError."""
    if isinstance(err, MemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err) for m in OUT_OF_MEMORY_MESSAGES)
