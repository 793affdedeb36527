"""`slice`: the exact tiles of a 2-D slice of input space, their affine maps, and the decision boundary;
over a training trajectory, one plane through every checkpoint and where the tiles lie on it
(analyses/tile_placement.py)."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from splinetool.analyses import Progress
from splinetool.analyses.plane import Plane
from splinetool.analyses.tile_placement import Placement, PlacementOptions, Placer
from splinetool.data.loading import Dataset
from splinetool.engine.jacobian import jacobians
from splinetool.engine.planar import (
    Partition,
    Sweep,
    TooManyRegions,
    argmax_cells,
    by_plane,
    corner_means,
    next_corners,
    plane_inputs,
    ragged_areas,
)
from splinetool.engine.store import TileStore, VertexStore, take_rows
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import unpack_bits
from splinetool.ir.plnet import same_graph

NORMS = {"2": 2, "fro": "fro"}
IN_PLANE_TOL = 1e-6  # relative distance under which a data point counts as lying in the plane
# a trajectory's checkpoints of one graph are sliced together (`run_checkpoints`), this many at most
# and with at most this many bytes of parameters held at once
CHECKPOINTS_AT_ONCE = 16
STACKED_PARAMETER_BYTES = 1 << 28


@dataclass
class SliceResult:
    vertices: np.ndarray  # [V, 2] plane coordinates, tile after tile
    offsets: np.ndarray  # [R + 1]: tile r is vertices[offsets[r]:offsets[r+1]], counter-clockwise
    codes: np.ndarray  # [R, bytes] bit-packed activation codes
    affine_A: np.ndarray  # [R, outputs, 2]: output = A t + c on the tile, t in plane coordinates
    affine_c: np.ndarray  # [R, outputs]
    jacobian_norm: np.ndarray | None  # [R] norm of the full input-space Jacobian on the tile (if asked for)
    edge_node: np.ndarray  # [V] PL node index that drew the edge leaving each vertex (-1: domain edge)
    boundary: np.ndarray  # [S, 2, 2] decision-boundary segments in plane coordinates
    origin: np.ndarray  # [D]
    directions: np.ndarray  # [2, D]
    domain: np.ndarray  # [P, 2]
    node_names: list[str]
    node_kinds: list[str]
    node_code_bits: list[int]
    norm: str = "2"
    anchors: np.ndarray | None = None  # [3, 2]
    tiles_per_node: list[int] = field(default_factory=list)
    seconds: float = 0.0
    verify: dict | None = None
    peak_memory_bytes: int = 0
    streamed: SliceTotals | None = None  # set when the tiles went to a file instead of these arrays

    @property
    def regions(self) -> int:
        return self.streamed.regions if self.streamed is not None else len(self.offsets) - 1

    @property
    def areas(self) -> np.ndarray:
        offsets = torch.as_tensor(self.offsets, dtype=torch.long)
        return ragged_areas(torch.as_tensor(self.vertices), offsets).numpy()

    @property
    def domain_area(self) -> float:
        corners = torch.as_tensor(self.domain)
        return float(ragged_areas(corners, torch.tensor([0, len(corners)]))[0])

    @property
    def boundary_length(self) -> float:
        return float(np.linalg.norm(self.boundary[:, 1] - self.boundary[:, 0], axis=1).sum())

    def polygon(self, r: int) -> np.ndarray:
        return self.vertices[self.offsets[r] : self.offsets[r + 1]]

    def to_shapely(self) -> list:
        import shapely

        return [shapely.Polygon(self.polygon(r)) for r in range(self.regions)]

    def locate(self, points: np.ndarray) -> np.ndarray:
        """Index of the tile containing each point (plane coordinates), -1 outside the domain."""
        import shapely

        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        tree = shapely.STRtree(self.to_shapely())
        found = np.full(len(points), -1, dtype=np.int64)
        point_idx, tile_idx = tree.query(shapely.points(points), predicate="covered_by")
        found[point_idx[::-1]] = tile_idx[::-1]  # a point on a shared edge takes the first tile
        return found

    def totals(self) -> SliceTotals:
        if self.streamed is not None:
            return self.streamed
        return SliceTotals(self.regions, float(self.areas.sum()), len(self.boundary), self.boundary_length)

    def summary(self) -> dict:
        totals = self.totals()
        return {
            "regions": totals.regions,
            "domain_area": self.domain_area,
            "covered_area": totals.covered_area,
            "boundary_segments": totals.boundary_segments,
            "boundary_length": totals.boundary_length,
            "tiles_per_node": dict(zip(self.node_names, self.tiles_per_node)),
            "seconds": self.seconds,
            "tiles_per_second": totals.regions / self.seconds if self.seconds > 0 else 0.0,
            "peak_memory_bytes": self.peak_memory_bytes,
            **({"verify": self.verify} if self.verify is not None else {}),
        }


@dataclass
class SliceTotals:
    """What the summary needs of a slice, added up group by group."""

    regions: int = 0
    covered_area: float = 0.0
    boundary_segments: int = 0
    boundary_length: float = 0.0

    def add(self, part: SliceResult) -> None:
        self.regions += part.regions
        self.covered_area += float(part.areas.sum())
        self.boundary_segments += len(part.boundary)
        self.boundary_length += part.boundary_length


@dataclass
class SliceList:
    """One network sliced along each plane of a list, in the list's order."""

    slices: list[SliceResult]

    def summary(self) -> dict:
        return {"planes": len(self.slices), "slices": [s.summary() for s in self.slices]}


