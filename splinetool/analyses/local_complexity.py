"""`local-complexity`: how many neuron boundaries cross a small neighbourhood of each point.

Local complexity (Humayun, Balestriero & Baraniuk, "Deep networks always grok and here is why", ICML
2024). Around a point x take P orthonormal directions u_1..u_P and a radius r; the neighbourhood is the
cross-polytope whose 2P vertices are x ± r·u_p (the centre is not a vertex). A neuron counts when its
pre-activation is positive at one vertex and negative at another, zero read by the rule every sign
decision uses (splinetool/ir/pl.py): a unit that is zero on the neighbourhood, or whose boundary only
touches a vertex, does not count. LC(x) is the number of counted neurons over the chosen PL nodes.

What one "neuron" is follows the node's breakpoints (`PLNode.pl`): a ReLU-like unit has one, so it is
one neuron; hardtanh/ReLU6/clamp/softshrink have two breakpoints per unit and each counts on its own
(a unit whose both breakpoints cross the neighbourhood counts twice); a max-pool window counts when no
candidate is on top (within the zero tolerance) at every vertex. Convolutional nodes count every
(channel, position).

For a first-layer neuron the pre-activation is affine, so its sign changes over the cross-polytope
exactly when it changes over the vertices; deeper neurons are piecewise linear in x, and the vertex
test is the published method's (it can miss a boundary that enters and leaves between two vertices).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from splinetool import parsing
from splinetool.analyses import Progress
from splinetool.analyses.defaults import DEFAULT_DIRECTIONS, DEFAULT_RELATIVE_RADIUS
from splinetool.analyses.local_exact import exact_counts, spearman
from splinetool.data.loading import load_data, spread
from splinetool.engine.memory import auto_chunk
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.pl import NodeScales, sign_changes, sign_of

# on a CPU, batches of about a thousand vertices run fastest (bench/README.md: 1.5-2x faster
# than batches of 10,000 or more, which spill out of the caches)
CPU_BATCH_VERTICES = 1024
FRAMES = ("shared", "per-point")
OUTPUT_NODE = "output"

# numpy seed sequences keyed by purpose, so the frames and the random points never share a stream
_SHARED_FRAME, _POINT_FRAME, _RANDOM_POINTS, _EXACT_PLANES = 0, 1, 2, 3


@dataclass
class PointSet:
    """Points to measure LC around, flattened to [n, D], with optional class labels."""

    name: str  # train, test, data, random, ...
    x: np.ndarray
    y: np.ndarray | None = None
    source: str = ""  # where the points came from, for error messages

    def __post_init__(self):
        # float64 whatever the file held, so the radius and the vertices do not depend on its dtype
        self.x = np.asarray(self.x, dtype=np.float64)


@dataclass
class LCResult:
    # [checkpoints, points, nodes] int32: how many neurons of each node are crossed around each point
    per_point: np.ndarray
    node_names: list[str]
    node_kinds: list[str]
    node_units: list[int]  # most neurons a node can contribute (hardtanh: 2 per unit; max-pool: windows)
    set_names: list[str]
    set_offsets: np.ndarray  # [sets + 1]: set s is rows set_offsets[s]:set_offsets[s + 1] of per_point
    accuracy: np.ndarray  # [checkpoints, sets]: accuracy at the points themselves; NaN without class labels
    checkpoints: list[str]
    checkpoint_sha256: list[str]
    steps: list[int] | None  # training step of each checkpoint, for trajectories
    radius: float
    radius_rule: str  # how the radius was chosen, in words
    directions: int
    frame: str  # "shared": one frame for every point; "per-point": a fresh frame per point (point_frames)
    frame_vectors: np.ndarray | None  # [P, D] the shared frame (None for per-point frames)
    include_output: bool
    seed: int
    dtype: str
    seconds: float = 0.0
    # exact local counts (`exact_planes`): [checkpoints, points, K] tiles meeting the disc of `radius`
    # around each point on each of its K planes (`exact_planes`); None when not measured
    exact: np.ndarray | None = None
    exact_tiles: int = 0  # tiles the planar engine partitioned for them, over every share
    exact_seconds: float = 0.0  # seconds spent partitioning, summed over the shares

    def lc(self, checkpoint: int = -1, set_name: str | None = None) -> np.ndarray:
        """Total LC per point (summed over nodes) of one checkpoint, for one set or all points."""
        return self._rows(checkpoint, set_name).sum(axis=-1)

    def stats(self, checkpoint: int = -1, set_name: str | None = None) -> dict:
        """Mean, median and 95th percentile of LC, mean per node, and accuracy, for one set."""
        set_name = self.set_names[0] if set_name is None else set_name
        rows = self._rows(checkpoint, set_name)
        total = rows.sum(axis=-1)
        accuracy = float(self.accuracy[checkpoint, self.set_names.index(set_name)])
        return {
            "points": int(len(rows)),
            "lc_mean": float(total.mean()),
            "lc_median": float(np.median(total)),
            "lc_p95": float(np.percentile(total, 95)),
            "per_node_mean": {n: float(v) for n, v in zip(self.node_names, rows.mean(axis=0))},
            "accuracy": None if math.isnan(accuracy) else accuracy,
        } | self._exact_stats(checkpoint, set_name, total)

    def _exact_stats(self, checkpoint: int, set_name: str, proxy: np.ndarray) -> dict:
        """The exact count's mean and its rank correlation with the proxy over the set's points."""
        if self.exact is None:
            return {}
        exact = self._rows(checkpoint, set_name, self.exact).mean(axis=-1)
        rho = spearman(proxy, exact)
        return {
            "exact_mean": float(exact.mean()),
            "exact_spearman": None if math.isnan(rho) else rho,
        }

    def exact_mean(self, checkpoint: int = -1, set_name: str | None = None) -> np.ndarray:
        """Exact local count per point (the mean over its planes) of one checkpoint."""
        if self.exact is None:
            raise UsageError("this result has no exact local counts: measure them with `exact_planes`")
        return self._rows(checkpoint, set_name, self.exact).mean(axis=-1)

    def parameters(self) -> dict:
        return {
            "radius": self.radius,
            "radius_rule": self.radius_rule,
            "directions": self.directions,
            "vertices_per_point": 2 * self.directions,
            "frame": self.frame,
            "include_output": self.include_output,
            "seed": self.seed,
            "dtype": self.dtype,
            "nodes": [
                {"name": n, "kind": k, "neurons": u}
                for n, k, u in zip(self.node_names, self.node_kinds, self.node_units)
            ],
        }

    def checkpoint_summary(self, checkpoint: int) -> dict:
        """The first set's statistics at the top level (a gate's default set), every set under "sets"."""
        entry: dict = {"checkpoint": self.checkpoints[checkpoint]}
        if self.steps is not None:
            entry["step"] = self.steps[checkpoint]
        entry |= self.stats(checkpoint)
        entry["sets"] = {name: self.stats(checkpoint, name) for name in self.set_names}
        return entry

    def summary(self) -> dict:
        """The JSON payload: parameters, then one checkpoint's results or a list of them."""
        payload = self.parameters() | self._exact_parameters()
        if len(self.checkpoints) == 1 and self.steps is None:
            payload |= self.checkpoint_summary(0)
        else:
            payload["checkpoints"] = [self.checkpoint_summary(c) for c in range(len(self.checkpoints))]
        payload["seconds"] = self.seconds
        return payload

    def _exact_parameters(self) -> dict:
        if self.exact is None:
            return {}
        rate = self.exact_tiles / self.exact_seconds if self.exact_seconds > 0 else None
        return {
            "exact_planes": int(self.exact.shape[2]),
            "exact_tiles": self.exact_tiles,
            "exact_seconds": self.exact_seconds,
            "exact_tiles_per_second": rate,
        }

    def _rows(self, checkpoint: int, set_name: str | None, values: np.ndarray | None = None) -> np.ndarray:
        """One checkpoint's rows of `values` (default: `per_point`), for one set or all points."""
        rows = (self.per_point if values is None else values)[checkpoint]
        if set_name is None:
            return rows
        if set_name not in self.set_names:
            raise UsageError(f"no point set {set_name!r}; this result has {', '.join(self.set_names)}")
        s = self.set_names.index(set_name)
        return rows[self.set_offsets[s] : self.set_offsets[s + 1]]


