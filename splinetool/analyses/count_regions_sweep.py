"""Region counts of random-initialised networks of one family: depth against width at a fixed neuron budget.

A sweep file (TOML) names a family with a `widths` option (e.g. `mlp`) and its other options, the
hidden-neuron budget, the depths and the seeds; each depth d gets d hidden layers of budget // d
neurons. Every network is counted on the same plane (exact-2d tiles) or the same random segments
(exact-1d, mean pieces per segment), so rows differ only by architecture and seed.
"""

from __future__ import annotations

import inspect
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from splinetool import parallel
from splinetool.analyses import count_regions
from splinetool.analyses.plane import input_plane
from splinetool.errors import UsageError
from splinetool.frontends.families import FAMILIES, build
from splinetool.ir import lower

KEYS = {"family", "neurons", "depths", "seeds", "init", "measure", "options"}
# parameters that say where or what to count: a sweep takes them from its file
NOT_WITH_A_SWEEP = (
    "segment",
    "data",
    "pairs",
    "bounds",
    "anchors",
    "anchor_index",
    "anchors_list",
    "anchor_index_list",
    "origin",
    "sample",
    "arch",
)


@dataclass
class SweepResult:
    family: str
    neurons: int  # hidden-neuron budget
    depth: np.ndarray  # [rows]
    width: np.ndarray  # [rows]
    seed: np.ndarray  # [rows]
    regions: np.ndarray  # [rows] tiles on the plane, or mean pieces per segment
    method: str  # exact-2d or exact-1d
    measure: str  # where the networks were counted
    init: str  # how they were initialised
    config: str  # the sweep file's text
    seconds: float = 0.0
    per_layer: list[list[int]] = field(default_factory=list)  # [rows][depth]

    def by_depth(self) -> list[dict]:
        rows = []
        for d in sorted(set(self.depth.tolist())):
            values = self.regions[self.depth == d]
            rows.append(
                {
                    "depth": int(d),
                    "width": int(self.width[self.depth == d][0]),
                    "median": float(np.median(values)),
                    "mean": float(values.mean()),
                    "min": float(values.min()),
                    "max": float(values.max()),
                }
            )
        return rows

    def summary(self) -> dict:
        return {
            "method": self.method,
            "family": self.family,
            "neurons": self.neurons,
            "measure": self.measure,
            "init": self.init,
            "sweep": self.by_depth(),
            "rows": [
                {"depth": int(d), "width": int(w), "seed": int(s), "regions": float(r)}
                for d, w, s, r in zip(self.depth, self.width, self.seed, self.regions)
            ],
            "seconds": self.seconds,
        }


@dataclass
class Sweep:
    family: str
    options: dict
    neurons: int
    depths: list[int]
    seeds: list[int]
    weight_gain: float | None  # weights ~ N(0, gain² / fan_in); None: PyTorch's default initialisation
    bias_std: float
    plane: tuple[float, float, float, float] | None
    segments: int
    segment_box: tuple[float, float]
    text: str


@dataclass(frozen=True)
class SweepOptions:
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float64


def check_alone(checkpoint: Path | None, shard: str | None, given: list[str]) -> None:
    """Refuse what a sweep does not take: a checkpoint, a share of the work, or the parameters
    `given` (names in NOT_WITH_A_SWEEP) that would say where to count."""
    world = parallel.world()
    if shard is not None or (world is not None and world.size > 1):
        raise UsageError("a `sweep` runs in one process: drop `shard` and run it without torchrun")
    if checkpoint is not None:
        raise UsageError(f"`sweep` builds its own networks: drop the checkpoint {checkpoint}")
    if given:
        named = ", ".join(f"`{name}`" for name in given)
        raise UsageError(f"`sweep` takes where to count from its file, not from {named}")


