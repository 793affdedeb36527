"""The two shapes a piecewise-linear node can take.

Sign nodes (ReLU, LeakyReLU, PReLU, abs, hardtanh, clamp) switch between affine pieces where
their input crosses fixed thresholds: each (neuron, threshold) pair is one boundary unit whose
zero set is a breakpoint. Arg-max nodes (max-pool) pick one of k affine candidates per window:
the code is which candidate wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# relative to a unit's largest magnitude: some 10^5 roundings in float64, some 10^2 in float32
RELATIVE_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def zero_tolerance(scale: torch.Tensor) -> torch.Tensor:
    """Values within this of zero count as zero (scale: the function's largest magnitude)."""
    return RELATIVE_TOL.get(scale.dtype, 1e-10) * scale


@dataclass(frozen=True)
class SignKind:
    """Breakpoints where the node's input equals one of `thresholds`."""

    kind: str
    thresholds: tuple[float, ...]

    def units_per_neuron(self) -> int:
        return len(self.thresholds)

    def boundaries(self, pre: torch.Tensor) -> torch.Tensor:
        """[B, neurons * thresholds] values whose signs are the activation code."""
        flat = pre.reshape(pre.shape[0], math.prod(pre.shape[1:]))
        if self.thresholds == (0.0,):
            return flat
        return torch.stack([flat - t for t in self.thresholds], dim=-1).reshape(flat.shape[0], -1)

    def code_bits(self, pre: torch.Tensor) -> torch.Tensor:
        """1 where a unit is above its threshold by more than the zero tolerance of the node's largest
        magnitude over the batch; a value within it (exact cancellation, rounding) reads as 0."""
        values = self.boundaries(pre)
        if values.numel() == 0:
            return values > 0
        return values > zero_tolerance(values.abs().amax())

    def bits_per_neuron(self) -> int:
        return len(self.thresholds)


@dataclass(frozen=True)
class ArgmaxKind:
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

    def bits_per_neuron(self) -> int:
        return max(0, math.ceil(math.log2(self.window)))

    def code_bits(self, pre: torch.Tensor) -> torch.Tensor:
        """The first candidate within the zero tolerance of the window's maximum (the tolerance of
        the node's largest magnitude over the batch), so ties, exact or up to rounding, pick the
        first: after a ReLU, candidates that are off read 0 in one place and 1e-17 in another."""
        candidates = self.candidates(pre)
        finite = torch.where(torch.isfinite(candidates), candidates.abs(), 0.0)
        scale = finite.amax() if candidates.numel() else torch.zeros((), dtype=candidates.dtype)
        best = candidates.amax(dim=-1, keepdim=True)
        winner = (candidates >= best - zero_tolerance(scale)).int().argmax(dim=-1)
        shifts = torch.arange(self.bits_per_neuron(), device=pre.device)
        bits = (winner[..., None] >> shifts) & 1
        return bits.bool().reshape(pre.shape[0], bits.shape[1] * bits.shape[2])


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    n = (-(-num // s) if ceil_mode else num // s) + 1
    # PyTorch drops a last window that would start inside the right padding
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


PLKind = SignKind | ArgmaxKind