# -- points, radius and frames ---------------------------------------------------------------------


def random_points(sets: Sequence[PointSet], count: int, seed: int = 0) -> PointSet:
    """`count` points uniform in the bounding box of the given sets (the published "random" curve)."""
    if count < 1:
        raise UsageError(f"`random` {count}: expected a positive number of points")
    x = np.concatenate([s.x for s in sets])
    check_memory(
        2 * count * x[0].size * 8,
        f"`random` {count:,} points of {x[0].size} inputs",
        "draw fewer `random` points",
    )
    lo, hi = x.min(axis=0), x.max(axis=0)
    with np.errstate(over="ignore"):
        wide = not np.isfinite(hi - lo).all()
    if wide:  # numpy cannot draw from a range wider than float64 holds
        raise UsageError(
            f"`random` {count}: the box of `data` {_sources(sets)} is wider than float64 can hold; "
            "expected points within ±1e150"
        )
    rng = np.random.default_rng([_seed(seed), _RANDOM_POINTS])
    return PointSet(
        "random", rng.uniform(lo, hi, size=(count, x.shape[1])), None, "uniform in the data's box"
    )


def point_sets(data: str, splits: Sequence[str] = (), random: int = 0, seed: int = 0) -> list[PointSet]:
    """The sets of points to measure around: each named split of the data (or all of it), then
    `random` points uniform in their box. `splits` may hold comma-separated names."""
    names = parsing.names(splits)
    if splits and not names:
        raise UsageError(f"`split` {splits[0]!r}: expected split names such as train or test")
    if len(set(names)) != len(names):
        raise UsageError(f"`split` {', '.join(names)}: a split is named twice")
    if random and "random" in names:
        raise UsageError("`split` random and `random` would both be called 'random': measure one of them")
    loaded = [(name, load_data(data, split=name, seed=seed)) for name in names] or [
        ("data", load_data(data, seed=seed))
    ]
    sets = [PointSet(name, d.x.reshape(len(d.x), -1), d.y, d.source) for name, d in loaded]
    if random:
        sets.append(random_points(sets, random, seed))
    return sets


