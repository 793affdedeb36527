"""Per-point Jacobians of a PLNet, batched with torch.func and chunked to fit memory.

On each tile the network is affine, so its Jacobian there is the tile's slope matrix A_ω. One
Jacobian-vector product per input direction (forward mode) or one vector-Jacobian product per output
direction (reverse mode) gives all of A_ω; `torch.func.vmap` runs those products for every direction
in one batched pass, and a batch of points shares each pass because the rows are independent.
"""

from __future__ import annotations

import math

import torch

from splinetool.ir import PLNet

MODES = ("forward", "reverse")
MEMORY_BUDGET = 256 * 2**20  # bytes of activations one chunk may hold
# rows = points × directions; on a CPU, about 8,000 rows per pass ran fastest (bench/README.md)
CPU_BATCH_ROWS = 8192


def cheaper_mode(input_dim: int, output_dim: int) -> str:
    """Forward mode costs one product per input direction, reverse mode one per output direction."""
    return "forward" if input_dim <= output_dim else "reverse"


def jacobians(net: PLNet, x: torch.Tensor, projection: torch.Tensor | None = None) -> torch.Tensor:
    """[B, k, d]: the Jacobian of `projection @ net` at each point of x [B, d] (flattened input).

    `projection` is a [k, D] matrix applied to the flattened output (None: the identity, k = D). The
    mode is whichever needs fewer products: d (forward) or k (reverse).
    """
    x = x.reshape(x.shape[0], -1).to(device=net.device, dtype=net.dtype)
    if projection is not None:
        projection = projection.to(device=net.device, dtype=net.dtype)
    out_dim = net.output_dim if projection is None else projection.shape[0]

    def flat(z: torch.Tensor) -> torch.Tensor:
        return net(z).reshape(z.shape[0], -1)

    if cheaper_mode(net.input_dim, out_dim) == "forward":
        basis = torch.eye(net.input_dim, dtype=x.dtype, device=x.device)[:, None, :].expand(-1, len(x), -1)
        columns = torch.func.vmap(lambda t: torch.func.jvp(flat, (x,), (t,))[1])(basis)  # [d, B, D]
        if projection is not None:
            columns = columns @ projection.T
        return columns.permute(1, 2, 0)
    _, pullback = torch.func.vjp(flat, x)
    directions = (
        torch.eye(net.output_dim, dtype=x.dtype, device=x.device) if projection is None else projection
    )
    rows = torch.func.vmap(lambda v: pullback(v.expand(len(x), -1))[0])(directions)  # [k, B, d]
    return rows.permute(1, 0, 2)


def auto_chunk(net: PLNet, directions: int, budget: int = MEMORY_BUDGET) -> int:
    """Points per chunk so that a chunk's `directions` products fit `budget` (cache-sized on a CPU)."""
    widest = max([net.input_dim, net.output_dim] + [math.prod(s.out_shape) for s in net.steps])
    itemsize = torch.finfo(net.dtype).bits // 8
    # the primal values once per point plus one tangent per direction, about four layers live at once
    per_point = itemsize * 4 * widest * (directions + 1)
    points = budget // per_point
    if net.device.type == "cpu":
        points = min(points, CPU_BATCH_ROWS // directions)
    return max(1, points)
