"""Exact local counts: the tiles of the network that meet a disc around a point, on 2-D planes through it.

The vertex proxy of `local-complexity` counts the neurons whose boundary separates two vertices of a
cross-polytope around x. The exact count it stands for is the number of linear regions near x. On a
2-D plane through x (orthonormal directions, so plane coordinates are input units) the planar engine
partitions the square [-r, r]^2 exactly, and the regions near x are the tiles meeting the disc of
radius r around x: a convex tile meets it when the centre lies inside the tile or the tile's boundary
comes within r of the centre.

The planes are partitioned `PLANES_AT_ONCE` at a time in one sweep of the engine (`Sweep` with
several origins, each vertex tagged with its plane): a plane of an MLP holds a few dozen tiles, and
one sweep per plane spent its time issuing the same rounds of tensor operations for each. (Planes of
image networks hold thousands of tiles each; for them the batching neither gains nor costs.)
"""

from __future__ import annotations

import numpy as np
import torch

from splinetool.engine.planar import Sweep
from splinetool.ir import PLNet

PLANES_AT_ONCE = 256


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


def exact_counts(net: PLNet, x: torch.Tensor, planes: torch.Tensor, radius: float) -> tuple[np.ndarray, int]:
    """([n, K] tiles meeting the disc of `radius` around each point of x [n, D] on each of its planes
    `planes` [n, K, 2, D] (orthonormal rows), the tiles partitioned in all, in squares around the discs)."""
    n, k = planes.shape[:2]
    origins = x.reshape(n, 1, -1).expand(n, k, -1).reshape(n * k, -1)
    directions = planes.reshape(n * k, 2, -1)
    square = radius * torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=net.dtype)
    counts = np.zeros(n * k, dtype=np.int64)
    partitioned = 0
    for first in range(0, n * k, PLANES_AT_ONCE):
        last = min(first + PLANES_AT_ONCE, n * k)
        for part in Sweep(net, origins[first:last], directions[first:last], square, codes=False):
            meeting = tiles_meeting_disc(part.coords, part.verts, radius).cpu().numpy()
            plane = first + part.tile_sheets.cpu().numpy()
            counts += np.bincount(plane, weights=meeting, minlength=n * k).astype(np.int64)
            partitioned += part.verts.shape[0]
    return counts.reshape(n, k), partitioned


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
