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
from dataclasses import dataclass

import numpy as np
import torch

from splinetool.analyses.plane import Plane
from splinetool.engine.planar import count_tiles
from splinetool.engine.segments import partition_segments
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import pack_bits, pack_words, unique_rows

METHODS = ("exact-1d", "exact-2d", "sampled")
SAMPLING = ("bbox", "box", "ball")
DEFAULT_RELATIVE_RADIUS = 0.1  # box/ball radius: 0.1 × the RMS distance of the data points to their mean
CODES_CHUNK = 8192


@dataclass
class CountResult:
    method: str  # one of METHODS
    regions: int  # exact-1d: distinct regions the segments cross; exact-2d: tiles; sampled: codes seen
    per_layer: list[int]  # the same count for the prefix networks made of PL nodes 1..k
    node_names: list[str]
    node_kinds: list[str]
    node_code_bits: list[int]
    dtype: str
    seconds: float = 0.0
    # exact-1d: segment s runs from starts[s] to ends[s] (flattened inputs)
    starts: np.ndarray | None = None  # [S, D]
    ends: np.ndarray | None = None  # [S, D]
    breakpoints: np.ndarray | None = None  # [P] positions t in [0, 1], both ends included
    offsets: np.ndarray | None = None  # [S + 1]: segment s owns breakpoints[offsets[s]:offsets[s+1]]
    breakpoint_nodes: np.ndarray | None = None  # [P] PL node whose boundary it is (-1: a segment end)
    outputs: np.ndarray | None = None  # [P, outputs] network output at each breakpoint
    pieces_per_node: np.ndarray | None = None  # [S, nodes] pieces for the prefix networks
    piece_codes: np.ndarray | None = None  # [pieces, bytes] bit-packed activation code of each piece
    # exact-2d
    origin: np.ndarray | None = None  # [D]
    directions: np.ndarray | None = None  # [2, D]
    domain: np.ndarray | None = None  # [corners, 2] in plane coordinates
    # sampled
    samples: int | None = None
    estimate: float | None = None  # Chao1
    singletons: int | None = None  # codes seen exactly once
    doubletons: int | None = None  # codes seen exactly twice
    sampling: str | None = None  # where the points were drawn

    @property
    def pieces(self) -> np.ndarray:
        """[S] linear pieces of each segment (exact-1d)."""
        return np.diff(self.offsets) - 1

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
            pieces = self.pieces
            out["segments"] = len(pieces)
            out["pieces"] = int(pieces.sum())
            if len(pieces) > 1:
                out["regions_per_segment"] = {
                    "mean": float(pieces.mean()),
                    "median": float(np.median(pieces)),
                    "min": int(pieces.min()),
                    "max": int(pieces.max()),
                }
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
        out["seconds"] = self.seconds
        return out


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
    starts = torch.as_tensor(starts).to(net.device, net.dtype).reshape(len(starts), -1)
    ends = torch.as_tensor(ends).to(net.device, net.dtype).reshape(len(ends), -1)
    if starts.shape != ends.shape or starts.shape[1] != net.input_dim:
        raise UsageError(
            f"segments of {starts.shape[1]} values per end do not fit the model's {net.input_dim}-D inputs"
        )
    part = partition_segments(net, starts, ends, max_points, progress)
    segment = part.segment_of_point().to(net.device)
    inner = torch.ones_like(segment, dtype=torch.bool)
    inner[:-1] = segment[1:] != segment[:-1]
    first = torch.nonzero(~inner).flatten()  # piece i runs from point i to point i + 1
    middle = (part.t[first] + part.t[first + 1]) / 2
    x = starts[segment[first]] + middle[:, None] * (ends - starts)[segment[first]]
    per_layer, _, codes = prefix_regions(net, x)
    return CountResult(
        method="exact-1d",
        regions=per_layer[-1] if per_layer else 1,
        per_layer=per_layer,
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        starts=starts.cpu().numpy(),
        ends=ends.cpu().numpy(),
        breakpoints=part.t.cpu().numpy(),
        offsets=part.offsets.numpy(),
        breakpoint_nodes=part.labels.cpu().numpy().astype(np.int32),
        outputs=part.outputs.cpu().numpy(),
        pieces_per_node=part.pieces_per_node.numpy(),
        piece_codes=codes.cpu().numpy(),
    )


