"""Tiny models covering every supported op family, shared by the IR, frontend and CLI tests."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width))

    def forward(self, x):
        return F.relu(x + self.inner(x))


class Nested(nn.Module):
    """Nested modules, functional calls, a residual add, cat, identity, dropout, a log-softmax output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
        self.blocks = nn.ModuleList([Residual(8), Residual(8)])
        self.side = nn.Linear(3, 4)
        self.drop = nn.Dropout(0.3)
        self.skip = nn.Identity()
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        side = torch.abs(self.side(x)) * 0.5 - 1.0
        h = torch.cat([self.skip(h), side], dim=1)
        return torch.log_softmax(self.head(self.drop(h)), dim=1)


class ConvNet(nn.Module):
    """Conv with stride/padding/dilation/groups, batch-norm, max- and average-pooling, reshape."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2)
        self.pool = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        x = self.pool(F.relu(self.conv2(x)))
        x = self.avg(x)
        return self.fc(x.view(x.size(0), -1))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm1d(3)
        self.act = nn.PReLU(3)
        self.pool = nn.MaxPool1d(3, stride=2, dilation=2)
        self.gap = nn.AdaptiveAvgPool1d(2)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        x = self.pool(self.act(self.bn(self.conv(x))))
        return self.out(torch.flatten(self.gap(x), 1))


class Clamps(nn.Module):
    """Activations with two breakpoints, and scalar arithmetic."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 6)
        self.c = nn.Linear(6, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, x):
        x = nn.functional.hardtanh(self.a(x), -0.5, 0.75)
        x = F.relu6(3.0 * self.b(x) - 0.2)
        x = torch.clamp(self.c(x) / 2.0, min=-0.3, max=0.4)
        return torch.sigmoid(self.out(x))


class Shrinks(nn.Module):
    """Softshrink, as a module and as a function: a zero band between two breakpoints."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 5)
        self.shrink = nn.Softshrink(0.4)
        self.b = nn.Linear(5, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        x = self.shrink(self.a(x))
        x = F.softshrink(self.b(x), 0.25)
        return self.out(x)


class ResNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.b2 = nn.BatchNorm2d(4)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu(self.b1(self.c1(x)))
        x = F.relu(x + self.b2(self.c2(y)))
        return self.fc(self.gap(x).flatten(1))


def mlp(widths=(2, 6, 5, 1)) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch-norm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return model.eval()


# name -> (constructor, per-sample input shape)
ZOO = {
    "mlp": (lambda: mlp(), (2,)),
    "nested": (Nested, (3,)),
    "convnet": (ConvNet, (2, 7, 7)),
    "conv1d": (Conv1dNet, (1, 17)),
    "clamps": (Clamps, (4,)),
    "shrinks": (Shrinks, (3,)),
    "resnet": (ResNetLike, (1, 6, 6)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    constructor, shape = ZOO[name]
    torch.manual_seed(seed)
    return randomise_batch_norm(constructor(), seed), shape


def tent_network(depth: int, dims: int = 1, along: int = 1) -> nn.Sequential:
    """Depth-L composition of the tent map 2 relu(x) - 4 relu(x - 1/2) on [0, 1].

    With `along` = 2 the first two coordinates each go through their own tent chain (a product of
    two tent maps); otherwise only the first coordinate does. Output: the sum of the chains.
    """
    chains = min(along, dims)
    layers: list[nn.Module] = []
    first = nn.Linear(dims, 2 * chains)
    with torch.no_grad():
        first.weight.zero_()
        for c in range(chains):
            first.weight[2 * c : 2 * c + 2, c] = 1.0
        first.bias.copy_(torch.tensor([0.0, -0.5] * chains))
    layers += [first, nn.ReLU()]
    block = torch.tensor([[2.0, -4.0], [2.0, -4.0]])
    for _ in range(depth - 1):
        layer = nn.Linear(2 * chains, 2 * chains)
        with torch.no_grad():
            layer.weight.zero_()
            for c in range(chains):
                layer.weight[2 * c : 2 * c + 2, 2 * c : 2 * c + 2] = block
            layer.bias.copy_(torch.tensor([0.0, -0.5] * chains))
        layers += [layer, nn.ReLU()]
    out = nn.Linear(2 * chains, 1)
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[2.0, -4.0] * chains]))
        out.bias.zero_()
    layers.append(out)
    return nn.Sequential(*layers)


def first_layer_net(weights, biases, outputs: int = 1) -> nn.Module:
    """ReLU units with the given lines w . x + b = 0, then a random linear readout."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    model = nn.Sequential(nn.Linear(2, len(weights)), nn.ReLU(), nn.Linear(len(weights), outputs))
    with torch.no_grad():
        model[0].weight.copy_(weights)
        model[0].bias.copy_(torch.as_tensor(biases, dtype=torch.float32))
    return model


