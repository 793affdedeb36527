"""The Jacobian of a network's outputs in one layer's parameters, with every activation pattern frozen.

Inside one activation region the network is affine in the parameters of any single layer (its input
does not depend on them, and everything after it is linear once the patterns are fixed), so
f(x_i; θ) = J_i θ + c_i exactly there, and autograd at the current parameters gives that J_i. The
layer is a step of the PLNet; its parameters are substituted into the step's call, so the same code
serves nn.Modules, TorchScript archives and exported programs alike.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from splinetool.engine.memory import MEMORY_BUDGET
from splinetool.ir import PLNet
from splinetool.ir.bound import Bound
from splinetool.ir.registry import family_of


@dataclass(frozen=True)
class ParameterLayer:
    """A step of the PLNet with trained parameters: the arguments at `positions` of its call."""

    name: str
    step: int
    op: str
    positions: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def parameter_layers(net: PLNet) -> list[ParameterLayer]:
    """Every step of `net` whose op has trained parameters (as its op family declares), in network order."""
    layers = []
    for i, step in enumerate(net.steps):
        family = family_of(step.op)
        positions = family.trained_parameters(step.call.args) if family is not None else ()
        if positions:
            shapes = tuple(tuple(step.call.args[p].shape) for p in positions)
            layers.append(ParameterLayer(step.name, i, step.op, positions, shapes))
    return layers


class LayerJacobian:
    """J = ∂f(x_i)/∂θ over points x (rows: point-major, then output), as products and as rows.

    With the patterns frozen, everything after the layer is linear in the layer's output z, so
    J_i = B_i Z_i with B_i = ∂f(x_i)/∂z (the rest of the network, [outputs, z]) and Z_i = ∂z/∂θ (the
    layer alone). B is computed once, when it fits `memory`; each product with J or Jᵀ then runs the
    layer's own op and a contraction with B instead of the rest of the network. Otherwise products
    run the network from the layer on. The values the layer reads are computed once either way.
    """

    def __init__(
        self, net: PLNet, layer: ParameterLayer, x: torch.Tensor, chunk_size: int, memory: int = MEMORY_BUDGET
    ):
        self.net, self.layer = net, layer
        step = net.steps[layer.step]
        self.theta = torch.cat([step.call.args[p].reshape(-1) for p in layer.positions])
        self.points = x.shape[0]
        self.outputs = net.output_dim
        with torch.no_grad():
            self._inputs = [
                net.run_steps(net.input_values(chunk), 0, layer.step) for chunk in x.split(chunk_size)
            ]
        width = math.prod(step.out_shape)
        itemsize = torch.finfo(net.dtype).bits // 8
        self.factored = self.points * self.outputs * width * itemsize <= memory
        self._suffix = [self._suffix_jacobian(inputs) for inputs in self._inputs] if self.factored else None
        if self.factored:
            # every op is affine in its trained parameters (`OpFamily`): Z v = z(v) - z(0)
            with torch.no_grad():
                zero = torch.zeros_like(self.theta)
                self._offsets = [self.layer_output(zero, inputs) for inputs in self._inputs]
        self._pullbacks: list | None = None

    @property
    def params(self) -> int:
        return self.theta.numel()

    @property
    def rows(self) -> int:
        return self.points * self.outputs

    def layer_output(self, theta: torch.Tensor, inputs: dict[int, torch.Tensor]) -> torch.Tensor:
        """The layer's output with its parameters set to theta."""
        step = self.net.steps[self.layer.step]
        args = list(step.call.args)
        sizes = [math.prod(s) for s in self.layer.shapes]
        for position, part, shape in zip(self.layer.positions, theta.split(sizes), self.layer.shapes):
            args[position] = part.reshape(shape)
        call = Bound(step.call.fn, tuple(args), step.call.kwargs, step.call.pick)
        return call(*[inputs[j] for j in step.inputs])

    def outputs_at(self, theta: torch.Tensor, inputs: dict[int, torch.Tensor]) -> torch.Tensor:
        """[b, outputs]: the network's flattened outputs with the layer's parameters set to theta."""
        return self._rest(self.layer_output(theta, inputs), inputs)

    def _rest(self, z: torch.Tensor, inputs: dict[int, torch.Tensor]) -> torch.Tensor:
        values = dict(inputs)
        values[self.layer.step + 1] = z
        out = self.net.run_steps(values, self.layer.step + 1, len(self.net.steps))[self.net.output_index]
        return out.reshape(out.shape[0], -1)

    def _suffix_jacobian(self, inputs: dict[int, torch.Tensor]) -> torch.Tensor:
        """[b, outputs, z]: ∂f/∂z at each point, one batched backward pass per output."""
        with torch.no_grad():
            z = self.layer_output(self.theta, inputs)
        out, pullback = torch.func.vjp(lambda z: self._rest(z, inputs), z)
        basis = torch.eye(self.outputs, dtype=out.dtype, device=out.device)
        rows = torch.func.vmap(pullback)(basis[:, None, :].expand(-1, out.shape[0], -1))[0]
        return rows.reshape(self.outputs, out.shape[0], -1).transpose(0, 1).contiguous()

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """J v, as [points, outputs]."""
        parts = []
        for c, inputs in enumerate(self._inputs):
            if self.factored:
                with torch.no_grad():
                    dz = (self.layer_output(v, inputs) - self._offsets[c]).reshape(len(self._suffix[c]), -1)
                parts.append(torch.einsum("bmz,bz->bm", self._suffix[c], dz))
            else:
                outputs = functools.partial(self.outputs_at, inputs=inputs)
                parts.append(torch.func.jvp(outputs, (self.theta,), (v,))[1])
        return torch.cat(parts)

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        """Jᵀ u for u of shape [points, outputs]."""
        if self._pullbacks is None:
            # the recorded graphs are reused by every product
            inner = self.layer_output if self.factored else self.outputs_at
            self._pullbacks = [
                torch.func.vjp(lambda t, inputs=inputs: inner(t, inputs), self.theta)[1]
                for inputs in self._inputs
            ]
        total = torch.zeros_like(self.theta)
        start = 0
        step = self.net.steps[self.layer.step]
        for c, pullback in enumerate(self._pullbacks):
            b = next(iter(self._inputs[c].values())).shape[0]
            part = u[start : start + b]
            if self.factored:
                part = torch.einsum("bmz,bm->bz", self._suffix[c], part).reshape(b, *step.out_shape)
            total += pullback(part)[0]
            start += b
        return total

    def row_chunks(self, chunk_size: int):
        """J's rows, [b · outputs, params] for `chunk_size` points at a time."""

        def one(inputs):
            return {k: v.unsqueeze(0) for k, v in inputs.items()}

        def through_layer(theta, inputs, suffix):  # J_i = B_i Z_i: the layer's pullback of B_i's rows
            pullback = torch.func.vjp(lambda t: self.layer_output(t, one(inputs)).reshape(-1), theta)[1]
            return torch.func.vmap(pullback)(suffix)[0]

        def through_rest(theta, inputs, _):
            return torch.func.jacrev(lambda t: self.outputs_at(t, one(inputs))[0])(theta)

        per_point = torch.func.vmap(through_layer if self.factored else through_rest, in_dims=(None, 0, 0))
        for c, inputs in enumerate(self._inputs):
            b = next(iter(inputs.values())).shape[0]
            suffix = self._suffix[c] if self.factored else torch.zeros(b)
            for start in range(0, b, chunk_size):
                part = {k: v[start : start + chunk_size] for k, v in inputs.items()}
                rows = per_point(self.theta, part, suffix[start : start + chunk_size])
                yield rows.reshape(-1, self.params)