def data_scale(sets: Sequence[PointSet]) -> float:
    """Root-mean-square distance of the points to their mean."""
    return spread(np.concatenate([s.x for s in sets]))


def choose_radius(
    sets: Sequence[PointSet], radius: float | None, relative_radius: float
) -> tuple[float, str]:
    """The radius and a sentence saying where it came from."""
    if radius is not None:
        if not (math.isfinite(radius) and radius > 0):
            raise UsageError(f"`radius` {radius}: expected a positive number")
        return float(radius), "given with --radius"
    if not (math.isfinite(relative_radius) and relative_radius > 0):
        raise UsageError(f"`relative_radius` {relative_radius}: expected a positive number")
    scale = data_scale(sets)
    if scale == 0:
        raise UsageError("the data points are all the same, so they give no scale: set `radius`")
    if not math.isfinite(scale):  # squared distances overflow once the points spread past ~1e154
        raise UsageError(
            f"`data` {_sources(sets)}: the RMS distance of the points to their mean, which scales "
            "`relative_radius`, overflows float64; expected points within ±1e150, or set `radius`"
        )
    radius = relative_radius * scale
    if not math.isfinite(radius):
        raise UsageError(
            f"`relative_radius` {relative_radius:g}: times the data's scale {scale:.3g} it overflows "
            "float64; expected a radius (`relative_radius` × scale, or `radius`) below 1e308"
        )
    return radius, f"{relative_radius:g} × {scale:.6g}, the RMS distance of the data points to their mean"