def concurrent_lines_net() -> nn.Sequential:
    """Three lines through one point (6 tiles on [-1, 1]^2), then relu(z0) + relu(z1) - relu(z2) with
    z2 = z0 + z1: exactly 0 wherever z0, z1 > 0, but ±1e-16 in floating point (z2 rounds differently),
    and a one-unit node, so nothing else at the point says how large "zero" is."""
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[0.8125, 0.0], [0.0, 0.6875], [0.8125, 0.6875]]))
        m[0].bias.copy_(torch.tensor([0.5, 0.5, 1.0]))
        m[2].weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
        m[2].bias.zero_()
    return m


# inside it z0, z1 > 0: the cancelling unit is 0 in exact arithmetic (z0 = 0 at x = -0.615, z1 at y = -0.727)
CANCELLING_BOX = (-0.3, 0.7, -0.2, 0.9)


def tangent_lines(n: int, spread: float = 0.9):
    """n lines tangent to the unit circle: no two parallel, no three through one point."""
    angles = torch.linspace(0, spread * math.pi, n, dtype=torch.float64)
    return torch.stack([angles.cos(), angles.sin()], dim=1), -torch.ones(n, dtype=torch.float64)


def bn_density_result(inits=("zero-bias", "batchnorm"), nodes=3, grid=5, points=7, seed=0, segments=True):
    """A BNDensityResult filled with random numbers, for codec and render tests."""
    from splinetool.analyses.bn_density import BNDensityResult

    rng = np.random.default_rng(seed)
    shape = (len(inits), nodes)
    distance = rng.uniform(0, 1, (*shape, points))
    distance[0, 0, :] = np.inf  # a node with no boundary in view
    return BNDensityResult(
        inits=list(inits),
        node_names=[f"hidden.{k}.act" for k in range(nodes)],
        node_layers=[k + 1 for k in range(nodes)],
        node_units=[8] * nodes,
        density=rng.integers(0, 9, (*shape, grid, grid)).astype(np.float64),
        boundaries_in_view=rng.integers(0, 9, shape),
        distance_to_data=distance,
        linearised_distance=rng.uniform(0, 1, (*shape, points)),
        share_within_delta=rng.uniform(0, 1, shape),
        x_edges=np.linspace(-1, 1, grid + 1),
        y_edges=np.linspace(-2, 1, grid + 1),
        data=rng.uniform(-1, 1, (points, 2)),
        labels=rng.integers(0, 3, points),
        off_plane=np.zeros(points),
        origin=np.zeros(2),
        directions=np.eye(2),
        delta=0.1,
        exact=False,
        bias_std=1.0,
        seed=seed,
        dtype="float64",
        source="model.ts.pt",
        data_source="star:7 (seed 0)",
        segments=[rng.uniform(-1, 1, (6, 2, 2)) for _ in inits] if segments else None,
        segment_layers=[rng.integers(1, nodes + 1, 6) for _ in inits] if segments else None,
        seconds=1.5,
    )


class IdentityAndRelu(nn.Module):
    """G(z) = (z, relu(z)) from R to R²: stretches volume by 1 for z < 0 and √2 for z > 0."""

    def forward(self, z):
        return torch.cat([z, torch.relu(z)], dim=1)