def combine(parts: Sequence[SliceList]) -> SliceList:
    """The slices of consecutive shares of a plane list, as one list."""
    return SliceList([s for part in parts for s in part.slices])


@dataclass(frozen=True)
class SliceOptions:
    max_regions: int | None = 1_000_000  # stop (UsageError) beyond this many tiles
    norm: str = "2"  # of each tile's input-space Jacobian: "2" or "fro"
    verify_samples: int = 0  # random interior points per tile checked against the network (0: none)
    seed: int = 0
    jacobian_norm: bool = False  # compute each tile's Jacobian norm, which the engine does not need
    budget: int | None = None  # bytes a group of tiles may hold (None: the engine's default)

    def __post_init__(self):
        if self.norm not in NORMS:
            raise UsageError(f"`norm` {self.norm!r}: expected 2 or fro")


# inference mode rather than no_grad, here for the tiles' numbers and boundary as in the engine's sweep
# (which enters it itself): small operations skip autograd's version counters and view bookkeeping (a
# slice of the random 2->128x4 square: 0.30 s -> 0.27 s in one process)
@torch.inference_mode()
def run(
    net: PLNet,
    plane: Plane,
    options: SliceOptions = SliceOptions(),
    sink: Callable[[SliceResult], None] | None = None,
    progress: Progress | None = None,
) -> SliceResult:
    """The tiles of `plane`, found in groups that each go through the whole network alone.

    Each finished group becomes a SliceResult part. Without `sink` the parts are joined into the
    result; with it every part is handed to `sink` as soon as it is done (e.g. appended to a file)
    and the result carries only what describes the slice as a whole, with `streamed` totals.
    `progress(done, total, note)` follows the share of the plane's area finished.
    """
    start = time.perf_counter()
    by_area = (
        None
        if progress is None
        else lambda done, total, tiles: progress(done, total, f"({tiles:,} tiles in the group)")
    )
    one = _Slice(net, plane, options, sink)
    sweep = _sweep([net], one, options, by_area)
    norm = options.norm if options.jacobian_norm else None
    for group in sweep:
        ((part, loose),) = _parts([net], one.origin, one.directions, group, norm)
        one.add(part, loose, group)
    return one.result(sweep.tiles_per_node, time.perf_counter() - start)


@torch.inference_mode()
def run_checkpoints(
    nets: Sequence[PLNet], plane: Plane, options: SliceOptions = SliceOptions()
) -> list[SliceResult]:
    """`run` for each of several networks of one graph (checkpoints of a training trajectory) on one
    plane, in one sweep of the engine (`Sweep.networks`): each network's tiles are those it gets
    alone, and many small slices cost far fewer rounds of tensor operations together. The
    checkpoints share the time of the sweep equally (each result's `seconds`). The sweep holds at
    most `max_regions` tiles of all the checkpoints together, the memory of one slice: past that, the
    checkpoints are sliced one at a time, each with its own limit."""
    if not nets:
        return []
    try:
        return _run_together(nets, plane, options)
    except TooManyRegions:
        return [run(net, plane, options) for net in nets]


def _run_together(nets: Sequence[PLNet], plane: Plane, options: SliceOptions) -> list[SliceResult]:
    start = time.perf_counter()
    slices = [_Slice(net, plane, options, None) for net in nets]
    first = slices[0]
    count = len(nets)
    sweep = _sweep(nets, first, options)
    norm = options.norm if options.jacobian_norm else None
    for group in sweep:
        # the tiles' numbers in one batch for every checkpoint; each checkpoint's own tiles to verify
        alone = by_plane(group, count) if options.verify_samples else [group] * count
        for one, (part, loose), tiles in zip(
            slices, _parts(nets, first.origin, first.directions, group, norm), alone
        ):
            one.add(part, loose, tiles)
    seconds = (time.perf_counter() - start) / count
    return [one.result(tiles, seconds) for one, tiles in zip(slices, sweep.tiles_per_plane)]


