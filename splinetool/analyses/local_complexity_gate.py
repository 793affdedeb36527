"""Pass/fail checks on local complexity, for CI: fixed thresholds and a bound relative to a baseline run.

A gate file (TOML) holds any of

    points = "test"              # the point set checked (default: the first one measured)
    mean = 30.0                  # mean LC must be <= 30
    median = 28
    p95 = 45
    [per_node]                   # mean LC of single PL nodes, by name or by position
    "hidden.0.act" = 12.0
    "node 2" = 9.0               # the second PL node as `splinetool info` numbers them (from 1)
    [baseline]                   # used with --baseline FILE.json
    max_increase = 0.05          # each compared statistic may grow by at most 5 %
    statistics = ["mean", "p95"] # any of mean, median, p95, per_node

Every checkpoint of a run is checked; a check passes when the value is at most its bound.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from splinetool.analyses.defaults import DEFAULT_MAX_INCREASE
from splinetool.analyses.local_complexity import LCResult
from splinetool.errors import UsageError

STATISTICS = {"mean": "lc_mean", "median": "lc_median", "p95": "lc_p95"}
COMPARABLE = (*STATISTICS, "per_node")
NODE_POSITION = re.compile(r"node (\d+)")  # "node 3" in a gate's [per_node]
DEFAULT_COMPARE = ("mean",)
# a baseline computed with another neighbourhood measures something else: these must agree
SAME_PARAMETERS = ("directions", "frame", "include_output")
RADIUS_RTOL = 1e-9


@dataclass(frozen=True)
class Limit:
    statistic: str  # lc_mean, lc_median, lc_p95 or per_node_mean
    node: str | None  # for per_node_mean
    bound: float
    source: str  # where the bound came from, for the message

    @property
    def label(self) -> str:
        return f"{self.statistic}[{self.node}]" if self.node is not None else self.statistic


@dataclass(frozen=True)
class Check:
    limit: Limit
    value: float
    checkpoint: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit.bound

    def message(self, with_checkpoint: bool = False) -> str:
        where = f"{self.checkpoint}: " if with_checkpoint else ""
        relation = "<=" if self.passed else ">"
        bound = f"{self.limit.bound:.4g} ({self.limit.source})"
        return f"{where}{self.limit.label} = {self.value:.4g} {relation} {bound}"

    def summary(self) -> dict:
        return {
            "check": self.limit.label,
            "value": self.value,
            "bound": self.limit.bound,
            "source": self.limit.source,
            "checkpoint": self.checkpoint,
            "passed": self.passed,
        }


@dataclass
class Gate:
    limits: list[Limit] = field(default_factory=list)
    points: str | None = None
    max_increase: float | None = None
    compare: tuple[str, ...] = DEFAULT_COMPARE


def load_gate(path: str | Path) -> Gate:
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"`gate` {path}: cannot read it as a TOML file ({err})") from None
    known = {*STATISTICS, "per_node", "baseline", "points"}
    _no_unknown_keys(table, known, f"`gate` {path}")
    source = f"--gate {path.name}"
    limits = [
        Limit(stat, None, _bound(table[key], f"`gate` {path}: {key}"), source)
        for key, stat in STATISTICS.items()
        if key in table
    ]
    per_node = table.get("per_node", {})
    if not isinstance(per_node, dict):
        raise UsageError(f"`gate` {path}: per_node must be a table of node name = bound")
    limits += [
        Limit("per_node_mean", str(n), _bound(v, f"`gate` {path}: per_node.{n}"), source)
        for n, v in per_node.items()
    ]
    points = table.get("points")
    if points is not None and not isinstance(points, str):
        raise UsageError(f'`gate` {path}: points must be the name of a point set, such as "test"')
    baseline = table.get("baseline", {})
    if not isinstance(baseline, dict):
        raise UsageError(f"`gate` {path}: baseline must be a table (max_increase, statistics)")
    _no_unknown_keys(baseline, {"max_increase", "statistics"}, f"`gate` {path}: [baseline]")
    increase = baseline.get("max_increase")
    compare = baseline.get("statistics", list(DEFAULT_COMPARE))
    if not isinstance(compare, list) or not compare or any(c not in COMPARABLE for c in compare):
        raise UsageError(
            f"`gate` {path}: baseline.statistics must list some of {', '.join(COMPARABLE)}; got {compare!r}"
        )
    if not limits and "baseline" not in table:
        raise UsageError(
            f"`gate` {path}: sets no bound (mean, median, p95, per_node) and no [baseline]: it would check "
            "nothing"
        )
    return Gate(
        limits,
        points,
        None if increase is None else _bound(increase, f"`gate` {path}: baseline.max_increase"),
        tuple(compare),
    )


def read_baseline(path: str | Path) -> dict:
    """A previous run's JSON (`--json` output), checked to be one."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"`baseline` {path}: cannot read it as JSON ({err})") from None
    if (
        not isinstance(payload, dict)
        or "radius" not in payload
        or not ("sets" in payload or payload.get("checkpoints"))
    ):
        raise UsageError(f"`baseline` {path}: expected the JSON of a previous local-complexity run (--json)")
    _checked_sets(path, payload)
    return payload


