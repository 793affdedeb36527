"""Exact partition of a convex polygon in a 2-D plane of input space into the network's linear regions.

Piecewise-linear nodes are taken in order. Before node k every network value is affine on each
current tile, so the node's pre-activations are known exactly at the tile vertices and along their
edges; each breakpoint unit splits the tiles its zero line crosses. New vertices inherit every value
still needed downstream by interpolation along their edge; after the node, all vertices are pushed
through the affine steps up to the next node. Work therefore grows with vertices, not grid points.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from splinetool.engine.cut import corner_values, crossed, cut, signs_of, zero_tolerance
from splinetool.engine.store import TileStore, VertexStore, available_memory, grow
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.pl import ArgmaxKind

DOMAIN_EDGE = -1

Progress = Callable[[int, int, int], None]  # (node index, node count, tiles so far)


class TooManyRegions(UsageError):
    pass


@dataclass
class Partition:
    coords: torch.Tensor  # [V, 2] plane coordinates of every vertex
    verts: torch.Tensor  # [T, K] vertex ids per tile, counter-clockwise, -1 padded
    labels: torch.Tensor  # [T, K] PL node index that drew the edge leaving each corner (-1: domain edge)
    outputs: torch.Tensor  # [V, outputs] network output at every vertex
    tiles_per_node: list[int]  # tiles after the boundaries of nodes 1..k (prefix networks)

    @property
    def count(self) -> torch.Tensor:
        return (self.verts >= 0).sum(dim=1)


def plane_inputs(net: PLNet, origin: torch.Tensor, directions: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Input-space points origin + t @ directions, shaped as the network's inputs."""
    x = origin[None, :] + t @ directions
    return x.reshape(t.shape[0], *net.input_shape)


def partition(
    net: PLNet,
    origin: torch.Tensor,
    directions: torch.Tensor,
    domain: torch.Tensor,
    max_regions: int | None = None,
    progress: Progress | None = None,
) -> Partition:
    """Tiles of `domain` (a convex polygon [P, 2], counter-clockwise, in plane coordinates)."""
    tiles, vertices = _domain_tiles(net, origin, directions, domain)
    tiles_per_node = []
    for index in range(len(net.pl_nodes)):
        _refine(net, index, tiles, vertices, functools.partial(_check_limit, tiles, max_regions))
        tiles_per_node.append(tiles.n)
        if progress is not None:
            progress(index + 1, len(net.pl_nodes), tiles.n)
    outputs = vertices.field(net.output_index).reshape(vertices.n, -1)
    return Partition(vertices.coords, tiles.verts, tiles.labels, outputs, tiles_per_node)