def _sources(sets: Sequence[PointSet]) -> str:
    return ", ".join(dict.fromkeys(s.source or s.name for s in sets))


def _check_reach(sets: Sequence[PointSet], radius: float, given: bool, dtype: torch.dtype) -> None:
    """Refuse points whose vertices x ± r·u (|u_i| <= 1) overflow the network's dtype."""
    top = torch.finfo(dtype).max
    for s in sets:
        far = float(np.abs(s.x).max())
        if not far + radius <= top:
            option = f"`radius` {radius:g}" if given else f"the radius {radius:.3g}"
            raise UsageError(
                f"`data` {s.source or s.name}: its points (up to {far:.3g}) with {option} reach past "
                f"{str(dtype).removeprefix('torch.')}'s largest number {top:.3g}, so the neighbourhoods' "
                "vertices overflow; expected smaller points or radius"
                + (" (or `dtype` float64)" if dtype != torch.float64 else "")
            )


def shared_frame(dim: int, count: int, seed: int = 0) -> np.ndarray:
    """[P, D] orthonormal rows, uniformly random (Haar), the same for a given seed."""
    rng = np.random.default_rng([_seed(seed), _SHARED_FRAME])
    return _orthonormal(rng.standard_normal((dim, count)))


def point_frames(rows: Iterable[int], dim: int, count: int, seed: int = 0) -> np.ndarray:
    """[len(rows), P, D]: a fresh frame per point, seeded by the point's row so chunking cannot change it."""
    gaussians = [
        np.random.default_rng([_seed(seed), _POINT_FRAME, r]).standard_normal((dim, count)) for r in rows
    ]
    return _orthonormal(np.stack(gaussians))


def exact_planes(rows: Iterable[int], dim: int, count: int, seed: int = 0) -> np.ndarray:
    """[len(rows), K, 2, D]: K random planes per point (orthonormal pairs of directions, Haar), seeded by
    the point's row, so that every checkpoint, chunk and share draws the same planes."""
    if dim < 2:
        raise UsageError(f"`exact_planes` needs planes of input space, and the model's inputs are {dim}-D")
    gaussians = [
        np.random.default_rng([_seed(seed), _EXACT_PLANES, r]).standard_normal((count, dim, 2)) for r in rows
    ]
    return _orthonormal(np.stack(gaussians).reshape(-1, count, dim, 2))


def _orthonormal(gaussian: np.ndarray) -> np.ndarray:
    # QR of a Gaussian matrix, with R's diagonal made positive, is Haar-distributed (Mezzadri 2007)
    q, r = np.linalg.qr(gaussian)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    signs[signs == 0] = 1
    return np.swapaxes(q * signs[..., None, :], -1, -2)


def _seed(seed: int) -> int:
    return seed % 2**64  # numpy seed sequences take non-negative entropy


# -- counting --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    name: str
    kind: str
    units: int


def _nodes(net: PLNet, include_output: bool) -> list[_Node]:
    nodes = [_Node(n.name, n.kind, n.units) for n in net.pl_nodes]
    if include_output:
        names = {n.name for n in nodes}
        name = OUTPUT_NODE if OUTPUT_NODE not in names else f"{OUTPUT_NODE}:logits"
        nodes.append(_Node(name, "output", net.output_dim))
    return nodes


