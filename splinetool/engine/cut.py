"""Cut convex polygons by the zero line of a function that is affine on each of them.

Many tiles are cut at once, each by its own function, given by its values at the tile's corners.
Crossing points on edges whose end values have strictly opposite signs become new vertices: one per
(edge, function), so two tiles that share an edge share the new vertex. Each side keeps its corners
in order. Values within a tolerance of zero count as zero (the zero rule of splinetool/ir/pl.py), so a
line through a vertex, along an edge or on the domain boundary never makes an empty or duplicate tile.
"""

from __future__ import annotations

import torch

from splinetool.engine.store import VertexStore
from splinetool.ir.pl import RELATIVE_TOL, sign_of, zero_tolerance

__all__ = ["RELATIVE_TOL", "crossed", "cut", "sign_of", "unique_first", "zero_tolerance"]


def crossed(signs: torch.Tensor) -> torch.Tensor:
    """Rows (tiles) with corners strictly on both sides; padding corners carry sign 0."""
    return (signs > 0).any(dim=1) & (signs < 0).any(dim=1)


def cut(
    vertices: VertexStore,
    verts: torch.Tensor,
    labels: torch.Tensor,
    values: torch.Tensor,
    signs: torch.Tensor,
    cut_label: int,
    tag: torch.Tensor | None = None,
    sides: tuple[int, ...] = (1, -1),
    created: list | None = None,
    count: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut tiles (rows of vertex ids, -1 padded) by the zero lines of their own affine functions.

    `values` and `signs` are [m, K] per corner. `tag` (one integer per row, e.g. the unit) tells
    which rows share a function, so that they share the vertices created on common edges.
    Returns the pieces (vertex ids, edge labels), each [len(sides), m, width]: side +1 keeps
    values >= 0, side -1 values <= 0. The new edge along the line is labelled `cut_label`. New
    vertices are appended to `vertices` with every field interpolated; with `created`, (their ids,
    the label of the edge each lies on, its row's tag) is appended to that list. `count`: each
    row's corners, where the caller knows them.
    """
    m, width = verts.shape
    count = (verts >= 0).sum(dim=1) if count is None else count
    count = count[:, None]
    k = torch.arange(width, device=verts.device).expand(m, width)
    valid = k < count
    following = (k + 1) % count.clamp(min=1)
    # signs are -1, 0 or +1 (0 at padding): their int8 product is negative exactly across a crossing
    crossing = valid & (signs * signs.gather(1, following) < 0)

    cross_id = torch.full_like(verts, -1)
    # the crossing edges as flat positions: one index, read by `take`, instead of a mask per table
    crossed_at = torch.nonzero(crossing.reshape(-1)).flatten()
    if crossed_at.numel():
        after = crossed_at - crossed_at % width + following.take(crossed_at)
        a, b = verts.take(crossed_at), verts.take(after)
        va, vb = values.take(crossed_at), values.take(after)
        swap = a > b
        lo, hi = torch.where(swap, b, a), torch.where(swap, a, b)
        v_lo, v_hi = torch.where(swap, vb, va), torch.where(swap, va, vb)
        span = vertices.n + 1
        key = lo * span + hi
        row_tag = None if tag is None else tag.take(crossed_at // width)
        if row_tag is not None:
            key = key * (int(tag.max()) + 1) + row_tag
        _, which, first = unique_first(key)
        v_lo, v_hi = v_lo.take(first), v_hi.take(first)
        new = vertices.interpolate(lo.take(first), hi.take(first), v_lo / (v_lo - v_hi))
        if created is not None:
            on_edge = labels.take(crossed_at.take(first))
            created.append((new, on_edge, torch.zeros_like(new) if row_tag is None else row_tag.take(first)))
        cross_id.view(-1).index_copy_(0, crossed_at, new.take(which))

    # interleave corner k (slot 2k) and the crossing on edge k (slot 2k+1); all sides in one pass,
    # as [sides, m, ...] tables: the rounds are many and small, and each operation costs its call
    ids = torch.stack([verts, cross_id], dim=2).reshape(m, 2 * width)
    keep_corner = torch.stack([signs >= 0 if side > 0 else signs <= 0 for side in sides]) & valid
    # the edge leaving a kept point runs along the tile's edge k when the next point is kept too
    # (a crossing is always kept); otherwise points were dropped in between and it runs along
    # the cutting line
    next_corner_kept = keep_corner.gather(2, following.expand_as(keep_corner))
    corner_edge = torch.where(crossing | next_corner_kept, labels, cut_label)
    cross_edge = torch.where(next_corner_kept, labels, cut_label)
    edge = torch.stack([corner_edge, cross_edge], dim=3).reshape(len(sides), m, 2 * width)
    keep = torch.stack([keep_corner, crossing.expand_as(keep_corner)], dim=3).reshape(
        len(sides), m, 2 * width
    )
    rank = torch.cumsum(keep, dim=2) - 1
    out_width = int(rank[..., -1].max()) + 1 if m else 0
    # kept points in order, as flat positions: one index per kept point, no masked copies
    slots = torch.nonzero(keep.reshape(-1)).flatten()
    at = (slots // (2 * width)) * out_width + rank.reshape(-1).take(slots)
    out_ids = torch.full((len(sides), m, out_width), -1, dtype=verts.dtype, device=verts.device)
    out_labels = torch.full_like(out_ids, -1)
    out_ids.view(-1).index_copy_(0, at, ids.reshape(-1).take(slots % (m * 2 * width)))
    out_labels.view(-1).index_copy_(0, at, edge.reshape(-1).take(slots))
    return out_ids, out_labels


def unique_first(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique keys, the index of each element's key, and the first element holding each key."""
    unique, which = torch.unique(key, return_inverse=True)
    first = torch.full((unique.shape[0],), key.shape[0], dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, which, torch.arange(key.shape[0], device=key.device), reduce="amin")
    return unique, which, first
