"""Which handler lowers which ATen operation, and what each family of operations declares.

Handlers live one op family per module in `splinetool.ir.ops`; each declares its `OpFamily` and
registers the ATen names (without namespace or overload, e.g. "conv2d", "addmm") it understands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


def no_parameters(args: tuple) -> tuple[int, ...]:
    return ()


def tensor_arguments(args: tuple) -> tuple[int, ...]:
    """Every constant tensor argument (weights and biases; network values are slots, not tensors)."""
    return tuple(i for i, a in enumerate(args) if isinstance(a, torch.Tensor))


@dataclass(frozen=True)
class OpFamily:
    """Ops that one handler module lowers alike."""

    name: str
    # positions, among a lowered step's call arguments, of the trained parameters (the layers whose
    # Jacobian `condition` measures); each op must be affine in them
    trained_parameters: Callable[[tuple], tuple[int, ...]] = no_parameters
    # its ops add a PL node (the neurons): node names are matched across file formats by these
    piecewise: bool = False


HANDLERS: dict[str, Callable[..., Any]] = {}
FAMILY_OF: dict[str, OpFamily] = {}


def handles(family: OpFamily, *names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            if name in HANDLERS:
                raise RuntimeError(f"two handlers for {name}")
            HANDLERS[name] = handler
            FAMILY_OF[name] = family
        return handler

    return register


def family_of(op: str) -> OpFamily | None:
    """The family of a lowered step's op (`Step.op`), None for an op no handler knows."""
    from splinetool.ir import ops  # noqa: F401  (importing registers every handler)

    return FAMILY_OF.get(op)


def piecewise_family(op: str) -> OpFamily | None:
    """The family of an ATen op name (in-place `relu_` as `relu`) when its ops add a PL node."""
    from splinetool.ir import ops  # noqa: F401  (importing registers every handler)

    family = FAMILY_OF.get(op) or FAMILY_OF.get(op.removesuffix("_"))
    return family if family is not None and family.piecewise else None


def supported_ops() -> list[str]:
    from splinetool.ir import ops  # noqa: F401  (importing registers every handler)

    return sorted(HANDLERS)