def _sweep(
    nets: Sequence[PLNet],
    one: _Slice,
    options: SliceOptions,
    progress: Callable[[int, int, int], None] | None = None,
) -> Sweep:
    """The engine's sweep of `one`'s plane, a copy of the plane per network."""
    count = len(nets)
    return Sweep(
        nets[0],
        one.origin.expand(count, -1),
        one.directions.expand(count, -1, -1),
        one.plane.domain,
        budget=options.budget,
        max_regions=options.max_regions,
        progress=progress,
        networks=nets,
    )


class _Slice:
    """One slice gathered from the engine's finished groups of its tiles."""

    def __init__(
        self, net: PLNet, plane: Plane, options: SliceOptions, sink: Callable[[SliceResult], None] | None
    ):
        self.net, self.plane, self.options, self.sink = net, plane, options, sink
        self.origin = plane.origin.to(net.device, net.dtype)
        self.directions = plane.directions.to(net.device, net.dtype)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.totals, self.kept, self.loose_edges = SliceTotals(), [], []
        self.checked = {"points": 0, "tiles_mismatched": 0}

    def add(self, part: SliceResult, loose: tuple[np.ndarray, np.ndarray], group: Partition) -> None:
        """A finished group's tiles (`_parts`), and the group itself to verify them against the network."""
        self.loose_edges.append(loose)
        if self.options.verify_samples and group.verts.shape[0]:  # a group may hold none of its tiles
            _verify(
                self.net,
                self.origin,
                self.directions,
                group,
                self.options.verify_samples,
                self.generator,
                self.checked,
            )
        self._keep(part)

    def _keep(self, part: SliceResult) -> None:
        self.totals.add(part)
        if self.sink is not None:
            self.sink(part)
        else:
            self.kept.append(part)

    def result(self, tiles_per_node: list[int], seconds: float) -> SliceResult:
        net, plane, options, totals, sink = self.net, self.plane, self.options, self.totals, self.sink
        across = _boundary_across_groups(self.loose_edges)
        if len(across):
            self._keep(_empty_part(net, across, options.jacobian_norm))
        verify = None
        if options.verify_samples:
            verify = {
                "points": self.checked["points"],
                "tiles_checked": totals.regions,
                "tiles_mismatched": self.checked["tiles_mismatched"],
                "passed": self.checked["tiles_mismatched"] == 0,
            }
        whole = (
            _join(self.kept) if sink is None else _empty_part(net, np.zeros((0, 2, 2)), options.jacobian_norm)
        )
        return replace(
            whole,
            origin=plane.origin.cpu().numpy(),
            directions=plane.directions.cpu().numpy(),
            domain=plane.domain.cpu().numpy(),
            node_names=[n.name for n in net.pl_nodes],
            node_kinds=[n.kind for n in net.pl_nodes],
            node_code_bits=[n.code_bits for n in net.pl_nodes],
            norm=options.norm,
            anchors=None if plane.anchors is None else plane.anchors.cpu().numpy(),
            tiles_per_node=tiles_per_node,
            seconds=seconds,
            verify=verify,
            peak_memory_bytes=peak_memory(net.device),
            streamed=totals if sink is not None else None,
        )


class Appender(Protocol):
    """Where a slice goes a group of tiles at a time (a run file's slice group, io.stream)."""

    def append(self, part: SliceResult) -> None: ...

    def finish(self, whole: SliceResult) -> None: ...