def count_tiles(
    net: PLNet,
    origin: torch.Tensor,
    directions: torch.Tensor,
    domain: torch.Tensor,
    max_resident: int = 8192,
    progress: Progress | None = None,
) -> list[int]:
    """Tiles after the boundaries of nodes 1..k, for every k, without keeping the tiles.

    Tiles refine independently of one another: once more than `max_resident` are held, they are
    split into groups that each go through the remaining nodes alone and are dropped once counted,
    so memory follows the largest group, not the final number of tiles.
    """
    nodes = len(net.pl_nodes)
    counts = [0] * nodes
    stack = [(*_domain_tiles(net, origin, directions, domain), 0)]
    while stack:
        tiles, vertices, start = stack.pop()
        for index in range(start, nodes):
            _refine(net, index, tiles, vertices, lambda: None)
            counts[index] += tiles.n
            if progress is not None:
                progress(index + 1, nodes, counts[index])
            if tiles.n > max_resident and index + 1 < nodes:
                groups = torch.arange(tiles.n, device=tiles.verts.device).split(max(1, max_resident // 2))
                stack += [(*_subset(tiles, vertices, rows), index + 1) for rows in reversed(groups)]
                break
    return counts


def _domain_tiles(
    net: PLNet, origin: torch.Tensor, directions: torch.Tensor, domain: torch.Tensor
) -> tuple[TileStore, VertexStore]:
    device, dtype = net.device, net.dtype
    domain = domain.to(device=device, dtype=dtype)
    origin, directions = origin.to(device=device, dtype=dtype), directions.to(device=device, dtype=dtype)
    first = net.pl_nodes[0].step if net.pl_nodes else len(net.steps)
    values = net.run_steps(net.input_values(plane_inputs(net, origin, directions, domain)), 0, first)
    vertices = VertexStore(domain.clone(), values, budget=available_memory(domain.device))
    ids = torch.arange(domain.shape[0], device=device)[None, :]
    return TileStore(ids, torch.full_like(ids, DOMAIN_EDGE)), vertices


def _refine(
    net: PLNet, index: int, tiles: TileStore, vertices: VertexStore, limit: Callable[[], None]
) -> None:
    """Cut the tiles by node `index`'s boundaries, then push every vertex to the next node."""
    node = net.pl_nodes[index]
    pre_key = net.steps[node.step].inputs[0]
    if isinstance(node.pl, ArgmaxKind):
        _cut_windows(tiles, vertices, node.pl, pre_key, index, limit)
    else:
        _cut_units(tiles, vertices, node.pl, pre_key, index, limit)
    stop = net.pl_nodes[index + 1].step if index + 1 < len(net.pl_nodes) else len(net.steps)
    fields = {key: vertices.field(key) for key in net.live_after(node.step)}
    vertices.set_fields(net.run_steps(fields, node.step, stop))


def _subset(tiles: TileStore, vertices: VertexStore, rows: torch.Tensor) -> tuple[TileStore, VertexStore]:
    """Some tiles with their own copy of the vertices they use."""
    verts = tiles.verts[rows]
    used, local = torch.unique(verts[verts >= 0], return_inverse=True)
    renumbered = torch.full_like(verts, -1)
    renumbered[verts >= 0] = local
    fields = {key: vertices.field(key)[used] for key in vertices.field_keys()}
    return (
        TileStore(renumbered, tiles.labels[rows]),
        VertexStore(vertices.coords[used], fields, budget=vertices.budget),
    )


def _check_limit(tiles: TileStore, max_regions: int | None) -> None:
    n = tiles.n
    if max_regions is not None and n > max_regions:
        raise TooManyRegions(
            f"the slice has more than --max-regions {max_regions} regions ({n} so far); "
            "raise --max-regions or shrink the domain"
        )


def _cut_units(
    tiles: TileStore,
    vertices: VertexStore,
    pl,
    pre_key: int,
    label: int,
    limit: Callable[[], None],
    chunk: int = 2048,
) -> None:
    """Split tiles by every breakpoint unit of one node.

    Which units cross which tile is found once, at the start of the node; a piece of a tile can only
    be crossed by units that crossed the whole tile. Pieces of the same starting tile ("family")
    then take their candidate units in rounds, all families at once, so the work grows with the
    (tile, unit) pairs that really cut, not with tiles x units.
    """
    if pl.thresholds == (0.0,):
        key = pre_key  # the units are the pre-activations themselves: no second copy per vertex
    else:
        key = ("units", label)
        vertices.add_field(key, pl.boundaries(vertices.field(pre_key)))

    def units_table() -> torch.Tensor:
        values = vertices.field(key)
        return values.reshape(values.shape[0], math.prod(values.shape[1:]))

    table = units_table()
    scale = table.abs().amax(dim=0)  # per unit
    tol = zero_tolerance(scale)
    families, units = _crossing_pairs(tiles, table, tol, chunk)
    if families.numel() == 0:
        _drop_units(vertices, key, pre_key)
        return
    # round r hands each family its r-th candidate unit; pairs come sorted by family
    device = families.device
    starts = torch.searchsorted(families, torch.arange(tiles.n + 1, device=device))
    rank = torch.arange(families.numel(), device=device) - starts[families]
    by_round = torch.argsort(rank, stable=True)
    round_sizes = torch.bincount(rank).tolist()
    family_of_row = GrowingIndex(torch.arange(tiles.n, device=device))
    unit_of_family = torch.full((tiles.n,), -1, dtype=torch.long, device=device)
    offset = 0
    for size in round_sizes:
        chosen = by_round[offset : offset + size]
        offset += size
        unit_of_family.fill_(-1)
        unit_of_family[families[chosen]] = units[chosen]
        unit = unit_of_family[family_of_row.values]
        rows = torch.nonzero(unit >= 0).flatten()
        unit = unit[rows]
        verts = tiles.verts[rows]
        table = units_table()
        values = torch.where(verts >= 0, table[verts.clamp(min=0), unit[:, None]], 0.0)
        signs = signs_of(values, scale[unit][:, None]) * (verts >= 0)
        hit = crossed(signs)
        if not hit.any():
            continue
        rows, unit, verts, values, signs = rows[hit], unit[hit], verts[hit], values[hit], signs[hit]
        width = int((verts >= 0).sum(dim=1).max())
        (pos, pos_labels), (neg, neg_labels) = cut(
            vertices,
            verts[:, :width],
            tiles.labels[rows][:, :width],
            values[:, :width],
            signs[:, :width],
            label,
            tag=unit,
        )
        tiles.replace(rows, pos, pos_labels)
        tiles.append(neg, neg_labels)
        family_of_row.append(family_of_row.values[rows])
        limit()
    _drop_units(vertices, key, pre_key)


def _drop_units(vertices: VertexStore, key, pre_key: int) -> None:
    if key != pre_key:
        vertices.drop_field(key)


def _crossing_pairs(
    tiles: TileStore, table: torch.Tensor, tol: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tile, unit) pairs whose zero line strictly separates two corners of the tile."""
    families, units = [], []
    for rows in torch.arange(tiles.n, device=table.device).split(chunk):
        verts = tiles.verts[rows]
        # padding repeats the first corner so it cannot change a tile's min or max
        filled = torch.where(verts >= 0, verts, verts[:, :1])
        values = table[filled]  # [t, K, units]
        hit = (values.amax(dim=1) > tol) & (values.amin(dim=1) < -tol)
        tile, unit = torch.nonzero(hit, as_tuple=True)
        families.append(rows[tile])
        units.append(unit)
    return torch.cat(families), torch.cat(units)


class GrowingIndex:
    """An integer per tile row, appended to as tiles are appended (amortised doubling)."""

    def __init__(self, values: torch.Tensor):
        self._data = values
        self.n = values.shape[0]

    @property
    def values(self) -> torch.Tensor:
        return self._data[: self.n]

    def append(self, more: torch.Tensor) -> None:
        end = self.n + more.shape[0]
        self._data = grow(self._data, end)
        self._data[self.n : end] = more
        self.n = end


def _cut_windows(
    tiles: TileStore,
    vertices: VertexStore,
    pl: ArgmaxKind,
    pre_key: int,
    label: int,
    limit: Callable[[], None],
) -> None:
    pre = vertices.field(pre_key)
    # which entries of the pre-activation each window compares (-inf: padding, which never wins)
    positions = torch.arange(pre[0].numel(), device=pre.device, dtype=pre.dtype).reshape(1, *pre.shape[1:])
    taps = pl.candidates(positions)[0]
    for window in taps:
        real = window[torch.isfinite(window)].long()

        def scores(real=real) -> torch.Tensor:
            values = vertices.field(pre_key)
            return values.reshape(values.shape[0], -1)[:, real]

        argmax_cells(tiles, vertices, scores, label)
        limit()


def argmax_cells(
    tiles: TileStore,
    vertices: VertexStore,
    scores: Callable[[], torch.Tensor],
    label: int | Callable[[int, int], int],
) -> None:
    """Split tiles into the cells where each of k affine scores is the largest.

    A tile on which one score is a (weak) maximum at every corner is left whole: the set where a
    score wins is convex. Otherwise each candidate's cell is the tile clipped by its k-1 half-planes
    `z_i >= z_j`; empty cells are dropped. `label` is the edge label of the new edges (or a function
    of the pair (i, j) that gives it).
    """
    z = scores()
    # max-pool padding candidates are -inf everywhere: they never win, and their differences are nan
    real = torch.isfinite(z[0])
    if not real.all():
        chosen = torch.nonzero(real).flatten()
        return argmax_cells(tiles, vertices, lambda: scores()[:, chosen], label)
    tol = zero_tolerance(z.abs().max())
    best = z.max(dim=1, keepdim=True).values
    weak = z >= best - tol  # [V, k]
    verts = tiles.verts
    corner_weak = weak[verts.clamp(min=0)] | (verts < 0)[:, :, None]
    whole = corner_weak.all(dim=1).any(dim=1)
    rows = torch.nonzero(~whole).flatten()
    if rows.numel() == 0:
        return
    width = int(tiles.count[rows].max())
    base_verts, base_labels = tiles.verts[rows][:, :width], tiles.labels[rows][:, :width]
    cells_verts, cells_labels = [], []
    for i in range(z.shape[1]):
        cell_verts, cell_labels = base_verts, base_labels
        for j in range(z.shape[1]):
            if j == i or cell_verts.shape[0] == 0:
                continue
            current = scores()
            diff = current[:, i] - current[:, j]
            values = corner_values(cell_verts, diff)
            signs = signs_of(values, diff.abs().max()) * (cell_verts >= 0)
            edge_label = label(i, j) if callable(label) else label
            ((cell_verts, cell_labels),) = cut(
                vertices, cell_verts, cell_labels, values, signs, edge_label, sides=(1,)
            )
            # where z_i and z_j agree on the whole tile, arg-max takes the first: i keeps it when i < j
            tied = (signs == 0).all(dim=1) & (i < j)
            alive = ((signs > 0).any(dim=1) | tied) & ((cell_verts >= 0).sum(dim=1) >= 3)
            cell_verts, cell_labels = cell_verts[alive], cell_labels[alive]
        cells_verts.append(cell_verts)
        cells_labels.append(cell_labels)
    keep = torch.ones(tiles.n, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    tiles.keep(torch.nonzero(keep).flatten())
    for cell_verts, cell_labels in zip(cells_verts, cells_labels):
        if cell_verts.shape[0]:
            tiles.append(cell_verts, cell_labels)
