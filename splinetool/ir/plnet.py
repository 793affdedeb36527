"""PLNet: a network lowered to affine steps and piecewise-linear nodes, runnable on any device/dtype."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from splinetool.errors import UsageError
from splinetool.ir.codes import pack_bits
from splinetool.ir.pl import NodeScales, PLKind
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
    units: int  # boundary units (hardtanh: two per neuron; max-pool: windows)


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
        self.pl_nodes = [_pl_node(i, s, shapes[s.inputs[0]]) for i, s in enumerate(steps) if s.pl is not None]
        self._last_use = _last_uses(steps, output_index)
        constants = [t for s in steps for t in s.call.constants() if t.is_floating_point()]
        self.dtype = dtype or (constants[0].dtype if constants else torch.float32)
        # where the constants are, as tensors name it ("cuda" is cuda:0), so that two copies of one
        # network moved to "cuda" and "cuda:0" are one graph
        self.device = constants[0].device if constants else torch.device("cpu" if device is None else device)

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
            for j in step.inputs:
                if self._last_use[j] <= i:  # read for the last time: free it before the next step
                    values.pop(j, None)
        return {j: values[j] for j in self.live_after(stop)}

    def node_stop(self, index: int) -> int:
        """The step at which PL node `index` runs (past the last node: the end), where a walk pauses."""
        return self.pl_nodes[index].step if index < len(self.pl_nodes) else len(self.steps)

    def preactivation_key(self, index: int) -> int:
        """The value holding PL node `index`'s pre-activation once the steps before it have run."""
        return self.steps[self.pl_nodes[index].step].inputs[0]

    def walk(self, x: torch.Tensor, output: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
        """(index, pre-activation [B, *in_shape]) of each PL node in network order; with `output`, then
        (len(pl_nodes), the network's output), the output taken as one more node.

        The network runs only as far as the node being yielded and keeps only the values later steps
        read, so a caller that reduces each pre-activation on the spot holds one node's values at a
        time, and one that stops iterating stops the network there.
        """
        values, position = self.input_values(x), 0
        for index in range(len(self.pl_nodes)):
            values = self.run_steps(values, position, self.node_stop(index))
            position = self.node_stop(index)
            yield index, values[self.preactivation_key(index)]
        if output:
            values = self.run_steps(values, position, len(self.steps))
            yield len(self.pl_nodes), values[self.output_index]

    def input_values(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        return {0: self._prepare(x)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_steps(self.input_values(x), 0, len(self.steps))[self.output_index]

    __call__ = forward

    def apply_output_transforms(self, y: torch.Tensor) -> torch.Tensor:
        for step in self.output_transforms:
            y = step.call(y)
        return y

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [pre for _, pre in self.walk(x)]

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


def same_graph(a: PLNet, b: PLNet) -> bool:
    """Whether two networks differ at most in the values of their constants, as two checkpoints of
    one architecture do: the same steps with the same shapes, kinds and constant shapes."""

    def outline(net: PLNet) -> tuple:
        steps = [
            (s.op, s.inputs, s.call.outline(), s.out_shape, s.pl, s.output_only)
            for s in (*net.steps, *net.output_transforms)
        ]
        return (net.input_shape, net.output_index, len(net.output_transforms), steps, net.dtype, net.device)

    return outline(a) == outline(b)


def _pl_node(index: int, step: Step, in_shape: tuple[int, ...]) -> PLNode:
    units = step.pl.units(in_shape, step.out_shape)
    return PLNode(
        step.name,
        step.pl.kind,
        index,
        math.prod(step.out_shape),
        in_shape,
        step.out_shape,
        units * step.pl.bits_per_unit(),
        step.pl,
        units,
    )


def _last_uses(steps: list[Step], output_index: int) -> dict[int, int]:
    last = {output_index: len(steps)}
    for i, step in enumerate(steps):
        for j in step.inputs:
            last[j] = max(last.get(j, -1), i)
    return last
