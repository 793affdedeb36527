"""PLNet: a network lowered to affine steps and piecewise-linear nodes, runnable on any device/dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from splinetool.errors import UsageError
from splinetool.ir.codes import pack_bits
from splinetool.ir.pl import ArgmaxKind, NodeScales, PLKind
from splinetool.ir.step import Step, needed_steps


@dataclass(frozen=True)
class PLNode:
    """A piecewise-linear node of the network, as users see it."""

    name: str
    kind: str
    step: int  # index into PLNet.steps
    neurons: int  # output units (max-pool: windows)
    in_shape: tuple[int, ...]  # per-sample shape of its pre-activation
    out_shape: tuple[int, ...]
    code_bits: int  # bits of its activation code per sample
    pl: PLKind


@dataclass
class Trace:
    output: torch.Tensor
    preactivations: list[torch.Tensor]  # one per PL node, [B, *in_shape]


class PLNet:
    def __init__(
        self,
        steps: list[Step],
        output_index: int,
        input_shape: tuple[int, ...],
        output_transforms: tuple[Step, ...] = (),
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        self.steps = steps
        self.output_index = output_index
        self.input_shape = tuple(input_shape)
        self.output_transforms = output_transforms
        shapes = [self.input_shape] + [s.out_shape for s in steps]
        self.output_shape = shapes[output_index]
        self.pl_nodes = [
            PLNode(
                s.name,
                s.pl.kind,
                i,
                math.prod(s.out_shape),
                shapes[s.inputs[0]],
                s.out_shape,
                math.prod(s.out_shape) * s.pl.bits_per_neuron()
                if isinstance(s.pl, ArgmaxKind)
                else math.prod(shapes[s.inputs[0]]) * s.pl.bits_per_neuron(),
                s.pl,
            )
            for i, s in enumerate(steps)
            if s.pl is not None
        ]
        self._last_use = _last_uses(steps, output_index)
        constants = [t for s in steps for t in s.call.constants() if t.is_floating_point()]
        self.dtype = dtype or (constants[0].dtype if constants else torch.float32)
        self.device = (
            torch.device(device)
            if device is not None
            else (constants[0].device if constants else torch.device("cpu"))
        )

    @classmethod
    def from_steps(cls, steps: list[Step], output_index: int, input_shape: tuple[int, ...]) -> PLNet:
        """Strip trailing output transforms and drop unused steps."""
        transforms = []
        while output_index > 0 and steps[output_index - 1].output_only:
            step = steps[output_index - 1]
            transforms.append(step)
            output_index = step.inputs[0]
        keep = needed_steps(steps, output_index)
        remap = {0: 0}
        kept: list[Step] = []
        for i in keep:
            step = steps[i]
            kept.append(
                Step(
                    step.name,
                    step.op,
                    tuple(remap[j] for j in step.inputs),
                    step.call,
                    step.out_shape,
                    step.pl,
                    step.output_only,
                )
            )
            remap[i + 1] = len(kept)
        return cls(kept, remap[output_index], input_shape, tuple(reversed(transforms)))

    # -- conversion -------------------------------------------------------------------------------

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PLNet:
        steps = [s.to(device, dtype) for s in self.steps]
        transforms = tuple(s.to(device, dtype) for s in self.output_transforms)
        return PLNet(
            steps, self.output_index, self.input_shape, transforms, dtype or self.dtype, device or self.device
        )

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_dim(self) -> int:
        return math.prod(self.output_shape)

    @property
    def neurons(self) -> int:
        return sum(n.neurons for n in self.pl_nodes)

    def parameter_count(self) -> int:
        seen = {}
        for step in self.steps:
            for t in step.call.constants():
                seen[(t.data_ptr(), tuple(t.shape))] = t.numel()
        return sum(seen.values())

    # -- evaluation -------------------------------------------------------------------------------

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        if tuple(x.shape[1:]) != self.input_shape:
            if x.dim() < 1 or math.prod(x.shape[1:]) != self.input_dim:
                raise UsageError(
                    f"inputs of shape {tuple(x.shape)} do not fit the model's input shape "
                    f"{self.input_shape} (expected [batch, {', '.join(map(str, self.input_shape))}])"
                )
            x = x.reshape(x.shape[0], *self.input_shape)
        return x.to(device=self.device, dtype=self.dtype)

    def run(self, x: torch.Tensor, capture: bool = True, upto: int | None = None) -> Trace:
        """Evaluate the network; with `capture`, keep each PL node's pre-activation."""
        values: dict[int, torch.Tensor] = {0: self._prepare(x)}
        preacts: list[torch.Tensor] = []
        last = len(self.steps) if upto is None else upto
        for i, step in enumerate(self.steps[:last]):
            inputs = [values[j] for j in step.inputs]
            if capture and step.pl is not None:
                preacts.append(inputs[0])
            values[i + 1] = step.call(*inputs)
            for j in step.inputs:
                if self._last_use[j] <= i and j != self.output_index:
                    values.pop(j, None)
        output = values.get(self.output_index) if upto is None else values.get(last)
        return Trace(output, preacts)

    def live_after(self, stop: int) -> list[int]:
        """Values that steps[stop:] (or the output) still need once steps[:stop] have run."""
        return sorted(j for j, last in self._last_use.items() if j <= stop and last >= stop)

    def run_steps(self, values: dict[int, torch.Tensor], start: int, stop: int) -> dict[int, torch.Tensor]:
        """Run steps[start:stop] on a batch whose live values at `start` are given.

        Returns the values still live at `stop`: the engine uses this to push vertex batches from one
        piecewise-linear node to the next without keeping anything else.
        """
        values = dict(values)
        for i in range(start, stop):
            step = self.steps[i]
            values[i + 1] = step.call(*[values[j] for j in step.inputs])
        return {j: values[j] for j in self.live_after(stop)}

    def input_values(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        return {0: self._prepare(x)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, capture=False).output

    __call__ = forward

    def apply_output_transforms(self, y: torch.Tensor) -> torch.Tensor:
        for step in self.output_transforms:
            y = step.call(y)
        return y

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.run(x).preactivations

    def code_bits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, total bits] activation code: which side of every breakpoint each neuron is on, zero
        within the tolerance of each point's own node scale (the zero rule: splinetool/ir/pl.py)."""
        x = self._prepare(x)
        pre = self.preactivations(x)
        if not pre:
            return torch.zeros((x.shape[0], 0), dtype=torch.bool, device=self.device)
        scales = NodeScales(x)
        return torch.cat([node.pl.code_bits(p, scales(p)) for node, p in zip(self.pl_nodes, pre)], dim=1)

    def weak_sides(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per PL node, [B, units, sides] bool: the sides of its breakpoints (max-pool: the candidates
        on top) each point is on, zero counting as every side it touches (splinetool/ir/pl.py)."""
        x = self._prepare(x)
        scales = NodeScales(x)
        return [node.pl.weak_sides(p, scales(p)) for node, p in zip(self.pl_nodes, self.preactivations(x))]

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Bit-packed activation codes, [B, bytes] uint8; equal rows mean the same linear region."""
        return pack_bits(self.code_bits(x))

    def affine_maps(self, x: torch.Tensor, chunk_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Local affine map at each point: f(y) = A y + c on the point's region.

        Returns A [B, outputs, inputs] and c [B, outputs] over flattened inputs and outputs.
        """
        x = self._prepare(x).reshape(x.shape[0], -1)
        parts = [self._affine_chunk(chunk) for chunk in x.split(chunk_size)]
        return torch.cat([a for a, _ in parts]), torch.cat([c for _, c in parts])

    def _affine_chunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def flat(z: torch.Tensor) -> torch.Tensor:
            return self.forward(z.reshape(z.shape[0], *self.input_shape)).reshape(z.shape[0], -1)

        # per-sample Jacobians through batched products: rows are independent samples, so one
        # product with a basis vector broadcast over the batch gives that column (or row) for all
        if self.output_dim <= self.input_dim:
            y, pullback = torch.func.vjp(flat, x)
            rows = [pullback(_basis(y, j))[0] for j in range(y.shape[1])]
            jac = torch.stack(rows, dim=1)
        else:
            cols = []
            for j in range(x.shape[1]):
                y, col = torch.func.jvp(flat, (x,), (_basis(x, j),))
                cols.append(col)
            jac = torch.stack(cols, dim=2)
        y = flat(x)
        c = y - torch.einsum("boi,bi->bo", jac, x)
        return jac, c


def _basis(like: torch.Tensor, j: int) -> torch.Tensor:
    e = torch.zeros_like(like)
    e[:, j] = 1
    return e


def _last_uses(steps: list[Step], output_index: int) -> dict[int, int]:
    last = {output_index: len(steps)}
    for i, step in enumerate(steps):
        for j in step.inputs:
            last[j] = max(last.get(j, -1), i)
    return last
