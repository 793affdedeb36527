"""`slice`: the exact tiles of a 2-D slice of input space, their affine maps, and the decision boundary;
over a training trajectory, one plane through every checkpoint and where the tiles lie on it
(analyses/tile_placement.py)."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from splinetool.analyses import Progress
from splinetool.analyses.plane import Plane
from splinetool.analyses.tile_placement import Placement, PlacementOptions, place
from splinetool.data.loading import Dataset
from splinetool.engine.jacobian import jacobians
from splinetool.engine.planar import Partition, Sweep, argmax_cells, plane_inputs, ragged_areas
from splinetool.engine.store import TileStore, VertexStore, take_rows
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import unpack_bits

NORMS = {"2": 2, "fro": "fro"}
IN_PLANE_TOL = 1e-6  # relative distance under which a data point counts as lying in the plane


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


@torch.no_grad()
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
    norm, verify_samples, jacobian_norm = options.norm, options.verify_samples, options.jacobian_norm
    origin = plane.origin.to(net.device, net.dtype)
    directions = plane.directions.to(net.device, net.dtype)
    by_area = (
        None
        if progress is None
        else lambda done, total, tiles: progress(done, total, f"({tiles:,} tiles in the group)")
    )
    limits = dict(budget=options.budget, max_regions=options.max_regions, progress=by_area)
    sweep = Sweep(net, origin, directions, plane.domain, **limits)
    generator = torch.Generator().manual_seed(options.seed)
    totals, kept, loose_edges, checked = SliceTotals(), [], [], {"points": 0, "tiles_mismatched": 0}
    for group in sweep:
        part, loose = _part(net, origin, directions, group, norm if jacobian_norm else None)
        loose_edges.append(loose)
        if verify_samples:
            _verify(net, origin, directions, group, verify_samples, generator, checked)
        totals.add(part)
        if sink is not None:
            sink(part)
        else:
            kept.append(part)
    across = _boundary_across_groups(loose_edges)
    if len(across):
        extra = _empty_part(net, across, jacobian_norm)
        totals.add(extra)
        (sink if sink is not None else kept.append)(extra)
    verify = None
    if verify_samples:
        verify = {
            "points": checked["points"],
            "tiles_checked": totals.regions,
            "tiles_mismatched": checked["tiles_mismatched"],
            "passed": checked["tiles_mismatched"] == 0,
        }
    whole = _join(kept) if sink is None else _empty_part(net, np.zeros((0, 2, 2)), jacobian_norm)
    return replace(
        whole,
        origin=plane.origin.cpu().numpy(),
        directions=plane.directions.cpu().numpy(),
        domain=plane.domain.cpu().numpy(),
        node_names=[n.name for n in net.pl_nodes],
        node_kinds=[n.kind for n in net.pl_nodes],
        node_code_bits=[n.code_bits for n in net.pl_nodes],
        norm=norm,
        anchors=None if plane.anchors is None else plane.anchors.cpu().numpy(),
        tiles_per_node=sweep.tiles_per_node,
        seconds=time.perf_counter() - start,
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
        dims = self.plane.origin.shape[0]
        slices, placements = [], []
        for i in items:
            _, net = self.load(self.paths[i])
            if math.prod(net.input_shape) != dims:
                raise UsageError(
                    f"checkpoint {self.paths[i]}: its inputs have shape {tuple(net.input_shape)}, "
                    f"the trajectory's plane lives in {dims}-D (every checkpoint must take the same inputs)"
                )
            one = run(net, self.plane, self.options)
            slices.append(one)
            placements.append(
                place(one.vertices, one.offsets, one.domain, self.data, one.boundary, self.placement)
            )
            if progress is not None:
                progress(len(slices), len(items))
        steps = [self.steps[i] for i in items]
        return SliceTrajectory(steps, [str(self.paths[i]) for i in items], slices, placements, self.data)


def peak_memory(device: torch.device) -> int:
    """Peak bytes so far: the device's allocator on CUDA, the process's resident set on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _part(net, origin, directions, group: Partition, norm: str | None):
    """One finished group as a SliceResult holding its tiles, and its loose tile-edge segments."""
    count = group.count
    valid = group.verts >= 0
    corners = take_rows(group.coords, group.verts.clamp(min=0))
    outputs = take_rows(group.outputs, group.verts.clamp(min=0))  # [T, K, O]
    w = valid.to(corners.dtype)[..., None]
    centre = (corners * w).sum(dim=1) / count[:, None]
    mean_out = (outputs * w).sum(dim=1) / count[:, None]
    # each output is affine on the tile: least squares through its corners is exact; the 2x2
    # normal equations solved in closed form (batched matrix products of this size are slow)
    dt, do = (corners - centre[:, None]) * w, (outputs - mean_out[:, None]) * w
    dx, dy = dt[..., 0], dt[..., 1]
    gxx, gxy, gyy = (dx * dx).sum(dim=1), (dx * dy).sum(dim=1), (dy * dy).sum(dim=1)
    rx, ry = (dx[..., None] * do).sum(dim=1), (dy[..., None] * do).sum(dim=1)  # [T, O]
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
    jac_norm = None
    if norm is not None:
        norms = []
        for chunk in centre.split(4096):
            full = jacobians(net, plane_inputs(net, origin, directions, chunk))
            norms.append(torch.linalg.matrix_norm(full, ord=NORMS[norm]))
        jac_norm = torch.cat(norms).cpu().numpy()
    segments, loose = decision_boundary(group)
    flat_verts, offsets = _ragged(group.verts, count)
    part = _tiles(
        vertices=group.coords[flat_verts].cpu().numpy(),
        offsets=offsets,
        codes=group.codes.cpu().numpy(),
        affine_A=plane_a.cpu().numpy(),
        affine_c=plane_c.cpu().numpy(),
        jacobian_norm=jac_norm,
        edge_node=group.labels[valid].cpu().numpy().astype(np.int32),
        boundary=segments,
    )
    return part, loose


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