@torch.no_grad()
def count_crossings(
    net: PLNet, x: torch.Tensor, frame: torch.Tensor, radius: float, include_output: bool = False
) -> torch.Tensor:
    """[b, nodes] crossed neurons of each PL node (then the output) around each point of x [b, D].

    `frame` is [P, D] (shared) or [b, P, D] (one per point). The vertices go through the network one
    PL node at a time, and each node's pre-activation is reduced to counts as soon as it exists, so no
    more than the live activations of one chunk are ever held.
    """
    b = x.shape[0]
    offsets = radius * frame
    vertices = x[:, None, :] + torch.cat([offsets, -offsets], dim=-2)  # [b, 2P, D]
    dtype = str(net.dtype).removeprefix("torch.")
    hint = " (or `dtype` float64)" if net.dtype != torch.float64 else ""
    # a radius below the points' float resolution rounds a vertex back onto its point: no neighbourhood
    if bool((vertices == x[:, None, :]).all(dim=2).any()):
        raise UsageError(
            f"around some points (up to {float(x.abs().max()):.3g}) the radius {radius:.3g} is below "
            f"{dtype}'s resolution, so neighbourhood vertices round back onto their point; expected a "
            f"larger `radius` or `relative_radius`, or points nearer the origin{hint}"
        )
    per_point = vertices.shape[1]
    inputs = net.input_values(vertices.reshape(b * per_point, -1))[0]
    counts = []
    # NaN and inf have no sign to change: gathered on the device, looked at once per call
    finite = torch.ones((), dtype=torch.bool, device=x.device)
    scales = NodeScales(inputs)
    for index, pre in net.walk(inputs, output=include_output):
        finite &= torch.isfinite(pre).all()
        if index < len(net.pl_nodes):
            counts.append(net.pl_nodes[index].pl.crossed_units(pre, scales(pre), per_point))
        else:  # the logits' signs by the same rule, the output taken as one more node
            out = pre.reshape(b * per_point, -1)
            signs = sign_of(out, scales(out)[:, None])
            counts.append(sign_changes(signs.reshape(b, per_point, -1)))
    if not bool(finite):
        raise UsageError(
            f"the network's values overflow {dtype} (NaN or inf) around some points, so their crossings "
            "cannot be counted; expected points, and a `radius` (or `relative_radius` × the data's scale), "
            f"of a size the network can take{hint}"
        )
    if not counts:
        return torch.zeros((b, 0), dtype=torch.int64, device=x.device)
    return torch.stack(counts, dim=1)