def _checked_sets(path: Path, payload: dict) -> None:
    """Check the fields `baseline_limits` reads have the shapes a previous run's --json writes, so that
    a hand-edited or foreign file is refused by name rather than failing inside the comparison."""
    expected = "as a previous run's --json writes"
    entry, where = payload, "sets"
    if payload.get("checkpoints"):
        trajectory = payload["checkpoints"]
        if not isinstance(trajectory, list) or not all(isinstance(c, dict) for c in trajectory):
            raise UsageError(
                f"`baseline` {path}: 'checkpoints' must be a list of per-checkpoint results {expected}; "
                f"found {_kind(trajectory)}"
            )
        entry, where = trajectory[-1], "checkpoints[-1].sets"
    sets = entry.get("sets")
    if not isinstance(sets, dict) or not sets or not all(isinstance(v, dict) for v in sets.values()):
        raise UsageError(
            f"`baseline` {path}: '{where}' must map each point set's name to its statistics (lc_mean, "
            f"lc_median, lc_p95, per_node_mean) {expected}; found {_kind(sets)}"
        )
    for name, stats in sets.items():
        if not isinstance(stats.get("per_node_mean", {}), dict):
            raise UsageError(
                f"`baseline` {path}: '{where}.{name}.per_node_mean' must map node names to mean LC "
                f"{expected}; found {_kind(stats['per_node_mean'])}"
            )


