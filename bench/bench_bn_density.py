"""bn-density on the paper's configuration: seconds, against one forward pass and the per-cell approach.

The configuration of configs/bn-density/paper.toml: an 11 x 1024 ReLU MLP rebuilt three times (zero
bias, random bias, batch-norm), 50 star points, layers 3, 7 and 11, a 256 x 256 grid on [-1.5, 1.5]^2.

- lower: building and lowering the three networks (batch-norm statistics included).
- analysis: `bn_density.run`, everything the command computes (densities, distances, shares).
- forward: one forward pass of each network over the (G + 1)^2 grid corners, up to layer 11, the least
  any grid method must evaluate.
- per cell: the obvious approach at the same grid, each cell's four corners evaluated on their own
  (4 G^2 points, `PLNet.preactivations`), timed on one network and G = 64, then scaled to the three
  networks and G = 256 by the number of points.

    .venv/bin/python bench/bench_bn_density.py [--dtype float32|float64] [--grid 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from splinetool.analyses import bn_density as bd
from splinetool.analyses.plane import input_plane
from splinetool.data.generators import generate
from splinetool.data.loading import Dataset

ARCH = bd.Architecture("mlp", {"input_shape": [2], "outputs": 1, "widths": [1024] * 11})
LAYERS = [3, 7, 11]
BOUNDS = (-1.5, 1.5, -1.5, 1.5)
NAIVE_GRID = 64


def forward(net, plane, grid: int) -> float:
    xe, ye = bd.grid_edges(plane, grid)
    ys, xs = torch.meshgrid(ye, xe, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2).to(net.dtype)
    start = time.perf_counter()
    for chunk in points.split(bd.POINTS_PER_BATCH):
        bd.node_values(net, chunk, [LAYERS[-1] - 1])
    return time.perf_counter() - start


def per_cell(net, plane, grid: int) -> float:
    xe, ye = bd.grid_edges(plane, grid)
    ys, xs = torch.meshgrid(ye, xe, indexing="ij")
    corners = torch.stack([xs, ys], dim=-1).to(net.dtype)
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]
    cells = torch.stack([corners[i : i + grid, j : j + grid] for i, j in offsets], dim=2).reshape(-1, 2)
    start = time.perf_counter()
    for chunk in cells.split(4 * (bd.POINTS_PER_BATCH // 4)):
        pre = net.preactivations(chunk)
        for p in (pre[layer - 1] for layer in LAYERS):
            signs = (p > 0).reshape(-1, 4, p.shape[1])
            (signs != signs[:, :1]).any(dim=1).sum(dim=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--grid", type=int, default=256)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    x, y = generate("star", 50, seed=0)
    plane = input_plane(2, BOUNDS)
    start = time.perf_counter()
    nets = bd.networks(bd.REINITS, torch.as_tensor(x), ARCH, dtype=dtype)
    lowering = time.perf_counter() - start
    start = time.perf_counter()
    result = bd.run(
        nets, plane, Dataset(x, y, "star:50"), bd.BNDensityOptions(layers=tuple(LAYERS), grid=args.grid)
    )
    analysis = time.perf_counter() - start
    cheapest = sum(forward(n.net, plane, args.grid) for n in nets)
    naive = per_cell(nets[0].net, plane, NAIVE_GRID) * len(nets) * (args.grid / NAIVE_GRID) ** 2
    print(f"{args.dtype}, grid {args.grid}, threads {torch.get_num_threads()}")
    print(
        f"{'lower':>8} {'analysis':>9} {'total':>8} {'forward':>8} {'vs fwd':>7} "
        f"{'per cell':>9} {'speedup':>8}"
    )
    print(
        f"{lowering:7.1f}s {analysis:8.1f}s {lowering + analysis:7.1f}s {cheapest:7.1f}s "
        f"{analysis / cheapest:6.2f}x {naive:8.1f}s {naive / analysis:7.2f}x"
    )
    for i, init in enumerate(result.inits):
        shares = ", ".join(f"{s:.3f}" for s in result.share_within_delta[i])
        print(
            f"  {init:<12} share within delta per layer {LAYERS}: {shares}; "
            f"in view {result.boundaries_in_view[i]}"
        )
    assert np.isfinite(result.density).all()


if __name__ == "__main__":
    main()
