"""The two shapes a piecewise-linear node can take, and the one rule that says when a value is zero.

Sign nodes (ReLU, LeakyReLU, PReLU, abs, hardtanh, clamp, softshrink) switch between affine pieces
where their input crosses fixed thresholds: each (neuron, threshold) pair is one boundary unit whose
zero set is a breakpoint. Arg-max nodes (max-pool) pick one of k affine candidates per window:
the code is which candidate wins.

Each kind is a `PLKind` subclass that answers everything the rest of splinetool asks of a node (its
units, its code, which units a set of points crosses); the engine's cutting algorithms for a kind are
registered with it from splinetool/engine (`PLKind.implements`), so that the IR never imports the
engine and no caller tests which kind it holds.

The zero rule (every sign decision in splinetool uses it: activation codes, `slice --verify`, sampled
counts and distinct regions, the planar and segment engines' cuts, local complexity, bn-density):

- At a point x, node k's *scale* is the largest magnitude among the network input and the
  pre-activations of nodes 1..k, at x alone (`node_scale`, `NodeScales`).
- A value within `zero_tolerance(scale)` = RELATIVE_TOL (1e-10 in float64, 1e-5 in float32) × scale
  of zero *is* zero. A unit whose pre-activation cancels exactly (integer or pruned weights, a plane
  inside its hyperplane) comes out of floating point as ±1e-16 × the terms that cancelled, and reads
  as zero everywhere.
- Code bits: a sign unit's bit is 1 when its value is above its threshold by more than the tolerance;
  zero and below read 0 (ReLU(0) = 0 lies on both pieces: it takes the off one). A max-pool window's
  code is the first candidate within the tolerance of the window's maximum.
- A set of points (a tile's corners, a neighbourhood's vertices, a grid cell's corners) is *crossed*
  by a unit when no side holds all of them weakly: one point reads positive and another negative (for
  max-pool: no candidate is within the tolerance of the maximum at every point). A boundary that only
  touches the set, or a unit that is zero on all of it, does not cross it.
- `slice --verify` holds the network's code at the mean of a tile's corners to the tile's code, and
  every other interior point to the tile's sides weakly: a point within the tolerance of a boundary
  lies on it, and a tile thinner than a few tolerances holds such points. A piece inherits earlier
  nodes' codes from the tile it was cut from; where a unit reads zero at the piece's own mean (a
  small piece against that boundary), the piece's side must be one that one of its corners reads.

Why this scale. Rounding error follows the terms that were summed, not the result, and it is per
point. Measured on relu(z0) + relu(z1) − relu(z0 + z1), zero in reals where z0, z1 > 0 (three
concurrent lines, then that one unit: `concurrent_lines_net` in tests/zoo.py): judged against the
node's own largest value at x, this one-unit node has nothing else to compare with and gives 2 codes
on 500 points of that one region. Adding only
the previous node's values is not enough either: where all three first-layer lines meet, every
first-layer value is itself ±1e-17, and the plane came out in 10 tiles instead of 6, four of them of
zero area. Every earlier node and the input cover that: the terms that cancel in node k were built
from them. The price is resolution where a network shrinks its values (a value below 1e-10 of an
earlier, larger one reads zero), but on the six sample models the running maximum is at most 1.24
times a node's own magnitude (median over 500 inputs, worst node). The scale is per point because
one taken over a batch made a point's code depend on the points beside it (2 distinct codes among 200
segments inside that region), and one per unit over a tile group or a segment made the engines' cuts
depend on how the plane or the segments were split (7 tiles instead of 6 when the plane was cut into
groups, 2 instead of 1 on a box inside the region, 206 pieces instead of 200 on those segments).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

# relative to the node's scale: some 10^5 roundings in float64, some 10^2 in float32
RELATIVE_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def zero_tolerance(scale: torch.Tensor) -> torch.Tensor:
    """Values within this of zero count as zero (scale: `node_scale`, or a function's magnitude)."""
    return RELATIVE_TOL.get(scale.dtype, 1e-10) * scale


def magnitude(values: torch.Tensor) -> torch.Tensor:
    """[B] the largest |value| of each row (every dimension but the first)."""
    flat = values.reshape(values.shape[0], -1)
    if flat.shape[1] == 0:
        return flat.new_zeros(flat.shape[0])
    # max and min apart: no [B, n] copy for abs (nodes may hold a million units per point)
    return torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))


