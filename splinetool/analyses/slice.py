"""`slice`: the exact tiles of a 2-D slice of input space, their affine maps, and the decision boundary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from splinetool.analyses.plane import Plane
from splinetool.engine.planar import Progress, argmax_cells, partition, plane_inputs
from splinetool.engine.store import TileStore, VertexStore
from splinetool.ir import PLNet

NORMS = {"2": 2, "fro": "fro"}


@dataclass
class SliceResult:
    vertices: np.ndarray  # [V, 2] plane coordinates, tile after tile
    offsets: np.ndarray  # [R + 1]: tile r is vertices[offsets[r]:offsets[r+1]], counter-clockwise
    codes: np.ndarray  # [R, bytes] bit-packed activation codes
    affine_A: np.ndarray  # [R, outputs, 2]: output = A t + c on the tile, t in plane coordinates
    affine_c: np.ndarray  # [R, outputs]
    jacobian_norm: np.ndarray  # [R] norm of the full input-space Jacobian on the tile
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

    @property
    def regions(self) -> int:
        return len(self.offsets) - 1

    @property
    def areas(self) -> np.ndarray:
        counts = np.diff(self.offsets)
        x, y = self.vertices[:, 0], self.vertices[:, 1]
        nxt = np.arange(len(x)) + 1
        nxt[self.offsets[1:] - 1] = self.offsets[:-1]
        cross = x * y[nxt] - y * x[nxt]
        return np.add.reduceat(cross, self.offsets[:-1]) / 2 if len(counts) else np.zeros(0)

    @property
    def domain_area(self) -> float:
        x, y = self.domain[:, 0], self.domain[:, 1]
        return float((x * np.roll(y, -1) - y * np.roll(x, -1)).sum() / 2)

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

    def summary(self) -> dict:
        areas = self.areas
        return {
            "regions": self.regions,
            "domain_area": self.domain_area,
            "covered_area": float(areas.sum()),
            "boundary_segments": int(len(self.boundary)),
            "boundary_length": self.boundary_length,
            "tiles_per_node": dict(zip(self.node_names, self.tiles_per_node)),
            "seconds": self.seconds,
            **({"verify": self.verify} if self.verify is not None else {}),
        }


@dataclass
class SliceList:
    """One network sliced along each plane of a list, in the list's order."""

    slices: list[SliceResult]

    def summary(self) -> dict:
        return {"planes": len(self.slices), "slices": [s.summary() for s in self.slices]}


def combine(parts: Sequence[SliceList]) -> SliceList:
    """The slices of consecutive shares of a plane list, as one list."""
    return SliceList([s for part in parts for s in part.slices])


@torch.no_grad()
def run(
    net: PLNet,
    plane: Plane,
    max_regions: int | None = 1_000_000,
    norm: str = "2",
    verify_samples: int = 0,
    seed: int = 0,
    chunk_size: int = 4096,
    progress: Progress | None = None,
) -> SliceResult:
    start = time.perf_counter()
    origin = plane.origin.to(net.device, net.dtype)
    directions = plane.directions.to(net.device, net.dtype)
    part = partition(net, origin, directions, plane.domain, max_regions, progress)
    count = part.count
    corners = part.coords[part.verts.clamp(min=0)]
    centroids = (corners * (part.verts >= 0)[..., None]).sum(dim=1) / count[:, None]
    codes, jac_a, jac_c, jac_norm = [], [], [], []
    for chunk in centroids.split(chunk_size):
        x = plane_inputs(net, origin, directions, chunk)
        codes.append(net.codes(x))
        full, _ = net.affine_maps(x, chunk_size=chunk_size)
        with torch.no_grad():
            plane_a = full @ directions.T
            jac_a.append(plane_a)
            jac_c.append(net(x).reshape(len(chunk), -1) - torch.einsum("boi,bi->bo", plane_a, chunk))
            jac_norm.append(torch.linalg.matrix_norm(full, ord=NORMS[norm]))
    boundary = decision_boundary(part)
    verify = (
        _verify(net, origin, directions, part, torch.cat(codes), verify_samples, seed)
        if verify_samples
        else None
    )
    flat_verts, offsets = _ragged(part.verts, count)
    return SliceResult(
        vertices=part.coords[flat_verts].cpu().numpy(),
        offsets=offsets,
        codes=torch.cat(codes).cpu().numpy(),
        affine_A=torch.cat(jac_a).detach().cpu().numpy(),
        affine_c=torch.cat(jac_c).detach().cpu().numpy(),
        jacobian_norm=torch.cat(jac_norm).detach().cpu().numpy(),
        edge_node=part.labels[part.verts >= 0].cpu().numpy().astype(np.int32),
        boundary=boundary,
        origin=plane.origin.cpu().numpy(),
        directions=plane.directions.cpu().numpy(),
        domain=plane.domain.cpu().numpy(),
        node_names=[n.name for n in net.pl_nodes],
        node_kinds=[n.kind for n in net.pl_nodes],
        node_code_bits=[n.code_bits for n in net.pl_nodes],
        norm=norm,
        anchors=None if plane.anchors is None else plane.anchors.cpu().numpy(),
        tiles_per_node=part.tiles_per_node,
        seconds=time.perf_counter() - start,
        verify=verify,
    )