@dataclass(frozen=True)
class SliceJob:
    """One network to slice along each plane of a list (or one plane): the work a command shares
    out, a plane an item, with what its outputs need beside the slices."""

    net: PLNet
    planes: list[Plane]
    options: SliceOptions = SliceOptions()
    listed: bool = False  # the planes came as a list: progress counts planes, not one plane's area
    anchor_rows: list[tuple[int, int, int]] | None = None  # the data rows each plane passes through
    data: Dataset | None = None  # points drawn with the slices
    checkpoint_sha256: str = ""
    # with one plane: opens where its tiles go as they are found, instead of the result's arrays
    stream: Callable[[], AbstractContextManager[Appender]] | None = None

    def __post_init__(self) -> None:
        # the points drawn with one plane must live in its space: a wrong `data` fails before the work
        if not self.listed and self.data is not None and self.planes:
            _data_rows(self.planes[0], self.data)

    @property
    def total(self) -> int:
        return len(self.planes)

    def compute(self, items: range | None = None, progress: Progress | None = None) -> SliceList:
        """The slices of the planes numbered `items` (default: all)."""
        items = range(self.total) if items is None else items
        slices = []
        for i in items:
            if self.listed:
                slices.append(run(self.net, self.planes[i], self.options))
                if progress is not None:
                    progress(len(slices), len(items))
            elif self.stream is not None:
                with self.stream() as appender:
                    slices.append(run(self.net, self.planes[i], self.options, appender.append, progress))
                    appender.finish(slices[-1])
            else:
                slices.append(run(self.net, self.planes[i], self.options, progress=progress))
        return SliceList(slices)

    def summary(self, result: SliceList) -> dict:
        """A plane list's summary, each slice with its plane's number (and data rows)."""
        summary = result.summary()
        for i, entry in enumerate(summary["slices"]):
            entry["plane"] = i
            if self.anchor_rows is not None:
                entry["anchor_index"] = list(self.anchor_rows[i])
        return summary

    def points_in_plane(self, index: int, project: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Plane coordinates (and labels) of the data points lying in plane `index`, or of every data
        point projected onto it with `project`; (None, None) without data."""
        return points_in_plane(self.planes[index], self.data, project)


def points_in_plane(
    plane: Plane, dataset: Dataset | None, project: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Plane coordinates (and labels) of the data points lying in `plane`, or of every data point
    projected onto it with `project`; (None, None) without data."""
    if dataset is None:
        return None, None
    x = _data_rows(plane, dataset)
    t, distance = plane.project(x)
    scale = max(1.0, float(x.abs().max()))
    keep = torch.ones_like(distance, dtype=torch.bool) if project else distance <= IN_PLANE_TOL * scale
    labels = None if dataset.y is None else dataset.y[keep.numpy()]
    return t[keep].numpy(), labels


def _data_rows(plane: Plane, dataset: Dataset) -> torch.Tensor:
    x = torch.as_tensor(dataset.x.reshape(len(dataset.x), -1), dtype=torch.float64)
    if x.shape[1] != plane.origin.shape[0]:
        dims = plane.origin.shape[0]
        raise UsageError(
            f"`data` {dataset.source}: rows have {x.shape[1]} values, the plane lives in {dims}-D"
        )
    return x


@dataclass
class SliceTrajectory:
    """One plane sliced through each checkpoint of a training trajectory, in step order, with where
    the tiles are (analyses/tile_placement.py) relative to `data` and to each slice's decision boundary."""

    steps: list[int]
    checkpoints: list[str]
    slices: list[SliceResult]
    placements: list[Placement]
    data: np.ndarray  # [N, 2] the data points the distances are measured to, in plane coordinates

    def summary(self) -> dict:
        first = self.placements[0] if self.placements else None
        return {
            "delta": None if first is None else first.delta,
            "bin_edges": None if first is None else first.bin_edges.tolist(),
            "data_points": len(self.data),
            "checkpoints": [
                {"step": step, "checkpoint": name, **one.summary(), "placement": placement.summary()}
                for step, name, one, placement in zip(
                    self.steps, self.checkpoints, self.slices, self.placements
                )
            ],
        }


def combine_trajectory(parts: Sequence[SliceTrajectory]) -> SliceTrajectory:
    """The slices of consecutive shares of a trajectory's checkpoints, as one trajectory."""
    joined = [[item for part in parts for item in getattr(part, name)] for name in SLICE_TRAJECTORY_LISTS]
    return SliceTrajectory(*joined, data=parts[0].data)


SLICE_TRAJECTORY_LISTS = ("steps", "checkpoints", "slices", "placements")  # one entry per checkpoint


@dataclass(frozen=True)
class TrajectoryJob:
    """The checkpoints of a trajectory sliced on one plane, fixed in input space: the work a command
    shares out, a checkpoint an item. `load(path)` gives (loaded model, PLNet)."""

    load: Callable[[Path], tuple[object, PLNet]]
    paths: list[Path]
    steps: list[int]
    plane: Plane
    data: np.ndarray  # [N, 2] plane coordinates of the points the distances are measured to
    options: SliceOptions = SliceOptions()
    placement: PlacementOptions = PlacementOptions()
    checkpoint_sha256: str = ""

    @property
    def total(self) -> int:
        return len(self.paths)

    def compute(self, items: range | None = None, progress: Progress | None = None) -> SliceTrajectory:
        items = range(self.total) if items is None else items
        slices, placements = [], []
        placer = Placer(self.plane.domain.cpu().numpy(), self.data, self.placement)
        at_once = CHECKPOINTS_AT_ONCE
        for nets in self._stacks(items, lambda: at_once):  # noqa: B023 - the size for the next stack
            sliced = run_checkpoints(nets, self.plane, self.options)
            slices += sliced
            placements += place_all(placer, sliced)
            limit = self.options.max_regions
            if limit is not None and sum(one.regions for one in sliced) > limit:
                at_once = 1  # checkpoints this large gain nothing together: slice the rest alone
            if progress is not None:
                progress(len(slices), len(items))
        steps = [self.steps[i] for i in items]
        return SliceTrajectory(steps, [str(self.paths[i]) for i in items], slices, placements, self.data)

    def _stacks(self, items: range, at_once: Callable[[], int]) -> Iterator[list[PLNet]]:
        """The checkpoints, loaded in order, in runs of one graph that are sliced in one sweep (at
        most `at_once()` checkpoints, asked as each run is made)."""
        stack: list[PLNet] = []
        held = 0
        for i in items:
            try:
                net = self._load(i)
            except Exception:
                if stack:  # slice the checkpoints before it first, so the first failing one is reported
                    yield stack
                raise
            size = net.parameter_count() * net.dtype.itemsize
            full = len(stack) >= at_once() or held + size > STACKED_PARAMETER_BYTES
            if stack and (full or not same_graph(stack[0], net)):
                yield stack
                stack, held = [], 0
            stack.append(net)
            held += size
        if stack:
            yield stack

    def _load(self, i: int) -> PLNet:
        _, net = self.load(self.paths[i])
        dims = self.plane.origin.shape[0]
        if math.prod(net.input_shape) != dims:
            raise UsageError(
                f"checkpoint {self.paths[i]}: its inputs have shape {tuple(net.input_shape)}, "
                f"the trajectory's plane lives in {dims}-D (every checkpoint must take the same inputs)"
            )
        return net


def place_all(placer: Placer, slices: Sequence[SliceResult]) -> list[Placement]:
    """`placer.place` on each slice. numpy leaves the GIL in its array work, and the engine is idle
    meanwhile: one thread per core that torch may use places several slices at once."""
    with ThreadPoolExecutor(max(1, min(torch.get_num_threads(), len(slices)))) as pool:
        return list(pool.map(lambda one: placer.place(one.vertices, one.offsets, one.boundary), slices))


def peak_memory(device: torch.device) -> int:
    """Peak bytes so far: the device's allocator on CUDA, the process's resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _parts(nets: Sequence[PLNet], origin, directions, group: Partition, norm: str | None):
    """A finished group as one SliceResult per plane holding its tiles, each with its loose tile-edge
    segments (`decision_boundary`). One plane: `nets` is [net]; in a sweep of several networks
    (`run_checkpoints`), plane k holds network k's tiles and the numbers of all planes are computed
    in one batch."""
    count = group.count
    # the corners of all tiles one after another (rows padded to the most corners of any tile would
    # be mostly padding: 4 corners on average in rows of 23 on a trajectory's digits plane)
    tile_of, corner_ids = torch.nonzero(group.verts >= 0, as_tuple=True)
    corner_ids = group.verts[tile_of, corner_ids]
    corners, outputs = (
        take_rows(group.coords, corner_ids),
        take_rows(group.outputs, corner_ids),
    )  # [N, 2], [N, O]

    def per_tile(values: torch.Tensor) -> torch.Tensor:
        return values.new_zeros((count.shape[0], *values.shape[1:])).index_add_(0, tile_of, values)

    centre = per_tile(corners) / count[:, None]
    mean_out = per_tile(outputs) / count[:, None]
    # each output is affine on the tile: least squares through its corners is exact; the 2x2
    # normal equations solved in closed form (batched matrix products of this size are slow)
    dt, do = corners - take_rows(centre, tile_of), outputs - take_rows(mean_out, tile_of)
    dx, dy = dt[:, 0], dt[:, 1]
    gxx, gxy, gyy = per_tile(dx * dx), per_tile(dx * dy), per_tile(dy * dy)
    rx, ry = per_tile(dx[:, None] * do), per_tile(dy[:, None] * do)  # [T, O]
    det = gxx * gyy - gxy * gxy
    plane_a = torch.stack([gyy[:, None] * rx - gxy[:, None] * ry, gxx[:, None] * ry - gxy[:, None] * rx], -1)
    plane_a = plane_a / det[:, None, None]  # [T, O, 2]
    # below a few roundings of its terms, the determinant is noise: the corners are collinear in
    # this dtype (a sliver), and the least-norm solution replaces the closed form
    singular = ~(det > 4 * torch.finfo(det.dtype).eps * gxx * gyy)
    if bool(singular.any()):
        gram = torch.stack([torch.stack([gxx, gxy], -1), torch.stack([gxy, gyy], -1)], -2)[singular]
        rhs = torch.stack([rx, ry], dim=1)[singular]
        plane_a[singular] = (torch.linalg.pinv(gram, hermitian=True) @ rhs).transpose(1, 2)
    plane_c = mean_out - torch.einsum("toi,ti->to", plane_a, centre)
    # each plane's tiles (one plane: all of them, as they are)
    tile_plane = group.tile_sheets
    plane_rows = (
        [torch.nonzero(tile_plane == plane).flatten() for plane in range(len(nets))]
        if len(nets) > 1
        else [slice(None)]
    )
    jac_norm = None
    if norm is not None:
        jac_norm = torch.empty(count.shape[0], dtype=centre.dtype, device=centre.device)
        for net, mine in zip(nets, plane_rows):
            ids = torch.arange(count.shape[0], device=count.device)[mine]
            for rows in ids.split(4096) if ids.numel() else ():
                full = jacobians(net, plane_inputs(net, origin, directions, centre[rows]))
                jac_norm[rows] = torch.linalg.matrix_norm(full, ord=NORMS[norm])
    segments, segment_plane, (loose_ends, loose_class, loose_plane) = decision_boundary(group)
    arrays = {
        "codes": group.codes,
        "affine_A": plane_a,
        "affine_c": plane_c,
        "jacobian_norm": jac_norm,
    }
    parts = []
    for plane, rows in enumerate(plane_rows):
        verts = group.verts[rows]
        flat_verts, offsets = _ragged(verts, count[rows])
        mine = {key: None if a is None else a[rows].cpu().numpy() for key, a in arrays.items()}
        part = _tiles(
            vertices=group.coords[flat_verts].cpu().numpy(),
            offsets=offsets,
            edge_node=group.labels[rows][verts >= 0].cpu().numpy().astype(np.int32),
            boundary=segments[segment_plane == plane],
            **mine,
        )
        on_plane = loose_plane == plane
        parts.append((part, (loose_ends[on_plane], loose_class[on_plane])))
    return parts


def _empty_part(net: PLNet, boundary: np.ndarray, jacobian_norm: bool) -> SliceResult:
    """No tiles, only decision-boundary segments (and the shapes of the per-tile arrays)."""
    outputs = net.output_dim
    code_bytes = (sum(n.code_bits for n in net.pl_nodes) + 7) // 8
    return _tiles(
        vertices=np.zeros((0, 2)),
        offsets=np.zeros(1, dtype=np.int64),
        codes=np.zeros((0, code_bytes), dtype=np.uint8),
        affine_A=np.zeros((0, outputs, 2)),
        affine_c=np.zeros((0, outputs)),
        jacobian_norm=np.zeros(0) if jacobian_norm else None,
        edge_node=np.zeros(0, dtype=np.int32),
        boundary=boundary,
    )


def _join(parts: list[SliceResult]) -> SliceResult:
    """The parts' tiles as one set of arrays (offsets shifted)."""
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
    norms = [p.jacobian_norm for p in parts]
    return _tiles(
        vertices=np.concatenate([p.vertices for p in parts]),
        offsets=offsets,
        codes=np.concatenate([p.codes for p in parts]),
        affine_A=np.concatenate([p.affine_A for p in parts]),
        affine_c=np.concatenate([p.affine_c for p in parts]),
        jacobian_norm=None if norms[0] is None else np.concatenate(norms),
        edge_node=np.concatenate([p.edge_node for p in parts]),
        boundary=np.concatenate([p.boundary for p in parts]),
    )


def _tiles(**arrays) -> SliceResult:
    """Tiles and boundary segments without the plane and node layout, which `run` adds once at the end."""
    return SliceResult(
        **arrays,
        origin=np.zeros(0),
        directions=np.zeros((2, 0)),
        domain=np.zeros((0, 2)),
        node_names=[],
        node_kinds=[],
        node_code_bits=[],
    )


def _ragged(verts: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    offsets = np.zeros(len(count) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(count.cpu().numpy())
    return verts[verts >= 0], offsets


TIE = 1e-8  # scores this close (relative to the largest) may tie along an edge


def decision_boundary(
    part: Partition,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Segments where the predicted class changes (one output: its zero level set), and the plane
    of each (`Partition.sheets`; 0 in a sweep of one plane).

    Each tile's affine outputs are split into the cells where each class wins; an edge between the
    cells of classes i < j is kept once, from class i's side. Where the boundary runs exactly along
    a tile edge (the logits tie along a kink), the two cells that share that edge have different
    classes: those edges are found by matching their end points across tiles. Tile edges seen from
    one side only (on the border of the group) come back loose, as ([E, 2, 2] ends, [E] class,
    [E] plane), to be matched against the other groups.
    """
    outputs = part.outputs
    scores = torch.cat([torch.zeros_like(outputs), outputs], dim=1) if outputs.shape[1] == 1 else outputs
    k = scores.shape[1]
    plane = part.sheets if part.sheets is not None else torch.zeros(part.coords.shape[0], dtype=torch.long)
    # the plane as a field, so that the vertices the cells create inherit it (it is constant per tile)
    fields = {"scores": scores, "plane": plane.to(device=scores.device, dtype=scores.dtype)}
    vertices = VertexStore(part.coords.clone(), fields)
    tiles = TileStore(part.verts.clone(), torch.full_like(part.verts, -1))
    # label (i, j) as i * k + j: the edge of class i's cell that lies on the line z_i = z_j
    argmax_cells(tiles, vertices, lambda: vertices.field("scores"), lambda i, j: i * k + j)
    verts, labels = tiles.verts, tiles.labels
    if verts.shape[0] == 0:
        none = np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64)
        return *none, (*none, np.zeros(0, dtype=np.int64))
    tile_plane = vertices.field("plane").take(verts[:, 0]).round().long()
    following = next_corners(verts)
    coords = vertices.coords
    inside = (labels >= 0) & (labels // k < labels % k) & (verts >= 0)
    rows = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(verts)
    segments = [torch.stack([coords[verts[inside]], coords[following[inside]]], dim=1)]
    planes = [tile_plane[rows[inside]]]
    along, along_rows, loose = _boundary_along_tile_edges(
        verts, labels, following, coords, vertices.field("scores")
    )
    segments.append(along)
    planes.append(tile_plane[along_rows])
    ends, classes, loose_rows = loose
    loose_plane = tile_plane[loose_rows].cpu().numpy()
    return torch.cat(segments).cpu().numpy(), torch.cat(planes).cpu().numpy(), (ends, classes, loose_plane)


def _boundary_along_tile_edges(verts, labels, following, coords, scores):
    """Tile edges where the cells on the two sides have different classes ([E, 2, 2], and the row of
    one of the two cells), and the edges seen from one side only ([L, 2, 2] ends, class, row).

    The outputs are continuous, so where the class changes across an edge the two classes tie along
    it, at both of its ends: only edges whose ends both tie at the top are matched, a few of the
    hundreds of thousands of tile edges."""
    top = scores.topk(2, dim=1).values  # one output reads as the two scores (0, output)
    # the ends' scores come from different batches of the network's layers: a loose tolerance
    tied = top[:, 0] - top[:, 1] <= TIE * float(scores.abs().max())
    valid = verts >= 0
    on_tile_edge = valid & (labels < 0) & tied.take(verts.clamp(min=0)) & tied.take(following.clamp(min=0))
    rows = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(verts)[on_tile_edge]
    a, b = verts[on_tile_edge], following[on_tile_edge]
    lo, hi = _ordered_ends(take_rows(coords, a), take_rows(coords, b))
    # each cell's class at its vertex mean, strictly inside it; only the cells along those edges
    cells, cell_of = torch.unique(rows, return_inverse=True)
    cell_class = corner_means(verts[cells], scores).argmax(dim=1).take(cell_of)
    # tiles of a group share their vertices: an edge seen from both sides has the same two ids
    span = int(verts.max()) + 1
    key = torch.minimum(a, b) * span + torch.maximum(a, b)
    _, group, sizes = torch.unique(key, return_inverse=True, return_counts=True)
    # the two sides of each shared edge next to each other
    shared = torch.nonzero(sizes[group] == 2).flatten()
    paired = shared.take(torch.argsort(group.take(shared), stable=True))
    first, second = paired[0::2], paired[1::2]
    differ = cell_class.take(first) != cell_class.take(second)
    ends = torch.stack([lo[first], hi[first]], dim=1)
    single = sizes[group] == 1
    loose_ends = torch.stack([lo[single], hi[single]], dim=1).cpu().numpy()
    return (
        ends[differ],
        rows.take(first)[differ],
        (loose_ends, cell_class[single].cpu().numpy(), rows[single]),
    )


def _ordered_ends(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # the same edge seen from both sides has bit-identical end points: order them to match
    swap = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    return torch.where(swap[:, None], q, p), torch.where(swap[:, None], p, q)


def _boundary_across_groups(loose: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Decision boundary along tile edges that two groups share (each group saw one side)."""
    ends = np.concatenate([e for e, _ in loose]) if loose else np.zeros((0, 2, 2))
    classes = np.concatenate([c for _, c in loose]) if loose else np.zeros(0, dtype=np.int64)
    if len(ends) < 2:
        return np.zeros((0, 2, 2))
    # groups push their vertices through the network in batches of their own size, so the same
    # point may differ in its last bits between two groups: match ends to 2^-32 of the extent
    scale = max(float(np.abs(ends).max()), 1e-300)
    keys = np.round(ends.reshape(len(ends), 4) * (2.0**32 / scale))
    _, group, sizes = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    shared = sizes[group] == 2
    order = np.argsort(group[shared], kind="stable")
    first, second = np.flatnonzero(shared)[order][0::2], np.flatnonzero(shared)[order][1::2]
    return ends[first][classes[first] != classes[second]]


def _verify(net, origin, directions, part: Partition, samples: int, generator, checked: dict) -> None:
    """Check every tile's code against the network: at the mean of its corners the network's code
    must be the tile's, except where a unit reads zero there and the tile holds a side some corner
    reads (`_read_near_a_boundary`); at random interior points, every unit must be on the tile's side
    of its breakpoint, zero counting as both sides. By the zero rule (splinetool/ir/pl.py) a point
    whose value is within the tolerance lies on that boundary: in a tile thinner than a few
    tolerances (5e-15 of a digits-resnet plane) such points are interior samples, and their code reads
    the unit as zero while the tile, clear of zero at its mean, does not."""
    verts = part.verts
    valid = (verts >= 0).to(part.coords.dtype)
    corners = part.coords[verts.clamp(min=0)]
    total_bits = sum(n.code_bits for n in net.pl_nodes)

    def bits(rows: torch.Tensor) -> torch.Tensor:
        # a chunk at a time: a bool per unit is 2 KiB a tile for digits-resnet, hundreds of MiB a group
        return unpack_bits(part.codes[rows], total_bits)

    mismatched = torch.zeros(verts.shape[0], dtype=torch.bool, device=verts.device)
    mean = (corners * valid[..., None]).sum(dim=1) / valid.sum(dim=1, keepdim=True)
    for rows in torch.arange(len(mean), device=verts.device).split(4096):
        got = net.codes(plane_inputs(net, origin, directions, mean[rows]))
        mismatched[rows] |= (got != part.codes[rows]).any(dim=1)
    # in chunks: each of these tiles also sends its corners through the network
    differing = torch.nonzero(mismatched).flatten()
    for rows in differing.split(512) if differing.numel() else ():
        mismatched[rows] = ~_read_near_a_boundary(net, origin, directions, mean[rows], part, rows, bits(rows))
    for _ in range(samples):
        # positive weights on every corner give a point strictly inside a convex polygon
        w = (
            torch.rand(verts.shape, generator=generator, dtype=corners.dtype).to(verts.device) + 0.05
        ) * valid
        points = (corners * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True)
        for rows in torch.arange(len(points), device=verts.device).split(4096):
            x = plane_inputs(net, origin, directions, points[rows])
            mismatched[rows] |= ~_on_the_tiles_sides(net, x, bits(rows))
    checked["points"] += int((samples + 1) * verts.shape[0])
    checked["tiles_mismatched"] += int(mismatched.sum())


def _read_near_a_boundary(net, origin, directions, mean, part: Partition, rows, bits) -> torch.Tensor:
    """[R] whether tiles whose code differs from the network's at their corner mean are still right.

    A piece inherits the codes of earlier nodes from the tile it was cut from, read at that tile's
    mean. A small piece against a boundary may have its own mean within the zero tolerance of it,
    where the unit reads zero (or a tied candidate wins). That is the reading of the boundary, not of
    the piece: the piece's code is right if, at every unit where the two readings differ, the mean is
    on the piece's side weakly and some corner of the piece reads the piece's side."""
    held = _on_the_tiles_sides(net, plane_inputs(net, origin, directions, mean), bits)
    verts = part.verts[rows]
    corner_ids = verts.clamp(min=0)
    corner_x = plane_inputs(net, origin, directions, part.coords[corner_ids.reshape(-1)])
    total = sum(n.code_bits for n in net.pl_nodes)
    corner_bits = net.code_bits(corner_x).reshape(*verts.shape, total)
    mean_bits = net.code_bits(plane_inputs(net, origin, directions, mean))
    start = 0
    for node in net.pl_nodes:
        if node.code_bits:
            span = slice(start, start + node.code_bits)
            side = node.pl.sides(bits[:, span])
            differs = side != node.pl.sides(mean_bits[:, span])
            at_corners = node.pl.sides(corner_bits[..., span].reshape(-1, node.code_bits)).reshape(
                *verts.shape, -1
            )
            reached = ((at_corners == side[:, None]) & (verts >= 0)[..., None]).any(dim=1)
            held &= (~differs | reached).all(dim=1)
        start += node.code_bits
    return held


def _on_the_tiles_sides(net: PLNet, x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """[B] whether each point is (weakly) on the side of every unit that its tile's code `bits` names."""
    held = torch.ones(len(x), dtype=torch.bool, device=x.device)
    start = 0
    for node, sides in zip(net.pl_nodes, net.weak_sides(x)):
        if node.code_bits:  # max-pool windows of one candidate have no code
            side = node.pl.sides(bits[:, start : start + node.code_bits])
            held &= sides.gather(-1, side[..., None]).flatten(1).all(dim=1)
        start += node.code_bits
    return held
