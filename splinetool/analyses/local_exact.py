"""Exact local counts: the tiles of the network that meet a disc around a point, on 2-D planes through it.

The vertex proxy of `local-complexity` counts the neurons whose boundary separates two vertices of a
cross-polytope around x. The exact count it stands for is the number of linear regions near x. On a
2-D plane through x (orthonormal directions, so plane coordinates are input units) the planar engine
partitions the square [-r, r]^2 exactly, and the regions near x are the tiles meeting the disc of
radius r around x: a convex tile meets it when the centre lies inside the tile or the tile's boundary
comes within r of the centre.

The engine partitions one plane per call, so the planes are measured one after another.
"""

from __future__ import annotations

import numpy as np
import torch

from splinetool.engine.planar import Sweep
from splinetool.ir import PLNet

WHOLE_PLANE = 1 << 62  # one group per plane: these squares hold few tiles


def tiles_meeting_disc(coords: torch.Tensor, verts: torch.Tensor, radius: float) -> torch.Tensor:
    """[T] bool: which convex tiles (vertex ids `verts` [T, K], counter-clockwise, -1 padded, into
    `coords` [V, 2]) meet the closed disc of `radius` around the origin."""
    valid = verts >= 0
    corners = valid.sum(dim=1, keepdim=True)
    start = coords[verts.clamp(min=0)]  # [T, K, 2]
    position = torch.arange(verts.shape[1], device=verts.device)[None, :]
    end = start.gather(1, ((position + 1) % corners)[..., None].expand_as(start))
    edge = end - start
    # the point of each edge nearest the centre, and whether the centre is left of every edge
    along = -(start * edge).sum(dim=2) / (edge * edge).sum(dim=2).clamp(min=torch.finfo(coords.dtype).tiny)
    nearest = start + along.clamp(0, 1)[..., None] * edge
    distance2 = torch.where(valid, (nearest * nearest).sum(dim=2), torch.inf)
    left = edge[..., 0] * -start[..., 1] - edge[..., 1] * -start[..., 0] >= 0
    inside = (left | ~valid).all(dim=1)
    return inside | (distance2.min(dim=1).values <= radius * radius)


def count_in_disc(net: PLNet, point: torch.Tensor, plane: torch.Tensor, radius: float) -> tuple[int, int]:
    """(tiles meeting the disc of `radius` around `point` on the plane through it spanned by the
    orthonormal rows of `plane` [2, D], tiles partitioned in the square around the disc)."""
    square = radius * torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=net.dtype)
    meeting = partitioned = 0
    for part in Sweep(net, point, plane, square, budget=WHOLE_PLANE, codes=False):
        meeting += int(tiles_meeting_disc(part.coords, part.verts, radius).sum())
        partitioned += part.verts.shape[0]
    return meeting, partitioned


def exact_counts(net: PLNet, x: torch.Tensor, planes: torch.Tensor, radius: float) -> tuple[np.ndarray, int]:
    """([n, K] tiles meeting the disc around each point of x [n, D] on each of its planes
    `planes` [n, K, 2, D], the tiles partitioned in all)."""
    counts = np.zeros(planes.shape[:2], dtype=np.int64)
    partitioned = 0
    for i, point in enumerate(x):
        for k, plane in enumerate(planes[i]):
            counts[i, k], tiles = count_in_disc(net, point, plane, radius)
            partitioned += tiles
    return counts, partitioned


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    _, first, ties = np.unique(values[order], return_index=True, return_counts=True)
    ranked = np.empty(len(values), dtype=np.float64)
    ranked[order] = np.repeat(first + (ties - 1) / 2, ties)
    return ranked


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); NaN for fewer than two points or a constant side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a) - (len(a) - 1) / 2, ranks(b) - (len(b) - 1) / 2
    norm = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / norm) if norm > 0 else float("nan")
