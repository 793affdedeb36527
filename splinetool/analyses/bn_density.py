"""`bn-density`: where each layer's boundaries lie on a plane relative to the data, per initialisation.

Balestriero & Baraniuk, "Batch normalization explained" (2022): for a unit with weight row w, batch-norm's
mean μ = mean_i w·z_i is the shift that minimises the summed squared distances |w·z_i − μ|² / ‖w‖² of
the batch to the unit's boundary w·z = μ, so batch-norm (with zero shift β) moves every boundary onto
the data. This analysis makes that visible as numbers, for chosen PL nodes ("layers") of a network:

- density: on a G×G grid over a rectangle of the plane, the number of the node's units whose
  pre-activation is positive at one of the cell's four corners and negative at another (for max-pool
  windows: no candidate on top at all four), zero read by the rule of splinetool/ir/pl.py; with
  `exact`, the length of the node's boundary inside each cell, from the planar engine's tiles.
- distance_to_data: per data point (projected onto the plane), the distance in the plane to the node's
  nearest boundary. Grid mode: the distance to the nearest cell the node's boundary crosses (0 inside
  such a cell), so the true distance lies within one cell diagonal above it (first-layer boundaries are
  lines, which always separate two corners of a cell they cross; a deeper, folded boundary can enter and
  leave a cell between two corners and be missed). Exact mode: the distance to the nearest edge of the
  node's boundary in the exact partition.
- linearised_distance: per data point x in input space, min_k |z_k(x)| / ‖∇z_k(x)‖ over the node's units
  z_k: the distance to unit k's boundary through the local linearisation of z_k (exact for the first
  layer; for deeper units, the distance to the boundary of z_k's affine piece at x, extended). Units with
  zero gradient (dead) are infinitely far. Not defined for max-pool nodes (NaN).
- share_within_delta: the share of the node's boundary in view that lies within δ of the data points in
  the plane. Grid mode: density-weighted share of cells whose centre lies within δ of a data point
  (resolution: half a cell diagonal); exact mode: the length of the boundary within δ, exactly (each
  edge is clipped against every data point's disk).
- boundaries_in_view: the number of the node's units that cross at least one grid cell.

Initialisations: the network as loaded ("as-is"), or the architecture rebuilt with random weights
(He-normal, std √(2 / fan-in), drawn in module order from `seed`, the same weights for every
initialisation) and "zero-bias" (every bias and batch-norm shift 0), "random-bias" (biases and shifts
N(0, bias_std²), drawn from `seed`), or "batchnorm" (a batch-norm after every linear/conv layer, shift
0, scale 1, its mean and biased variance computed layer by layer on the data batch, then frozen before
the network is lowered; grid points never enter the statistics).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from splinetool.analyses import Progress
from splinetool.analyses.defaults import (
    DEFAULT_BIAS_STD,
    DEFAULT_GRID,
    DEFAULT_MAX_REGIONS,
    DEFAULT_RELATIVE_DELTA,
)
from splinetool.analyses.plane import Plane
from splinetool.data.loading import Dataset
from splinetool.engine.jacobian import jacobians
from splinetool.engine.memory import MEMORY_BUDGET
from splinetool.engine.planar import next_corners, partition
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.frontends.families import FAMILIES, build
from splinetool.frontends.loading import LoadedModel, arch_family, recorded_architecture
from splinetool.ir import PLNet, lower
from splinetool.ir.pl import NodeScales

INITS = ("as-is", "zero-bias", "random-bias", "batchnorm")
REINITS = INITS[1:]
POINTS_PER_BATCH = 2048  # grid corners per forward batch (rows of the grid)

# seeds keyed by purpose, so that weights and biases never share a random stream
_WEIGHTS, _BIASES = 0, 1


@dataclass(frozen=True)
class Architecture:
    """A built-in family and its options, to rebuild with fresh weights."""

    family: str
    options: dict


@dataclass
class BNDensityResult:
    inits: list[str]
    node_names: list[str]  # the chosen PL nodes
    node_layers: list[int]  # their positions among the network's PL nodes, from 1
    node_units: list[int]  # boundary units per node (hardtanh: 2 per neuron; max-pool: windows)
    density: np.ndarray  # [inits, nodes, G, G], row = t2 (y) index, column = t1 (x) index
    boundaries_in_view: np.ndarray  # [inits, nodes] int
    distance_to_data: np.ndarray  # [inits, nodes, points] in the plane (inf: no boundary in view)
    linearised_distance: np.ndarray  # [inits, nodes, points] in input space
    share_within_delta: np.ndarray  # [inits, nodes] (NaN: no boundary in view)
    x_edges: np.ndarray  # [G + 1] grid lines along t1
    y_edges: np.ndarray  # [G + 1] grid lines along t2
    data: np.ndarray  # [points, 2] plane coordinates of the data (projected onto the plane)
    labels: np.ndarray | None
    off_plane: np.ndarray  # [points] distance of each data point to the plane
    origin: np.ndarray  # [D]
    directions: np.ndarray  # [2, D]
    delta: float
    exact: bool
    bias_std: float
    seed: int
    dtype: str
    source: str  # the checkpoint or architecture
    data_source: str
    # exact partition edges per init, for the tessellation view: [S, 2, 2] and the layer of each
    segments: list[np.ndarray] | None = None
    segment_layers: list[np.ndarray] | None = None
    seconds: float = 0.0

    @property
    def grid(self) -> int:
        return len(self.x_edges) - 1

    @property
    def measure(self) -> str:
        return "boundary length per cell" if self.exact else "units crossing each cell"

    def node_summary(self, i: int, k: int) -> dict:
        plane = self.distance_to_data[i, k]
        linear = self.linearised_distance[i, k]
        return {
            "layer": self.node_layers[k],
            "units": self.node_units[k],
            "mean_distance_to_data": _number(plane.mean()),
            "median_distance_to_data": _number(np.median(plane)),
            "share_within_delta": _number(self.share_within_delta[i, k]),
            "boundaries_in_view": int(self.boundaries_in_view[i, k]),
            "mean_linearised_distance": _number(linear.mean()),
            "median_linearised_distance": _number(np.median(linear)),
        }

    def summary(self) -> dict:
        return {
            "source": self.source,
            "data": self.data_source,
            "points": int(len(self.data)),
            "grid": self.grid,
            "bounds": [*map(float, self.x_edges[[0, -1]]), *map(float, self.y_edges[[0, -1]])],
            "density": self.measure,
            "distance": "exact partition edges" if self.exact else "nearest crossed grid cell",
            "delta": self.delta,
            "bias_std": self.bias_std,
            "seed": self.seed,
            "dtype": self.dtype,
            "inits": {
                init: {name: self.node_summary(i, k) for k, name in enumerate(self.node_names)}
                for i, init in enumerate(self.inits)
            },
            "seconds": self.seconds,
        }


def _number(value) -> float | None:
    """JSON has no inf or NaN: a node with no boundary in view has no distance."""
    value = float(value)
    return value if math.isfinite(value) else None


# -- initialisations ---------------------------------------------------------------------------------


def _seed(seed: int, purpose: int) -> int:
    # numpy seed sequences take non-negative entropy: a negative seed maps to its 64-bit pattern
    return int(np.random.SeedSequence([seed % 2**64, purpose]).generate_state(1)[0])


def _is_affine(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))


def initialised(
    arch: Architecture, init: str, data: torch.Tensor, seed: int = 0, bias_std: float = DEFAULT_BIAS_STD
) -> nn.Module:
    """The architecture with fresh weights and the given biases, in eval mode, in float64."""
    if init not in REINITS:
        raise UsageError(f"`init` {init!r}: expected one of {', '.join(REINITS)} for a rebuilt architecture")
    options = dict(arch.options)
    if "batch_norm" in inspect.signature(FAMILIES[arch.family]).parameters:
        options["batch_norm"] = init == "batchnorm"
    module = build(arch.family, options).to(torch.float64)
    weights = torch.Generator().manual_seed(_seed(seed, _WEIGHTS))
    biases = torch.Generator().manual_seed(_seed(seed, _BIASES))

    def bias_like(tensor: torch.Tensor) -> torch.Tensor:
        if init != "random-bias":
            return torch.zeros_like(tensor)
        return bias_std * torch.randn(tensor.shape, generator=biases, dtype=tensor.dtype)

    norms = []
    with torch.no_grad():
        for layer in module.modules():
            if _is_affine(layer):
                fan_in = layer.weight[0].numel()
                draw = torch.randn(layer.weight.shape, generator=weights, dtype=torch.float64)
                layer.weight.copy_(math.sqrt(2.0 / fan_in) * draw)
                if layer.bias is not None:
                    layer.bias.copy_(bias_like(layer.bias))
            elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
                # a batch-norm's shift is its layer's bias; its statistics start as the identity
                layer.reset_running_stats()
                layer.weight.fill_(1.0)
                layer.bias.copy_(bias_like(layer.bias))
                norms.append(layer)
    if init == "batchnorm":
        if not norms:
            raise UsageError(
                f"family '{arch.family}' has no batch-norm layers to initialise from the data "
                "(mlp and convnet get them through their batch_norm option)"
            )
        fit_batch_norm(module, data)
    return module.eval()


@torch.no_grad()
def fit_batch_norm(module: nn.Module, data: torch.Tensor) -> None:
    """Set every batch-norm's statistics to the mean and (biased) variance of its input on `data`.

    One forward pass in eval mode: each batch-norm's statistics are set from its input just before it
    normalises that input, so every layer sees the earlier layers already normalised by the batch's
    statistics (what training mode computes on this batch), and the statistics stay frozen afterwards.
    """

    def record(layer: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        h = inputs[0]
        dims = [0, *range(2, h.dim())]  # per channel: over the batch and every spatial position
        layer.running_mean.copy_(h.mean(dim=dims))
        layer.running_var.copy_(h.var(dim=dims, unbiased=False))

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_pre_hook(record) for m in norms]
    try:
        module.eval()
        module(data.to(torch.float64))
    finally:
        for handle in handles:
            handle.remove()


# -- the grid pass ----------------------------------------------------------------------------------------


def node_units(net: PLNet, node_index: int) -> int:
    return net.pl_nodes[node_index].units


def node_values(net: PLNet, x: torch.Tensor, nodes: Sequence[int]) -> list[torch.Tensor]:
    """Pre-activations of the chosen nodes only, keeping nothing else between them."""
    found = {}
    for index, pre in net.walk(x) if nodes else ():
        if index in nodes:
            found[index] = pre
        if index == max(nodes):
            break
    return [found[index] for index in nodes]


def weak_sides(net: PLNet, x: torch.Tensor, nodes: Sequence[int]) -> list[torch.Tensor]:
    """Per chosen node, [B, units, sides] bool: the sides each point is on, zero counting as both (sign
    units: at or above, at or below the breakpoint; max-pool windows: the candidates on top), by the
    zero rule of splinetool/ir/pl.py. Every node up to the last chosen is run for its scale."""
    x = net.input_values(x)[0]
    scales = NodeScales(x)
    found = {}
    for index, pre in net.walk(x) if nodes else ():
        scale = scales(pre)
        if index in nodes:
            found[index] = net.pl_nodes[index].pl.weak_sides(pre, scale)
        if index == max(nodes):
            break
    return [found[index] for index in nodes]


def crossings(
    net: PLNet, plane: Plane, x_edges: torch.Tensor, y_edges: torch.Tensor, nodes: Sequence[int], report=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Units of each node crossing each grid cell [nodes, G, G], and units crossing any cell [nodes]."""
    g = len(x_edges) - 1
    rows_per_batch = max(1, POINTS_PER_BATCH // (g + 1))
    counts = torch.zeros((len(nodes), g, g), dtype=torch.int32, device=net.device)
    in_view = [None] * len(nodes)
    previous: list[torch.Tensor | None] = [None] * len(nodes)
    origin = plane.origin.to(net.device, net.dtype)
    directions = plane.directions.to(net.device, net.dtype)
    xs, ys = x_edges.to(net.device, net.dtype), y_edges.to(net.device, net.dtype)
    for start in range(0, g + 1, rows_per_batch):
        band = ys[start : start + rows_per_batch]
        along_y, along_x = torch.meshgrid(band, xs, indexing="ij")
        t = torch.stack([along_x, along_y], dim=-1).reshape(-1, 2)
        x = (origin[None, :] + t @ directions).reshape(len(t), *net.input_shape)
        for j, sides in enumerate(weak_sides(net, x, nodes)):
            sides = sides.reshape(len(band), g + 1, *sides.shape[1:])
            if previous[j] is not None:
                sides = torch.cat([previous[j], sides])
            previous[j] = sides[-1:]
            if len(sides) < 2:
                continue
            # a unit crosses a cell when no side holds all four corners (as the engines cut a tile)
            common = sides[:-1, :-1] & sides[1:, :-1] & sides[:-1, 1:] & sides[1:, 1:]
            crossed = ~common.any(dim=-1)
            first_row = start - 1 if start else 0
            counts[j, first_row : first_row + len(crossed)] = crossed.sum(dim=-1, dtype=torch.int32)
            seen = crossed.flatten(0, 1).any(dim=0)
            in_view[j] = seen if in_view[j] is None else in_view[j] | seen
        if report is not None:
            report(min(start + rows_per_batch, g + 1), g + 1)
    return counts.cpu(), torch.stack([v.sum() for v in in_view]).cpu()


# -- distances ----------------------------------------------------------------------------------------------


def distance_to_cells(points: np.ndarray, mask: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray):
    """Distance from each point to the nearest cell where `mask` [G, G] is set (0 inside; inf: none)."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return np.full(len(points), np.inf)
    lo = np.stack([x_edges[cols], y_edges[rows]], axis=1)
    hi = np.stack([x_edges[cols + 1], y_edges[rows + 1]], axis=1)
    best = np.empty(len(points))
    for s in range(0, len(points), 64):
        p = points[s : s + 64, None, :]
        gap = np.maximum(np.maximum(lo[None] - p, p - hi[None]), 0.0)
        best[s : s + 64] = np.hypot(gap[..., 0], gap[..., 1]).min(axis=1)
    return best


def near_data(points: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray, delta: float) -> np.ndarray:
    """[G, G]: cells whose centre lies within δ of a data point."""
    cx, cy = (x_edges[1:] + x_edges[:-1]) / 2, (y_edges[1:] + y_edges[:-1]) / 2
    centres = np.stack(np.meshgrid(cx, cy, indexing="xy"), axis=-1).reshape(-1, 2)
    near = np.zeros(len(centres), dtype=bool)
    for p in points:
        near |= ((centres - p) ** 2).sum(axis=1) <= delta**2
    return near.reshape(len(cy), len(cx))


@torch.no_grad()
def linearised_distance(net: PLNet, x: torch.Tensor, nodes: Sequence[int]) -> np.ndarray:
    """[nodes, points]: min over each node's units of |z_k(x)| / ‖∇z_k(x)‖ (NaN for max-pool nodes)."""
    x = net.input_values(x)[0]
    result = np.full((len(nodes), len(x)), np.nan)
    for row, (index, pre) in enumerate(zip(nodes, node_values(net, x, nodes))):
        if not _signs(net, index):
            continue
        pl = net.pl_nodes[index].pl
        # the Jacobian's result is [points, units, inputs]: few enough points at a time to fit the budget
        itemsize = torch.finfo(net.dtype).bits // 8
        chunk = max(1, MEMORY_BUDGET // (pre[0].numel() * net.input_dim * itemsize))
        key = net.preactivation_key(index)
        parts = zip(x.split(chunk), pre.split(chunk))
        norm = torch.cat(
            [_gradient_norms(pl.boundaries, p, jacobians(net, part, stop=key)) for part, p in parts]
        )
        distance = torch.where(norm > 0, pl.boundaries(pre).abs() / norm, torch.inf)
        result[row] = distance.amin(dim=1).cpu().numpy()
    return result


def _gradient_norms(boundaries: Callable, pre: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """[b, units] ‖∇z_k‖ from ∂pre/∂x ([b, pre, d]): each unit z_k of `boundaries(pre)` is affine in the
    pre-activation, so its gradient is its derivative along each column of ∂pre/∂x."""
    columns = slopes.permute(2, 0, 1).reshape(slopes.shape[2], *pre.shape)
    derivatives = torch.func.vmap(lambda t: torch.func.jvp(boundaries, (pre,), (t,))[1])(columns)
    return derivatives.square().sum(dim=0).sqrt()


def _signs(net: PLNet, index: int) -> bool:
    return net.pl_nodes[index].pl.has_boundary_values


# -- exact geometry -----------------------------------------------------------------------------------------


def boundary_segments(net: PLNet, plane: Plane, max_regions: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Every tile edge drawn by a PL node, [S, 2, 2], and that node's index; each interior edge
    appears once from each of its two tiles, so lengths count half."""
    part = partition(
        net,
        plane.origin.to(net.device, net.dtype),
        plane.directions.to(net.device, net.dtype),
        plane.domain,
        max_regions,
    )
    verts, labels = part.verts, part.labels
    following = next_corners(verts)
    drawn = (verts >= 0) & (labels >= 0)
    coords = part.coords.to(torch.float64)
    segments = torch.stack([coords[verts[drawn]], coords[following[drawn]]], dim=1)
    return segments.cpu().numpy(), labels[drawn].cpu().numpy()


def length_per_cell(segments: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """[G, G] length of the segments inside each grid cell (row: y index, column: x index)."""
    g = len(x_edges) - 1
    lo = np.array([x_edges[0], y_edges[0]])
    step = np.array([x_edges[-1] - x_edges[0], y_edges[-1] - y_edges[0]]) / g
    u, v = (segments[:, 0] - lo) / step, (segments[:, 1] - lo) / step  # in cells
    # parameters s in (0, 1) where a segment crosses a grid line, then the pieces between them
    params = [np.zeros(len(u)), np.ones(len(u))]
    owners = [np.arange(len(u)), np.arange(len(u))]
    for axis in (0, 1):
        a, b = np.minimum(u[:, axis], v[:, axis]), np.maximum(u[:, axis], v[:, axis])
        first, last = np.floor(a) + 1, np.ceil(b) - 1
        n = np.maximum(last - first + 1, 0).astype(np.int64)
        owner = np.repeat(np.arange(len(u)), n)
        line = first[owner] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        params.append((line - u[owner, axis]) / (v[owner, axis] - u[owner, axis]))
        owners.append(owner)
    owner, s = np.concatenate(owners), np.concatenate(params)
    order = np.lexsort((s, owner))
    owner, s = owner[order], s[order]
    same = owner[1:] == owner[:-1]
    seg, s0, s1 = owner[:-1][same], s[:-1][same], s[1:][same]
    middle = u[seg] + ((s0 + s1) / 2)[:, None] * (v[seg] - u[seg])
    cell = np.clip(np.floor(middle).astype(np.int64), 0, g - 1)
    lengths = (s1 - s0) * np.linalg.norm(segments[seg, 1] - segments[seg, 0], axis=1)
    density = np.zeros((g, g))
    np.add.at(density, (cell[:, 1], cell[:, 0]), lengths)
    return density


def distance_to_segments(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    if len(segments) == 0:
        return np.full(len(points), np.inf)
    p0, d = segments[:, 0], segments[:, 1] - segments[:, 0]
    dd = np.maximum((d**2).sum(axis=1), np.finfo(np.float64).tiny)
    best = np.empty(len(points))
    for i, p in enumerate(points):
        s = np.clip(((p - p0) * d).sum(axis=1) / dd, 0.0, 1.0)
        best[i] = np.sqrt((((p0 + s[:, None] * d) - p) ** 2).sum(axis=1).min())
    return best


def length_within(points: np.ndarray, segments: np.ndarray, delta: float) -> float:
    """Total length of the segments within δ of at least one point: per segment, the union over
    points of the parameter interval inside each point's disk."""
    if len(segments) == 0:
        return 0.0
    p0, d = segments[:, 0], segments[:, 1] - segments[:, 0]
    length = np.linalg.norm(d, axis=1)
    dd = np.maximum(length**2, np.finfo(np.float64).tiny)
    starts, ends = [], []
    for p in points:
        # |p0 + s d - p|² <= δ²  <=>  s² dd + 2 s (d·w) + |w|² - δ² <= 0 with w = p0 - p
        w = p0 - p
        half_b = (d * w).sum(axis=1) / dd
        disc = half_b**2 - ((w**2).sum(axis=1) - delta**2) / dd
        root = np.sqrt(np.maximum(disc, 0.0))
        s0, s1 = np.clip(-half_b - root, 0, 1), np.clip(-half_b + root, 0, 1)
        s1 = np.where(disc >= 0, s1, s0)
        starts.append(s0)
        ends.append(s1)
    s0, s1 = np.stack(starts, axis=1), np.stack(ends, axis=1)  # [S, points]
    order = np.argsort(s0, axis=1)
    s0, s1 = np.take_along_axis(s0, order, 1), np.take_along_axis(s1, order, 1)
    # sweep the intervals in order of their starts: covered length = sum of the new parts
    reach = np.maximum.accumulate(s1, axis=1)
    before = np.concatenate([np.zeros((len(s0), 1)), reach[:, :-1]], axis=1)
    covered = np.maximum(s1 - np.maximum(s0, before), 0.0).sum(axis=1)
    return float((covered * length).sum())


# -- the analysis -------------------------------------------------------------------------------------------


def choose_nodes(net: PLNet, layers: Sequence[int] | None) -> list[int]:
    """PL node indices for 1-based layer numbers (all nodes when None)."""
    count = len(net.pl_nodes)
    if count == 0:
        raise UsageError("the network has no piecewise-linear nodes: it has no boundaries to measure")
    if layers is None:
        return list(range(count))
    bad = [layer for layer in layers if not 1 <= layer <= count]
    if bad:
        raise UsageError(f"`layers` {','.join(map(str, layers))}: the network has PL nodes 1..{count}")
    return sorted({layer - 1 for layer in layers})


def grid_edges(plane: Plane, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    domain = plane.domain.to(torch.float64)
    low, high = domain.min(dim=0).values, domain.max(dim=0).values
    box = torch.stack([low, torch.stack([high[0], low[1]]), high, torch.stack([low[0], high[1]])])
    if not torch.allclose(box, domain):
        raise UsageError("bn-density needs a rectangular view of the plane (`bounds`, or an anchor square)")
    return (
        torch.linspace(float(low[0]), float(high[0]), grid + 1, dtype=torch.float64),
        torch.linspace(float(low[1]), float(high[1]), grid + 1, dtype=torch.float64),
    )


# bytes per grid cell and chosen node of each initialisation: the crossing counts (int32), the density
# (float64) and its stacked copy; with `exact` the lengths' float64 scratch as well
CELL_BYTES, EXACT_CELL_BYTES = 20, 36


def _check_grid_memory(grid: int, inits: int, nodes: int, exact: bool) -> None:
    per_cell = (EXACT_CELL_BYTES if exact else CELL_BYTES) * inits * nodes + 16  # + the near-data mask
    check_memory(
        grid * grid * per_cell,
        f"`grid` {grid}: a {grid:,} × {grid:,} grid for {nodes} layer(s) and {inits} initialisation(s)",
        "use a smaller `grid` (or fewer `layers` or `init`)",
    )


@dataclass
class Network:
    init: str
    net: PLNet


@dataclass(frozen=True)
class BNDensityOptions:
    """What `run` measures and records; the defaults are the command's."""

    layers: tuple[int, ...] | None = None  # PL nodes counted from 1 (None: every one)
    grid: int = DEFAULT_GRID  # G: the view is cut into G × G cells
    delta: float | None = None  # δ in plane units (None: DEFAULT_RELATIVE_DELTA × the view's larger side)
    exact: bool = False  # density, distances and shares from the exact planar partition
    segments: bool = False  # keep the exact partition's boundary edges (implied by `exact`)
    max_regions: int | None = DEFAULT_MAX_REGIONS  # the exact partition stops beyond this many tiles
    bias_std: float = DEFAULT_BIAS_STD  # of the biases "random-bias" draws
    seed: int = 0  # of the rebuilt networks' weights and biases
    source: str = ""  # the checkpoint or architecture measured, for the record

    def __post_init__(self) -> None:
        if self.layers is not None and (not self.layers or any(layer < 1 for layer in self.layers)):
            raise UsageError(f"`layers` {','.join(map(str, self.layers))}: expected PL node numbers from 1")
        if self.grid < 1:
            raise UsageError(f"`grid` {self.grid}: expected a positive number of cells per side")
        if self.delta is not None and not (self.delta > 0 and math.isfinite(self.delta)):
            raise UsageError(f"`delta` {self.delta}: expected a positive distance")
        # checked even where no bias is drawn: a bad value is a mistake
        if not 0 <= self.bias_std < math.inf:
            raise UsageError(f"`bias_std` {self.bias_std}: expected a finite number >= 0")


def run(
    networks: Sequence[Network],
    plane: Plane,
    data: Dataset,
    options: BNDensityOptions = BNDensityOptions(),
    progress: Progress | None = None,
) -> BNDensityResult:
    """Measure every network (one per initialisation) on the same plane, grid and data.

    `data.x` are the points in input space [N, ...]; they are projected onto the plane for the
    in-plane numbers. With `options.segments` (implied by `options.exact`), the exact partition's
    boundary edges are kept. `progress(done, total, note)` counts grid rows over every network.
    """
    start = time.perf_counter()
    x_edges, y_edges = grid_edges(plane, options.grid)
    xe, ye = x_edges.numpy(), y_edges.numpy()
    delta = options.delta
    if delta is None:
        delta = DEFAULT_RELATIVE_DELTA * max(xe[-1] - xe[0], ye[-1] - ye[0])
    if not delta > 0 or not math.isfinite(delta):
        raise UsageError(f"`delta` {delta}: expected a positive distance")
    x = torch.as_tensor(np.asarray(data.x, dtype=np.float64)).reshape(len(data.x), -1)
    t, off_plane = plane.project(x)
    points = t.numpy()
    layers, exact = options.layers, options.exact
    rows: dict[str, list] = {key: [] for key in ("density", "view", "plane", "linear", "share", "seg", "lay")}
    nodes_at_most = max(len(choose_nodes(n.net, layers)) for n in networks)
    _check_grid_memory(options.grid, len(networks), nodes_at_most, exact)
    names = layers_of = units = None
    dtype = ""
    for n, network in enumerate(networks):
        net, init = network.net, network.init
        nodes = choose_nodes(net, layers)
        names = [net.pl_nodes[i].name for i in nodes]
        layers_of = [i + 1 for i in nodes]
        units = [node_units(net, i) for i in nodes]
        dtype = str(net.dtype).removeprefix("torch.")

        def report(done: int, total: int, n=n, init=init) -> None:
            if progress is not None:
                progress(n * total + done, len(networks) * total, f"({init})")

        counts, in_view = crossings(net, plane, x_edges, y_edges, nodes, report)
        counts = counts.numpy()
        linear = linearised_distance(net, x.to(net.device, net.dtype), nodes)
        if exact or options.segments:
            found, found_nodes = boundary_segments(net, plane, options.max_regions)
            rows["seg"].append(found)
            rows["lay"].append(found_nodes + 1)
        if exact:
            per_node = [found[found_nodes == i] for i in nodes]
            density = np.stack([length_per_cell(s, xe, ye) / 2 for s in per_node])
            distance = np.stack([distance_to_segments(points, s) for s in per_node])
            totals = density.reshape(len(nodes), -1).sum(axis=1)
            within = np.array([length_within(points, s, delta) / 2 for s in per_node])
            share = np.where(totals > 0, within / np.where(totals > 0, totals, 1), np.nan)
        else:
            density = counts.astype(np.float64)
            distance = np.stack([distance_to_cells(points, c > 0, xe, ye) for c in counts])
            near = near_data(points, xe, ye, delta)
            totals = density.reshape(len(nodes), -1).sum(axis=1)
            within = (density * near).reshape(len(nodes), -1).sum(axis=1)
            share = np.where(totals > 0, within / np.where(totals > 0, totals, 1), np.nan)
        rows["density"].append(density)
        rows["view"].append(in_view.numpy())
        rows["plane"].append(distance)
        rows["linear"].append(linear)
        rows["share"].append(share)
    return BNDensityResult(
        inits=[network.init for network in networks],
        node_names=names,
        node_layers=layers_of,
        node_units=units,
        density=np.stack(rows["density"]),
        boundaries_in_view=np.stack(rows["view"]).astype(np.int64),
        distance_to_data=np.stack(rows["plane"]),
        linearised_distance=np.stack(rows["linear"]),
        share_within_delta=np.stack(rows["share"]),
        x_edges=xe,
        y_edges=ye,
        data=points,
        labels=None if data.y is None else np.asarray(data.y),
        off_plane=off_plane.numpy(),
        origin=plane.origin.numpy(),
        directions=plane.directions.numpy(),
        delta=float(delta),
        exact=exact,
        bias_std=float(options.bias_std),
        seed=options.seed,
        dtype=dtype,
        source=options.source,
        data_source=data.source,
        segments=rows["seg"] or None,
        segment_layers=rows["lay"] or None,
        seconds=time.perf_counter() - start,
    )


# -- the networks compared ----------------------------------------------------------------------------------


def networks(
    inits: Sequence[str],
    data: torch.Tensor,
    arch: Architecture | None,
    loaded: LoadedModel | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    bias_std: float = DEFAULT_BIAS_STD,
) -> list[Network]:
    """Lower one network per initialisation: the loaded checkpoint for "as-is", else `arch` rebuilt."""
    if not 0 <= bias_std < math.inf:  # checked even where no bias is drawn: a bad value is a mistake
        raise UsageError(f"`bias_std` {bias_std}: expected a finite number >= 0")
    found = []
    for init in inits:
        if init == "as-is":
            if loaded is None:
                raise UsageError("`init` as-is measures a checkpoint: give one (or pick another `init`)")
            net = lower(loaded)
        else:
            if arch is None:
                raise UsageError(f"`init` {init} rebuilds the architecture, but none is known")
            input_shape = tuple(arch.options.get("input_shape", ()))
            module = initialised(arch, init, data.reshape(len(data), *input_shape), seed, bias_std)
            net = lower(module, input_shape)
        found.append(Network(init, net.to(device=device, dtype=dtype)))
    return found


def compared_networks(
    init: str,
    data: Dataset,
    options: BNDensityOptions = BNDensityOptions(),
    loaded: LoadedModel | None = None,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> list[Network]:
    """The networks `run` compares, for the initialisations `init` names: "all", or names from INITS
    separated by commas. "as-is" is the checkpoint `loaded`; the others rebuild its architecture (the
    built-in family it records, else the family `arch` names; `input_shape` replaces the family's)
    with weights and biases drawn from `options.seed`, batch-norm statistics from `data`."""
    if loaded is None and arch is None:
        raise UsageError("give a checkpoint, or `arch` with an architecture to initialise")
    inits = inits_named(init, loaded is not None)
    rebuilt = _architecture(inits, loaded, arch, input_shape)
    x = torch.as_tensor(data.x.reshape(len(data.x), -1), dtype=torch.float64)
    found = networks(inits, x, rebuilt, loaded, device, dtype, options.seed, options.bias_std)
    input_dim = found[0].net.input_dim
    if x.shape[1] != input_dim:
        raise UsageError(
            f"`data` {data.source}: rows have {x.shape[1]} values but the model takes {input_dim}-D inputs"
        )
    return found


def inits_named(text: str, has_checkpoint: bool) -> list[str]:
    """The initialisations of an `init` text: "all" (as-is only with a checkpoint), or names from
    INITS separated by commas."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(INITS if has_checkpoint else REINITS)
    unknown = [n for n in names if n not in INITS]
    if not names or unknown:
        raise UsageError(f"`init` {text!r}: expected all, or some of {', '.join(INITS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"`init` {text!r}: an initialisation is named twice")
    return names


def layers_named(text: str | None) -> tuple[int, ...] | None:
    """The PL node numbers of a `layers` text such as "3,7,11" (None: every node)."""
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdecimal() and int(part) >= 1 for part in parts):
        raise UsageError(f"`layers` {text!r}: expected PL node numbers from 1, separated by commas")
    return tuple(int(part) for part in parts)


def _architecture(
    inits: Sequence[str], loaded: LoadedModel | None, arch: str | None, input_shape: tuple[int, ...] | None
) -> Architecture | None:
    """The architecture the re-initialisations rebuild (None when none of them is asked for and none
    is known)."""
    family = recorded_architecture(loaded) if loaded is not None else None
    if family is None and arch is not None:
        family = arch_family(arch)
    rebuilt = [i for i in inits if i != "as-is"]
    if rebuilt and family is None:
        what = (
            f"checkpoint {loaded.path} records no built-in family (a TorchScript archive written by "
            "splinetool records it in splinetool.json; a state dict takes it from `arch`)"
            if arch is None
            else f"`arch` {arch} is a factory, not a built-in family"
        )
        raise UsageError(
            f"`init` {','.join(rebuilt)} rebuilds the architecture with fresh weights, but {what}. Pass "
            "`arch` with a family TOML file (configs/arch/*.toml) or an inline family, or use `init` as-is."
        )
    if family is None:
        return None
    name, family_options = family
    if input_shape is not None:
        family_options = {**family_options, "input_shape": list(input_shape)}
    return Architecture(name, family_options)
