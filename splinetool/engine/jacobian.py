"""Per-point Jacobians of a PLNet, or of a range of its steps, batched with torch.func and chunked.

On each tile the network is affine, so its Jacobian there is the tile's slope matrix A_ω. One
Jacobian-vector product per input direction (forward mode) or one vector-Jacobian product per output
direction (reverse mode) gives all of A_ω; `torch.func.vmap` runs those products for every direction
in one batched pass, and a batch of points shares each pass because the rows are independent.
"""

from __future__ import annotations

import math

import torch

from splinetool.engine.memory import MEMORY_BUDGET, auto_chunk
from splinetool.ir import PLNet

# rows = points × directions; on a CPU, about 8,000 rows per pass ran fastest (bench/README.md)
CPU_BATCH_ROWS = 8192


def cheaper_mode(input_dim: int, output_dim: int) -> str:
    """Forward mode costs one product per input direction, reverse mode one per output direction."""
    return "forward" if input_dim <= output_dim else "reverse"


def jacobians(
    net: PLNet,
    z: torch.Tensor,
    projection: torch.Tensor | None = None,
    start: int = 0,
    stop: int | None = None,
    budget: int = MEMORY_BUDGET,
) -> torch.Tensor:
    """[B, k, d]: the Jacobian of `projection @ f` at each of the B points z, d = z's flattened size.

    f maps value `start` of the network (0: its input; s: the output of steps[s - 1], which must alone
    carry all that later steps read, as a block's input does) to value `stop` (None: the network's
    output), both flattened. `projection` is a [k, D] matrix applied to f's D outputs (None: the
    identity, k = D). The mode is whichever needs fewer products: d (forward) or k (reverse). Points
    go through in chunks whose products fit `budget` bytes.
    """
    shapes = [net.input_shape] + [step.out_shape for step in net.steps]
    out_key, last = (net.output_index, len(net.steps)) if stop is None else (stop, stop)
    z = z.reshape(z.shape[0], -1).to(device=net.device, dtype=net.dtype)
    if projection is not None:
        projection = projection.to(device=net.device, dtype=net.dtype)
    in_dim = z.shape[1]
    out_dim = math.prod(shapes[out_key]) if projection is None else projection.shape[0]

    def flat(v: torch.Tensor) -> torch.Tensor:
        out = net.run_steps({start: v.reshape(v.shape[0], *shapes[start])}, start, last)[out_key]
        return out.reshape(v.shape[0], -1)

    mode = cheaper_mode(in_dim, out_dim)
    chunk = auto_chunk(net, min(in_dim, out_dim), CPU_BATCH_ROWS, budget)
    parts = [_jacobian_chunk(flat, part, projection, mode) for part in z.split(chunk)]
    return torch.cat(parts) if parts else z.new_zeros((0, out_dim, in_dim))


def _jacobian_chunk(flat, z: torch.Tensor, projection: torch.Tensor | None, mode: str) -> torch.Tensor:
    # rows are independent samples, so one product with a basis vector broadcast over the batch gives
    # that column (or row) of every sample's Jacobian
    if mode == "forward":
        basis = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)[:, None, :].expand(-1, len(z), -1)
        columns = torch.func.vmap(lambda t: torch.func.jvp(flat, (z,), (t,))[1])(basis)  # [d, B, D]
        if projection is not None:
            columns = columns @ projection.T
        return columns.permute(1, 2, 0)
    y, pullback = torch.func.vjp(flat, z)
    directions = torch.eye(y.shape[1], dtype=z.dtype, device=z.device) if projection is None else projection
    rows = torch.func.vmap(lambda v: pullback(v.expand(len(z), -1))[0])(directions)  # [k, B, d]
    return rows.permute(1, 0, 2)


def affine_maps(net: PLNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local affine map at each point: f(y) = A y + c on the point's region.

    Returns A [B, outputs, inputs] and c [B, outputs] over flattened inputs and outputs.
    """
    a = jacobians(net, x)
    x = x.reshape(x.shape[0], -1).to(device=net.device, dtype=net.dtype)
    with torch.no_grad():
        y = net(x).reshape(x.shape[0], -1)
    return a, y - torch.einsum("boi,bi->bo", a, x)
