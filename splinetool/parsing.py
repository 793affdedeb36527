"""Values written as text, the way options give them: numbers 'a,b,c', shapes, devices, dtypes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from splinetool.errors import UsageError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def numbers(text: str | None, count: int, parameter: str, kind: type = float) -> tuple | None:
    """`count` finite numbers of `kind` separated by commas (None for None); the message names
    `parameter` as the library does (in backticks)."""
    if text is None:
        return None
    try:
        values = tuple(kind(part) for part in text.split(","))
    except ValueError:
        values = ()
    # nan != nan, and inf is no usable bound either
    if len(values) != count or any(v != v or abs(v) == float("inf") for v in values):
        noun = "integers" if kind is int else "numbers"
        raise UsageError(f"`{parameter}` {text!r}: expected {count} {noun} separated by commas")
    return values


def names(texts: str | Sequence[str | None] | None) -> list[str]:
    """The names in one or several comma-separated texts ('train,test', or the same option repeated)."""
    items = [texts] if texts is None or isinstance(texts, str) else texts
    return [name.strip() for item in items if item for name in item.split(",") if name.strip()]


def shape(text: str | None, parameter: str = "input_shape") -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(size <= 0 for size in sizes):
        raise UsageError(
            f"`{parameter}` {text!r}: expected positive integers separated by commas, e.g. 1,8,8"
        )
    return sizes


def device(text: str) -> torch.device:
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        found = torch.device(text)
    except RuntimeError:
        raise UsageError(f"`device` {text!r}: expected auto, cpu, cuda or cuda:N") from None
    if found.type not in ("cpu", "cuda"):
        raise UsageError(f"`device` {text!r}: expected auto, cpu, cuda or cuda:N")
    if found.type == "cuda":
        from splinetool.parallel import cuda_device

        if not torch.cuda.is_available():
            raise UsageError(f"`device` {text}: CUDA is not available on this machine (use `device` cpu)")
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise UsageError(f"`device` {text}: only {torch.cuda.device_count()} CUDA device(s) present")
        found = cuda_device(found.index)  # under torchrun: cuda:LOCAL_RANK
    return found


def dtype(text: str) -> torch.dtype:
    if text not in DTYPES:
        raise UsageError(f"`dtype` {text!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[text]
