"""`count-regions`: exact numbers of linear regions on segments and planes, and estimates by sampling.

One entry, `run(net, where, options)`, and one result type per method, by where it counts:

- `Segments` -> `SegmentCount` (exact-1d): the breakpoints of the network along segments
  (engine.segments); a segment crosses each region at most once (regions are convex), so its pieces
  are the regions it meets.
- `Planes` -> `PlaneCount` (exact-2d): the tiles of planar slices (engine.planar), counted group by
  group without keeping them. On several planes, also the distinct regions they meet together: a
  region is convex, so it meets a plane in one tile at most, but it may meet several planes; each
  tile's activation code is read at the mean of its corners (inside the convex tile) and kept as a
  16-byte key (`region_keys`), so that shares of a plane list merge by the union of their keys.
- `Samples` -> `SampledCount` (sampled): distinct activation codes among random points: a lower bound
  on the regions of the sampled domain, with the Chao1 species-richness estimate of how many there are.

Every method also counts for each prefix network, made of PL nodes 1..k only (`per_layer`).
`inputs_for` turns what a user asks (`CountRequest`: a segment file, pairs of data rows, bounds, a
number of samples) into one of these inputs.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from splinetool.analyses.plane import PLANE_LISTS, Plane, as_inputs, check_reach, input_rows, input_shapes
from splinetool.data.loading import Dataset, read_array, spread
from splinetool.engine.planar import Partition, Sweep
from splinetool.engine.segments import partition_segments
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import bit_range, bytes_as_words, unique_rows
from splinetool.parsing import numbers

SAMPLING = ("bbox", "box", "ball")
DEFAULT_RELATIVE_RADIUS = 0.1  # box/ball radius: 0.1 × the RMS distance of the data points to their mean
CODES_CHUNK = 8192
KEY_BYTES = 16  # a region key: its packed code itself up to 128 bits, a 128-bit digest of longer codes
MAX_PAIRS = 10_000_000
RANDOM_PAIRS = re.compile(r"random:(\d+)")


# --- what to count ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """Segments starts[s] -> ends[s] ([S, ...] each, flattened to the model's inputs when counted)."""

    starts: torch.Tensor
    ends: torch.Tensor

    def __len__(self) -> int:
        return len(self.starts)

    def part(self, items: range) -> Segments:
        return Segments(self.starts[items.start : items.stop], self.ends[items.start : items.stop])


@dataclass(frozen=True)
class Planes:
    planes: tuple[Plane, ...]
    # count the distinct regions met, keeping their keys (default: with several planes); a share
    # of a list of several keeps them even when it holds one plane, so that the shares merge
    distinct: bool | None = None

    def __post_init__(self) -> None:
        if self.distinct is None:
            object.__setattr__(self, "distinct", len(self.planes) > 1)

    def __len__(self) -> int:
        return len(self.planes)

    def part(self, items: range) -> Planes:
        return replace(self, planes=self.planes[items.start : items.stop])


@dataclass(frozen=True)
class Samples:
    points: torch.Tensor  # [N, D]
    sampling: str  # how they were drawn, in words

    def __len__(self) -> int:
        return 1  # one estimate over all the points: it is not shared out

    def part(self, items: range) -> Samples:
        return self


@dataclass(frozen=True)
class CountOptions:
    max_points: int | None = None  # exact-1d: breakpoints resident at once (None: sized to memory)
    max_resident: int = 8192  # exact-2d: tiles resident at once


@dataclass(frozen=True)
class CountRequest:
    """Where a user asks to count, before the model and data are known (see `inputs_for`)."""

    segment: Path | None = None  # a file of two inputs, or of S segments [S, 2, ...]
    pairs: str | None = None  # rows of the data: 'i,j' or 'random:N'
    bounds: str | None = None  # 1-D models: 'lo,hi' (a segment); with `sample`: the box to sample in
    sample: int | None = None  # estimate from this many random points
    around: str = "bbox"  # where `sample` draws (SAMPLING)
    radius: float | None = None  # half-width of the `around` box or ball
    seed: int = 0
    planes_given: tuple[str, ...] = ()  # the parameters given that place planes (they count planes)


def inputs_for(
    input_shape: Sequence[int],
    request: CountRequest,
    dataset: Dataset | None,
    planes: Callable[[], Sequence[Plane]],
) -> Segments | Planes | Samples:
    """What `request` asks to count on a model whose inputs have `input_shape`: samples with `sample`;
    segments with `segment`, `pairs`, or `bounds` on a 1-D model; otherwise the planes `planes()`
    builds."""
    input_dim = math.prod(input_shape)
    given = [f"`{name}`" for name in request.planes_given if name not in PLANE_LISTS]
    if set(request.planes_given) & set(PLANE_LISTS):
        given.append("`anchors_list` or `anchor_index_list`")
    if request.sample is not None:
        given += [f"`{name}`" for name in ("segment", "pairs") if getattr(request, name) is not None]
        _refuse(given, "`sample`")
        samples = _samples(input_dim, request, dataset)
        check_reach(samples.points, _source(request, dataset))
        return samples
    if (
        request.segment is not None
        or request.pairs is not None
        or (request.bounds is not None and input_dim == 1)
    ):
        _refuse(given, "segments")
        segments = _segments(input_shape, request, dataset)
        check_reach(torch.cat([segments.starts, segments.ends]), _source(request, dataset))
        return segments
    return Planes(tuple(planes()))


def _refuse(given: list[str], mode: str) -> None:
    if given:
        raise UsageError(f"{', '.join(given)} cannot be combined with {mode}: choose one way to count")


def _source(request: CountRequest, dataset: Dataset | None) -> str:
    """The parameter or file the segments or samples were made from, for messages."""
    if request.segment is not None:
        return f"`segment` {request.segment}"
    if request.bounds is not None:
        return f"`bounds` {request.bounds}"
    return f"`data` {dataset.source}" if dataset is not None else "the sampled points"


def _segments(input_shape: Sequence[int], request: CountRequest, dataset: Dataset | None) -> Segments:
    segment, pairs = request.segment, request.pairs
    input_dim = math.prod(input_shape)
    if segment is not None and pairs is not None:
        raise UsageError("`segment` and `pairs` both give segments: choose one")
    if segment is not None:
        what = f"`segment` {segment}"
        ends = segment_ends(read_array(segment, "x", what), input_shape, what)
        return Segments(ends[:, 0], ends[:, 1])
    if pairs is not None:
        if dataset is None:
            raise UsageError("`pairs` picks rows of `data`: give `data`")
        x = _flat_data(dataset, input_dim)
        rows = pair_rows(pairs, len(x), request.seed)
        return Segments(torch.as_tensor(x[rows[:, 0]]), torch.as_tensor(x[rows[:, 1]]))
    lo, hi = numbers(request.bounds, 2, "bounds")
    if not lo < hi:
        raise UsageError(f"`bounds` {request.bounds}: expected lo < hi")
    return Segments(torch.tensor([[lo]], dtype=torch.float64), torch.tensor([[hi]], dtype=torch.float64))


def segment_ends(x: np.ndarray, input_shape: Sequence[int], what: str) -> torch.Tensor:
    """The ends [S, 2, D] of one segment (its two ends, as `input_rows` reads inputs) or of a list of
    S segments ([S, 2, D] or [S, 2, *input_shape]); `what` names the option and file, for messages."""
    dim = math.prod(input_shape)
    if x.ndim >= 2 and x.shape[1] == 2 and math.prod(x.shape[2:]) == dim:
        # S segments: a stack of two inputs would have D values per row, not 2 rows of D values
        return input_rows(x.reshape(-1, *x.shape[2:]), input_shape, what, 2 * len(x)).reshape(len(x), 2, dim)
    lists = input_shapes(input_shape, "S", 2)
    return input_rows(x, input_shape, what, 2, f" (one segment), or S segments: shape {lists}")[None]


def _flat_data(dataset: Dataset, input_dim: int) -> np.ndarray:
    return as_inputs(dataset.x, input_dim, f"`data` {dataset.source}").numpy()


def pair_rows(text: str, rows: int, seed: int) -> np.ndarray:
    """[pairs, 2] rows of a data set of `rows` points that the `pairs` parameter names."""
    if rows < 2:
        raise UsageError(f"`pairs` needs at least two data points, `data` has {rows}")
    random = RANDOM_PAIRS.fullmatch(text.strip())
    if random:
        count = int(random.group(1))
        if not 1 <= count <= MAX_PAIRS:
            raise UsageError(f"`pairs` {text}: expected random:N with 1 <= N <= {MAX_PAIRS:,}")
        rng = np.random.default_rng(seed % 2**64)
        first = rng.integers(0, rows, size=count)
        # the second end is any other row, so no segment is a single point
        second = (first + rng.integers(1, rows, size=count)) % rows
        return np.stack([first, second], axis=1)
    try:
        i, j = numbers(text, 2, "pairs", int)
    except UsageError:
        raise UsageError(f"`pairs` {text!r}: expected 'i,j' (two row numbers) or 'random:N'") from None
    if not (0 <= i < rows and 0 <= j < rows):
        raise UsageError(f"`pairs` {text}: rows must lie in 0..{rows - 1}")
    return np.array([[i, j]])


def _samples(input_dim: int, request: CountRequest, dataset: Dataset | None) -> Samples:
    data = None if dataset is None else _flat_data(dataset, input_dim)
    around, radius = request.around, request.radius
    if around == "bbox" and radius is not None:
        raise UsageError("`radius` sets the size of `around` box or ball; `around` bbox takes no radius")
    box = None
    if request.bounds is not None:
        if around != "bbox" or input_dim > 2:
            raise UsageError("`bounds` sets the sampling box of 1-D or 2-D models (with `around` bbox)")
        values = np.array(numbers(request.bounds, 2 * input_dim, "bounds"))
        lo, hi = values[0::2], values[1::2]
        if not (lo < hi).all():
            raise UsageError(f"`bounds` {request.bounds}: expected each min < max")
        box = (lo, hi)
    if around != "bbox" and radius is None and data is not None:
        radius = data_radius(data)
    points, sampling = sample_points(around, request.sample, request.seed, data=data, radius=radius, box=box)
    return Samples(points, sampling)


# --- results ---------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class RegionCount:
    """What every method gives: regions of the whole network and of each prefix network."""

    method: ClassVar[str]
    PER_ITEM: ClassVar[tuple[str, ...]] = ()  # arrays of one row per shared-out item, joined by `combine`

    regions: int  # exact: pieces or tiles, summed over the segments or planes; sampled: codes seen
    per_layer: list[int]  # the same count for the prefix networks made of PL nodes 1..k
    node_names: list[str]
    node_kinds: list[str]
    node_code_bits: list[int]
    dtype: str
    seconds: float = 0.0

    def summary(self) -> dict:
        head = {"method": self.method, "regions": self.regions, "per_layer": list(self.per_layer)}
        return head | {"nodes": list(self.node_names)} | self._summary() | {"seconds": self.seconds}

    def _summary(self) -> dict:
        """The method's own entries of the summary."""
        return {}


@dataclass(kw_only=True)
class SegmentCount(RegionCount):
    """Exact pieces along segments; segment s runs from starts[s] to ends[s] (flattened inputs)."""

    method: ClassVar[str] = "exact-1d"
    PER_ITEM: ClassVar[tuple[str, ...]] = (
        "starts",
        "ends",
        "breakpoints",
        "offsets",
        "breakpoint_nodes",
        "outputs",
        "pieces_per_node",
        "piece_codes",
    )

    distinct_regions: int  # regions the segments cross, each counted once
    distinct_per_layer: list[int]
    starts: np.ndarray  # [S, D]
    ends: np.ndarray  # [S, D]
    breakpoints: np.ndarray  # [P] positions t in [0, 1], both ends included
    offsets: np.ndarray  # [S + 1]: segment s owns breakpoints[offsets[s]:offsets[s+1]]
    breakpoint_nodes: np.ndarray  # [P] PL node whose boundary it is (-1: a segment end)
    outputs: np.ndarray  # [P, outputs] network output at each breakpoint
    pieces_per_node: np.ndarray  # [S, nodes] pieces for the prefix networks
    piece_codes: np.ndarray  # [pieces, bytes] bit-packed activation code of each piece

    @property
    def pieces(self) -> np.ndarray:
        """[S] linear pieces of each segment."""
        return np.diff(self.offsets) - 1

    def segment_breakpoints(self, s: int) -> np.ndarray:
        return self.breakpoints[self.offsets[s] : self.offsets[s + 1]]

    def _summary(self) -> dict:
        return {
            "segments": len(self.pieces),
            "distinct_regions": self.distinct_regions,
            "distinct_per_layer": list(self.distinct_per_layer),
        } | _spread("regions_per_segment", self.pieces)


@dataclass(kw_only=True)
class PlaneCount(RegionCount):
    """Exact tiles of planes; plane p is origins[p] + t @ directions[p], t in the polygon domains[p]."""

    method: ClassVar[str] = "exact-2d"
    PER_ITEM: ClassVar[tuple[str, ...]] = ("origins", "directions", "domains", "tiles_per_node")

    origins: np.ndarray  # [planes, D]
    directions: np.ndarray  # [planes, 2, D]
    domains: np.ndarray  # [planes, corners, 2]
    tiles_per_node: np.ndarray  # [planes, nodes] tiles for the prefix networks
    # with several planes: the regions they meet together, each counted once, and their keys
    # ([regions, KEY_BYTES] uint8, sorted, see `region_keys`); None for one plane
    distinct_regions: int | None = None
    region_keys: np.ndarray | None = None

    @property
    def tiles(self) -> np.ndarray:
        """[planes] tiles of each plane."""
        if self.tiles_per_node.shape[1]:
            return self.tiles_per_node[:, -1]
        return np.ones(len(self.origins), int)

    def _summary(self) -> dict:
        distinct = {} if self.distinct_regions is None else {"distinct_regions": self.distinct_regions}
        return {"planes": len(self.origins)} | distinct | _spread("regions_per_plane", self.tiles)


@dataclass(kw_only=True)
class SampledCount(RegionCount):
    """Distinct codes among random points (`regions`, a lower bound) and the Chao1 estimate."""

    method: ClassVar[str] = "sampled"

    samples: int
    estimate: float  # Chao1
    singletons: int  # codes seen exactly once
    doubletons: int  # codes seen exactly twice
    sampling: str  # where the points were drawn

    @property
    def estimate_caveat(self) -> str | None:
        """Why the Chao1 estimate says little, when it does."""
        if self.doubletons or not self.singletons:
            return None
        return "no code was seen exactly twice: the estimate only says that most regions went unseen"

    def _summary(self) -> dict:
        out = {
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
        return out


def _spread(name: str, values: np.ndarray) -> dict:
    """{name: the spread of `values`} over several items; nothing for one."""
    if len(values) < 2:
        return {}
    centre = {"mean": float(values.mean()), "median": float(np.median(values))}
    return {name: centre | {"min": int(values.min()), "max": int(values.max())}}


def _nodes(net: PLNet, clock: float) -> dict:
    return {
        "node_names": [n.name for n in net.pl_nodes],
        "node_kinds": [n.kind for n in net.pl_nodes],
        "node_code_bits": [n.code_bits for n in net.pl_nodes],
        "dtype": str(net.dtype).removeprefix("torch."),
        "seconds": time.perf_counter() - clock,
    }


# --- counting --------------------------------------------------------------------------------------


def run(
    net: PLNet,
    where: Segments | Planes | Samples,
    options: CountOptions = CountOptions(),
    progress: Callable[..., None] | None = None,
) -> SegmentCount | PlaneCount | SampledCount:
    """Count the regions of `net` where asked: exactly along segments or on planes, or by sampling.

    progress(done, total): breakpoints for segments, PL nodes for one plane and planes for several,
    points for samples.
    """
    if isinstance(where, Segments):
        return _count_segments(net, where.starts, where.ends, options.max_points, progress)
    if isinstance(where, Planes):
        return _count_planes(net, where.planes, options.max_resident, where.distinct, progress)
    return _count_sampled(net, where.points, where.sampling, progress)


@dataclass(frozen=True)
class CountJob:
    """One network to count where asked: the work a command shares out, a segment or a plane an
    item (samples are one item: one estimate over all the points)."""

    net: PLNet
    where: Segments | Planes | Samples
    options: CountOptions = CountOptions()
    checkpoint_sha256: str = ""

    @property
    def total(self) -> int:
        return len(self.where)

    def compute(self, items: range | None = None, progress=None) -> SegmentCount | PlaneCount | SampledCount:
        """The count over the segments or planes numbered `items` (default: all)."""
        where = self.where if items is None else self.where.part(items)
        return run(self.net, where, self.options, progress)


@torch.inference_mode()  # as slice.run: no autograd bookkeeping on the engine's small operations
def _count_segments(net: PLNet, starts, ends, max_points: int | None, progress) -> SegmentCount:
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
        return _no_segments(net, clock)
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
    return SegmentCount(
        regions=int(part.pieces.sum()),
        per_layer=pieces_per_node.sum(axis=0).tolist(),
        **_nodes(net, clock),
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


def _no_segments(net: PLNet, clock: float) -> SegmentCount:
    nodes = len(net.pl_nodes)
    code_bytes = -(-sum(n.code_bits for n in net.pl_nodes) // 8)
    return SegmentCount(
        regions=0,
        per_layer=[0] * nodes,
        **_nodes(net, clock),
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


@torch.inference_mode()
def _count_planes(
    net: PLNet, planes: Sequence[Plane], max_resident: int, distinct: bool, progress
) -> PlaneCount:
    """Exact tiles of planar slices, for every prefix network, without keeping the tiles; with
    `distinct`, the keys of the regions they meet too."""
    clock = time.perf_counter()
    counts, keys = [], []
    # progress(done, total): PL nodes for one plane, planes for several
    by_node = None if progress is None or len(planes) > 1 else lambda done, total, _: progress(done, total)
    for index, plane in enumerate(planes):
        origin = plane.origin.to(net.device, net.dtype)
        directions = plane.directions.to(net.device, net.dtype)
        sweep = Sweep(
            net, origin, directions, plane.domain, max_resident=max_resident, codes=False, progress=by_node
        )
        for group in sweep:
            if distinct:
                keys.append(region_keys(tile_codes(net, origin, directions, group)))
        counts.append(sweep.tiles_per_node)
        if progress is not None and len(planes) > 1:
            progress(index + 1, len(planes))
    tiles_per_node = np.array(counts, dtype=np.int64).reshape(len(planes), len(net.pl_nodes))
    dim = net.input_dim

    def stacked(name: str, empty: tuple[int, ...]) -> np.ndarray:
        # an empty share of a plane list still has the arrays' shapes
        return np.stack([getattr(p, name).cpu().numpy() for p in planes]) if planes else np.zeros(empty)

    return PlaneCount(
        regions=int(tiles_per_node[:, -1].sum()) if net.pl_nodes else len(planes),
        per_layer=tiles_per_node.sum(axis=0).tolist(),
        **_nodes(net, clock),
        origins=stacked("origin", (0, dim)),
        directions=stacked("directions", (0, 2, dim)),
        domains=stacked("domain", (0, 4, 2)),
        tiles_per_node=tiles_per_node,
        **(_distinct(keys) if distinct else {}),
    )


def tile_codes(net: PLNet, origin: torch.Tensor, directions: torch.Tensor, tiles: Partition) -> torch.Tensor:
    """[T, bytes] packed activation code of each tile, read by a forward pass at the mean of its
    corners, a point inside the convex tile. Measured cheaper than the engine's own codes
    (`Sweep(codes=True)` reads them node by node while cutting) and equal to them."""
    valid = tiles.verts >= 0
    corners = tiles.coords[tiles.verts.clamp(min=0)] * valid[..., None]
    inside = corners.sum(dim=1) / valid.sum(dim=1, keepdim=True)
    return region_codes(net, origin[None, :] + inside @ directions)


def region_keys(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    """[regions, KEY_BYTES] uint8, sorted: one key per distinct packed code among `codes` [N, bytes].

    A code of up to 128 bits is its own key (zero-padded): exact. A longer one is keyed by its 128-bit
    BLAKE2b digest: two regions share a key with probability below n² / 2^129 among n regions.
    """
    codes = np.ascontiguousarray(torch.as_tensor(codes).cpu().numpy(), dtype=np.uint8)
    if codes.shape[1] <= KEY_BYTES:
        keys = np.zeros((len(codes), KEY_BYTES), dtype=np.uint8)
        keys[:, : codes.shape[1]] = codes
    else:
        digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=KEY_BYTES).digest() for row in codes)
        keys = np.frombuffer(digests, dtype=np.uint8).reshape(len(codes), KEY_BYTES)
    return np.unique(keys, axis=0)


def _distinct(keys: Sequence[np.ndarray]) -> dict:
    """The `distinct_regions` and `region_keys` of a PlaneCount: the union of the keys met."""
    union = np.unique(np.concatenate(keys), axis=0) if keys else np.zeros((0, KEY_BYTES), dtype=np.uint8)
    return {"distinct_regions": len(union), "region_keys": union}


@torch.inference_mode()
def _count_sampled(net: PLNet, points: torch.Tensor, sampling: str, progress) -> SampledCount:
    """Distinct activation codes among `points` (a lower bound), and the Chao1 estimate."""
    clock = time.perf_counter()
    per_layer, region = prefix_counts(
        region_codes(net, points, progress), [n.code_bits for n in net.pl_nodes]
    )
    observed = per_layer[-1] if per_layer else 1
    abundance = torch.bincount(torch.bincount(region), minlength=3)
    f1, f2 = int(abundance[1]), int(abundance[2])
    return SampledCount(
        regions=observed,
        per_layer=per_layer,
        **_nodes(net, clock),
        samples=len(points),
        estimate=chao1(observed, f1, f2),
        singletons=f1,
        doubletons=f2,
        sampling=sampling,
    )


def combine(parts: Sequence[SegmentCount] | Sequence[PlaneCount]) -> SegmentCount | PlaneCount:
    """The counts of consecutive shares of segments or planes, as one result."""
    first = parts[0]
    if not first.PER_ITEM:
        raise TypeError(f"a {type(first).__name__} is one estimate over all its points: it does not split")
    joined = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in first.PER_ITEM
        if name != "offsets"
    }
    if isinstance(first, SegmentCount):
        sizes = np.concatenate([np.diff(p.offsets) for p in parts])
        joined["offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        distinct, _ = prefix_counts(torch.as_tensor(joined["piece_codes"]), first.node_code_bits)
        joined |= {"distinct_regions": distinct[-1] if distinct else 1, "distinct_per_layer": distinct}
    elif first.region_keys is not None:
        # a region met by planes of several shares counts once: the union of the keys, not a sum
        joined |= _distinct([p.region_keys for p in parts])
    return replace(
        first,
        regions=sum(p.regions for p in parts),
        per_layer=np.sum([p.per_layer for p in parts], axis=0).astype(int).tolist(),
        seconds=max(p.seconds for p in parts),
        **joined,
    )


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
        raise UsageError(f"`sample` {count}: expected a positive number of points")
    if kind not in SAMPLING:
        raise UsageError(f"`around` {kind!r}: expected one of {', '.join(SAMPLING)}")
    dim = len(box[0]) if box is not None else (data.shape[1] if data is not None else 1)
    # the points, their uniform draws and the codes read from them
    check_memory(4 * count * dim * 8, f"`sample` {count:,} points of {dim} inputs", "sample fewer points")
    rng = np.random.default_rng(seed % 2**64)
    if kind == "bbox":
        if box is None:
            if data is None:
                raise UsageError("`sample` needs `data` (to sample in its bounding box) or `bounds`")
            box = (data.min(axis=0), data.max(axis=0))
        lo, hi = box
        where = "uniform in the box " + " × ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(lo[:3], hi[:3]))
        where += " × …" if len(lo) > 3 else ""
        return torch.as_tensor(rng.uniform(lo, hi, size=(count, len(lo)))), where
    if data is None:
        raise UsageError(f"`around` {kind} samples around data points: give `data`")
    if radius is None or not (math.isfinite(radius) and radius > 0):
        raise UsageError(f"`radius` {radius}: expected a positive number")
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
        raise UsageError("the data points are all the same, so they give no scale: set `radius`")
    return relative * scale