@torch.no_grad()
def count_plane(net: PLNet, plane: Plane, max_resident: int = 200_000, progress=None) -> CountResult:
    """Exact tiles of a planar slice, for every prefix network, without keeping the tiles."""
    clock = time.perf_counter()
    origin = plane.origin.to(net.device, net.dtype)
    directions = plane.directions.to(net.device, net.dtype)
    per_layer = count_tiles(net, origin, directions, plane.domain, max_resident, progress)
    return CountResult(
        method="exact-2d",
        regions=per_layer[-1] if per_layer else 1,
        per_layer=per_layer,
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        origin=plane.origin.cpu().numpy(),
        directions=plane.directions.cpu().numpy(),
        domain=plane.domain.cpu().numpy(),
    )


@torch.no_grad()
def count_sampled(net: PLNet, points: torch.Tensor, sampling: str, progress=None) -> CountResult:
    """Distinct activation codes among `points` (a lower bound), and the Chao1 estimate."""
    clock = time.perf_counter()
    per_layer, region, _ = prefix_regions(net, points, progress)
    observed = per_layer[-1] if per_layer else 1
    abundance = torch.bincount(torch.bincount(region), minlength=3)
    f1, f2 = int(abundance[1]), int(abundance[2])
    return CountResult(
        method="sampled",
        regions=per_layer[-1] if per_layer else 1,
        per_layer=per_layer,
        **_nodes(net),
        seconds=time.perf_counter() - clock,
        samples=len(points),
        estimate=chao1(observed, f1, f2),
        singletons=f1,
        doubletons=f2,
        sampling=sampling,
    )


def chao1(observed: int, singletons: int, doubletons: int) -> float:
    """Bias-corrected Chao1 richness estimate: observed + f1 (f1 - 1) / (2 (f2 + 1))."""
    return observed + singletons * (singletons - 1) / (2 * (doubletons + 1))


def prefix_regions(
    net: PLNet, x: torch.Tensor, progress=None
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Distinct regions among the points for each prefix network; each point's region (numbered from 0
    in the order of their codes) and bit-packed code under the whole network."""
    node_words: list[list[torch.Tensor]] = [[] for _ in net.pl_nodes]
    packed = []
    x = x.to(net.device, net.dtype)
    for done, chunk in enumerate(x.split(CODES_CHUNK)):
        pre = net.preactivations(chunk.reshape(len(chunk), *net.input_shape))
        bits = [node.pl.code_bits(p) for node, p in zip(net.pl_nodes, pre)]
        for k, node_bits in enumerate(bits):
            node_words[k].append(pack_words(node_bits))
        packed.append(
            pack_bits(torch.cat(bits, dim=1) if bits else chunk.new_zeros((len(chunk), 0), dtype=bool))
        )
        if progress is not None:
            progress(min((done + 1) * CODES_CHUNK, len(x)), len(x))
    region = torch.zeros(len(x), dtype=torch.long, device=x.device)
    per_layer = []
    for chunks in node_words:
        # a prefix region is a pair (region of the shorter prefix, this node's code)
        region, count = unique_rows(torch.cat([region[:, None], torch.cat(chunks)], dim=1))
        per_layer.append(count)
    codes = torch.cat(packed) if packed else torch.zeros((0, 0), dtype=torch.uint8, device=x.device)
    return per_layer, region, codes


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
    scale = float(np.sqrt(((data - data.mean(axis=0)) ** 2).sum(axis=1).mean()))
    if scale == 0:
        raise UsageError("the data points are all the same, so they give no scale: set --radius")
    return relative * scale
