"""What an op handler sees while a graph is lowered: its resolved arguments and a way to add steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from splinetool.ir.bound import Bound, Slot
from splinetool.ir.pl import PLKind
from splinetool.ir.step import Step


@dataclass(frozen=True)
class Dyn:
    """A value that depends on the network input: index into the PLNet's value table."""

    index: int
    example: torch.Tensor
    tuple_result: bool = False  # produced by an op that really returns (result, extras...)


class NotLowerable(Exception):
    """Raised by a handler: this use of the op is not piecewise-linear (the message says why)."""


class LoweringContext:
    def __init__(self, example_input: torch.Tensor):
        self.batch = example_input.shape[0]
        self.steps: list[Step] = []
        self.input = Dyn(0, example_input)
        self.name = ""
        self.op = ""
        self._examples: dict[int, torch.Tensor] = {0: example_input}

    def add(
        self,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict | None = None,
        *,
        pl: PLKind | None = None,
        pick: int | None = None,
        output_only: bool = False,
    ) -> Dyn:
        """Append a step computing `fn(*args, **kwargs)`, where `Dyn` arguments become inputs."""
        inputs: list[int] = []

        def slot(value: Any) -> Any:
            if isinstance(value, Dyn):
                inputs.append(value.index)
                return Slot(len(inputs) - 1)
            if isinstance(value, (list, tuple)):
                return type(value)(slot(v) for v in value)
            return value

        call = Bound(fn, slot(tuple(args)), {k: slot(v) for k, v in (kwargs or {}).items()}, pick)
        examples = [self._examples[i] for i in inputs]
        out = call(*examples)
        if not isinstance(out, torch.Tensor):
            raise NotLowerable("does not return a single tensor")
        if out.dim() == 0 or out.shape[0] != self.batch:
            raise NotLowerable("mixes samples of the batch (its result does not keep the batch dimension)")
        step = Step(self.name, self.op, tuple(inputs), call, tuple(out.shape[1:]), pl, output_only)
        self.steps.append(step)
        self._examples[len(self.steps)] = out
        return Dyn(len(self.steps), out, tuple_result=pick is not None)


def is_dyn(value: Any) -> bool:
    if isinstance(value, Dyn):
        return True
    if isinstance(value, (list, tuple)):
        return any(is_dyn(v) for v in value)
    return False


def dyn_positions(args: tuple) -> list[int]:
    return [i for i, a in enumerate(args) if is_dyn(a)]


def require_dynamic_only_at(args: tuple, allowed: set[int], what: str) -> None:
    """Affine in one operand only: the others must be constants (weights, biases, statistics)."""
    bad = [i for i in dyn_positions(args) if i not in allowed]
    if bad:
        raise NotLowerable(f"{what} of two network values is not affine")