def _kind(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def baseline_limits(
    payload: dict, path: str | Path, result: LCResult, gate: Gate, max_increase: float | None = None
) -> list[Limit]:
    """Bounds `baseline × (1 + max_increase)` from a previous run's JSON (see `read_baseline`).

    For a trajectory's JSON the last checkpoint is the baseline. The baseline must have measured the
    same neighbourhoods (radius, directions, frame, output units), or the comparison means nothing.
    """
    path = Path(path)
    _same_neighbourhoods(path, payload, result)
    entry = payload["checkpoints"][-1] if payload.get("checkpoints") else payload
    points = gate.points or result.set_names[0]
    stats = entry.get("sets", {}).get(points)
    if stats is None:
        raise UsageError(
            f"`baseline` {path} has no results for the point set {points!r}; "
            f"it has {', '.join(entry.get('sets', {})) or 'none'}"
        )
    increase = max_increase if max_increase is not None else gate.max_increase
    increase = DEFAULT_MAX_INCREASE if increase is None else _bound(increase, "`max_increase`")
    limits = []
    for name in gate.compare:
        if name == "per_node":
            nodes = stats.get("per_node_mean", {})
            pairs = [("per_node_mean", n, nodes[n]) for n in result.node_names if n in nodes]
        else:
            key = STATISTICS[name]
            if key not in stats:
                raise UsageError(f"`baseline` {path}: no {key} for the point set {points!r}")
            pairs = [(key, None, stats[key])]
        for statistic, node, value in pairs:
            value = _bound(value, f"`baseline` {path}: {statistic}")
            source = f"--baseline {path.name}: {value:.4g} + {increase * 100:g}%"
            limits.append(Limit(statistic, node, value * (1 + increase), source))
    return limits


def evaluate(result: LCResult, limits: list[Limit], points: str | None = None) -> list[Check]:
    """Every limit on every checkpoint of `result`, for the chosen point set (default: the first)."""
    points = points or result.set_names[0]
    if points not in result.set_names:
        raise UsageError(
            f"the gate checks the point set {points!r}, but this run measured {', '.join(result.set_names)}"
        )
    named = {lim.node: _node_named(lim.node, result.node_names) for lim in limits if lim.node is not None}
    unknown = sorted(node for node, found in named.items() if found is None)
    if unknown:
        raise UsageError(
            f"the gate names node(s) {', '.join(unknown)}, which the model does not have; its nodes are "
            + ", ".join(f"{name} (node {k})" for k, name in enumerate(result.node_names, start=1))
        )
    limits = [replace(lim, node=named[lim.node]) if lim.node is not None else lim for lim in limits]
    checks = []
    for c, checkpoint in enumerate(result.checkpoints):
        stats = result.stats(c, points)
        for lim in limits:
            value = stats["per_node_mean"][lim.node] if lim.node is not None else stats[lim.statistic]
            checks.append(Check(lim, value, checkpoint))
    return checks


def _node_named(node: str, names: list[str]) -> str | None:
    """The name of the node a gate file means: a node's name, or `node k` for the k-th PL node in the
    order the network computes them (as `splinetool info` numbers them, from 1; the output units of
    --include-output come last), for formats that record no module paths."""
    if node in names:
        return node
    position = NODE_POSITION.fullmatch(node)
    if position is not None and 1 <= int(position[1]) <= len(names):
        return names[int(position[1]) - 1]
    return None


@dataclass(frozen=True)
class GateOptions:
    max_lc: float | None = None  # mean LC must be at most this
    gate: Path | None = None  # a gate file (TOML, see above)
    baseline: Path | None = None  # a previous run's --json output that LC may not exceed by much
    max_increase: float | None = None  # allowed relative increase over the baseline

    def __post_init__(self):
        if self.max_increase is not None and self.baseline is None:
            raise UsageError("`max_increase` bounds the increase over `baseline`: give `baseline` too")
        if self.max_lc is not None and not 0 <= self.max_lc < math.inf:
            raise UsageError(f"`max_lc` {self.max_lc}: expected a finite number >= 0")

    @property
    def given(self) -> bool:
        return self.max_lc is not None or self.gate is not None or self.baseline is not None


@dataclass(frozen=True)
class GatePlan:
    """The gate's files, read (and checked) before anything is measured."""

    options: GateOptions
    gate: Gate
    baseline: dict | None

    @classmethod
    def read(cls, options: GateOptions) -> GatePlan:
        gate = load_gate(options.gate) if options.gate is not None else Gate()
        return cls(options, gate, read_baseline(options.baseline) if options.baseline is not None else None)


@dataclass(frozen=True)
class GateResult:
    checks: list[Check]
    several: bool  # the run measured several checkpoints: messages name them

    @property
    def failed(self) -> list[str]:
        return [c.message(self.several) for c in self.checks if not c.passed]

    def summary(self) -> dict:
        """What the gate adds to the run's JSON (nothing without checks)."""
        if not self.checks:
            return {}
        checks = [c.summary() for c in self.checks]
        return {"passed": not self.failed, "failed_checks": self.failed, "checks": checks}


def run(result: LCResult, plan: GatePlan) -> GateResult:
    """Every check of the gate (--max-lc first, then the gate file's, then the baseline's) on every
    checkpoint of `result`."""
    options, gate = plan.options, plan.gate
    limits = list(gate.limits)
    if options.max_lc is not None:
        limits.insert(0, Limit("lc_mean", None, options.max_lc, "--max-lc"))
    if plan.baseline is not None:
        limits += baseline_limits(plan.baseline, options.baseline, result, gate, options.max_increase)
    checks = evaluate(result, limits, gate.points) if limits else []
    return GateResult(checks, len(result.checkpoints) > 1)


def _same_neighbourhoods(path: Path, payload: dict, result: LCResult) -> None:
    ours = result.parameters()
    differ = [key for key in SAME_PARAMETERS if payload.get(key) != ours[key]]
    radius = payload.get("radius")
    if not isinstance(radius, (int, float)) or not math.isclose(radius, result.radius, rel_tol=RADIUS_RTOL):
        differ.insert(0, "radius")
    if differ:
        theirs = ", ".join(f"{k} {payload.get(k)!r}" for k in differ)
        mine = ", ".join(f"{k} {ours[k]!r}" for k in differ)
        raise UsageError(
            f"`baseline` {path} measured other neighbourhoods ({theirs}) than this run ({mine}); "
            "rerun one of them with the same `radius`, `directions`, `frame` and `include_output`"
        )


def _bound(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value >= 0 and math.isfinite(value))
    ):
        raise UsageError(f"{what}: expected a number >= 0, got {value!r}")
    return float(value)


def _no_unknown_keys(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
        )
