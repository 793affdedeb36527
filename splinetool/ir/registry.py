"""Which handler lowers which ATen operation.

Handlers live one op family per module in `splinetool.ir.ops`; each registers the ATen names
(without namespace or overload, e.g. "conv2d", "addmm") it understands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HANDLERS: dict[str, Callable[..., Any]] = {}
FAMILY_OF: dict[str, str] = {}


def handles(family: str, *names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            if name in HANDLERS:
                raise RuntimeError(f"two handlers for {name}")
            HANDLERS[name] = handler
            FAMILY_OF[name] = family
        return handler

    return register


def supported_ops() -> list[str]:
    from splinetool.ir import ops  # noqa: F401  (importing registers every handler)

    return sorted(HANDLERS)
