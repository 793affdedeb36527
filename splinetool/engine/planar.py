"""Exact partition of a convex polygon in a 2-D plane of input space into the network's linear regions.

Piecewise-linear nodes are taken in order. Before node k every network value is affine on each
current tile, so the node's pre-activations are known exactly at the tile vertices and along their
edges. Vertices carry only the network values that later steps still need; after a node they are
pushed through the affine steps up to the next node.

How a node is cut, and why (the sample ConvNet's first node alone draws 1,024 lines and 199,458
tiles on the plane through three digits; figures in bench/README.md):

- Work follows the (tile, unit) pairs that really cut. A node starts from the pairs whose zero set
  strictly separates two corners of a tile. Each such tile is a "family": in round r every piece of
  a family is cut by the family's r-th unit, all families at once. When a stage has doubled the
  tiles, the remaining units of each family are re-tested against each piece, and every piece
  becomes a family of its own. Without re-testing, one family holding the whole domain inserts its
  lines one at a time over ever more pieces, quadratic in the tiles.
- Tiles share vertices. During a stage, edge labels also name the edge (as it was when the stage
  began) that each side lies on, and every vertex created on such an edge records (edge, what
  crossed it). Two families that each cut a common edge by the same unit create the same point: at
  the end of the stage such vertices become one, and every point created on a starting edge is
  inserted into each tile whose side runs over it. So no two vertices of a group sit at one point
  and the tiles form a proper planar subdivision. (Splitting every edge up front instead gave the
  domain tile of that first node 1,614 corners, and every piece a row that wide.) The other copies
  stay unused until the node ends, when only the vertices some tile uses are pushed on.
- Arg-max nodes (max-pool) are cut window by window in the same rounds. A window's cells on a tile
  are the convex hulls of the tile's corners where a candidate wins (the envelope's breakpoints on
  the tile's edges are inserted first, shared like above) and of the interior points where three
  candidates tie for the maximum, each created once and used by all three cells. This costs one
  pass per window instead of clipping every cell by every other candidate, and gives cells that
  share their vertices.
- Memory follows a budget, not the plane. Tiles refine independently of one another, so a group
  whose vertices outgrow the budget (or whose tiles pass `max_resident`) is split, at the end of a
  stage, into spatially compact groups that each finish the remaining nodes alone and are handed out
  as soon as they are done. A ResNet vertex holds every live activation of the image (512 KiB at
  32x32x64 in float64), so holding all vertices of a plane at once is what made big networks fail.
  On a CPU a node's end pushes the vertices through the layers 4,096 at a time and leaves the next
  node's tables room for three times their vertices (at most 32 MiB beyond them): each page that a
  batch of the whole plane or a doubling copy touched afresh was a page fault (0.11-0.13 s of a
  0.6 s slice of the random 2->128x4 square in a fresh process; 0.06-0.07 s now).
- Activation codes are read from the engine's own values: right after node k is cut, node k's code
  is constant on each tile and equals its code at the tile's vertex mean, where the pre-activation is
  the mean of the corner values. Pieces cut later inherit it. No second pass over the network.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from splinetool.engine.cut import crossed, cut, sign_of, unique_first, zero_tolerance
from splinetool.engine.store import TileStore, VertexStore, available_memory, grow, take_rows
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import pack_bits
from splinetool.ir.pl import ArgmaxKind, SignKind, magnitude, node_scale
from splinetool.ir.plnet import same_graph

DOMAIN_EDGE = -1
STAGE_MIN_GROWTH = 256  # a stage ends once it has added this many tiles and doubled them
PAIR_CHUNK_BYTES = 1 << 26  # temporaries of the (tile, unit) crossing tests
# vertices pushed through the layers at once on a CPU: each chunk's copies reuse the pages the last
# one freed, where one batch of all vertices faulted in fresh memory for each (bench/README.md)
PUSH_ROWS_CPU = 4096
ROOM_BYTES = 1 << 25  # room for new vertices a node's end leaves on a CPU, at most (`_room`)
DEFAULT_BUDGET = 1 << 30  # bytes a group may use, vertex values and the room for growth included
# a max-pool cell thinner than this share of its tile is a tie within the tolerance along a line, not
# a region: dropping it loses that much area at most (and no code: the cell's neighbours hold it)
SLIVER = 1e-9
SAME_POINT = 1e-12  # crossings closer than this along an edge (relative to its length) are one vertex
# vertex fields for the zero rule (splinetool/ir/pl.py): the previous node's scale at each vertex, and
# the node under way's; new vertices interpolate both, an upper bound of their own (a convex function)
BELOW, SCALE = "below", "scale"
SHEET = "sheet"  # the plane of each vertex, in a sweep of several planes

Progress = Callable[[int, int, int], None]  # (done, total, tiles so far); done / total: share of the area

# what each kind of PL node registers here (PLKind.implements):
# CUT(net, group, limit) -> bool runs one stage of the group's node, True once the node is done;
# CODES(net, group) -> [T, bytes] reads the node's packed code on every tile (default: `_mean_codes`)
CUT, CODES = "planar cut", "planar codes"


class TooManyRegions(UsageError):
    pass


@dataclass
class Partition:
    coords: torch.Tensor  # [V, 2] plane coordinates of every vertex
    verts: torch.Tensor  # [T, K] vertex ids per tile, counter-clockwise, -1 padded
    labels: torch.Tensor  # [T, K] PL node index that drew the edge leaving each corner (-1: domain edge)
    outputs: torch.Tensor  # [V, outputs] network output at every vertex
    tiles_per_node: list[int]  # tiles after the boundaries of nodes 1..k (prefix networks)
    codes: torch.Tensor | None = None  # [T, bytes] bit-packed activation codes, nodes in order
    sheets: torch.Tensor | None = None  # [V] each vertex's plane, in a sweep of several planes

    @property
    def count(self) -> torch.Tensor:
        return (self.verts >= 0).sum(dim=1)

    @property
    def tile_sheets(self) -> torch.Tensor:
        """[T] each tile's plane (0 in a sweep of one plane): no tile takes corners of two planes."""
        if self.sheets is None:
            return torch.zeros(self.verts.shape[0], dtype=torch.long, device=self.verts.device)
        return self.sheets.take(self.verts[:, 0])


def plane_inputs(net: PLNet, origin: torch.Tensor, directions: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Input-space points origin + t @ directions, shaped as the network's inputs."""
    x = origin[None, :] + t @ directions
    return x.reshape(t.shape[0], *net.input_shape)


def _check_reach(domain: torch.Tensor, corners: torch.Tensor) -> None:
    """Refuse a plane too large for its dtype: areas and intersections multiply two coordinates, so
    coordinates must stay well inside the square root of the dtype's largest number (1e150 in
    float64, 1e15 in float32). The map to input space is affine, so its corners bound every point."""
    limit = torch.finfo(domain.dtype).max ** 0.5 * 1e-4
    reach = max(float(domain.abs().max()), float(corners.abs().max()))
    if not reach <= limit:
        raise UsageError(
            f"the plane reaches {reach:.3g}, too far for {str(domain.dtype).removeprefix('torch.')} "
            f"geometry (coordinates must stay within ±{limit:.1e}): compute in float64 or shrink the plane"
        )


@dataclass
class _Group:
    tiles: TileStore
    vertices: VertexStore
    area: float
    node: int = 0
    pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows, items) of the node under way
    # a sign node's packed `above` bits of the vertices it started with, for its codes at the end
    # (None after a split, which renumbers the vertices)
    above_at_start: torch.Tensor | None = None


