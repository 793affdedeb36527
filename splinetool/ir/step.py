"""One node of a PLNet: an affine operation, a piecewise-linear activation, or an output transform."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from splinetool.ir.bound import Bound
from splinetool.ir.pl import PLKind


@dataclass(frozen=True)
class Step:
    name: str
    op: str
    inputs: tuple[int, ...]  # indices into the value table: 0 is the network input, k is step k-1's output
    call: Bound
    out_shape: tuple[int, ...]  # per sample
    pl: PLKind | None = None
    output_only: bool = False  # softmax, log-softmax, sigmoid: allowed only as the last steps

    def to(self, device: torch.device | str | None, dtype: torch.dtype | None) -> Step:
        return replace(self, call=self.call.to(device, dtype))


def needed_steps(steps: list[Step], output_index: int) -> list[int]:
    """Indices of the steps that the value `output_index` depends on, in order."""
    needed = {output_index}
    for i in range(len(steps) - 1, -1, -1):
        if i + 1 in needed:
            needed.update(steps[i].inputs)
    return [i for i in range(len(steps)) if i + 1 in needed]