def load_sweep(path: Path) -> Sweep:
    def bad(what: str) -> UsageError:
        return UsageError(f"`sweep` {path}: {what}")

    try:
        text = Path(path).read_text()
        table = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise bad(f"cannot read as TOML ({error})") from None
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(KEYS))}")
    for key in ("family", "neurons", "depths", "seeds"):
        if key not in table:
            raise bad(f"missing '{key}'")
    neurons, depths, seeds = table["neurons"], table["depths"], table["seeds"]
    if not (isinstance(neurons, int) and neurons > 0):
        raise bad(f"neurons = {neurons!r}: expected a positive integer")
    if not (
        isinstance(depths, list)
        and depths
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= neurons for d in depths)
    ):
        raise bad(f"depths = {depths!r}: expected a list of integers from 1 to neurons")
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise bad(f"seeds = {seeds!r}: expected a list of integers")
    family = table["family"]
    if family not in FAMILIES or "widths" not in inspect.signature(FAMILIES[family]).parameters:
        with_widths = [f for f in FAMILIES if "widths" in inspect.signature(FAMILIES[f]).parameters]
        raise bad(f"family = {family!r}: a sweep varies 'widths', which only {', '.join(with_widths)} take")
    options, init, measure = (table.get(key, {}) for key in ("options", "init", "measure"))
    for key, value in (("options", options), ("init", init), ("measure", measure)):
        if not isinstance(value, dict):
            raise bad(f"'{key}' must be a table ([{key}]), not {value!r}")
    if "widths" in options:
        raise bad("options.widths is what the sweep varies: leave it out")
    if set(init) - {"weight_gain", "bias_std"}:
        raise bad(f"[init] takes weight_gain and bias_std, not {', '.join(sorted(set(init)))}")
    if set(measure) - {"plane", "segments", "box"} or ("plane" in measure) == ("segments" in measure):
        raise bad(
            "[measure] needs either plane = [xmin, xmax, ymin, ymax] or segments = N (with box = [lo, hi])"
        )
    plane = measure.get("plane")
    if plane is not None:
        plane = _finite_numbers(plane, 4)
        if plane is None or not (plane[0] < plane[1] and plane[2] < plane[3]):
            raise bad(
                f"[measure] plane = {measure['plane']!r}: expected [xmin, xmax, ymin, ymax] with min < max"
            )
    segments = measure.get("segments", 0)
    box = _finite_numbers(measure.get("box", [-1.0, 1.0]), 2)
    if plane is None and (
        isinstance(segments, bool)
        or not isinstance(segments, int)
        or segments < 1
        or box is None
        or box[0] >= box[1]
    ):
        raise bad("[measure] segments must be a positive integer and box = [lo, hi] with lo < hi")
    gain, bias_std = init.get("weight_gain"), init.get("bias_std", 0.0)
    if gain is not None and (_finite_numbers([gain], 1) is None or gain <= 0):
        raise bad(f"[init] weight_gain = {gain!r}: expected a positive number")
    if _finite_numbers([bias_std], 1) is None or bias_std < 0:
        raise bad(f"[init] bias_std = {bias_std!r}: expected a number >= 0")
    return Sweep(
        family=family,
        options=options,
        neurons=neurons,
        depths=depths,
        seeds=seeds,
        weight_gain=None if gain is None else float(gain),
        bias_std=float(bias_std),
        plane=None if plane is None else tuple(plane),
        segments=segments,
        segment_box=(box[0], box[1]),
        text=text,
    )


def _finite_numbers(values, count: int) -> list[float] | None:
    """`count` finite numbers, or None when `values` is anything else."""
    if not isinstance(values, list) or len(values) != count:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def build_network(sweep: Sweep, depth: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build(sweep.family, {**sweep.options, "widths": [sweep.neurons // depth] * depth})
    if sweep.weight_gain is not None:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0.0, sweep.weight_gain / math.sqrt(module.in_features))
                    if module.bias is not None:
                        module.bias.normal_(0.0, sweep.bias_std)
    return model.eval()


def run(sweep: Sweep, options: SweepOptions = SweepOptions(), progress=None) -> SweepResult:
    """Build and count every network of the sweep; progress(done, total) in networks."""
    clock = time.perf_counter()
    rows = [(d, s) for d in sweep.depths for s in sweep.seeds]
    regions, per_layer = [], []
    starts = ends = None
    for done, (depth, seed) in enumerate(rows):
        model = build_network(sweep, depth, seed)
        net = lower(model, tuple(model.input_shape)).to(device=options.device, dtype=options.dtype)
        if sweep.plane is not None:
            if net.input_dim != 2:
                raise UsageError(
                    f"a sweep plane needs 2-D inputs; the '{sweep.family}' networks take {net.input_dim}"
                )
            result = count_regions.run(net, count_regions.Planes((input_plane(2, sweep.plane),)))
            regions.append(float(result.regions))
        else:
            if starts is None:
                starts, ends = _segments(sweep, net.input_dim)
            result = count_regions.run(net, count_regions.Segments(starts, ends))
            regions.append(float(result.pieces.mean()))
        per_layer.append(result.per_layer)
        if progress is not None:
            progress(done + 1, len(rows))
    lo, hi = sweep.segment_box
    return SweepResult(
        family=sweep.family,
        neurons=sweep.neurons,
        depth=np.array([d for d, _ in rows]),
        width=np.array([sweep.neurons // d for d, _ in rows]),
        seed=np.array([s for _, s in rows]),
        regions=np.array(regions),
        method="exact-2d" if sweep.plane is not None else "exact-1d",
        measure=(
            "tiles of the input plane [{:g}, {:g}] × [{:g}, {:g}]".format(*sweep.plane)
            if sweep.plane is not None
            else f"mean pieces along {sweep.segments} random segments, ends uniform in [{lo:g}, {hi:g}]^D"
        ),
        init=(
            "PyTorch's default initialisation"
            if sweep.weight_gain is None
            else f"weights N(0, {sweep.weight_gain:g}² / fan-in), biases N(0, {sweep.bias_std:g}²)"
        ),
        config=sweep.text,
        seconds=time.perf_counter() - clock,
        per_layer=per_layer,
    )


def _segments(sweep: Sweep, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    lo, hi = sweep.segment_box
    ends = rng.uniform(lo, hi, size=(2, sweep.segments, dim))
    return torch.as_tensor(ends[0]), torch.as_tensor(ends[1])