@dataclass
class Sweep:
    """The tiles of `domain` (a convex polygon [P, 2], counter-clockwise, in plane coordinates).

    Several planes in one pass: `origin` [B, D] and `directions` [B, 2, D] partition B planes over
    the same domain, each in its own copy of the domain's corners (same coordinates; no tile ever
    takes corners of two copies), and each vertex carries its plane's index (`Partition.sheets`).
    Each plane gets the tiles it gets alone, up to the rounding of the network's layers run on
    other batches of vertices (which can move a near-degenerate tile in float32). `tiles_per_node`
    and `max_regions` count the tiles of all planes together (`tiles_per_plane` each plane's). One
    plane's pass costs the same rounds of tensor operations as B planes', so many small planes are
    far cheaper together.

    Several networks of one graph in one pass (the checkpoints of a training trajectory): with
    `networks` [B], each of `net`'s graph (`same_graph`), network k runs on plane k's vertices, so
    plane k gets the tiles of network k; give the same origin and directions B times to slice B
    checkpoints on one plane.

    Iterating yields finished groups of tiles as `Partition`s (their `tiles_per_node` empty); once
    exhausted, `tiles_per_node` holds the totals. `budget` bounds the bytes of vertex values a group
    may hold (default: a sixth of `available_memory`, at most DEFAULT_BUDGET), `max_resident` its tiles.
    """

    net: PLNet
    origin: torch.Tensor
    directions: torch.Tensor
    domain: torch.Tensor
    budget: int | None = None
    max_resident: int | None = None
    max_regions: int | None = None
    codes: bool = True
    progress: Progress | None = None
    networks: Sequence[PLNet] | None = None
    tiles_per_node: list[int] = field(default_factory=list)
    tiles_per_plane: list[list[int]] = field(default_factory=list)  # [B][nodes]: each plane's tiles_per_node
    planes: int = field(default=1, init=False)

    # inference mode while the sweep works (each step between the groups it hands out): the many small
    # operations of a cut skip autograd's bookkeeping, whatever mode the caller is in; the groups are
    # inference tensors, read but never written in place by their users
    @torch.inference_mode()
    def __iter__(self) -> Iterator[Partition]:
        net = self.net
        nodes = len(net.pl_nodes)
        first = self._first_group()
        self.tiles_per_node = [0] * nodes
        self.tiles_per_plane = [[0] * nodes for _ in range(self.planes)]
        # a group is split once it holds a quarter of `budget` (`_too_big`), but within one stage its
        # vertices may still grow 4x, their tables' capacity runs up to 2x the rows, and the vertex
        # store refuses to grow past 3x that capacity: a sixth of its limit keeps its check from firing
        budget = self.budget if self.budget is not None else min(first.vertices.budget // 6, DEFAULT_BUDGET)
        total_area = first.area
        finished_area, handed_out = 0.0, 0
        stack = [first]
        while stack:
            group = stack.pop()
            while group.node < nodes:
                others = handed_out + sum(g.tiles.n for g in stack)
                cut_stage = net.pl_nodes[group.node].pl.implementation(CUT)
                node_done = cut_stage(net, group, self._limit(others))
                if node_done:
                    self._tally(group)
                    _finish_node(net, group, self.codes, self._run_steps)
                self._report(finished_area + group.area * group.node / max(nodes, 1), total_area, group)
                if group.node < nodes and self._too_big(group, budget):
                    stack += reversed(_split(group, budget, self.max_resident))
                    break
            else:
                finished_area += group.area
                handed_out += group.tiles.n
                yield _finished(net, group, self.codes)

    def _first_group(self) -> _Group:
        net = self.net
        device, dtype = net.device, net.dtype
        domain = self.domain.to(device=device, dtype=dtype)
        origin = self.origin.to(device=device, dtype=dtype)
        directions = self.directions.to(device=device, dtype=dtype)
        first = net.node_stop(0)
        inputs = origin.shape[-1]
        origins, directions = origin.reshape(-1, inputs), directions.reshape(-1, 2, inputs)
        sheets = origins.shape[0]
        if directions.shape[0] != sheets:
            raise UsageError(
                f"{sheets} origins for {directions.shape[0]} pairs of directions: give one pair per origin"
            )
        if self.networks is not None:
            if len(self.networks) != sheets:
                raise UsageError(
                    f"{len(self.networks)} networks for {sheets} planes: give one network per plane"
                )
            if not all(other is net or same_graph(net, other) for other in self.networks):
                raise UsageError("the networks of one sweep must share `net`'s graph, device and dtype")
        self.planes = sheets
        coords = domain.repeat(sheets, 1)
        corners = (origins[:, None, :] + domain @ directions).reshape(-1, *net.input_shape)
        _check_reach(domain, corners)
        # a small integer per vertex: interpolating between equal values keeps it
        sheet = torch.arange(sheets, device=device, dtype=dtype).repeat_interleave(domain.shape[0])
        values = self._run_steps(net.input_values(corners), sheet, 0, first) | {BELOW: magnitude(corners)}
        if sheets > 1:
            values[SHEET] = sheet
        vertices = VertexStore(coords, values, budget=available_memory(domain.device))
        ids = torch.arange(coords.shape[0], device=device).reshape(sheets, domain.shape[0])
        area = sheets * float(polygon_areas(domain[None], torch.tensor([domain.shape[0]], device=device))[0])
        return _Group(TileStore(ids, torch.full_like(ids, DOMAIN_EDGE)), vertices, area)

    def _run_steps(self, values: dict, sheet: torch.Tensor | None, start: int, stop: int) -> dict:
        """`net.run_steps` on vertex values, each vertex through its plane's network (`sheet`: its plane)."""
        if self.networks is None or len(self.networks) == 1:
            return (self.networks or [self.net])[0].run_steps(values, start, stop)
        sheet = sheet.round().long()
        rows_of = torch.argsort(sheet, stable=True).split(
            torch.bincount(sheet, minlength=self.planes).tolist()
        )
        pushed: dict = {}
        for network, rows in zip(self.networks, rows_of):
            if rows.numel():
                part = network.run_steps({k: v.index_select(0, rows) for k, v in values.items()}, start, stop)
                for key, value in part.items():
                    pushed.setdefault(key, value.new_empty((sheet.shape[0], *value.shape[1:])))
                    pushed[key].index_copy_(0, rows, value)
        return pushed

    def _tally(self, group: _Group) -> None:
        """Add a group's tiles, once its node is cut, to the node's counts."""
        tiles = group.tiles
        self.tiles_per_node[group.node] += tiles.n
        if self.planes == 1:
            self.tiles_per_plane[0][group.node] += tiles.n
            return
        sheet = group.vertices.field(SHEET).take(tiles.verts[:, 0]).round().long()
        for plane, count in enumerate(torch.bincount(sheet, minlength=self.planes).tolist()):
            self.tiles_per_plane[plane][group.node] += count

    def _limit(self, others: int) -> Callable[[TileStore], None]:
        def check(tiles: TileStore) -> None:
            n = tiles.n + others
            if self.max_regions is not None and n > self.max_regions:
                raise TooManyRegions(
                    f"the slice has more than `max_regions` {self.max_regions} regions ({n} so far); "
                    "raise `max_regions` or shrink the domain"
                )

        return check

    def _too_big(self, group: _Group, budget: int) -> bool:
        if group.tiles.n < 2:
            return False
        held = group.vertices.n * group.vertices.row_bytes() + group.tiles.bytes()
        # a stage may double the tiles and their vertices, and pushing values to the next node
        # holds two copies: a quarter of the budget leaves room for both
        return held > budget // 4 or (self.max_resident is not None and group.tiles.n > self.max_resident)

    def _report(self, done_area: float, total_area: float, group: _Group) -> None:
        if self.progress is not None:
            share = min(1.0, done_area / total_area) if total_area > 0 else 0.0
            self.progress(int(1000 * share), 1000, group.tiles.n)


def partition(
    net: PLNet,
    origin: torch.Tensor,
    directions: torch.Tensor,
    domain: torch.Tensor,
    max_regions: int | None = None,
    progress: Progress | None = None,
) -> Partition:
    """All tiles of `domain` at once, in one vertex table."""
    sweep = Sweep(net, origin, directions, domain, budget=1 << 62, max_regions=max_regions, progress=progress)
    (whole,) = list(sweep)
    whole.tiles_per_node = sweep.tiles_per_node
    return whole


def count_tiles(
    net: PLNet,
    origin: torch.Tensor,
    directions: torch.Tensor,
    domain: torch.Tensor,
    max_resident: int = 8192,
    progress: Progress | None = None,
    budget: int | None = None,
) -> list[int]:
    """Tiles after the boundaries of nodes 1..k, for every k, without keeping the tiles."""
    sweep = Sweep(
        net,
        origin,
        directions,
        domain,
        budget=budget,
        max_resident=max_resident,
        codes=False,
        progress=progress,
    )
    for _ in sweep:
        pass
    return sweep.tiles_per_node


# -- one node, stage by stage ---------------------------------------------------------------------


@SignKind.implements(CUT)
def _cut_sign_node(net: PLNet, group: _Group, limit: Callable[[TileStore], None]) -> bool:
    """One stage of a sign node (ReLU and kin); True once the node is done."""
    tiles, vertices = group.tiles, group.vertices
    table = _units_table(net, group)
    if group.pending is None:
        _start_node(net, group)
        scale = vertices.field(SCALE)
        group.above_at_start = _packed_signs(table(), scale, 1)
        group.pending = _tile_bits(tiles, group.above_at_start, _packed_signs(table(), scale, -1))

    def cut_round(stage: _Stage, picked: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
        # the store is as wide as its widest tile ever; these rows need only their own corners
        count = tiles.count.take(picked)
        width = int(count.max()) if picked.numel() else 1
        verts = take_rows(tiles.verts[:, :width], picked)
        values, signs = _unit_signs(table(), vertices.field(SCALE), verts, unit)
        hit = torch.nonzero(crossed(signs)).flatten()
        if hit.numel() == 0:
            return hit
        if hit.numel() < picked.numel():
            picked, unit, count = picked.take(hit), unit.take(hit), count.take(hit)
            verts, values, signs = take_rows(verts, hit), take_rows(values, hit), take_rows(signs, hit)
        pieces, labels = cut(
            vertices,
            verts,
            take_rows(tiles.labels[:, :width], picked),
            values,
            signs,
            stage.new_edge(group.node),
            tag=unit,
            created=stage.created,
            count=count,
        )
        tiles.divide(picked, pieces, labels)
        return picked

    def keep(rows: torch.Tensor, units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _keep_crossing(tiles, table(), vertices.field(SCALE), rows, units)

    return _cut_in_rounds(net, group, cut_round, keep, limit)


@ArgmaxKind.implements(CUT)
def _cut_argmax_node(net: PLNet, group: _Group, limit: Callable[[TileStore], None]) -> bool:
    """One stage of an arg-max node (max-pool); True once the node is done."""
    node = net.pl_nodes[group.node]
    tiles, vertices = group.tiles, group.vertices
    pre_key = net.preactivation_key(group.node)
    taps = _window_taps(node.pl, vertices.field(pre_key))

    def scores() -> torch.Tensor:
        values = vertices.field(pre_key)
        return values.reshape(values.shape[0], -1)

    def scale() -> torch.Tensor:
        return vertices.field(SCALE)

    if group.pending is None:
        _start_node(net, group)
        group.pending = _window_pairs(tiles, scores(), taps, scale())

    def cut_round(stage: _Stage, picked: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        picked, window = _keep_window_crossing(tiles, scores(), taps, scale(), picked, window)
        if picked.numel() == 0:
            return picked
        # the envelope's breakpoints on the tiles' edges first, so that neighbours share them
        crossings = _window_edge_crossings(tiles, scores(), taps, scale(), picked, window)
        _split_edges(tiles, vertices, *crossings, picked, stage.created)
        new_edge = stage.new_edge(group.node)
        return _argmax_cells(tiles, vertices, scores(), taps, scale(), picked, window, new_edge)

    def keep(rows: torch.Tensor, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _keep_window_crossing(tiles, scores(), taps, scale(), rows, windows)

    return _cut_in_rounds(net, group, cut_round, keep, limit)


def _cut_in_rounds(
    net: PLNet,
    group: _Group,
    cut_round: Callable[[_Stage, torch.Tensor, torch.Tensor], torch.Tensor],
    keep: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    limit: Callable[[TileStore], None],
) -> bool:
    """Cut the group's pending (tile, item) pairs, one item per family of tiles per round.

    A family is a tile of the stage's start and every piece cut from it. `cut_round(stage, rows,
    items)` cuts rows by their items and returns the parent row of each new tile. Once the tiles have
    doubled, the stage ends and the remaining items are re-tested on every piece (`keep`), so that
    later rounds follow only the pairs that still cut. True once the node is done.
    """
    tiles = group.tiles
    families, items = group.pending
    if families.numel() == 0:
        return _node_done(group)
    stage = _Stage(tiles, group.vertices, len(net.pl_nodes), torch.unique_consecutive(families))
    rank_of_pair = _ranks(families)
    family_of_row = GrowingIndex(torch.arange(tiles.n, device=families.device))
    item_of_family = torch.full((tiles.n,), -1, dtype=torch.long, device=families.device)
    start = tiles.n
    # the pairs in round order, so that each round reads its own run of them
    by_round = torch.argsort(rank_of_pair, stable=True)
    per_round = torch.bincount(rank_of_pair).tolist()
    rounds = len(per_round)
    round_pairs = zip(families.take(by_round).split(per_round), items.take(by_round).split(per_round))
    for r, (round_families, round_items) in enumerate(round_pairs):
        # a family has one pair per round: its own row, and the pieces cut from it (rows past
        # `start`), take that item; rows in order, as the families' rows all come before the pieces
        item_of_family.index_copy_(0, round_families, round_items)
        piece_item = item_of_family.take(family_of_row.values[start:])
        pieces = torch.nonzero(piece_item >= 0).flatten()
        picked = torch.cat([round_families, pieces + start])
        picked_items = torch.cat([round_items, piece_item.take(pieces)])
        item_of_family.index_fill_(0, round_families, -1)
        parents = cut_round(stage, picked, picked_items)
        if parents.numel():
            family_of_row.append(family_of_row.values.take(parents))
            limit(tiles)
        if r + 1 < rounds and tiles.n >= 2 * start and tiles.n - start >= STAGE_MIN_GROWTH:
            later = rank_of_pair > r
            stage.close()
            group.pending = keep(*_expand(family_of_row.values, families[later], items[later]))
            return False
    stage.close()
    return _node_done(group)


class _Stage:
    """Edge labels that also name the edge a stage started from, and vertex merging at its end.

    Families are cut in different rounds, so two neighbours each create the point where a unit (or
    a window's envelope) crosses their common edge. During a stage an edge label is
    `support * span + label + 1`, with support 1 + the id of the edge (at the stage's start) the edge
    lies on, 0 for edges drawn in the stage. Every created vertex records (support, key), where key
    names the crossing (unit, or window and candidate pair); at the end of the stage, vertices with
    the same record are one point, and every tile uses the first of them.

    A stage works on the families' rows and the pieces cut from them, not on every tile of the
    group: a unit that crosses a common edge of two tiles strictly separates corners of both, so
    every point a stage makes lies on tiles that have items of their own to cut.
    """

    def __init__(self, tiles: TileStore, vertices: VertexStore, nodes: int, rows: torch.Tensor):
        self.tiles = tiles
        self.vertices = vertices
        self.span = nodes + 2
        self.created: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.rows, self.start = rows, tiles.n
        verts = tiles.verts[rows]
        nxt = next_corners(verts)
        valid = verts >= 0
        n = vertices.n
        edge_key = torch.minimum(verts, nxt) * n + torch.maximum(verts, nxt)
        edges, support, tiles_on = torch.unique(edge_key[valid], return_inverse=True, return_counts=True)
        self.ends = torch.stack([edges // n, edges % n], dim=1)  # [supports, 2] vertex ids
        self.tiles_on = torch.cat([tiles_on.new_zeros(1), tiles_on])  # by support: the stage's tiles on it
        labels = tiles.labels[rows]
        labels[valid] = (support + 1) * self.span + labels[valid] + 1
        tiles.relabel(rows, labels=labels)

    def new_edge(self, label: int) -> int:
        return label + 1

    def close(self) -> None:
        tiles = self.tiles
        rows = torch.cat([self.rows, torch.arange(self.start, tiles.n, device=self.rows.device)])
        verts = tiles.verts[rows]
        valid = verts >= 0
        points = torch.zeros(0, dtype=torch.long, device=verts.device)
        if self.created:
            ids = torch.cat([c[0] for c in self.created])
            support = torch.cat([c[1] for c in self.created]) // self.span
            key = torch.cat([c[2] for c in self.created])
            shared = support > 0
            ids, support, key = ids[shared], support[shared], key[shared]
            if ids.numel():
                record = support * (int(key.max()) + 1) + key
                _, which, first = unique_first(record)
                to = torch.arange(self.vertices.n, device=ids.device)
                to[ids] = ids[first[which]]
                verts = torch.where(valid, to.take(verts.clamp(min=0)), -1)
                tiles.relabel(rows, verts=verts)
                points, support = ids[first], support[first]
        if points.numel():
            self._conform(rows, verts, points, support)
        labels = tiles.labels[rows]
        tiles.relabel(rows, labels=torch.where(tiles.verts[rows] >= 0, labels % self.span - 1, labels))

    def _conform(self, rows: torch.Tensor, verts: torch.Tensor, points: torch.Tensor, support: torch.Tensor):
        """Insert every point created on a stage's starting edge into each of the stage's tiles
        (`rows`, corners `verts`) whose side along that edge passes over it: a family that stopped
        before reaching a unit left its neighbour's crossing out of its own side."""
        tiles = self.tiles
        coords = self.vertices.coords
        resolution = 2.0**40

        def position(ids: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
            ends = take_rows(self.ends, edge - 1)
            a, b = take_rows(coords, ends[:, 0]), take_rows(coords, ends[:, 1])
            d = b - a
            lam = ((take_rows(coords, ids) - a) * d).sum(dim=-1) / (d * d).sum(dim=-1)
            return edge * (1 << 41) + torch.round(lam.clamp(0, 1) * resolution).long()

        labels = tiles.labels[rows]
        edge = torch.where(verts >= 0, labels // self.span, 0)
        # only sides along an edge that some tile lacks a point of can change: a tile that has all
        # of an edge's n points has n + 1 sides along it, and no tile has more
        supports = self.tiles_on.numel()
        points_on = torch.bincount(support, minlength=supports)
        sides_on = torch.bincount(edge.reshape(-1), minlength=supports)
        lacking = (sides_on < self.tiles_on * (points_on + 1)) & (points_on > 0)
        # support 0 (padding, edges drawn in the stage) has no tiles on it, so it never lacks
        sides = torch.nonzero(lacking.take(edge).reshape(-1)).flatten()
        if sides.numel() == 0:
            return
        on_lacking = torch.nonzero(lacking.take(support)).flatten()
        points, support = points.take(on_lacking), support.take(on_lacking)
        point_key = position(points, support)
        order = torch.argsort(point_key)
        point_key, points = point_key.take(order), points.take(order)
        side_edge = edge.take(sides)
        key_a = position(verts.take(sides), side_edge)
        key_b = position(next_corners(verts).take(sides), side_edge)
        first_point = torch.searchsorted(point_key, torch.minimum(key_a, key_b), right=True)
        last_point = torch.searchsorted(point_key, torch.maximum(key_a, key_b))
        gains = torch.nonzero(last_point > first_point).flatten()
        sides, first_point, last_point = sides.take(gains), first_point.take(gains), last_point.take(gains)
        # only the tiles that gain points, each side in its slot
        width = verts.shape[1]
        gaining, row_of_side = torch.unique(sides // width, return_inverse=True)
        slot = row_of_side * width + sides % width
        first = torch.zeros((gaining.numel(), width), dtype=torch.long, device=verts.device)
        inserted, forward = torch.zeros_like(first), torch.ones_like(first, dtype=torch.bool)
        first.view(-1).index_copy_(0, slot, first_point)
        inserted.view(-1).index_copy_(0, slot, last_point - first_point)
        forward.view(-1).index_copy_(0, slot, (key_a <= key_b).take(gains))
        _insert(tiles, rows.take(gaining), first, inserted, forward, points)


def by_plane(part: Partition, planes: int) -> list[Partition]:
    """Each plane's tiles of a finished group of a several-plane sweep, as a Partition of its own."""
    if part.sheets is None:
        return [part]
    sheet_of_tile = part.tile_sheets
    out = []
    for plane in range(planes):
        rows = torch.nonzero(sheet_of_tile == plane).flatten()
        used, renumbered = _renumbered(part.verts[rows])
        codes = None if part.codes is None else part.codes[rows]
        out.append(Partition(part.coords[used], renumbered, part.labels[rows], part.outputs[used], [], codes))
    return out


def _start_node(net: PLNet, group: _Group) -> None:
    """Each vertex's scale for the node about to be cut (the zero rule, splinetool/ir/pl.py), unless
    the last node's end computed it while it pushed the vertices here."""
    vertices = group.vertices
    if SCALE not in vertices.field_keys():
        pre = vertices.field(net.preactivation_key(group.node))
        vertices.add_field(SCALE, node_scale(pre, vertices.field(BELOW)))


def _node_done(group: _Group) -> bool:
    group.pending = None
    return True


def _finish_node(net: PLNet, group: _Group, codes: bool, run_steps: Callable) -> None:
    """Record the node's code on every tile, then push the vertices to the next node
    (`run_steps(values, sheet, start, stop)`: `Sweep._run_steps`)."""
    node = net.pl_nodes[group.node]
    tiles, vertices = group.tiles, group.vertices
    pre_key = net.preactivation_key(group.node)
    tiles.narrow()
    if codes:
        tiles.extend_payload(node.pl.implementation(CODES, default=_mean_codes)(net, group))
    vertices.drop_field(("units", group.node))
    group.above_at_start = None
    # only the vertices some tile uses go on: the copies merged at the stages' ends (a sixth to a
    # quarter of the vertices) would otherwise be pushed through every later layer
    used, renumbered = _renumbered(tiles.verts, vertices.n)
    tiles.relabel(torch.arange(tiles.n, device=used.device), verts=renumbered)
    vertices.drop_field(SCALE)
    stop = net.node_stop(group.node + 1)
    # the node's own pre-activation is live at its step
    fields = {key: vertices.field(key) for key in net.live_after(node.step)}
    next_pre = net.preactivation_key(group.node + 1) if group.node + 1 < len(net.pl_nodes) else None
    room = _room(vertices, used.numel(), used.device)
    chunk = _rows_per_chunk(vertices.row_bytes())
    if used.device.type == "cpu":
        chunk = min(chunk, PUSH_ROWS_CPU)
    sheet = vertices.field(SHEET).take(used) if SHEET in vertices.field_keys() else None
    # both scales from each batch while it is in cache, rather than from whole tables read again:
    # this node's at the vertices carried on (the next one's BELOW), and the next node's
    below_before = vertices.field(BELOW)
    below = vertices.empty_field(below_before, room)
    scale = None if next_pre is None else vertices.empty_field(below_before, room)
    pushed: dict = {}
    for i in range(0, used.numel(), chunk):
        rows = used[i : i + chunk]
        end = i + rows.numel()
        batch = {k: take_rows(v, rows) for k, v in fields.items()}
        below[i:end] = node_scale(batch[pre_key], below_before.take(rows))
        part = run_steps(batch, None if sheet is None else sheet[i:end], node.step, stop)
        for key, values in part.items():
            # written in place, with room for the next node's vertices (no concatenation, no regrowth)
            pushed.setdefault(key, vertices.empty_field(values, room))[i:end] = values
        if scale is not None:
            scale[i:end] = node_scale(part[next_pre], below[i:end])
    vertices.restart(
        take_rows(vertices.coords, used), pushed or {k: take_rows(v, used) for k, v in fields.items()}
    )
    vertices.add_field(BELOW, below)
    if scale is not None:
        vertices.add_field(SCALE, scale)
    if sheet is not None:
        vertices.add_field(SHEET, sheet)
    vertices.reserve(room)
    group.node += 1


def _room(vertices: VertexStore, carried: int, device: torch.device) -> int:
    """Rows the next node's vertex tables hold before they grow. On a CPU, three times the vertices
    carried on (a node multiplied them by 1.5 to 4.7 on the sample planes), the room beyond them
    within ROOM_BYTES: pages never written cost nothing there, while each doubling copies every row
    (39 MB in 13 copies on the random 2->128x4 square) into pages faulted in afresh. Unbounded, the
    room of wide vertices spread the allocator over more memory than it touched before (the
    CIFAR-shaped ResNet-18's slice peaked 0.4 GiB higher). On a GPU memory is taken when allocated:
    the room the tables have."""
    if device.type != "cpu":
        return max(carried, vertices.capacity())
    room = min(3 * carried, carried + ROOM_BYTES // max(1, vertices.row_bytes()))
    return max(carried, vertices.capacity(), room)


def _mean_codes(net: PLNet, group: _Group) -> torch.Tensor:
    """[T, bytes] the node's packed code on each tile, read at the mean of its corners (where the
    pre-activation is the mean of theirs, and the scale, near enough, too)."""
    node = net.pl_nodes[group.node]
    tiles, vertices = group.tiles, group.vertices
    pre, scale = vertices.field(net.preactivation_key(group.node)), vertices.field(SCALE)
    flat = pre.reshape(pre.shape[0], -1)
    parts = []
    for rows in _row_chunks(tiles.n, 2 * flat.shape[1] * flat.element_size()):
        verts = tiles.verts[rows]
        mean = corner_means(verts, flat).reshape(verts.shape[0], *pre.shape[1:])
        mean_scale = corner_means(verts, scale[:, None])[:, 0]
        parts.append(pack_bits(node.pl.code_bits(mean, mean_scale)))
    return torch.cat(parts)


@SignKind.implements(CODES)
def _sign_codes(net: PLNet, group: _Group) -> torch.Tensor:
    """`_mean_codes` of a sign node, read from its corners where they agree.

    Once the node is cut no unit crosses a tile, and the tolerance is linear in the scale: a unit
    clear of zero on the positive side at every corner is above it at the mean too, and one that no
    corner holds clear on that side is not. Only the units some corners hold clear and others not
    (a tile with a corner on the unit's line) need the mean, a few of a tile's hundreds of units.
    """
    tiles, vertices = group.tiles, group.vertices
    table = _units_table(net, group)()
    scale = vertices.field(SCALE)
    # the vertices the node started with are as they were: only the new ones need their bits
    known = group.above_at_start
    start = 0 if known is None else known.shape[0]
    above = _packed_signs(table[start:], scale[start:], 1)
    above = above if known is None else torch.cat([known, above])
    verts = tiles.verts
    parts = []
    for rows in _row_chunks(tiles.n, 8 * above.shape[1]):
        every, some = _fold_corners(above, verts[rows], torch.bitwise_and, torch.bitwise_or)
        tile, unit = _set_bits(some & ~every)
        value_sum, scale_sum = _unit_sums(table, scale, take_rows(verts[rows], tile), unit)
        # the sign of the mean, the tolerance linear in the scale: the sums' sign at their sum's scale
        on = sign_of(value_sum, scale_sum) > 0
        # distinct bits of one byte: their sum is their union
        weight = torch.zeros(every.shape, dtype=torch.int32, device=every.device)
        weight.index_put_((tile[on], unit[on] // 8), (128 >> (unit[on] % 8)).to(torch.int32), accumulate=True)
        parts.append(every | weight.to(torch.uint8))
    return torch.cat(parts) if parts else torch.zeros((0, above.shape[1]), dtype=torch.uint8)


def corner_means(verts: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """[T, U] mean of `values` [V, U] over each tile's corners, as one sparse product (6x faster
    than gathering [T, K, U] on the CPU)."""
    valid = verts >= 0
    count = valid.sum(dim=1)
    crow = torch.zeros(verts.shape[0] + 1, dtype=torch.long, device=verts.device)
    crow[1:] = torch.cumsum(count, dim=0)
    weights = torch.repeat_interleave(1.0 / count.to(values.dtype), count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sparse CSR is marked beta
        means = torch.sparse_csr_tensor(
            crow, verts[valid], weights, size=(verts.shape[0], values.shape[0]), check_invariants=False
        )
        return means @ values


def _finished(net: PLNet, group: _Group, codes: bool) -> Partition:
    tiles, vertices = group.tiles, group.vertices
    outputs = vertices.field(net.output_index).reshape(vertices.n, -1)
    packed = _global_codes(tiles.payload, [n.code_bits for n in net.pl_nodes]) if codes else None
    sheets = vertices.field(SHEET).round().long() if SHEET in vertices.field_keys() else None
    return Partition(vertices.coords, tiles.verts, tiles.labels, outputs, [], packed, sheets)


def _global_codes(payload: torch.Tensor, bits_per_node: list[int]) -> torch.Tensor:
    """Per-node packed codes, re-packed as one bit string over all nodes."""
    widths = [(b + 7) // 8 for b in bits_per_node]
    if all(b % 8 == 0 for b in bits_per_node):
        return payload
    parts = []
    for rows in payload.split(4096):
        bits, at = [], 0
        for width, count in zip(widths, bits_per_node):
            bits.append(_unpack(rows[:, at : at + width])[:, :count])
            at += width
        parts.append(pack_bits(torch.cat(bits, dim=1)) if bits else rows[:, :0])
    return torch.cat(parts) if parts else payload


def _unpack(packed: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    return ((packed[:, :, None] >> shifts) & 1).bool().reshape(packed.shape[0], -1)


# -- sign nodes -----------------------------------------------------------------------------------


def _units_table(net: PLNet, group: _Group) -> Callable[[], torch.Tensor]:
    """[V, units] values whose zero sets are the node's breakpoints (read anew: vertices grow)."""
    node = net.pl_nodes[group.node]
    vertices = group.vertices
    pre_key = net.preactivation_key(group.node)
    key = pre_key
    if node.pl.thresholds != (0.0,):
        key = ("units", group.node)
        if key not in vertices.field_keys():
            vertices.add_field(key, node.pl.boundaries(vertices.field(pre_key)))

    def table() -> torch.Tensor:
        values = vertices.field(key)
        return values.reshape(values.shape[0], math.prod(values.shape[1:]))

    return table


def _packed_signs(table: torch.Tensor, scale: torch.Tensor, side: int) -> torch.Tensor:
    """[V, ceil(units / 8)] bits: whether each unit is clear of zero on `side` at each vertex, built
    a chunk of vertices at a time (a [V, units] mask of a wide node would be gigabytes)."""
    rows = _rows_per_chunk(table.shape[1] * table.element_size())
    # row slices and a comparison on the side: an indexed copy of a wide table, or its negation,
    # costs several times the comparison itself
    parts = [
        pack_bits(values > tol[:, None] if side > 0 else values < -tol[:, None])
        for values, tol in zip(table.split(rows), zero_tolerance(scale).split(rows))
    ]
    return torch.cat(parts) if parts else torch.zeros((0, (table.shape[1] + 7) // 8), dtype=torch.uint8)


def _tile_bits(tiles: TileStore, first: torch.Tensor, second: torch.Tensor):
    """(tile, unit) pairs whose zero line strictly separates two corners of the tile: some corner
    sets the unit's bit in `first` (clear above zero) and some corner in `second` (clear below)."""
    found_rows, found_units = [], []
    verts = tiles.verts
    width = first.shape[1]
    both = torch.cat([first, second], dim=1)  # one read per corner for both sides
    for rows in _row_chunks(tiles.n, 16 * (width + 1)):
        (any_side,) = _fold_corners(both, verts[rows], torch.bitwise_or)
        tile, unit = _set_bits(any_side[:, :width] & any_side[:, width:])
        found_rows.append(tile + rows.start)
        found_units.append(unit)
    return _by_row(torch.cat(found_rows), torch.cat(found_units))


def _fold_corners(table: torch.Tensor, verts: torch.Tensor, *ops: Callable) -> list[torch.Tensor]:
    """Each of `ops` (e.g. torch.bitwise_and) folded over the rows of `table` at each tile's corners
    (`verts` [R, K], -1 padded: padding repeats a corner, which changes no fold): one read per corner."""
    corners = torch.where(verts >= 0, verts, verts[:, :1])
    at = take_rows(table, corners[:, 0])
    folded = [at] * len(ops)
    for c in range(1, corners.shape[1]):
        at = take_rows(table, corners[:, c])
        folded = [op(done, at) for op, done in zip(ops, folded)]
    return folded


def _set_bits(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, unit) of every bit set in `packed` [rows, bytes] (pack_bits' layout: unit 0 is the
    first byte's most significant bit), row by row."""
    row, byte = torch.nonzero(packed, as_tuple=True)
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    which, bit = torch.nonzero((packed[row, byte][:, None] >> shifts) & 1, as_tuple=True)
    return row[which], byte[which] * 8 + bit


def _unit_values(table, verts, units) -> torch.Tensor:
    """Values [R, K] of each row's unit at its tile's corners (`verts` [R, K]; 0 at padding)."""
    values = table.take(verts.clamp(min=0) * table.shape[1] + units[:, None])
    return torch.where(verts >= 0, values, 0.0)


def _unit_signs(table, scale, verts, units) -> tuple[torch.Tensor, torch.Tensor]:
    """`_unit_values` and their signs (0 at padding, where the value is 0)."""
    values = _unit_values(table, verts, units)
    return values, sign_of(values, scale.take(verts.clamp(min=0)))


def _unit_sums(table, scale, verts, units) -> tuple[torch.Tensor, torch.Tensor]:
    """[R] sums of each row's unit and of the scale over its tile's corners (`verts` [R, K])."""
    corner_scale = torch.where(verts >= 0, scale.take(verts.clamp(min=0)), 0.0)
    return _unit_values(table, verts, units).sum(dim=1), corner_scale.sum(dim=1)


def _keep_crossing(tiles, table, scale, rows, units) -> tuple[torch.Tensor, torch.Tensor]:
    keep = []
    for part in _row_chunks(rows.numel(), tiles.verts.shape[1] * 16):
        _, signs = _unit_signs(table, scale, tiles.verts[rows[part]], units[part])
        keep.append(crossed(signs))
    keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.bool, device=rows.device)
    return rows[keep], units[keep]


# -- arg-max nodes --------------------------------------------------------------------------------


def _window_taps(pl: ArgmaxKind, pre: torch.Tensor) -> torch.Tensor:
    """[windows, k] flat positions each window compares; -1 for padding, which never wins."""
    positions = torch.arange(pre[0].numel(), device=pre.device, dtype=pre.dtype).reshape(1, *pre.shape[1:])
    taps = pl.candidates(positions)[0]
    return torch.where(torch.isfinite(taps), taps, -1.0).long()


def _window_values(scores: torch.Tensor, taps: torch.Tensor, ids: torch.Tensor, windows: torch.Tensor):
    """Candidate values [*ids.shape, k] of windows at vertices `ids` (-inf at padding).

    `windows` is one window per leading row of `ids`, or one per entry of `ids`.
    """
    if windows.dim() < ids.dim():
        windows = windows.reshape(windows.shape[0], *[1] * (ids.dim() - 1)).expand_as(ids)
    t = taps[windows]  # [*ids.shape, k]
    values = scores[ids.clamp(min=0)[..., None].expand_as(t), t.clamp(min=0)]
    return torch.where(t >= 0, values, -math.inf)


def _window_pairs(tiles, scores, taps, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """(tile, window) pairs where no single candidate is a (weak) maximum at every corner (`scale`:
    per vertex; the zero rule's tie)."""
    ids = torch.arange(scores.shape[0], device=scores.device)
    weak = []
    for rows in ids.split(_rows_per_chunk(taps.numel() * scores.element_size() * 3)):
        values = _window_values(
            scores, taps, rows[:, None].expand(-1, taps.shape[0]), _all_windows(taps, rows)
        )
        best = values.amax(dim=2, keepdim=True)
        on_top = values >= best - zero_tolerance(scale[rows])[:, None, None]
        weights = 1 << torch.arange(taps.shape[1], device=scores.device)
        weak.append((on_top.long() * weights).sum(dim=2))  # [v, W] bit i: candidate i is on top
    weak = torch.cat(weak)
    found_rows, found_windows = [], []
    verts = tiles.verts
    for rows in _row_chunks(tiles.n, 8 * taps.shape[0]):
        (common,) = _fold_corners(weak, verts[rows], torch.bitwise_and)
        tile, window = torch.nonzero(common == 0, as_tuple=True)
        found_rows.append(tile + rows.start)
        found_windows.append(window)
    return _by_row(torch.cat(found_rows), torch.cat(found_windows))


def _all_windows(taps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return torch.arange(taps.shape[0], device=taps.device)[None, :].expand(rows.shape[0], -1)


def _keep_window_crossing(tiles, scores, taps, scale, rows, windows):
    keep = []
    per_pair = tiles.verts.shape[1] * taps.shape[1] * scores.element_size() * 3
    for part in _row_chunks(rows.numel(), per_pair):
        verts = tiles.verts[rows[part]]
        values = _window_values(scores, taps, verts, windows[part])  # [P, K, k]
        best = values.amax(dim=2, keepdim=True)
        tol = zero_tolerance(scale[verts.clamp(min=0)])[:, :, None]
        weak = (values >= best - tol) | (verts < 0)[:, :, None]
        keep.append(~weak.all(dim=1).any(dim=1))
    keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.bool, device=rows.device)
    return rows[keep], windows[keep]


def _window_edge_crossings(tiles, scores, taps, scale, rows, windows):
    """Breakpoints of each pair's upper envelope strictly inside the edges of its tile:
    (lo, hi, lambda, label of the edge, a key naming the point on that edge)."""
    lo, hi, window, on_edge = _pair_edges(tiles, rows, windows)
    z_lo = _window_values(scores, taps, lo, window)  # [E, k]
    z_hi = _window_values(scores, taps, hi, window)
    k = taps.shape[1]
    i, j = torch.triu_indices(k, k, offset=1, device=taps.device)
    d_lo, d_hi = z_lo[:, i] - z_lo[:, j], z_hi[:, i] - z_hi[:, j]  # [E, pairs]
    tol = zero_tolerance(torch.maximum(scale[lo], scale[hi]))[:, None]
    real = torch.isfinite(d_lo) & torch.isfinite(d_hi)
    strict = real & (((d_lo > tol) & (d_hi < -tol)) | ((d_lo < -tol) & (d_hi > tol)))
    lam = torch.where(strict, d_lo / torch.where(strict, d_lo - d_hi, 1.0), 0.0)
    at = z_lo[:, None, :] + lam[:, :, None] * (z_hi - z_lo)[:, None, :]  # [E, pairs, k]
    at = torch.where(torch.isfinite(at), at, -math.inf)
    pair_value = at.gather(2, i.expand(at.shape[0], -1)[:, :, None])[..., 0]
    on_top = pair_value >= at.amax(dim=2) - tol
    edge, pair = torch.nonzero(strict & on_top, as_tuple=True)
    return lo[edge], hi[edge], lam[edge, pair], on_edge[edge], window[edge] * i.numel() + pair


def _argmax_cells(tiles, vertices, scores, taps, scale, rows, windows, label) -> torch.Tensor:
    """Replace each row by the cells of its window; returns the parent row of every appended tile."""
    device = rows.device
    verts = tiles.verts[rows]
    valid = verts >= 0
    count = valid.sum(dim=1)
    R, K = verts.shape
    k = taps.shape[1]
    coords = vertices.coords[verts.clamp(min=0)]
    z = _window_values(scores, taps, verts, windows)  # [R, K, k]
    real = taps[windows] >= 0  # [R, k]
    corner_scale = torch.where(valid, scale[verts.clamp(min=0)], 0)
    tol = zero_tolerance(corner_scale.amax(dim=1))  # [R]: the largest of its corners' scales
    fz = torch.where(real[:, None, :] & valid[:, :, None], z, 0.0)
    w = valid.to(coords.dtype)
    centre = (coords * w[..., None]).sum(dim=1) / count[:, None]
    mean_z = (fz * w[..., None]).sum(dim=1) / count[:, None]  # [R, k]
    dc = (coords - centre[:, None]) * w[..., None]
    dz = (fz - mean_z[:, None]) * w[..., None]
    # [R, 2, k]: z_i(p) = mean_z + grad_i . (p - centre)
    grad = _least_squares_gradients(dc.transpose(1, 2) @ dc, dc.transpose(1, 2) @ dz)

    # interior points where three candidates tie for the maximum
    triples = torch.combinations(torch.arange(k, device=device), 3)  # [Tr, 3]
    gi, gj, gl = (grad[:, :, triples[:, c]] for c in range(3))  # [R, 2, Tr]
    mi, mj, ml = (mean_z[:, triples[:, c]] for c in range(3))
    a = torch.stack([(gi - gj).transpose(1, 2), (gi - gl).transpose(1, 2)], dim=2)  # [R, Tr, 2, 2]
    b = torch.stack([mj - mi, ml - mi], dim=2)  # [R, Tr, 2]
    det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    norms = a.flatten(2).abs().amax(dim=2)
    solvable = det.abs() > 1e-12 * norms**2
    safe = torch.where(solvable, det, 1.0)
    px = (b[..., 0] * a[..., 1, 1] - b[..., 1] * a[..., 0, 1]) / safe
    py = (a[..., 0, 0] * b[..., 1] - a[..., 1, 0] * b[..., 0]) / safe
    point = torch.stack([px, py], dim=2) + centre[:, None]  # [R, Tr, 2]
    tri_real = real[:, triples].all(dim=2)
    at = mean_z[:, None, :] + ((point - centre[:, None])[..., None] * grad[:, None]).sum(dim=2)  # [R, Tr, k]
    at = torch.where(real[:, None, :], at, -math.inf)
    tie_value = at.gather(2, triples[None, :, :1].expand(R, -1, 1))[..., 0]
    on_top = tie_value >= at.amax(dim=2) - tol[:, None]
    inside = _strictly_inside(coords, valid, count, point)
    found = solvable & tri_real & on_top & inside  # [R, Tr]
    tri_ids = torch.full((R, triples.shape[0]), -1, dtype=torch.long, device=device)
    if found.any():
        r_idx, t_idx = torch.nonzero(found, as_tuple=True)
        corner_ids, weights = _barycentric(verts[r_idx], coords[r_idx], count[r_idx], point[r_idx, t_idx])
        tri_ids[r_idx, t_idx] = vertices.combine(corner_ids, weights)

    # each candidate's cell: the corners where it wins (weakly) and its tie points, in angular order
    best = torch.where(valid[:, :, None], z, -math.inf).amax(dim=2, keepdim=True)
    wins = valid[:, :, None] & real[:, None, :] & (z >= best - tol[:, None, None])  # [R, K, k]
    tied_before = _tied_with_earlier(z, valid, real, tol)  # [R, k]
    member_of = [torch.nonzero((triples == c).any(dim=1)).flatten() for c in range(k)]
    width = K + len(member_of[0])
    ids = torch.full((R, k, width), -1, dtype=torch.long, device=device)
    corner_slot = torch.full((R, k, width), -1, dtype=torch.long, device=device)
    ids[:, :, :K] = torch.where(wins, verts[:, :, None], -1).transpose(1, 2)
    corner_slot[:, :, :K] = torch.where(wins, torch.arange(K, device=device)[None, :, None], -1).transpose(
        1, 2
    )
    for c in range(k):
        ids[:, c, K:] = tri_ids[:, member_of[c]]
    member = (ids >= 0) & ~tied_before[:, :, None]
    xy = vertices.coords[ids.clamp(min=0)]
    n_member = member.sum(dim=2)
    mid = (xy * member[..., None]).sum(dim=2) / n_member.clamp(min=1)[..., None]
    angle = torch.atan2(xy[..., 1] - mid[..., 1, None], xy[..., 0] - mid[..., 0, None])
    order = torch.argsort(torch.where(member, angle, math.inf), dim=2)
    ids, corner_slot = ids.gather(2, order), corner_slot.gather(2, order)
    member = member.gather(2, order)
    cell_area = polygon_areas(
        vertices.coords[ids.clamp(min=0)].reshape(R * k, width, 2), n_member.reshape(-1)
    )
    tile_area = polygon_areas(coords, count)
    alive = (n_member >= 3) & (cell_area.reshape(R, k) > SLIVER * tile_area[:, None].abs())
    # edge labels: an edge between consecutive corners of the tile keeps the tile's label
    position = torch.arange(width, device=device).expand(R, k, width)
    following = (position + 1) % n_member.clamp(min=1)[..., None]
    next_slot = corner_slot.gather(2, following)
    along_tile = (corner_slot >= 0) & (next_slot == (corner_slot + 1) % count[:, None, None])
    tile_labels = tiles.labels[rows].gather(1, corner_slot.clamp(min=0).reshape(R, -1)).reshape(R, k, width)
    labels = torch.where(along_tile, tile_labels, label)
    ids = torch.where(member, ids, -1)
    labels = torch.where(member, labels, -1)
    cell_width = max(1, int(n_member[alive].max())) if alive.any() else 1
    ids, labels = ids[..., :cell_width], labels[..., :cell_width]
    # the first living cell replaces its tile, the others are appended
    first = torch.where(alive, torch.arange(k, device=device), k).amin(dim=1)
    has_cell = first < k
    keep_rows = rows[has_cell]
    r_first = torch.nonzero(has_cell).flatten()
    tiles.replace(keep_rows, ids[r_first, first[r_first]], labels[r_first, first[r_first]])
    others = alive.clone()
    others[r_first, first[r_first]] = False
    r_other, c_other = torch.nonzero(others, as_tuple=True)
    tiles.append(ids[r_other, c_other], labels[r_other, c_other], rows[r_other])
    return rows[r_other]


def _pair_scales(z: torch.Tensor) -> torch.Tensor:
    """[k, k] the largest |z_i - z_j| over all the vertices (each pair's tolerance), each pair once:
    |z_i - z_j| and |z_j - z_i| are the same number."""
    k = z.shape[1]
    scales = z.new_zeros((k, k))
    if z.shape[0] == 0:
        return scales
    for i in range(k - 1):
        scales[i, i + 1 :] = scales[i + 1 :, i] = (z[:, i : i + 1] - z[:, i + 1 :]).abs().amax(dim=0)
    return scales


def _least_squares_gradients(gram: torch.Tensor, moments: torch.Tensor) -> torch.Tensor:
    """gram⁻¹ moments for [R, 2, 2] Gram matrices of tiles' centred corners ([R, 2, k] moments);
    where the corners are collinear in this dtype (a sliver, whose determinant is rounding noise,
    common in float32) the least-norm solution instead of a failed solve."""
    gxx, gxy, gyy = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1]
    det = gxx * gyy - gxy * gxy
    sound = det > 4 * torch.finfo(det.dtype).eps * gxx * gyy
    if bool(sound.all()):
        return torch.linalg.solve(gram, moments)
    grad = torch.empty_like(moments)
    grad[sound] = torch.linalg.solve(gram[sound], moments[sound])
    grad[~sound] = torch.linalg.pinv(gram[~sound], hermitian=True) @ moments[~sound]
    return grad


def _tied_with_earlier(z, valid, real, tol) -> torch.Tensor:
    """[R, k]: candidates equal to an earlier one on the whole tile (arg-max takes the first)."""
    diff = (z[:, :, :, None] - z[:, :, None, :]).abs()  # [R, K, k, k]
    same = ((diff <= tol[:, None, None, None]) | ~valid[:, :, None, None]).all(dim=1)
    same = same & real[:, :, None] & real[:, None, :]
    earlier = torch.ones_like(same[0], dtype=torch.bool).tril(diagonal=-1)
    return (same & earlier).any(dim=2)


def _strictly_inside(coords, valid, count, point) -> torch.Tensor:
    """[R, Tr]: points farther than a tolerance inside their convex tile."""
    K = coords.shape[1]
    nxt = (torch.arange(K, device=coords.device)[None, :] + 1) % count[:, None].clamp(min=1)
    following = coords.gather(1, nxt[..., None].expand(-1, -1, 2))
    edge = following - coords  # [R, K, 2]
    length = edge.norm(dim=2)
    diameter = length.sum(dim=1)
    rel = point[:, :, None, :] - coords[:, None, :, :]  # [R, Tr, K, 2]
    side = edge[:, None, :, 0] * rel[..., 1] - edge[:, None, :, 1] * rel[..., 0]
    margin = 1e-9 * diameter[:, None, None] * length[:, None, :]
    return ((side > margin) | ~valid[:, None, :]).all(dim=2)


def _barycentric(verts, coords, count, point):
    """Three corners of each tile (the largest fan triangle from corner 0) and affine weights of `point`."""
    K = verts.shape[1]
    m = torch.arange(1, K - 1, device=verts.device)
    a, b, c = coords[:, :1], coords[:, 1:-1], coords[:, 2:]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    area = torch.where(m[None, :] + 1 < count[:, None], area.abs(), -1.0)
    best = area.argmax(dim=1)
    ids = torch.stack(
        [verts[:, 0], verts.gather(1, (best + 1)[:, None])[:, 0], verts.gather(1, (best + 2)[:, None])[:, 0]],
        1,
    )
    p0, p1, p2 = (
        coords[:, 0],
        coords.gather(1, (best + 1)[:, None, None].expand(-1, 1, 2))[:, 0],
        coords.gather(1, (best + 2)[:, None, None].expand(-1, 1, 2))[:, 0],
    )
    e1, e2, d = p1 - p0, p2 - p0, point - p0
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    w1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det
    w2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det
    return ids, torch.stack([1 - w1 - w2, w1, w2], dim=1)


# -- shared machinery -----------------------------------------------------------------------------


def _pair_edges(tiles: TileStore, rows: torch.Tensor, items: torch.Tensor):
    """Every edge of each pair's tile, as (lo, hi, item), each edge and item once."""
    verts = tiles.verts[rows]
    nxt = next_corners(verts)
    slot = verts >= 0
    a, b = verts[slot], nxt[slot]
    item = items[:, None].expand_as(verts)[slot]
    label = tiles.labels[rows][slot]
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    if lo.numel() == 0:
        return lo, hi, item, label
    span, n_items = int(hi.max()) + 1, int(item.max()) + 1
    key, _, first = unique_first((lo * span + hi) * n_items + item)
    edge, item = key // n_items, key % n_items
    return edge // span, edge % span, item, label[first]


def _split_edges(tiles, vertices, lo, hi, lam, on_edge, key, rows, created: list) -> None:
    """Insert the points lo + lam (hi - lo) on their edges, once each, into every tile of `rows`
    holding that edge, in order along it; (ids, label of the edge, key) go to `created`."""
    if lo.numel() == 0:
        return
    span = vertices.n + 1
    edge_key = lo * span + hi
    order = torch.argsort(lam, stable=True)
    order = order[torch.argsort(edge_key[order], stable=True)]
    edge_key, lo, hi, lam = edge_key[order], lo[order], hi[order], lam[order]
    same = torch.zeros_like(edge_key, dtype=torch.bool)
    same[1:] = (edge_key[1:] == edge_key[:-1]) & (lam[1:] - lam[:-1] <= SAME_POINT)
    keep = ~same & (lam > SAME_POINT) & (lam < 1 - SAME_POINT)
    edge_key, lo, hi, lam = edge_key[keep], lo[keep], hi[keep], lam[keep]
    if lo.numel() == 0:
        return
    new_ids = vertices.interpolate(lo, hi, lam)
    created.append((new_ids, on_edge[order][keep], key[order][keep]))

    verts = tiles.verts[rows]
    nxt = next_corners(verts)
    slot_key = torch.minimum(verts, nxt) * span + torch.maximum(verts, nxt)
    first = torch.searchsorted(edge_key, slot_key)
    last = torch.searchsorted(edge_key, slot_key, right=True)
    _insert(tiles, rows, first, torch.where(verts >= 0, last - first, 0), verts <= nxt, new_ids)


def _insert(tiles, rows, first, inserted, forward, points) -> None:
    """Insert points into tiles: after corner k of row r go `points[first : first + inserted]`
    (read backwards where not `forward`), each [len(rows), K]; the pieces keep the edge's label."""
    changed = torch.nonzero(inserted.sum(dim=1) > 0).flatten()
    if changed.numel() == 0:
        return
    verts = tiles.verts[rows[changed]]
    first, inserted, forward = first[changed], inserted[changed], forward[changed]
    labels = tiles.labels[rows[changed]]
    m = verts.shape[0]
    corner = verts >= 0
    slots = inserted + corner.long()
    start = torch.cumsum(slots, dim=1) - slots  # output slot of each corner
    out_ids = torch.full((m, int(slots.sum(dim=1).max())), -1, dtype=torch.long, device=verts.device)
    out_labels = torch.full_like(out_ids, -1)
    row = torch.arange(m, device=verts.device)[:, None].expand_as(verts)
    out_ids[row[corner], start[corner]] = verts[corner]
    out_labels[row[corner], start[corner]] = labels[corner]
    n = inserted[corner]
    rep_row = torch.repeat_interleave(row[corner], n)
    base = torch.repeat_interleave(start[corner], n)
    offset = torch.arange(int(n.sum()), device=verts.device) - torch.repeat_interleave(
        torch.cumsum(n, 0) - n, n
    )
    along = torch.where(
        torch.repeat_interleave(forward[corner], n), offset, torch.repeat_interleave(n, n) - 1 - offset
    )
    out_ids[rep_row, base + 1 + offset] = points[torch.repeat_interleave(first[corner], n) + along]
    out_labels[rep_row, base + 1 + offset] = torch.repeat_interleave(labels[corner], n)
    tiles.replace(rows[changed], out_ids, out_labels)


def _expand(family_of_row: torch.Tensor, families: torch.Tensor, items: torch.Tensor):
    """Hand each row its family's items: (row, item) pairs."""
    order = torch.argsort(family_of_row, stable=True)
    n_families = int(max(int(family_of_row.max()), int(families.max()) if families.numel() else 0)) + 1
    bounds = torch.arange(n_families + 1, device=order.device)
    row_start = torch.searchsorted(family_of_row[order], bounds)
    item_order = torch.argsort(families, stable=True)
    families, items = families[item_order], items[item_order]
    item_start = torch.searchsorted(families, bounds)
    n_rows, n_items = row_start.diff(), item_start.diff()
    per_family = n_rows * n_items
    family = torch.repeat_interleave(torch.arange(n_families, device=order.device), per_family)
    local = torch.arange(int(per_family.sum()), device=order.device) - torch.repeat_interleave(
        torch.cumsum(per_family, 0) - per_family, per_family
    )
    row = order[row_start[family] + local // n_items[family]]
    item = items[item_start[family] + local % n_items[family]]
    return _by_row(row, item)


def _by_row(rows: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(rows, stable=True)
    return rows[order], items[order]


def _ranks(sorted_rows: torch.Tensor) -> torch.Tensor:
    """Position of each pair among the pairs of its row (pairs sorted by row)."""
    n = sorted_rows.numel()
    if n == 0:
        return sorted_rows
    starts = torch.searchsorted(sorted_rows, sorted_rows)
    return torch.arange(n, device=sorted_rows.device) - starts


def _rows_per_chunk(bytes_per_row: int) -> int:
    return max(1, PAIR_CHUNK_BYTES // max(1, bytes_per_row))


def _row_chunks(n: int, bytes_per_row: int) -> list[slice]:
    """Consecutive rows 0..n-1 in chunks of `_rows_per_chunk`, as slices: a slice of a table is a
    view, where an index of the same rows copied them."""
    step = _rows_per_chunk(bytes_per_row)
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def next_corners(verts: torch.Tensor) -> torch.Tensor:
    """[T, K] the corner after each corner of each tile (`verts` [T, K], -1 padded): the other end of
    the edge leaving it. Padding slots hold some corner of their tile (or -1 in an empty row)."""
    count = (verts >= 0).sum(dim=1, keepdim=True)
    position = torch.arange(verts.shape[1], device=verts.device).expand_as(verts)
    return verts.gather(1, (position + 1) % count.clamp(min=1))


def polygon_areas(verts_xy: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Signed (counter-clockwise positive) areas of padded polygons [T, K, 2] with `count` corners."""
    valid = torch.arange(verts_xy.shape[1], device=verts_xy.device)[None, :] < count[:, None]
    return ragged_areas(verts_xy[valid], torch.cat([count.new_zeros(1), count.cumsum(0)]))


def ragged_areas(xy: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Signed (counter-clockwise positive) areas of polygons stored one after another: polygon r has
    the corners xy[offsets[r]:offsets[r + 1]] (the shoelace formula, the one every area here uses)."""
    counts = offsets[1:] - offsets[:-1]
    following = torch.arange(1, xy.shape[0] + 1, device=xy.device)
    ends = counts > 0
    following[offsets[1:][ends] - 1] = offsets[:-1][ends]
    cross = xy[:, 0] * xy[following, 1] - xy[:, 1] * xy[following, 0]
    owner = torch.repeat_interleave(torch.arange(len(counts), device=xy.device), counts)
    return torch.zeros(len(counts), dtype=xy.dtype, device=xy.device).index_add_(0, owner, cross) / 2


def _split(group: _Group, budget: int, max_resident: int | None) -> list[_Group]:
    """Spatially compact groups of the tiles, each with its own copy of the vertices it uses."""
    tiles, vertices = group.tiles, group.vertices
    held = vertices.n * vertices.row_bytes() + tiles.bytes()
    parts = max(2, math.ceil(4 * held / max(budget, 1)))
    if max_resident is not None:
        parts = max(parts, math.ceil(2 * tiles.n / max(max_resident, 1)))
    parts = min(parts, tiles.n)
    verts = tiles.verts
    valid = (verts >= 0).to(vertices.coords.dtype)
    centre = (vertices.coords[verts.clamp(min=0)] * valid[..., None]).sum(dim=1) / valid.sum(dim=1)[:, None]
    order = torch.argsort(_morton(centre))
    areas = polygon_areas(vertices.coords[verts.clamp(min=0)], tiles.count)
    out = []
    for rows in order.tensor_split(parts):
        rows = rows.sort().values
        out.append(_subset(group, rows, float(areas[rows].sum())))
    return out


def _morton(points: torch.Tensor, bits: int = 16) -> torch.Tensor:
    lo, hi = points.amin(dim=0), points.amax(dim=0)
    q = ((points - lo) / (hi - lo).clamp(min=1e-300) * (2**bits - 1)).long()
    key = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    for b in range(bits):
        key |= ((q[:, 0] >> b) & 1) << (2 * b) | ((q[:, 1] >> b) & 1) << (2 * b + 1)
    return key


def _subset(group: _Group, rows: torch.Tensor, area: float) -> _Group:
    tiles, vertices = group.tiles, group.vertices
    used, renumbered = _renumbered(tiles.verts[rows])
    fields = {key: vertices.field(key)[used] for key in vertices.field_keys()}
    pending = None
    if group.pending is not None:
        new_row = torch.full((tiles.n,), -1, dtype=torch.long, device=rows.device)
        new_row[rows] = torch.arange(rows.numel(), device=rows.device)
        mapped = new_row[group.pending[0]]
        mine = mapped >= 0
        pending = _by_row(mapped[mine], group.pending[1][mine])
    return _Group(
        TileStore(renumbered, tiles.labels[rows], tiles.payload[rows]),
        VertexStore(vertices.coords[used], fields, budget=vertices.budget),
        area,
        group.node,
        pending,
    )


def _renumbered(verts: torch.Tensor, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The vertex ids (of `n`, default: up to the largest) that tiles `verts` [T, K] (-1 padded) use,
    in order, and the tiles' corners as positions in that list."""
    valid = verts >= 0
    n = (int(verts.max()) + 1 if verts.numel() else 0) if n is None else n
    held = torch.zeros(n, dtype=torch.bool, device=verts.device)
    held[verts[valid]] = True
    position = torch.cumsum(held, dim=0) - 1
    return torch.nonzero(held).flatten(), torch.where(valid, position.take(verts.clamp(min=0)), -1)


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


def argmax_cells(
    tiles: TileStore,
    vertices: VertexStore,
    scores: Callable[[], torch.Tensor],
    label: int | Callable[[int, int], int],
) -> None:
    """Split tiles into the cells where each of k affine scores is the largest.

    Used for the decision boundary, where k is the number of classes. A tile on which one score is
    a (weak) maximum at every corner is left whole: the set where a score wins is convex. Otherwise
    each candidate's cell is the tile clipped by its k-1 half-planes `z_i >= z_j`; empty cells are
    dropped. `label` is the edge label of the new edges (or a function of the pair (i, j) that gives
    it).
    """
    z = scores()
    # max-pool padding candidates are -inf everywhere: they never win, and their differences are nan
    real = torch.isfinite(z[0]) if z.shape[0] else torch.ones(z.shape[1], dtype=torch.bool)
    if not real.all():
        chosen = torch.nonzero(real).flatten()
        return argmax_cells(tiles, vertices, lambda: scores()[:, chosen], label)
    tol = zero_tolerance(z.abs().max())
    best = z.max(dim=1, keepdim=True).values
    weak = pack_bits(z >= best - tol)  # [V, ceil(k / 8)]: a byte per eight classes, not a bool each
    (everywhere,) = _fold_corners(weak, tiles.verts, torch.bitwise_and)
    rows = torch.nonzero(~(everywhere != 0).any(dim=1)).flatten()
    if rows.numel() == 0:
        return
    width = int(tiles.count[rows].max())
    base_verts, base_labels = tiles.verts[rows][:, :width], tiles.labels[rows][:, :width]
    cells = []
    pair_scales = _pair_scales(z)
    for i in range(z.shape[1]):
        pair_scale = pair_scales[i]
        cell_verts, cell_labels, parents = base_verts, base_labels, rows
        for j in range(z.shape[1]):
            if j == i or cell_verts.shape[0] == 0:
                continue
            # the two scores at the corners, read from the flat table (not every score of every corner)
            flat, at = scores().reshape(-1), cell_verts.clamp(min=0) * z.shape[1]
            values = torch.where(cell_verts >= 0, flat.take(at + i) - flat.take(at + j), 0.0)
            signs = sign_of(values, pair_scale[j]) * (cell_verts >= 0)
            if bool((signs < 0).any()):  # otherwise z_j nowhere beats z_i: nothing to clip
                edge_label = label(i, j) if callable(label) else label
                (cell_verts,), (cell_labels,) = cut(
                    vertices, cell_verts, cell_labels, values, signs, edge_label, sides=(1,)
                )
            # where z_i and z_j agree on the whole tile, arg-max takes the first: i keeps it when i < j
            tied = (signs == 0).all(dim=1) & (i < j)
            alive = ((signs > 0).any(dim=1) | tied) & ((cell_verts >= 0).sum(dim=1) >= 3)
            cell_verts, cell_labels, parents = cell_verts[alive], cell_labels[alive], parents[alive]
        cells.append((cell_verts, cell_labels, parents))
    for cell_verts, cell_labels, parents in cells:
        if cell_verts.shape[0]:
            tiles.append(cell_verts, cell_labels, parents)
    keep = torch.ones(tiles.n, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    tiles.keep(torch.nonzero(keep).flatten())
