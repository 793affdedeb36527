"""`count-regions`: exact numbers of linear regions on segments and planes, and estimates by sampling.

Three methods, one result type:

- exact-1d: the breakpoints of the network along segments (engine.segments); a segment crosses each
  region at most once (regions are convex), so its pieces are the regions it meets.
- exact-2d: the tiles of a planar slice (engine.planar), counted group by group without keeping them.
- sampled: distinct activation codes among random points: a lower bound on the regions of the
  sampled domain, with the Chao1 species-richness estimate of how many there are.

Every method also counts for each prefix network, made of PL nodes 1..k only (`per_layer`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from splinetool.analyses.plane import Plane
from splinetool.data.loading import spread
from splinetool.engine.planar import count_tiles
from splinetool.engine.segments import partition_segments
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import bit_range, bytes_as_words, unique_rows

METHODS = ("exact-1d", "exact-2d", "sampled")
SAMPLING = ("bbox", "box", "ball")
DEFAULT_RELATIVE_RADIUS = 0.1  # box/ball radius: 0.1 × the RMS distance of the data points to their mean
CODES_CHUNK = 8192


@dataclass
class CountResult:
    method: str  # one of METHODS
    regions: int  # exact: pieces or tiles, summed over the segments or planes; sampled: codes seen
    per_layer: list[int]  # the same count for the prefix networks made of PL nodes 1..k
    node_names: list[str]
    node_kinds: list[str]
    node_code_bits: list[int]
    dtype: str
    seconds: float = 0.0
    # exact-1d: segment s runs from starts[s] to ends[s] (flattened inputs)
    distinct_regions: int | None = None  # regions the segments cross, each counted once
    distinct_per_layer: list[int] | None = None
    starts: np.ndarray | None = None  # [S, D]
    ends: np.ndarray | None = None  # [S, D]
    breakpoints: np.ndarray | None = None  # [P] positions t in [0, 1], both ends included
    offsets: np.ndarray | None = None  # [S + 1]: segment s owns breakpoints[offsets[s]:offsets[s+1]]
    breakpoint_nodes: np.ndarray | None = None  # [P] PL node whose boundary it is (-1: a segment end)
    outputs: np.ndarray | None = None  # [P, outputs] network output at each breakpoint
    pieces_per_node: np.ndarray | None = None  # [S, nodes] pieces for the prefix networks
    piece_codes: np.ndarray | None = None  # [pieces, bytes] bit-packed activation code of each piece
    # exact-2d: plane p is origins[p] + t @ directions[p], t in the polygon domains[p]
    origins: np.ndarray | None = None  # [planes, D]
    directions: np.ndarray | None = None  # [planes, 2, D]
    domains: np.ndarray | None = None  # [planes, corners, 2]
    tiles_per_node: np.ndarray | None = None  # [planes, nodes] tiles for the prefix networks
    # sampled
    samples: int | None = None
    estimate: float | None = None  # Chao1
    singletons: int | None = None  # codes seen exactly once
    doubletons: int | None = None  # codes seen exactly twice
    sampling: str | None = None  # where the points were drawn

    @property
    def pieces(self) -> np.ndarray | None:
        """[S] linear pieces of each segment (exact-1d)."""
        return None if self.offsets is None else np.diff(self.offsets) - 1

    @property
    def tiles(self) -> np.ndarray | None:
        """[planes] tiles of each plane (exact-2d)."""
        if self.tiles_per_node is None:
            return None
        return self.tiles_per_node[:, -1] if self.tiles_per_node.shape[1] else np.ones(len(self.origins), int)

    @property
    def estimate_caveat(self) -> str | None:
        """Why the Chao1 estimate says little, when it does (sampled)."""
        if self.method != "sampled" or self.doubletons:
            return None
        if self.singletons:
            return "no code was seen exactly twice: the estimate only says that most regions went unseen"
        return None

    def segment_breakpoints(self, s: int) -> np.ndarray:
        return self.breakpoints[self.offsets[s] : self.offsets[s + 1]]

    def summary(self) -> dict:
        out = {
            "method": self.method,
            "regions": self.regions,
            "per_layer": list(self.per_layer),
            "nodes": list(self.node_names),
        }
        if self.method == "exact-1d":
            out |= {
                "segments": len(self.pieces),
                "distinct_regions": self.distinct_regions,
                "distinct_per_layer": list(self.distinct_per_layer),
            }
            if len(self.pieces) > 1:
                out["regions_per_segment"] = _spread(self.pieces)
        if self.method == "exact-2d":
            out["planes"] = len(self.origins)
            if len(self.origins) > 1:
                out["regions_per_plane"] = _spread(self.tiles)
        if self.method == "sampled":
            out |= {
                "lower_bound": self.regions,
                "estimate": self.estimate,
                "estimator": "chao1",
                "samples": self.samples,
                "singletons": self.singletons,
                "doubletons": self.doubletons,
                "sampling": self.sampling,
            }
            if self.estimate_caveat:
                out["estimate_caveat"] = self.estimate_caveat
        out["seconds"] = self.seconds
        return out


def _spread(values: np.ndarray) -> dict:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": int(values.min()),
        "max": int(values.max()),
    }


def _nodes(net: PLNet) -> dict:
    return {
        "node_names": [n.name for n in net.pl_nodes],
        "node_kinds": [n.kind for n in net.pl_nodes],
        "node_code_bits": [n.code_bits for n in net.pl_nodes],
        "dtype": str(net.dtype).removeprefix("torch."),
    }


@torch.no_grad()
def count_segments(
    net: PLNet,
    starts: torch.Tensor,
    ends: torch.Tensor,
    max_points: int | None = None,
    progress=None,
) -> CountResult:
    """Exact pieces along each segment starts[s] -> ends[s], and the distinct regions they cross."""
    clock = time.perf_counter()
    starts, ends = (torch.as_tensor(x).to(net.device, net.dtype) for x in (starts, ends))
    starts = starts.reshape(len(starts), math.prod(starts.shape[1:]))
    ends = ends.reshape(len(ends), math.prod(ends.shape[1:]))
    if starts.shape != ends.shape or starts.shape[1] != net.input_dim:
        raise UsageError(
            f"segments of {starts.shape[1]} values per end do not fit the model's {net.input_dim}-D inputs"
        )
    if len(starts) == 0:  # an empty share of a segment list
        return _no_segments(net, starts, clock)
    part = partition_segments(net, starts, ends, max_points, progress)
    segment = part.segment_of_point().to(net.device)
    inner = torch.ones_like(segment, dtype=torch.bool)
    inner[:-1] = segment[1:] != segment[:-1]
    first = torch.nonzero(~inner).flatten()  # piece i runs from point i to point i + 1
    middle = (part.t[first] + part.t[first + 1]) / 2
    x = starts[segment[first]] + middle[:, None] * (ends - starts)[segment[first]]
    codes = region_codes(net, x)
    pieces_per_node = part.pieces_per_node.numpy()
    if len(starts) == 1:
        # a segment meets each (convex) region at most once: its pieces are distinct regions
        distinct = pieces_per_node[0].tolist()
    else:
        distinct, _ = prefix_counts(codes, [n.code_bits for n in net.pl_nodes])
    return CountResult(
        method="exact-1d",
        regions=int(part.pieces.sum()),
        per_layer=pieces_per_node.sum(axis=0).tolist(),
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        distinct_regions=distinct[-1] if distinct else 1,
        distinct_per_layer=distinct,
        starts=starts.cpu().numpy(),
        ends=ends.cpu().numpy(),
        breakpoints=part.t.cpu().numpy(),
        offsets=part.offsets.numpy(),
        breakpoint_nodes=part.labels.cpu().numpy().astype(np.int32),
        outputs=part.outputs.cpu().numpy(),
        pieces_per_node=pieces_per_node,
        piece_codes=codes.cpu().numpy(),
    )


@torch.no_grad()
def count_planes(net: PLNet, planes: list[Plane], max_resident: int = 8192, progress=None) -> CountResult:
    """Exact tiles of planar slices, for every prefix network, without keeping the tiles."""
    clock = time.perf_counter()
    counts = []
    # progress(done, total): PL nodes for one plane, planes for several
    by_node = None if progress is None or len(planes) > 1 else lambda done, total, _: progress(done, total)
    for index, plane in enumerate(planes):
        origin = plane.origin.to(net.device, net.dtype)
        directions = plane.directions.to(net.device, net.dtype)
        counts.append(count_tiles(net, origin, directions, plane.domain, max_resident, by_node))
        if progress is not None and len(planes) > 1:
            progress(index + 1, len(planes))
    tiles_per_node = np.array(counts, dtype=np.int64).reshape(len(planes), len(net.pl_nodes))
    dim = net.input_dim
    return CountResult(
        method="exact-2d",
        regions=int(tiles_per_node[:, -1].sum()) if net.pl_nodes else len(planes),
        per_layer=tiles_per_node.sum(axis=0).tolist(),
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        # an empty share of a plane list still has the arrays' shapes
        origins=np.stack([p.origin.cpu().numpy() for p in planes]) if planes else np.zeros((0, dim)),
        directions=np.stack([p.directions.cpu().numpy() for p in planes])
        if planes
        else np.zeros((0, 2, dim)),
        domains=np.stack([p.domain.cpu().numpy() for p in planes]) if planes else np.zeros((0, 4, 2)),
        tiles_per_node=tiles_per_node,
    )


def _no_segments(net: PLNet, starts: torch.Tensor, clock: float) -> CountResult:
    nodes = len(net.pl_nodes)
    code_bytes = -(-sum(n.code_bits for n in net.pl_nodes) // 8)
    return CountResult(
        method="exact-1d",
        regions=0,
        per_layer=[0] * nodes,
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        distinct_regions=0,
        distinct_per_layer=[0] * nodes,
        starts=np.zeros((0, net.input_dim)),
        ends=np.zeros((0, net.input_dim)),
        breakpoints=np.zeros(0),
        offsets=np.zeros(1, dtype=np.int64),
        breakpoint_nodes=np.zeros(0, dtype=np.int32),
        outputs=np.zeros((0, net.output_dim)),
        pieces_per_node=np.zeros((0, nodes), dtype=np.int64),
        piece_codes=np.zeros((0, code_bytes), dtype=np.uint8),
    )


def count_plane(net: PLNet, plane: Plane, max_resident: int = 8192, progress=None) -> CountResult:
    return count_planes(net, [plane], max_resident, progress)


@torch.no_grad()
def count_sampled(net: PLNet, points: torch.Tensor, sampling: str, progress=None) -> CountResult:
    """Distinct activation codes among `points` (a lower bound), and the Chao1 estimate."""
    clock = time.perf_counter()
    per_layer, region = prefix_counts(
        region_codes(net, points, progress), [n.code_bits for n in net.pl_nodes]
    )
    observed = per_layer[-1] if per_layer else 1
    abundance = torch.bincount(torch.bincount(region), minlength=3)
    f1, f2 = int(abundance[1]), int(abundance[2])
    return CountResult(
        method="sampled",
        regions=observed,
        per_layer=per_layer,
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        samples=len(points),
        estimate=chao1(observed, f1, f2),
        singletons=f1,
        doubletons=f2,
        sampling=sampling,
    )


def combine(parts: Sequence[CountResult]) -> CountResult:
    """The counts of consecutive shares of segments or planes, as one result."""
    first = parts[0]
    if first.method == "sampled":
        raise TypeError("a sampled count is one estimate over all its points: it does not split")
    joined = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ARRAYS[first.method]
        if name != "offsets"
    }
    if first.method == "exact-1d":
        sizes = np.concatenate([np.diff(p.offsets) for p in parts])
        joined["offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        distinct, _ = prefix_counts(torch.as_tensor(joined["piece_codes"]), first.node_code_bits)
        joined |= {"distinct_regions": distinct[-1] if distinct else 1, "distinct_per_layer": distinct}
    return replace(
        first,
        regions=sum(p.regions for p in parts),
        per_layer=np.sum([p.per_layer for p in parts], axis=0).astype(int).tolist(),
        seconds=max(p.seconds for p in parts),
        **joined,
    )


# the per-item arrays of each method, joined item after item when shares are combined
ARRAYS = {
    "exact-1d": (
        "starts",
        "ends",
        "breakpoints",
        "offsets",
        "breakpoint_nodes",
        "outputs",
        "pieces_per_node",
        "piece_codes",
    ),
    "exact-2d": ("origins", "directions", "domains", "tiles_per_node"),
}


def chao1(observed: int, singletons: int, doubletons: int) -> float:
    """Bias-corrected Chao1 richness estimate: observed + f1 (f1 - 1) / (2 (f2 + 1))."""
    return observed + singletons * (singletons - 1) / (2 * (doubletons + 1))


def region_codes(net: PLNet, x: torch.Tensor, progress=None) -> torch.Tensor:
    """[N, bytes] bit-packed activation codes (PLNet.codes), in chunks, reporting progress."""
    x = x.to(net.device, net.dtype)
    packed = []
    for done, chunk in enumerate(x.split(CODES_CHUNK)):
        packed.append(net.codes(chunk.reshape(len(chunk), *net.input_shape)))
        if progress is not None:
            progress(min((done + 1) * CODES_CHUNK, len(x)), len(x))
    return torch.cat(packed) if packed else torch.zeros((0, 0), dtype=torch.uint8, device=x.device)


def prefix_counts(codes: torch.Tensor, node_code_bits: list[int]) -> tuple[list[int], torch.Tensor]:
    """Distinct regions among coded points for each prefix network, and each point's region
    (numbered from 0) under the whole network; `codes` are PLNet.codes rows."""
    region = torch.zeros(len(codes), dtype=torch.long, device=codes.device)
    per_layer = []
    start = 0
    for width in node_code_bits:
        if width:
            # a prefix region is a pair (region of the shorter prefix, this node's code)
            words = bytes_as_words(bit_range(codes, start, start + width))
            region, count = unique_rows(torch.cat([region[:, None], words], dim=1))
        else:
            count = int(region.max()) + 1 if len(region) else 0
        per_layer.append(count)
        start += width
    return per_layer, region


def sample_points(
    kind: str,
    count: int,
    seed: int,
    data: np.ndarray | None = None,
    radius: float | None = None,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[torch.Tensor, str]:
    """`count` random inputs and a sentence saying how they were drawn (float64, flattened).

    bbox: uniform in the axis-aligned box `box` (default: the data's bounding box); box / ball:
    a data point chosen uniformly, plus a uniform offset in the cube / ball of half-width `radius`.
    """
    if count < 1:
        raise UsageError(f"--sample {count}: expected a positive number of points")
    if kind not in SAMPLING:
        raise UsageError(f"--around {kind!r}: expected one of {', '.join(SAMPLING)}")
    dim = len(box[0]) if box is not None else (data.shape[1] if data is not None else 1)
    # the points, their uniform draws and the codes read from them
    check_memory(4 * count * dim * 8, f"--sample {count:,} points of {dim} inputs", "sample fewer points")
    rng = np.random.default_rng(seed % 2**64)
    if kind == "bbox":
        if box is None:
            if data is None:
                raise UsageError("--sample needs --data (to sample in its bounding box) or --bounds")
            box = (data.min(axis=0), data.max(axis=0))
        lo, hi = box
        where = "uniform in the box " + " × ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(lo[:3], hi[:3]))
        where += " × …" if len(lo) > 3 else ""
        return torch.as_tensor(rng.uniform(lo, hi, size=(count, len(lo)))), where
    if data is None:
        raise UsageError(f"--around {kind} samples around data points: give --data")
    if radius is None or not (math.isfinite(radius) and radius > 0):
        raise UsageError(f"--radius {radius}: expected a positive number")
    centres = data[rng.integers(0, len(data), size=count)]
    dim = data.shape[1]
    if kind == "box":
        offsets = rng.uniform(-radius, radius, size=(count, dim))
        where = f"uniform in cubes of half-width {radius:.6g} around {len(data)} data points"
    else:
        gaussian = rng.standard_normal((count, dim))
        direction = gaussian / np.linalg.norm(gaussian, axis=1, keepdims=True)
        offsets = direction * radius * rng.uniform(size=(count, 1)) ** (1 / dim)
        where = f"uniform in balls of radius {radius:.6g} around {len(data)} data points"
    return torch.as_tensor(centres + offsets), where


def data_radius(data: np.ndarray, relative: float = DEFAULT_RELATIVE_RADIUS) -> float:
    """`relative` × the RMS distance of the data points to their mean."""
    scale = spread(data)
    if scale == 0:
        raise UsageError("the data points are all the same, so they give no scale: set --radius")
    return relative * scale