def node_scale(pre: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """[B] what a node's values are judged against at each point: the largest magnitude of its
    pre-activation `pre` and `below`, the previous node's scale (the input's `magnitude`, for the first)."""
    return torch.maximum(magnitude(pre), below)


class NodeScales:
    """`node_scale` for each PL node in turn, as a network is run node by node over points x."""

    def __init__(self, x: torch.Tensor):
        self.below = magnitude(x)

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        """The next node's scale; call once per PL node, in order, with its pre-activation."""
        self.below = node_scale(pre, self.below)
        return self.below


def sign_of(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 -1, 0 or +1: zero within the tolerance of `scale`, which broadcasts against `values`."""
    tol = zero_tolerance(scale)
    return (values > tol).to(torch.int8) - (values < -tol).to(torch.int8)


def sign_changes(signs: torch.Tensor) -> torch.Tensor:
    """[b] units (of [b, points, units] signs) positive at one point and negative at another."""
    # amax and amin apart are several times faster than torch.aminmax over a middle dimension on CPU
    return ((signs.amax(dim=1) > 0) & (signs.amin(dim=1) < 0)).sum(dim=1)


def _per_point(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [B] scale shaped to broadcast against [B, ...] values."""
    return scale.reshape(scale.shape[0], *[1] * (like.dim() - 1))


class PLKind:
    """What every kind of piecewise-linear node answers. Subclasses are frozen dataclasses.

    Unit: the smallest part of a node with its own boundary (a sign node's (neuron, threshold) pair, a
    max-pool window). `pre` is the node's input [B, *in_shape]; `scale` is [B], each point's
    `node_scale`.
    """

    kind: str  # the name users see (e.g. "relu", "hardtanh", "maxpool")
    # whether each unit is the zero set of one value (`boundaries`), so that a point's distance to it
    # is about |value| / |gradient|
    has_boundary_values: ClassVar[bool] = False
    # engine algorithms for this kind, by role (each engine module names its roles): filled by `implements`
    implementations: ClassVar[dict[str, Callable[..., Any]]]

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        cls.implementations = {}

    @classmethod
    def implements(cls, role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: the function is this kind's algorithm for `role` (e.g. the planar engine's cut)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            cls.implementations[role] = fn
            return fn

        return register

    def implementation(self, role: str, default: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """This kind's algorithm for `role`, else `default`."""
        found = self.implementations.get(role, default)
        if found is None:
            raise NotImplementedError(f"{self.kind} nodes have no {role}")
        return found

    def units(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        """Boundary units of a node with these per-sample input and output shapes."""
        raise NotImplementedError

    def bits_per_unit(self) -> int:
        """Bits of a unit's activation code."""
        raise NotImplementedError

    def values_per_unit(self) -> int:
        """Values compared to read one unit's state at a point (for memory estimates)."""
        return 1

    def weak_sides(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, units, sides] bool: the sides (or candidates) each point is on, zero counting as every
        side it touches."""
        raise NotImplementedError

    def code_bits(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, units * bits_per_unit] bool: each point's activation code."""
        raise NotImplementedError

    def sides(self, bits: torch.Tensor) -> torch.Tensor:
        """[B, units] the `weak_sides` index a code stands for (the inverse of `code_bits`)."""
        raise NotImplementedError

    def crossed_units(self, pre: torch.Tensor, scale: torch.Tensor, points_per_set: int) -> torch.Tensor:
        """[sets] units crossed by each set of `points_per_set` consecutive points: no side holds
        every point of the set weakly (the zero rule above)."""
        weak = self.weak_sides(pre, scale)
        per_set = weak.reshape(weak.shape[0] // points_per_set, points_per_set, *weak.shape[1:])
        return (~per_set.all(dim=1).any(dim=-1)).sum(dim=1)


@dataclass(frozen=True)
class SignKind(PLKind):
    """Breakpoints where the node's input equals one of `thresholds`."""

    kind: str
    thresholds: tuple[float, ...]

    has_boundary_values: ClassVar[bool] = True

    def units(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return math.prod(in_shape) * len(self.thresholds)

    def bits_per_unit(self) -> int:
        return 1

    def boundaries(self, pre: torch.Tensor) -> torch.Tensor:
        """[B, neurons * thresholds] values whose signs are the activation code."""
        flat = pre.reshape(pre.shape[0], math.prod(pre.shape[1:]))
        if self.thresholds == (0.0,):
            return flat
        return torch.stack([flat - t for t in self.thresholds], dim=-1).reshape(flat.shape[0], -1)

    def signs(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, units] int8: each unit's side of its breakpoint, 0 within the zero tolerance."""
        values = self.boundaries(pre)
        return sign_of(values, _per_point(scale, values))

    def weak_sides(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, units, 2] bool: whether each unit is at or above (0) and at or below (1) its breakpoint."""
        signs = self.signs(pre, scale)
        return torch.stack([signs >= 0, signs <= 0], dim=-1)

    def code_bits(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, units] 1 where a unit is above its threshold by more than the zero tolerance."""
        return self.signs(pre, scale) > 0

    def sides(self, bits: torch.Tensor) -> torch.Tensor:
        """[B, units] the `weak_sides` index a code stands for: 0 (at or above) for bit 1, else 1."""
        return (~bits).long()

    def crossed_units(self, pre: torch.Tensor, scale: torch.Tensor, points_per_set: int) -> torch.Tensor:
        # the signs alone: a third of the memory of `weak_sides`, and faster
        signs = self.signs(pre, scale)
        return sign_changes(signs.reshape(signs.shape[0] // points_per_set, points_per_set, signs.shape[1]))


@dataclass(frozen=True)
class ArgmaxKind(PLKind):
    """Max-pooling: each output neuron is the max over a window of the input."""

    kind: str
    ndim: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    @property
    def window(self) -> int:
        return math.prod(self.kernel)

    def candidates(self, pre: torch.Tensor) -> torch.Tensor:
        """[B, windows, k]: the values each window takes its max over (padding is -inf, never wins)."""
        spatial = pre.shape[-self.ndim :]
        extra = []
        for size, k, s, p, d in zip(spatial, self.kernel, self.stride, self.padding, self.dilation):
            span = d * (k - 1) + 1
            n_out = _pool_out(size, k, s, p, d, self.ceil_mode)
            extra.append(max(0, (n_out - 1) * s + span - (size + 2 * p)))
        pads: list[int] = []
        for p, e in zip(reversed(self.padding), reversed(extra)):
            pads += [p, p + e]
        x = F.pad(pre, pads, value=-math.inf)
        channels = math.prod(x.shape[1 : x.dim() - self.ndim])
        channels_first = x.reshape(x.shape[0], channels, *x.shape[-self.ndim :])
        for axis, (k, s, d) in enumerate(zip(self.kernel, self.stride, self.dilation)):
            dim = 2 + axis
            x_idx = torch.arange(_pool_out(spatial[axis], k, s, self.padding[axis], d, self.ceil_mode))
            taps = (x_idx[:, None] * s + torch.arange(k)[None, :] * d).to(pre.device)
            channels_first = channels_first.index_select(dim, taps.reshape(-1))
            shape = list(channels_first.shape)
            shape[dim : dim + 1] = [len(x_idx), k]
            channels_first = channels_first.reshape(shape)
            channels_first = channels_first.movedim(dim + 1, -1)
        # trailing dims are now the kernel taps of each axis, in order
        b = pre.shape[0]
        return channels_first.reshape(b, math.prod(channels_first.shape[1:]) // self.window, self.window)

    def units(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
        return math.prod(out_shape)  # one per window

    def bits_per_unit(self) -> int:
        return max(0, math.ceil(math.log2(self.window)))

    def values_per_unit(self) -> int:
        return self.window

    def weak_sides(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """[B, windows, k] bool: the candidates within the zero tolerance of their window's maximum
        (padding never is). After a ReLU, candidates that are off read 0 in one place and 1e-17 in
        another: they tie."""
        candidates = self.candidates(pre)
        best = candidates.amax(dim=-1, keepdim=True)
        return candidates >= best - zero_tolerance(_per_point(scale, candidates))

    def code_bits(self, pre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The index of the first candidate on top (within the tolerance), bit by bit."""
        winner = self.weak_sides(pre, scale).int().argmax(dim=-1)
        shifts = torch.arange(self.bits_per_unit(), device=pre.device)
        bits = (winner[..., None] >> shifts) & 1
        return bits.bool().reshape(pre.shape[0], bits.shape[1] * bits.shape[2])

    def sides(self, bits: torch.Tensor) -> torch.Tensor:
        """[B, windows] the candidate a code names (the inverse of `code_bits`)."""
        per_window = bits.reshape(bits.shape[0], -1, self.bits_per_unit()).long()
        return (per_window << torch.arange(per_window.shape[-1], device=bits.device)).sum(dim=-1)


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    n = (-(-num // s) if ceil_mode else num // s) + 1
    # PyTorch drops a last window that would start inside the right padding
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n