def decision_boundary(part: Partition) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Segments where the predicted class changes (one output: its zero level set).

    Each tile's affine outputs are split into the cells where each class wins; an edge between the
    cells of classes i < j is kept once, from class i's side. Where the boundary runs exactly along
    a tile edge (the logits tie along a kink), the two cells that share that edge have different
    classes: those edges are found by matching their end points across tiles. Tile edges seen from
    one side only (on the border of the group) come back loose, as ([E, 2, 2] ends, [E] class), to
    be matched against the other groups.
    """
    outputs = part.outputs
    scores = torch.cat([torch.zeros_like(outputs), outputs], dim=1) if outputs.shape[1] == 1 else outputs
    k = scores.shape[1]
    vertices = VertexStore(part.coords.clone(), {"scores": scores})
    tiles = TileStore(part.verts.clone(), torch.full_like(part.verts, -1))
    # label (i, j) as i * k + j: the edge of class i's cell that lies on the line z_i = z_j
    argmax_cells(tiles, vertices, lambda: vertices.field("scores"), lambda i, j: i * k + j)
    verts, labels = tiles.verts, tiles.labels
    if verts.shape[0] == 0:
        return np.zeros((0, 2, 2)), (np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64))
    count = (verts >= 0).sum(dim=1, keepdim=True)
    position = torch.arange(verts.shape[1], device=verts.device).expand_as(verts)
    following = verts.gather(1, (position + 1) % count.clamp(min=1))
    coords = vertices.coords
    inside = (labels >= 0) & (labels // k < labels % k) & (verts >= 0)
    segments = [torch.stack([coords[verts[inside]], coords[following[inside]]], dim=1)]
    along, loose = _boundary_along_tile_edges(verts, labels, following, coords, vertices.field("scores"))
    segments.append(along)
    return torch.cat(segments).cpu().numpy(), loose


def _boundary_along_tile_edges(verts, labels, following, coords, scores):
    valid = verts >= 0
    count = valid.sum(dim=1)
    cell_scores = (take_rows(scores, verts.clamp(min=0)) * valid[..., None]).sum(dim=1) / count[:, None]
    cell_class = cell_scores.argmax(dim=1)  # at the cell's vertex mean, strictly inside it
    on_tile_edge = valid & (labels < 0)
    rows = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(verts)[on_tile_edge]
    a, b = verts[on_tile_edge], following[on_tile_edge]
    lo, hi = _ordered_ends(take_rows(coords, a), take_rows(coords, b))
    # tiles of a group share their vertices: an edge seen from both sides has the same two ids
    span = int(verts.max()) + 1
    key = torch.minimum(a, b) * span + torch.maximum(a, b)
    _, group, sizes = torch.unique(key, return_inverse=True, return_counts=True)
    shared = sizes[group] == 2
    order = torch.argsort(group[shared], stable=True)
    first, second = rows[shared][order][0::2], rows[shared][order][1::2]
    differ = cell_class[first] != cell_class[second]
    ends = torch.stack([lo[shared][order][0::2], hi[shared][order][0::2]], dim=1)
    single = sizes[group] == 1
    loose = torch.stack([lo[single], hi[single]], dim=1).cpu().numpy(), cell_class[rows[single]].cpu().numpy()
    return ends[differ], loose


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
    bits = unpack_bits(part.codes, sum(n.code_bits for n in net.pl_nodes))
    mismatched = torch.zeros(verts.shape[0], dtype=torch.bool, device=verts.device)
    mean = (corners * valid[..., None]).sum(dim=1) / valid.sum(dim=1, keepdim=True)
    for rows in torch.arange(len(mean), device=verts.device).split(4096):
        got = net.codes(plane_inputs(net, origin, directions, mean[rows]))
        mismatched[rows] |= (got != part.codes[rows]).any(dim=1)
    # in chunks: each of these tiles also sends its corners through the network
    differing = torch.nonzero(mismatched).flatten()
    for rows in differing.split(512) if differing.numel() else ():
        mismatched[rows] = ~_read_near_a_boundary(net, origin, directions, mean[rows], part, rows, bits[rows])
    for _ in range(samples):
        # positive weights on every corner give a point strictly inside a convex polygon
        w = (
            torch.rand(verts.shape, generator=generator, dtype=corners.dtype).to(verts.device) + 0.05
        ) * valid
        points = (corners * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True)
        for rows in torch.arange(len(points), device=verts.device).split(4096):
            x = plane_inputs(net, origin, directions, points[rows])
            mismatched[rows] |= ~_on_the_tiles_sides(net, x, bits[rows])
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