# -- the analysis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LCOptions:
    directions: int | None = None  # P; default DEFAULT_DIRECTIONS, or the input dimension if smaller
    radius: float | None = None  # r in input units; default relative_radius × the data's scale
    relative_radius: float = DEFAULT_RELATIVE_RADIUS
    frame: str = "shared"  # one random frame for every point, or "per-point"
    include_output: bool = False  # count the output units too
    seed: int = 0
    batch_size: int | None = None  # points per forward batch (default: auto_chunk)
    exact_planes: int | None = None  # K: also count the tiles near each point exactly on K planes

    def __post_init__(self):
        if self.exact_planes is not None and self.exact_planes < 1:
            raise UsageError(f"`exact_planes` {self.exact_planes}: expected a positive number of planes")
        if self.frame not in FRAMES:
            raise UsageError(f"`frame` {self.frame!r}: expected one of {', '.join(FRAMES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"`batch_size` {self.batch_size}: expected a positive number of points")


@dataclass
class LCJob:
    """The checkpoints of a trajectory measured around the same points: the work a command shares
    out, a point an item. `load(path)` gives a checkpoint's (loaded model, network) when it is
    measured, so that one network at a time is held."""

    load: Callable[[Path], tuple[object, PLNet]]
    paths: Sequence[Path]
    sets: Sequence[PointSet]
    options: LCOptions = LCOptions()
    steps: Sequence[int] | None = None
    loaded_sha256: list[str] = field(default_factory=list)  # each checkpoint's, as it loads

    @property
    def total(self) -> int:
        return sum(len(s.x) for s in self.sets)

    @property
    def checkpoint_sha256(self) -> str:
        return ",".join(self.loaded_sha256)

    def compute(self, rows: range | None = None, progress: Progress | None = None) -> LCResult:
        """LC around the points numbered `rows` (default: all), on every checkpoint."""

        def nets() -> Iterable[PLNet]:
            for path in self.paths:
                loaded, net = self.load(path)
                self.loaded_sha256.append(loaded.sha256)
                yield net

        names = [str(path) for path in self.paths]
        return run(
            nets(),
            self.sets,
            self.options,
            checkpoints=names,
            checkpoint_sha256=self.loaded_sha256,
            steps=self.steps,
            rows=rows,
            progress=progress,
        )


def run(
    nets: PLNet | Iterable[PLNet],
    sets: Sequence[PointSet],
    options: LCOptions = LCOptions(),
    *,
    checkpoints: Sequence[str] | None = None,
    checkpoint_sha256: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    rows: range | None = None,
    progress: Progress | None = None,
) -> LCResult:
    """LC around every point of `sets`, for one network or each network of a training trajectory.

    `nets` is one PLNet or an iterable of them (a generator can load each checkpoint in turn). The
    radius, when not given, is `relative_radius` times the RMS distance of the non-random points to
    their mean; `directions` defaults to 25, or the input dimension when that is smaller. The same
    frame(s) and radius serve every checkpoint, so a trajectory's curve compares like with like.
    `checkpoints`, `checkpoint_sha256` and `steps` describe the networks, in order, for the result
    (`checkpoint_sha256` is read once every network is measured: a list filled while `nets` loads them
    will do).

    `rows`, a contiguous range of the points numbered across the sets in order, measures only that
    share of them (radius, frames and label checks still come from every point, so shares measured
    apart and put together with `combine` give the numbers of one whole run); the result's
    `set_offsets` and `accuracy` then describe the share's points.
    """
    directions, radius, relative_radius = options.directions, options.radius, options.relative_radius
    frame, include_output, seed = options.frame, options.include_output, options.seed
    chunk_size = options.batch_size
    start = time.perf_counter()
    nets = [nets] if isinstance(nets, PLNet) else nets
    if not sets:
        raise UsageError("no points to measure: give `data`")
    measured = [s for s in sets if s.name != "random"] or list(sets)
    given_radius = radius is not None
    radius, rule = choose_radius(measured, radius, relative_radius)
    x_all = np.concatenate([s.x.reshape(len(s.x), -1) for s in sets])
    offsets = np.cumsum([0] + [len(s.x) for s in sets])
    rows = range(len(x_all)) if rows is None else rows
    if rows.step != 1 or not 0 <= rows.start <= rows.stop <= len(x_all):
        raise ValueError(f"rows {rows} is not a contiguous range of the {len(x_all)} points")
    count = len(checkpoints) if checkpoints is not None else None

    per_point, accuracy, nodes, p, shared, dtype = [], [], None, 0, None, None
    exact = None
    if options.exact_planes is not None:
        planes = options.exact_planes
        # each plane: its two directions while drawn, and one count per checkpoint
        check_memory(
            len(rows) * planes * (16 * len(x_all[0]) + 8 * (count or 1)),
            f"`exact_planes` {planes}: {planes:,} planes around each of {len(rows):,} points",
            "ask for fewer `exact_planes`",
        )
        exact = _ExactTally(planes, radius, seed)
    for c, net in enumerate(nets):
        if nodes is None:
            dtype = net.dtype
            p = _directions(net.input_dim, directions)
            _check_sets(sets, net.input_dim)
            _check_reach(sets, radius, given_radius, net.dtype)
            shared = shared_frame(net.input_dim, p, seed) if frame == "shared" else None
            nodes = _nodes(net, include_output)
        elif _nodes(net, include_output) != nodes:
            first = ", ".join(f"{n.name} ({n.units})" for n in nodes)
            raise UsageError(
                f"checkpoint {_name(checkpoints, c)} does not have the PL nodes of the first checkpoint, "
                f"{first}: a trajectory must keep one architecture"
            )
        elif net.input_dim != len(x_all[0]):
            raise UsageError(
                f"checkpoint {_name(checkpoints, c)} takes {net.input_dim}-D inputs, not {len(x_all[0])}"
            )
        chunk = chunk_size or auto_chunk(net, 2 * p, CPU_BATCH_VERTICES)

        def report(done: int, c: int = c) -> None:
            if progress is not None:
                progress(c * len(rows) + done, (count or c + 1) * len(rows))

        per_point.append(
            _measure(
                net,
                x_all,
                rows,
                shared,
                p,
                radius,
                include_output,
                seed,
                chunk,
                report,
                _sources(sets),
                exact,
            )
        )
        accuracy.append(
            [
                _accuracy(net, s, _within(rows, offsets[i], offsets[i + 1]), chunk * 2 * p)
                for i, s in enumerate(sets)
            ]
        )
    if nodes is None:
        raise UsageError("no checkpoints to measure")
    names = list(checkpoints) if checkpoints is not None else [f"model {i}" for i in range(len(per_point))]
    if len(names) != len(per_point):
        raise ValueError(f"{len(names)} checkpoint names for {len(per_point)} networks")
    return LCResult(
        per_point=np.stack(per_point).astype(np.int32),
        node_names=[n.name for n in nodes],
        node_kinds=[n.kind for n in nodes],
        node_units=[n.units for n in nodes],
        set_names=[s.name for s in sets],
        set_offsets=(np.clip(offsets, rows.start, rows.stop) - rows.start).astype(np.int64),
        accuracy=np.asarray(accuracy, dtype=np.float64),
        checkpoints=names,
        checkpoint_sha256=list(checkpoint_sha256) if checkpoint_sha256 is not None else [""] * len(names),
        steps=None if steps is None else [int(s) for s in steps],
        radius=radius,
        radius_rule=rule,
        directions=p,
        frame=frame,
        frame_vectors=shared,
        include_output=include_output,
        seed=seed,
        dtype=str(dtype).removeprefix("torch."),
        seconds=time.perf_counter() - start,
        exact=None if exact is None else np.stack(exact.counts).astype(np.int32),
        exact_tiles=0 if exact is None else exact.tiles,
        exact_seconds=0.0 if exact is None else exact.seconds,
    )


@dataclass
class _ExactTally:
    """Exact local counts on `planes` planes per point (splinetool/analyses/local_exact.py), gathered
    chunk by chunk: one [points, planes] array per checkpoint."""

    planes: int
    radius: float
    seed: int
    counts: list[np.ndarray] = field(default_factory=list)
    tiles: int = 0
    seconds: float = 0.0

    def measure(self, net: PLNet, x: torch.Tensor, rows: range) -> np.ndarray:
        start = time.perf_counter()
        planes = exact_planes(rows, net.input_dim, self.planes, self.seed)
        counts, tiles = exact_counts(net, x, torch.as_tensor(planes, dtype=net.dtype), self.radius)
        self.tiles += tiles
        self.seconds += time.perf_counter() - start
        return counts


def _measure(
    net, x_all, rows, shared, p, radius, include_output, seed, chunk, report, sources, exact=None
) -> np.ndarray:
    frame = None if shared is None else torch.as_tensor(shared, dtype=net.dtype, device=net.device)
    parts = [torch.zeros((0, len(_nodes(net, include_output))), dtype=torch.int64)]
    exact_parts = [np.zeros((0, exact.planes if exact else 0), dtype=np.int64)]
    # chunks start on multiples of the chunk size, as in a run over every point, so a share's
    # points go through the network in the same batches except where the share's ends cut one
    starts = [rows.start, *range((rows.start // chunk + 1) * chunk, rows.stop, chunk)]
    for first, stop in zip(starts, [*starts[1:], rows.stop]):
        if first == stop:
            continue
        x = torch.as_tensor(x_all[first:stop], dtype=net.dtype, device=net.device)
        if frame is None:
            frames = point_frames(range(first, stop), net.input_dim, p, seed)
            here = torch.as_tensor(frames, dtype=net.dtype, device=net.device)
        else:
            here = frame
        try:
            parts.append(count_crossings(net, x, here, radius, include_output).cpu())
        except UsageError as error:
            raise UsageError(f"`data` {sources}: {error}") from None
        if exact is not None:
            exact_parts.append(exact.measure(net, x, range(first, stop)))
        report(stop - rows.start)
    if exact is not None:
        exact.counts.append(np.concatenate(exact_parts))
    return torch.cat(parts).numpy()


def _within(rows: range, start: int, stop: int) -> slice:
    """The part of one set (rows start:stop of all points) inside `rows`, as a slice of that set."""
    return slice(min(max(rows.start, start), stop) - start, max(min(rows.stop, stop), start) - start)


@torch.no_grad()
def _accuracy(net: PLNet, points: PointSet, share: slice, chunk: int) -> float:
    """Fraction of the share's points whose predicted class is their label; NaN without class labels."""
    y = points.y
    if y is None or y.ndim != 1 or not np.issubdtype(y.dtype, np.number):
        return math.nan
    # judged on the whole set, so that every share of it agrees
    if not np.array_equal(y, np.round(y)) or y.min() < 0 or y.max() >= max(2, net.output_dim):
        return math.nan  # not class indices this model could predict (regression targets, say)
    x_share, y_share = points.x[share], y[share]
    if len(x_share) == 0:
        return math.nan
    hits = 0
    for first in range(0, len(x_share), chunk):
        x = torch.as_tensor(x_share[first : first + chunk], dtype=net.dtype, device=net.device)
        out = net(x).reshape(len(x), -1)
        predicted = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(dim=1)
        hits += int((predicted.cpu().numpy() == y_share[first : first + chunk]).sum())
    return hits / len(x_share)


def combine(parts: Sequence[LCResult]) -> LCResult:
    """One result from the results of consecutive shares of the points (`run(..., rows=...)`).

    Counts are joined along the point axis; accuracy is the sum of the shares' correct predictions
    over the set's size, the number an unshared run computes. `seconds` is the longest share's.
    """
    first = parts[0]
    sizes = np.stack([np.diff(p.set_offsets) for p in parts])  # [parts, sets]
    # a share's accuracy is hits / size in float64, so rounding accuracy × size recovers hits exactly;
    # a share without points of a set has NaN there and adds nothing, a set without labels stays NaN
    with np.errstate(invalid="ignore"):
        hits = np.where(
            sizes[:, None, :] > 0, np.round(np.stack([p.accuracy for p in parts]) * sizes[:, None, :]), 0
        )
    return replace(
        first,
        per_point=np.concatenate([p.per_point for p in parts], axis=1),
        set_offsets=np.concatenate([[0], np.cumsum(sizes.sum(axis=0))]).astype(np.int64),
        accuracy=hits.sum(axis=0) / sizes.sum(axis=0),
        seconds=max(p.seconds for p in parts),
        exact=None if first.exact is None else np.concatenate([p.exact for p in parts], axis=1),
        exact_tiles=sum(p.exact_tiles for p in parts),
        exact_seconds=sum(p.exact_seconds for p in parts),
    )


def _directions(dim: int, directions: int | None) -> int:
    if directions is None:
        return min(DEFAULT_DIRECTIONS, dim)
    if not 1 <= directions <= dim:
        raise UsageError(
            f"`directions` {directions}: expected 1 to {dim} (the model's input dimension: no more than "
            f"{dim} orthonormal directions exist)"
        )
    return directions


def _check_sets(sets: Sequence[PointSet], dim: int) -> None:
    for s in sets:
        if s.x.ndim < 2 or math.prod(s.x.shape[1:]) != dim:
            what = s.source or s.name
            raise UsageError(
                f"`data` {what}: points have {math.prod(s.x.shape[1:])} values each but the model takes "
                f"{dim}-D inputs"
            )


def _name(checkpoints: Sequence[str] | None, c: int) -> str:
    return checkpoints[c] if checkpoints is not None and c < len(checkpoints) else f"#{c}"