def _ragged(verts: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    offsets = np.zeros(len(count) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(count.cpu().numpy())
    return verts[verts >= 0], offsets


def decision_boundary(part) -> np.ndarray:
    """Segments where the predicted class changes (one output: its zero level set).

    Each tile's affine outputs are split into the cells where each class wins; an edge between the
    cells of classes i < j is kept once, from class i's side. Where the boundary runs exactly along
    a tile edge (the logits tie along a kink), the two cells that share that edge have different
    classes: those edges are found by matching their end points across tiles.
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
        return np.zeros((0, 2, 2))
    count = (verts >= 0).sum(dim=1, keepdim=True)
    position = torch.arange(verts.shape[1], device=verts.device).expand_as(verts)
    following = verts.gather(1, (position + 1) % count.clamp(min=1))
    coords = vertices.coords
    inside = (labels >= 0) & (labels // k < labels % k) & (verts >= 0)
    segments = [torch.stack([coords[verts[inside]], coords[following[inside]]], dim=1)]
    along = _boundary_along_tile_edges(verts, labels, following, coords, vertices.field("scores"))
    segments.append(along)
    return torch.cat(segments).cpu().numpy()


def _boundary_along_tile_edges(verts, labels, following, coords, scores) -> torch.Tensor:
    valid = verts >= 0
    count = valid.sum(dim=1)
    cell_scores = (scores[verts.clamp(min=0)] * valid[..., None]).sum(dim=1) / count[:, None]
    cell_class = cell_scores.argmax(dim=1)  # at the cell's vertex mean, strictly inside it
    on_tile_edge = valid & (labels < 0)
    rows = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(verts)[on_tile_edge]
    p, q = coords[verts[on_tile_edge]], coords[following[on_tile_edge]]
    # the same edge seen from both sides has bit-identical end points: order them to match
    swap = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    lo, hi = torch.where(swap[:, None], q, p), torch.where(swap[:, None], p, q)
    _, group, sizes = torch.unique(torch.cat([lo, hi], dim=1), dim=0, return_inverse=True, return_counts=True)
    shared = sizes[group] == 2
    order = torch.argsort(group[shared], stable=True)
    first, second = rows[shared][order][0::2], rows[shared][order][1::2]
    differ = cell_class[first] != cell_class[second]
    ends = torch.stack([lo[shared][order][0::2], hi[shared][order][0::2]], dim=1)
    return ends[differ]


def _verify(net, origin, directions, part, codes, samples: int, seed: int) -> dict:
    """Sample interior points of every tile and check that their activation code is the tile's."""
    generator = torch.Generator().manual_seed(seed)
    verts = part.verts
    valid = (verts >= 0).to(part.coords.dtype)
    corners = part.coords[verts.clamp(min=0)]
    mismatched = torch.zeros(verts.shape[0], dtype=torch.bool, device=verts.device)
    for _ in range(samples):
        # positive weights on every corner give a point strictly inside a convex polygon
        w = (
            torch.rand(verts.shape, generator=generator, dtype=corners.dtype).to(verts.device) + 0.05
        ) * valid
        points = (corners * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True)
        for rows in torch.arange(len(points), device=verts.device).split(4096):
            got = net.codes(plane_inputs(net, origin, directions, points[rows]))
            mismatched[rows] |= (got != codes[rows]).any(dim=1)
    return {
        "points": int(samples * verts.shape[0]),
        "tiles_checked": int(verts.shape[0]),
        "tiles_mismatched": int(mismatched.sum()),
        "passed": bool(not mismatched.any()),
    }
