"""Exact partition of line segments of input space into the network's linear pieces.

A segment is x(t) = a + t (b - a) for t in [0, 1]. Piecewise-linear nodes are taken in order, for all
segments at once. Before node k every network value is affine on each current piece, so a boundary
unit crosses a piece at most once, where its values at the two ends have strictly opposite signs
(max-pool: where the upper envelope of the window's candidates changes hands). All of a node's
crossings are found on the pieces as they stand before it and inserted together; new points inherit
every live value by interpolation, then every point goes through the affine steps to the next node.

Segments are independent of one another: when a batch holds too many points it is split in two and
each half carries on alone, so memory is bounded by one batch, not by all the pieces of all segments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from splinetool.engine.cut import RELATIVE_TOL, zero_tolerance
from splinetool.engine.store import OutOfMemory, available_memory, lerp
from splinetool.ir import PLNet
from splinetool.ir.pl import ArgmaxKind, SignKind, magnitude, node_scale

SEGMENT_END = -1
BELOW = "below"  # each point's previous node's scale, for the zero rule (splinetool/ir/pl.py)

Progress = Callable[[int, int], None]  # (segments done, segments)

# what each kind of PL node registers here (PLKind.implements): CROSSINGS(batch, pl, pre, scale) ->
# (piece, position in the piece) of every point where the node's boundary crosses a piece
CROSSINGS = "segment crossings"


@dataclass
class SegmentPartition:
    t: torch.Tensor  # [P] parameter of every breakpoint, both ends included, ascending per segment
    offsets: torch.Tensor  # [S + 1]: segment s owns t[offsets[s] : offsets[s + 1]]
    labels: torch.Tensor  # [P] PL node whose boundary made the point (-1: a segment end)
    outputs: torch.Tensor  # [P, outputs] network output at every point
    pieces_per_node: torch.Tensor  # [S, nodes] pieces after the boundaries of nodes 1..k

    @property
    def pieces(self) -> torch.Tensor:
        """[S] number of linear pieces of each segment."""
        return self.offsets.diff() - 1

    def segment_of_point(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self.offsets) - 1), self.offsets.diff().cpu())


@dataclass
class _Batch:
    first: int  # index of its first segment among all segments
    segment: torch.Tensor  # [P] segment of each point, counted from `first`, non-decreasing
    t: torch.Tensor  # [P]
    labels: torch.Tensor  # [P]
    fields: dict[int, torch.Tensor]  # live network values at every point

    @property
    def segments(self) -> int:
        return int(self.segment[-1]) + 1

    @property
    def points(self) -> int:
        return self.t.shape[0]

    def split(self) -> tuple[_Batch, _Batch]:
        half = self.segments // 2
        cut = int(torch.searchsorted(self.segment, torch.tensor(half, device=self.segment.device)))
        left = _Batch(
            self.first, self.segment[:cut], self.t[:cut], self.labels[:cut], _rows(self.fields, slice(0, cut))
        )
        right = _Batch(
            self.first + half,
            self.segment[cut:] - half,
            self.t[cut:],
            self.labels[cut:],
            _rows(self.fields, slice(cut, None)),
        )
        return left, right


def partition_segments(
    net: PLNet,
    starts: torch.Tensor,
    ends: torch.Tensor,
    max_points: int | None = None,
    progress: Progress | None = None,
) -> SegmentPartition:
    """Breakpoints of the network along the segments from starts[s] to ends[s] (flat inputs, [S, D]).

    `max_points` caps the points a batch may hold before it is split (default: from the free memory).
    """
    device, dtype = net.device, net.dtype
    starts = starts.to(device=device, dtype=dtype).reshape(starts.shape[0], -1)
    ends = ends.to(device=device, dtype=dtype).reshape(ends.shape[0], -1)
    n_segments = starts.shape[0]
    nodes = net.pl_nodes
    pieces_per_node = torch.zeros((n_segments, len(nodes)), dtype=torch.long)
    budget = available_memory(device)
    stack = [_initial_batch(net, starts, ends)]
    done: list[_Batch] = []
    finished_segments = 0
    while stack:
        batch, start = stack.pop()
        for index in range(start, len(nodes)):
            batch = _refine(net, batch, index, budget)
            counts = torch.bincount(batch.segment, minlength=batch.segments) - 1
            pieces_per_node[batch.first : batch.first + batch.segments, index] = counts.cpu()
            limit = max_points or _points_allowed(batch, budget)
            if batch.points > limit and batch.segments > 1 and index + 1 < len(nodes):
                left, right = batch.split()
                stack += [(right, index + 1), (left, index + 1)]
                break
        else:
            done.append(batch)
            finished_segments += batch.segments
            if progress is not None:
                progress(finished_segments, n_segments)
    done.sort(key=lambda b: b.first)
    sizes = torch.cat([torch.bincount(b.segment, minlength=b.segments) for b in done]).cpu()
    offsets = torch.zeros(n_segments + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(sizes, 0)
    outputs = torch.cat([b.fields[net.output_index].reshape(b.points, -1) for b in done])
    return SegmentPartition(
        torch.cat([b.t for b in done]),
        offsets,
        torch.cat([b.labels for b in done]),
        outputs,
        pieces_per_node,
    )


def _initial_batch(net: PLNet, starts: torch.Tensor, ends: torch.Tensor) -> tuple[_Batch, int]:
    n = starts.shape[0]
    device = starts.device
    t = torch.tensor([0.0, 1.0], dtype=starts.dtype, device=device).repeat(n)
    segment = torch.arange(n, device=device).repeat_interleave(2)
    x = lerp(starts[segment], ends[segment], t)
    first = net.node_stop(0)
    fields = net.run_steps(net.input_values(x.reshape(2 * n, *net.input_shape)), 0, first)
    fields[BELOW] = magnitude(x)
    labels = torch.full((2 * n,), SEGMENT_END, dtype=torch.long, device=device)
    return _Batch(0, segment, t, labels, fields), 0


def _refine(net: PLNet, batch: _Batch, index: int, budget: int) -> _Batch:
    """Insert node `index`'s breakpoints, then push every point to the next node."""
    node = net.pl_nodes[index]
    pre_key = net.preactivation_key(index)
    pre = batch.fields[pre_key]
    scale = node_scale(pre, batch.fields[BELOW])
    piece, lam = node.pl.implementation(CROSSINGS)(batch, node.pl, pre, scale)
    batch = _insert(batch, piece, lam, index, budget)
    stop = net.node_stop(index + 1)
    live = {key: batch.fields[key] for key in net.live_after(node.step)}
    below = node_scale(batch.fields[pre_key], batch.fields[BELOW])
    batch.fields = net.run_steps(live, node.step, stop) | {BELOW: below}
    return batch


