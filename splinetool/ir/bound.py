"""A call to one operation with its dynamic inputs left open and its constants movable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Slot:
    """Placeholder for the k-th dynamic input of a bound call."""

    k: int


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _fill(value: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
    if isinstance(value, Slot):
        return inputs[value.k]
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, inputs) for v in value)
    return value


class Bound:
    """`fn(*args, **kwargs)` where some arguments are `Slot`s filled at call time.

    Constant tensors live inside the template so that `to()` can move every parameter of the
    network to another device or dtype in one place.
    """

    def __init__(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict | None = None, pick: int | None = None
    ):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.pick = pick  # ops that return (result, statistics...) tuples: keep element `pick`

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.fn(*_fill(self.args, inputs), **_fill_kwargs(self.kwargs, inputs))
        return out[self.pick] if self.pick is not None else out

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Bound:
        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            t = t.detach()
            return t.to(device) if device is not None else t

        return Bound(self.fn, _map_tensors(self.args, move), _map_tensors(self.kwargs, move), self.pick)

    def outline(self) -> tuple:
        """The call with each constant tensor replaced by its shape, dtype and device: equal outlines
        differ only in the values of their constants."""

        def shape(t: torch.Tensor) -> tuple:
            return (tuple(t.shape), t.dtype, t.device)

        return (self.fn, _map_tensors(self.args, shape), _map_tensors(self.kwargs, shape), self.pick)

    def constants(self) -> list[torch.Tensor]:
        found: list[torch.Tensor] = []
        _map_tensors((self.args, self.kwargs), lambda t: found.append(t) or t)
        return found


def _fill_kwargs(kwargs: dict, inputs: tuple[torch.Tensor, ...]) -> dict:
    return {k: _fill(v, inputs) for k, v in kwargs.items()}
