"""Blocks of a PLNet and the singular values of each block's input-output Jacobian at given points.

A block is a layer in the sense of Riedi, Balestriero & Baraniuk: the map from one value that alone
carries everything the rest of the network needs (a cut of the data flow) to the next such value, once
it holds an affine step with parameters followed by a piecewise-linear one; a parameter-free PL step
right after (a pooling) belongs to the same block, and whatever remains at the end (the output layer)
is the last block. Locally a plain block is `D W`, a block with a skip connection `D (S + ...)` or
`x + D W x`: a block has a skip when a value inside it (its input included) feeds two of its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from splinetool.engine.jacobian import jacobians
from splinetool.engine.layer_jacobian import parameter_layers
from splinetool.engine.memory import MEMORY_BUDGET
from splinetool.engine.threads import one_thread
from splinetool.ir import PLNet
from splinetool.ir.lower import unique_name


@dataclass(frozen=True)
class Block:
    name: str
    start: int  # the block reads value `start` (0: the network input, k: step k-1's output)
    stop: int  # and produces value `stop`, running steps[start:stop]
    residual: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    step_names: tuple[str, ...]

    @property
    def in_dim(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_dim(self) -> int:
        return math.prod(self.out_shape)


def find_blocks(net: PLNet) -> list[Block]:
    cuts = {v for v in range(len(net.steps) + 1) if net.live_after(v) == [v]}
    parameterised = {layer.step for layer in parameter_layers(net)}
    bounds, start, seen_parameters, seen_pl = [], 0, False, False
    for i, step in enumerate(net.steps):
        seen_parameters |= i in parameterised
        seen_pl |= seen_parameters and step.pl is not None
        if seen_pl and i + 1 in cuts:
            following = net.steps[i + 1] if i + 1 < len(net.steps) else None
            if following is not None and following.pl is not None and i + 1 not in parameterised:
                continue  # a pooling right after the activation stays in this block
            bounds.append((start, i + 1))
            start, seen_parameters, seen_pl = i + 1, False, False
    if start < len(net.steps):
        if any(i in parameterised for i in range(start, len(net.steps))) or not bounds:
            bounds.append((start, len(net.steps)))
        else:  # parameter-free steps at the end join the last block
            bounds[-1] = (bounds[-1][0], len(net.steps))
    shapes = [net.input_shape] + [s.out_shape for s in net.steps]
    blocks, taken = [], set()
    for start, stop in bounds:
        steps = net.steps[start:stop]
        reads = [j for s in steps for j in s.inputs]
        residual = any(reads.count(v) > 1 for v in set(reads))
        names = [s.name for s in steps]
        name = unique_name(
            _common_prefix(names)
            or _common_prefix([net.steps[i].name for i in range(start, stop) if i in parameterised])
            or f"steps {start}-{stop - 1}",
            taken,
        )
        blocks.append(Block(name, start, stop, residual, shapes[start], shapes[stop], tuple(names)))
    return blocks


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    parts = [n.split(".") for n in names]
    common = []
    for pieces in zip(*parts):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return ".".join(common)


def block_singular_values(
    net: PLNet, blocks: list[Block], x: torch.Tensor, memory: int = MEMORY_BUDGET, progress=None
) -> list[torch.Tensor]:
    """[points, min(in, out)] singular values (descending) of each block's Jacobian at each point."""
    itemsize = torch.finfo(net.dtype).bits // 8
    widest = max(b.in_dim * b.out_dim for b in blocks)
    chunk = max(1, memory // (3 * widest * itemsize))  # the Jacobians, the basis products, the SVD
    found: list[list[torch.Tensor]] = [[] for _ in blocks]
    for begin in range(0, len(x), chunk):
        values = net.input_values(x[begin : begin + chunk])
        at = 0
        with torch.no_grad():
            for b, block in enumerate(blocks):
                values = net.run_steps(values, at, block.start)
                at = block.start
                block_jacobians = jacobians(
                    net, values[block.start], start=block.start, stop=block.stop, budget=memory
                )
                with one_thread():
                    found[b].append(torch.stack([_singular_values(j) for j in block_jacobians]))
        if progress is not None:
            progress(min(begin + chunk, len(x)), len(x))
    return [torch.cat(parts) for parts in found]


def _singular_values(jacobian: torch.Tensor) -> torch.Tensor:
    """Descending singular values; zero rows and columns (units a ReLU turned off) are left out of the
    decomposition, which they only pad with zeros, to cut its cubic cost."""
    rows = jacobian.abs().amax(dim=1) > 0
    columns = jacobian.abs().amax(dim=0) > 0
    values = torch.zeros(min(jacobian.shape), dtype=jacobian.dtype, device=jacobian.device)
    if rows.any() and columns.any():
        found = torch.linalg.svdvals(jacobian[rows][:, columns])
        values[: len(found)] = found
    return values