def two_segments(slope: float = 3.0) -> nn.Sequential:
    """G(z) = (z, 0) for z < 0 and (slope·z, z) for z > 0: [-1, 1] onto two joined segments of
    lengths 1 and sqrt(slope² + 1)."""
    layers = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        layers[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        layers[0].bias.zero_()
        layers[2].weight.copy_(torch.tensor([[slope, -1.0], [1.0, 0.0]]))
        layers[2].bias.zero_()
    return layers


def slice_grid(n: int, outputs: int = 2, jacobian: bool = True, seed: int = 0):
    """A SliceResult over [0, n]^2 with random per-tile numbers, for codec tests: each grid cell with
    i + j even is one square tile, the others are cut along their diagonal into two triangles."""
    from splinetool.analyses.slice import SliceResult

    rng = np.random.default_rng(seed)
    polygons = []
    for i in range(n):
        for j in range(n):
            ll, lr, ur, ul = [i, j], [i + 1, j], [i + 1, j + 1], [i, j + 1]
            polygons += [[ll, lr, ur, ul]] if (i + j) % 2 == 0 else [[ll, lr, ur], [ll, ur, ul]]
    counts = np.array([len(p) for p in polygons])
    regions, vertices = len(polygons), int(counts.sum())
    return SliceResult(
        vertices=np.concatenate(polygons).astype(np.float64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        codes=rng.integers(0, 256, (regions, 3), dtype=np.uint8),
        affine_A=rng.normal(size=(regions, outputs, 2)),
        affine_c=rng.normal(size=(regions, outputs)),
        jacobian_norm=rng.uniform(0, 3, regions) if jacobian else None,
        edge_node=rng.integers(-1, 2, vertices, dtype=np.int32),
        boundary=rng.uniform(0, n, (3 * n, 2, 2)),
        origin=rng.normal(size=5),
        directions=rng.normal(size=(2, 5)),
        domain=np.array([[0, 0], [n, 0], [n, n], [0, n]], dtype=np.float64),
        node_names=["fc1.relu", "fc2.relu"],
        node_kinds=["relu", "leaky_relu"],
        node_code_bits=[12, 9],
        norm="2",
        anchors=np.array([[0.5, 0.5], [n - 0.5, 0.5], [0.5, n - 0.5]]),
        tiles_per_node=[n, regions],
        seconds=3.5,
        verify={"points": 4 * regions, "tiles_checked": regions, "tiles_mismatched": 0, "passed": True},
    )


def slice_parts(result, cuts):
    """`result` cut into consecutive groups of tiles at the tile indices `cuts` (local offsets each),
    the boundary segments shared out the same way."""
    import dataclasses

    edges = [0, *cuts, result.regions]
    segments = np.linspace(0, len(result.boundary), len(edges)).astype(int)
    parts = []
    for k, (start, stop) in enumerate(zip(edges[:-1], edges[1:])):
        first, last = result.offsets[start], result.offsets[stop]
        rows = slice(start, stop)
        parts.append(
            dataclasses.replace(
                result,
                vertices=result.vertices[first:last],
                offsets=result.offsets[start : stop + 1] - first,
                codes=result.codes[rows],
                affine_A=result.affine_A[rows],
                affine_c=result.affine_c[rows],
                jacobian_norm=None if result.jacobian_norm is None else result.jacobian_norm[rows],
                edge_node=result.edge_node[first:last],
                boundary=result.boundary[segments[k] : segments[k + 1]],
            )
        )
    return parts


def joined_slices(parts):
    """The inverse of slice_parts: one SliceResult of every part's tiles, in order."""
    import dataclasses

    counts = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(parts[0].offsets.dtype)

    def joined(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    names = ["vertices", "codes", "affine_A", "affine_c", "jacobian_norm", "edge_node", "boundary"]
    return dataclasses.replace(parts[0], offsets=offsets, **{name: joined(name) for name in names})


class HyperParameters(dict):
    """A dict subclass in a training checkpoint's hyper-parameters, as Lightning's AttributeDict is:
    torch's safe loader cannot read it, and unpickling it imports this module."""


def lightning_checkpoint(state: dict[str, torch.Tensor], attribute: str = "model", hyper=dict) -> dict:
    """What a LightningModule's trainer saves: the state dict under the module's attribute prefix,
    hyper-parameters, optimiser state and loop bookkeeping."""
    weights = [nn.Parameter(t.detach().clone().float()) for t in state.values() if t.is_floating_point()]
    optimiser = torch.optim.SGD(weights, lr=0.1, momentum=0.9)
    sum(w.sum() for w in weights).backward()
    optimiser.step()
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"{attribute}.{name}": tensor for name, tensor in state.items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
        "callbacks": {},
        "optimizer_states": [optimiser.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": hyper(lr=0.1, widths=[5, 4]),
    }