@SignKind.implements(CROSSINGS)
def _unit_crossings(
    batch: _Batch, pl: SignKind, pre: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(piece, position in the piece) of every strict sign change of a boundary unit (`scale`: per point)."""
    values = pl.boundaries(pre)
    units = values.shape[1]
    same = batch.segment[1:] == batch.segment[:-1]
    pieces, positions = [], []
    rows = max(2, (1 << 22) // max(units, 1))
    for lo in range(0, batch.points - 1, rows):
        hi = min(lo + rows, batch.points - 1)
        chunk = values[lo : hi + 1]
        positive, negative = chunk > 0, chunk < 0
        flips = ((positive[:-1] & negative[1:]) | (negative[:-1] & positive[1:])) & same[lo:hi, None]
        piece, unit = torch.nonzero(flips, as_tuple=True)
        pieces.append(lo + piece)
        positions.append(unit)
    piece, unit = torch.cat(pieces), torch.cat(positions)
    before, after = values[piece, unit], values[piece + 1, unit]
    # a sign change with an end that reads zero is a boundary through an existing point
    tol = zero_tolerance(scale)
    clear = (before.abs() > tol[piece]) & (after.abs() > tol[piece + 1])
    before, after = before[clear], after[clear]
    return piece[clear], before / (before - after)


@ArgmaxKind.implements(CROSSINGS)
def _window_crossings(
    batch: _Batch, pl: ArgmaxKind, pre: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(piece, position) of every change of winner in a max-pool window along a piece.

    On a piece each candidate is affine in the position, so the winner follows the upper envelope of
    k lines: from the winner at the start, the next change is where the first steeper line overtakes.
    """
    candidates = pl.candidates(pre)  # [P, windows, k]; -inf padding never wins
    real = torch.isfinite(candidates)
    weak = pl.weak_sides(pre, scale)  # candidates on top at each point, the codes' tie
    weak_start, weak_end = weak[:-1], weak[1:]
    start, end = candidates[:-1], candidates[1:]
    tol = zero_tolerance(torch.maximum(scale[:-1], scale[1:]))  # per piece: its ends' larger
    # a candidate that (weakly) wins at both ends wins all along: its winning set is an interval
    same = batch.segment[1:] == batch.segment[:-1]
    changes = ~(weak_start & weak_end).any(dim=-1) & same[:, None]
    piece, window = torch.nonzero(changes, as_tuple=True)
    a, b = start[piece, window], end[piece, window]  # [m, k]
    slope = torch.where(real[piece, window], b - a, 0)  # padding stays at -inf: never overtakes
    tol = tol[piece]
    winner = torch.where(weak_start[piece, window], slope, -math.inf).argmax(dim=1)
    at = torch.zeros_like(tol)
    active = torch.ones_like(tol, dtype=torch.bool)
    pieces, positions = [], []
    for _ in range(a.shape[1] - 1):
        a_w = a.gather(1, winner[:, None])
        s_w = slope.gather(1, winner[:, None])
        steeper = slope - s_w > tol[:, None]
        overtake = torch.where(steeper, (a_w - a) / (slope - s_w).clamp(min=1e-300), math.inf)
        overtake = torch.maximum(overtake, at[:, None])
        first = overtake.amin(dim=1)
        # among lines meeting there, the steepest wins from then on
        meeting = overtake <= first[:, None] + RELATIVE_TOL.get(a.dtype, 1e-10)
        nxt = torch.where(meeting, slope, -math.inf).argmax(dim=1)
        active &= first < 1
        pieces.append(piece[active])
        positions.append(first[active])
        winner = torch.where(active, nxt, winner)
        at = torch.where(active, first, at)
    if not pieces:
        return piece[:0], a.new_zeros(0)
    return torch.cat(pieces), torch.cat(positions)


def _insert(batch: _Batch, piece: torch.Tensor, lam: torch.Tensor, label: int, budget: int) -> _Batch:
    """Add the points at `lam` along pieces `piece` (piece i runs from point i to point i + 1)."""
    tol = RELATIVE_TOL.get(lam.dtype, 1e-10)
    keep = (lam > tol) & (lam < 1 - tol)  # a crossing at an existing point adds nothing
    piece, lam = piece[keep], lam[keep]
    # crossings come piece by piece; only several in one piece need ordering along it
    repeated = piece[1:] == piece[:-1]
    if repeated.any():
        order = torch.argsort(lam, stable=True)
        order = order[torch.argsort(piece[order], stable=True)]
        piece, lam = piece[order], lam[order]
        # several units crossing at the same place (coincident or repeated neurons) make one point
        distinct = torch.ones_like(piece, dtype=torch.bool)
        distinct[1:] = (piece[1:] != piece[:-1]) | (lam[1:] - lam[:-1] > tol)
        piece, lam = piece[distinct], lam[distinct]
    if piece.numel() == 0:
        return batch
    n_old, n_new = batch.points, piece.numel()
    _check_budget(batch, n_old + n_new, budget)
    per_piece = torch.bincount(piece, minlength=n_old)
    old_position = torch.arange(n_old, device=piece.device) + torch.cumsum(per_piece, 0) - per_piece
    index = torch.arange(n_new, device=piece.device)
    group_start = torch.ones_like(piece, dtype=torch.bool)
    group_start[1:] = piece[1:] != piece[:-1]
    rank = index - torch.cummax(torch.where(group_start, index, 0), 0).values
    new_position = old_position[piece] + 1 + rank

    def merged(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        out = old.new_empty((n_old + n_new, *old.shape[1:]))
        out[old_position] = old
        out[new_position] = new
        return out

    return _Batch(
        batch.first,
        merged(batch.segment, batch.segment[piece]),
        merged(batch.t, lerp(batch.t[piece], batch.t[piece + 1], lam)),
        merged(batch.labels, torch.full_like(piece, label)),
        {k: merged(v, lerp(v[piece], v[piece + 1], lam)) for k, v in batch.fields.items()},
    )


def _row_bytes(batch: _Batch) -> int:
    return sum(v[0].numel() * v.element_size() for v in batch.fields.values()) + 3 * 8


def _points_allowed(batch: _Batch, budget: int) -> int:
    # merging copies every table once, and the next node's values are computed beside them
    return max(2, budget // (4 * _row_bytes(batch)))


def _check_budget(batch: _Batch, points: int, budget: int) -> None:
    needed = 3 * points * _row_bytes(batch)
    if needed > budget:
        raise OutOfMemory(
            f"the segments need about {needed / 2**30:.1f} GiB for {points:,} breakpoints in one batch "
            f"({_row_bytes(batch):,} bytes each), more than the {budget / 2**30:.1f} GiB allowed "
            "(half the memory this process may still use); use shorter segments or a device with more memory"
        )


def _rows(fields: dict[int, torch.Tensor], rows: slice) -> dict[int, torch.Tensor]:
    return {key: value[rows] for key, value in fields.items()}
