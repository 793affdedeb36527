"""`debias-sample`: MaGNET uniform sampling and polarity sampling from a piecewise-linear generator.

For a generator G: z ∈ R^d → x ∈ R^D made of affine layers and PL activations, each tile ω of the
latent space maps onto a flat piece of the output manifold, and G scales d-dimensional volume there by
sqrt(det(A_ωᵀA_ω)) = ∏_k σ_k(A_ω). The density of G(z) on the manifold is p(z) / ∏σ_k, so drawing
latents from a prior pool with weight ∝ ∏σ_k gives samples uniform on the learned manifold (MaGNET,
Humayun, Balestriero & Baraniuk, ICLR 2022); weight ∝ (∏σ_k)^ρ is polarity sampling (CVPR 2022):
ρ < 0 favours the modes, ρ > 0 the anti-modes, ρ = 0 is the plain sampler. Nothing is retrained.

The work is three steps, kept apart so that step 2 can run on any share of the pool (one rank each):

1. `draw_pool`: the latents, from the prior and the seed alone, whatever the split.
2. `measure`: per latent, the singular values of the Jacobian, the log-volume and the tile code; a pure
   function of the latents it is given (and the fixed projection, if any).
3. `select`: from the whole pool's log-volumes, the weights, effective sample size and draws.

`plan` checks the options (a `DebiasOptions`) once; `measure_share` does step 2 on a contiguous share
of the pool (a `PoolShare`, which also holds G(z) of the share's latents that a draw can pick);
`run_share(net, rows, options)` is the two for one share; `combine` joins the shares in pool order and
does step 3. `run(net, options)` is the three on one share, the whole pool. Under torchrun or with
`--shard`, the shares are measured apart and combined by rank 0 or `splinetool merge`.

Rules:

- Log-volume = Σ_k log σ_k over all min(d, D) singular values, or over the largest `top_k`. A singular
  value at or below `σ_1 · max(k, d) · eps` (numpy's rank tolerance) counts as zero, and the latent's
  tile is *collapsed*: its log-volume is -inf.
- ρ = 0 weighs every latent the same, collapsed or not. For ρ > 0 a collapsed latent has weight 0. For
  ρ < 0 its weight would be infinite; collapsed latents are left out instead (weight 0), counted in
  `collapsed`, and a warning says so.
- Weights are computed in log space (log-sum-exp) in float64. Without replacement (the default) the n
  latents are the n largest of `ρ·log-volume + Gumbel noise` (Gumbel-top-k: exactly sequential
  sampling without replacement in proportion to the weights; the keys are not normalised, so a share
  of the pool ranks its own latents with the keys the whole pool uses); with replacement, n
  inverse-CDF draws.
  Every ρ uses the same noise, so the ρ = 0 draw is the baseline and draws for different ρ differ only
  through their weights.
- The volume is the PL network's, before any output-only transform (softmax, sigmoid) that lowering
  strips; the samples are the model's outputs, after it.
- The effective sample size is (Σw)²/Σw²; a warning is raised when it is under 10 n, where the draw
  leans on a handful of latents (with replacement: repeats; without: the last picks run out of weight).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from splinetool.analyses import Progress
from splinetool.engine.jacobian import CPU_BATCH_ROWS, cheaper_mode, jacobians
from splinetool.engine.memory import auto_chunk
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.ir import PLNet
from splinetool.ir.codes import region_ids

PRIORS: dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]] = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
}
ESS_WARNING_FACTOR = 10  # warn when the effective sample size is below this many times n

# numpy seed sequences keyed by purpose, so the pool, the projection and the draws never share a stream
_POOL, _PROJECTION, _SELECTION = 0, 1, 2


@dataclass
class LatentMeasures:
    """Per-latent quantities of any share of the pool (step 2); shares concatenate in pool order."""

    singular_values: np.ndarray  # [b, k] float64, largest first
    log_volume: np.ndarray  # [b] float64, -inf for collapsed tiles
    codes: np.ndarray  # [b, bytes] uint8 bit-packed activation codes

    @classmethod
    def concatenate(cls, parts: Sequence[LatentMeasures]) -> LatentMeasures:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in vars(parts[0])))


@dataclass
class Selection:
    """Weights and draws for each ρ (step 3)."""

    weights: np.ndarray  # [R, pool] float64, each row sums to 1
    index: np.ndarray  # [R, n] int64 rows of the pool, in draw order
    ess: np.ndarray  # [R] effective sample size (Σw)²/Σw²
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DebiasOptions:
    """What a run draws; the defaults are the command's."""

    n: int = 1000  # samples drawn for each ρ
    pool: int = 100_000  # latents drawn from the prior to choose from
    rho: tuple[float, ...] = (1.0,)  # polarities: weight ∝ volume^ρ (1: MaGNET, 0: plain sampling)
    prior: str = "normal"  # a key of PRIORS
    top_k: int | None = None  # the log-volume sums the top_k largest singular values (None: all)
    proj_dim: int | None = None  # Jacobian of a fixed random projection to this many outputs (None: exact)
    replace: bool = False  # draw with replacement
    seed: int = 0  # of the pool, the projection and the draws
    output_shape: tuple[int, ...] | None = None  # per-sample shape of the samples (None: the model's)
    batch_size: int | None = None  # latents per Jacobian batch (None: sized to the memory)

    def __post_init__(self) -> None:
        _check_counts(self.n, self.pool, self.replace)  # before any work is started


@dataclass
class Plan:
    """The checked options of a run and what they fix: the same for every share of the pool."""

    n: int
    pool: int
    rho: tuple[float, ...]
    prior: str
    replace: bool
    seed: int
    top_k: int | None
    proj_dim: int | None
    projection: np.ndarray | None  # [proj_dim, D]
    output_shape: tuple[int, ...]
    jacobian_mode: str
    dtype: str
    node_names: list[str]
    node_code_bits: list[int]


@dataclass
class PoolShare:
    """Step 2 on rows start:start+b of the pool, with G(z) of the rows a draw can pick (`candidates`).

    Without replacement a draw takes the n largest keys of the whole pool, so a row that n rows of its
    own share outrank for every ρ (and for the ρ = 0 baseline) is never drawn: only the others are
    generated. With replacement any row with weight can be drawn, and every row is generated.
    """

    plan: Plan
    start: int
    latents: np.ndarray  # [b, d] rows start:start+b of the pool
    measures: LatentMeasures
    candidates: np.ndarray  # [c] int64 pool rows, increasing
    outputs: np.ndarray  # [c, D] G of the candidates, as the model outputs it
    seconds: float = 0.0

    @property
    def rows(self) -> range:
        return range(self.start, self.start + len(self.latents))


@dataclass
class DebiasResult:
    pool_latents: np.ndarray  # [pool, d] float64
    singular_values: np.ndarray  # [pool, k] float64, largest first
    log_volume: np.ndarray  # [pool] float64, -inf for collapsed tiles
    tile_index: np.ndarray  # [pool] int64: row of tile_codes holding each latent's tile
    tile_codes: np.ndarray  # [tiles, bytes] uint8 distinct activation codes
    node_names: list[str]  # the PL nodes whose bits make up a code, in order
    node_code_bits: list[int]
    rho: np.ndarray  # [R] float64
    weights: np.ndarray  # [R, pool] float64, rows sum to 1
    selected_index: np.ndarray  # [R, n] int64
    samples: np.ndarray  # [R, n, D] G of the selected latents
    baseline_index: np.ndarray  # [n] int64: the same number drawn with ρ = 0
    baseline_samples: np.ndarray  # [n, D]
    ess: np.ndarray  # [R]
    prior: str
    replace: bool
    top_k: int | None  # None: every singular value
    proj_dim: int | None  # None: the exact Jacobian; k: a fixed random orthonormal projection to k dims
    projection: np.ndarray | None  # [k, D] the projection's rows
    output_shape: tuple[int, ...]  # per-sample shape of the samples (for image grids)
    jacobian_mode: str  # forward (one JVP per latent dimension) or reverse (one VJP per output)
    seed: int
    dtype: str
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def latents(self) -> np.ndarray:
        """[R, n, d] the selected latents."""
        return self.pool_latents[self.selected_index]

    @property
    def collapsed(self) -> int:
        return int(np.isneginf(self.log_volume).sum())

    def summary(self) -> dict:
        """The JSON payload. With one ρ, `rho`, `ess` and `selected_log_volume_mean` are numbers; with
        several they are lists in the order the ρ were given."""
        finite = self.log_volume[np.isfinite(self.log_volume)]
        selected = [finite_mean(self.log_volume[i]) for i in self.selected_index]
        one = len(self.rho) == 1
        return {
            "pool": len(self.pool_latents),
            "n": self.selected_index.shape[1],
            "rho": float(self.rho[0]) if one else [float(r) for r in self.rho],
            "ess": float(self.ess[0]) if one else [float(e) for e in self.ess],
            "log_volume_mean": finite_mean(finite),
            "log_volume_std": float(finite.std()) if len(finite) else None,
            "selected_log_volume_mean": selected[0] if one else selected,
            "baseline_log_volume_mean": finite_mean(self.log_volume[self.baseline_index]),
            "distinct_tiles": len(self.tile_codes),
            "collapsed": self.collapsed,
            "latent_dim": self.pool_latents.shape[1],
            "output_dim": self.samples.shape[-1],
            "singular_values": self.singular_values.shape[1],
            "volume": self.volume_label(),
            "prior": self.prior,
            "replace": self.replace,
            "jacobian_mode": self.jacobian_mode,
            "seed": self.seed,
            "dtype": self.dtype,
            "warnings": list(self.warnings),
            "seconds": self.seconds,
        }

    def volume_label(self) -> str:
        """What the log-volume is, in words: exact, or which approximation."""
        what = "all singular values" if self.top_k is None else f"top {self.top_k} singular values"
        if self.proj_dim is None:
            return f"exact, {what} of the Jacobian"
        return (
            f"approximate, {what} of the Jacobian of a fixed random orthonormal projection of the "
            f"output to {self.proj_dim} dimensions"
        )


def finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


# -- step 1: the pool ----------------------------------------------------------------------------


def draw_pool(prior: str, count: int, dim: int, seed: int = 0) -> np.ndarray:
    """[count, dim] float64 latents: standard normal, or uniform on [-1, 1]^dim; fixed by the seed."""
    if prior not in PRIORS:
        raise UsageError(f"`prior` {prior!r}: expected one of {', '.join(PRIORS)}")
    if count < 1:
        raise UsageError(f"`pool` {count}: expected a positive number of latents")
    return PRIORS[prior](np.random.default_rng([_seed(seed), _POOL]), (count, dim))


def projection_matrix(output_dim: int, proj_dim: int, seed: int = 0) -> np.ndarray:
    """[proj_dim, output_dim] orthonormal rows, uniformly random and fixed by the seed."""
    rng = np.random.default_rng([_seed(seed), _PROJECTION])
    q, r = np.linalg.qr(rng.standard_normal((output_dim, proj_dim)))
    return (q * np.where(np.diagonal(r) < 0, -1.0, 1.0)).T


def _seed(seed: int) -> int:
    return seed % 2**64  # numpy seed sequences take non-negative entropy


# -- step 2: per-latent quantities ---------------------------------------------------------------


def measure(
    net: PLNet,
    latents: np.ndarray,
    top_k: int | None = None,
    projection: np.ndarray | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> LatentMeasures:
    """Singular values, log-volume and tile code of each latent in `latents` [b, d].

    The Jacobian is of `projection @ G` when a projection is given. Pure: any contiguous share of the
    pool gives the same rows as the whole pool would.
    """
    out_dim = net.output_dim if projection is None else projection.shape[0]
    directions = min(net.input_dim, out_dim)
    chunk = chunk_size or auto_chunk(net, directions, CPU_BATCH_ROWS)
    p = None if projection is None else torch.as_tensor(projection, dtype=net.dtype, device=net.device)
    parts = []
    for first in range(0, len(latents), chunk):
        z = torch.as_tensor(latents[first : first + chunk], dtype=net.dtype, device=net.device)
        with torch.no_grad():
            sigma = torch.linalg.svdvals(jacobians(net, z, p))  # [b, min(k, d)], largest first
            codes = net.codes(z)
        parts.append(_measures(sigma, top_k, max(out_dim, net.input_dim), codes))
        if progress is not None:
            progress(min(first + chunk, len(latents)), len(latents))
    if not parts:
        raise UsageError("no latents to measure")
    return LatentMeasures.concatenate(parts)


def _measures(sigma: torch.Tensor, top_k: int | None, size: int, codes: torch.Tensor) -> LatentMeasures:
    sigma = sigma[:, :top_k] if top_k is not None else sigma
    # numpy's matrix_rank tolerance: below it a singular value is rounding noise around zero
    tolerance = sigma[:, :1] * size * torch.finfo(sigma.dtype).eps
    zero = sigma <= tolerance
    logs = torch.where(zero, -math.inf, torch.log(torch.where(zero, 1.0, sigma)))
    return LatentMeasures(
        sigma.double().cpu().numpy(), logs.double().sum(dim=1).cpu().numpy(), codes.cpu().numpy()
    )


# -- step 3: weighting and selection -------------------------------------------------------------


def log_weights(log_volume: np.ndarray, rho: float) -> np.ndarray:
    """Normalised log-weights log(w_i), w ∝ exp(ρ · log-volume); -inf for weight 0 (see the rules)."""
    logw = _log_mass(log_volume, rho)
    finite = np.isfinite(logw)
    if not finite.any():
        raise UsageError(
            f"`rho` {rho:g}: every latent of the pool has a collapsed tile (volume 0), so no latent has a "
            "weight; use `top_k` to measure fewer singular values, or `rho` 0"
        )
    top = logw[finite].max()
    return logw - (top + np.log(np.exp(logw[finite] - top).sum()))


def _log_mass(log_volume: np.ndarray, rho: float) -> np.ndarray:
    """ρ · log-volume, the log-weight before normalising: 0 for ρ = 0, -inf for collapsed tiles."""
    if rho == 0:
        return np.zeros_like(log_volume)
    return np.where(np.isneginf(log_volume), -np.inf, rho * log_volume)


def _selection_noise(seed: int, pool: int, n: int, replace: bool) -> np.ndarray:
    """One noise draw shared by every ρ: n uniforms with replacement, a Gumbel key per row without."""
    rng = np.random.default_rng([_seed(seed), _SELECTION])
    return rng.uniform(size=n) if replace else rng.gumbel(size=pool)


def select(
    log_volume: np.ndarray, rhos: Sequence[float], n: int, replace: bool = False, seed: int = 0
) -> Selection:
    """Draw n pool rows for each ρ from the whole pool's log-volumes."""
    pool = len(log_volume)
    _check_counts(n, pool, replace)
    noise = _selection_noise(seed, pool, n, replace)
    weights, index, ess, warnings = [], [], [], []
    collapsed = int(np.isneginf(log_volume).sum())
    for rho in rhos:
        logw = log_weights(log_volume, rho)
        w = np.exp(logw)
        positive = int((w > 0).sum())
        if not replace and n > positive:
            raise UsageError(
                f"`n` {n}: only {positive} latents of the pool have a non-zero weight for ρ = {rho:g}; "
                "enlarge `pool`, lower `n`, or draw with `replace`"
            )
        index.append(
            _with_replacement(w, noise) if replace else _gumbel_top(_log_mass(log_volume, rho), noise, n)
        )
        weights.append(w)
        ess.append(1.0 / float((w**2).sum()))
        if rho < 0 and collapsed:
            warnings.append(
                f"ρ = {rho:g}: {collapsed} latents with a collapsed tile (volume 0) would get infinite "
                "weight; they are left out"
            )
        if ess[-1] < ESS_WARNING_FACTOR * n:
            warnings.append(
                f"ρ = {rho:g}: effective sample size {ess[-1]:.1f} is under {ESS_WARNING_FACTOR} × n = "
                f"{ESS_WARNING_FACTOR * n}: a few latents carry most of the weight; enlarge --pool or "
                "move ρ towards 0"
            )
    return Selection(np.stack(weights), np.stack(index).astype(np.int64), np.asarray(ess), warnings)


def _check_counts(n: int, pool: int, replace: bool) -> None:
    if pool < 1:
        raise UsageError(f"`pool` {pool}: expected a positive number of latents")
    if n < 1:
        raise UsageError(f"`n` {n}: expected a positive number of samples")
    if not replace and n > pool:
        raise UsageError(f"`n` {n} is more than `pool` {pool}: enlarge the pool, or draw with `replace`")


def _gumbel_top(log_mass: np.ndarray, gumbel: np.ndarray, n: int) -> np.ndarray:
    keys = log_mass + gumbel
    top = np.argpartition(-keys, n - 1)[:n]
    return top[np.argsort(-keys[top], kind="stable")]  # in the order sequential draws would pick them


def _with_replacement(w: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(w)
    # side="right" never lands on a zero-weight row: its cumulative sum equals its predecessor's
    return np.searchsorted(cumulative, uniforms * cumulative[-1], side="right")


# -- the analysis --------------------------------------------------------------------------------


def plan(net: PLNet, options: DebiasOptions) -> Plan:
    """Check the options against the generator, before any Jacobian."""
    n, pool, prior, replace, seed = options.n, options.pool, options.prior, options.replace, options.seed
    top_k, proj_dim = options.top_k, options.proj_dim
    rhos = tuple(float(r) for r in options.rho) or (1.0,)
    if any(not math.isfinite(r) for r in rhos):
        raise UsageError(f"`rho` {list(rhos)}: expected finite numbers")
    if prior not in PRIORS:
        raise UsageError(f"`prior` {prior!r}: expected one of {', '.join(PRIORS)}")
    d, out_dim = net.input_dim, net.output_dim
    shape = _output_shape(options.output_shape, net)
    projection = None
    if proj_dim is not None:
        if not 1 <= proj_dim <= out_dim:
            raise UsageError(f"`proj_dim` {proj_dim}: expected 1 to {out_dim}, the generator's output size")
        projection = projection_matrix(out_dim, proj_dim, seed)
    measured_dim = min(d, out_dim if proj_dim is None else proj_dim)
    _check_top_k(top_k, measured_dim, d, proj_dim)
    _check_memory(net, pool, n, len(rhos), measured_dim)
    return Plan(
        n=n,
        pool=pool,
        rho=rhos,
        prior=prior,
        replace=replace,
        seed=seed,
        top_k=top_k,
        proj_dim=proj_dim,
        projection=projection,
        output_shape=shape,
        jacobian_mode=cheaper_mode(d, out_dim if proj_dim is None else proj_dim),
        dtype=str(net.dtype).removeprefix("torch."),
        node_names=[node.name for node in net.pl_nodes],
        node_code_bits=[node.code_bits for node in net.pl_nodes],
    )


def measure_share(
    net: PLNet,
    plan: Plan,
    rows: range,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> PoolShare:
    """Step 2 on `rows` of the pool (which every share draws whole from the seed), and G of its candidates;
    `batch_size` latents per Jacobian batch (None: sized to the memory)."""
    start = time.perf_counter()
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"`batch_size` {batch_size}: expected a positive number of latents")
    if len(rows) == 0:
        raise UsageError(
            f"rows {rows.start}:{rows.stop} of the pool hold no latent: split `pool` {plan.pool} into at "
            "most as many shares as latents"
        )
    latents = draw_pool(plan.prior, plan.pool, net.input_dim, plan.seed)[rows.start : rows.stop]
    measures = measure(net, latents, plan.top_k, plan.projection, batch_size, progress)
    candidates = rows.start + _candidates(plan, rows, measures.log_volume)
    outputs = _generate(net, latents[candidates - rows.start], batch_size)
    return PoolShare(plan, rows.start, latents, measures, candidates, outputs, time.perf_counter() - start)


def _candidates(plan: Plan, rows: range, log_volume: np.ndarray) -> np.ndarray:
    """Offsets within the share of the rows a draw can pick (see PoolShare)."""
    if plan.replace or len(rows) <= plan.n:
        return np.arange(len(rows))
    gumbel = _selection_noise(plan.seed, plan.pool, plan.n, plan.replace)[rows.start : rows.stop]
    kept = np.zeros(len(rows), dtype=bool)
    for rho in (*plan.rho, 0.0):
        keys = _log_mass(log_volume, rho) + gumbel
        # ties with the n-th largest key stay: the whole pool may order them either way
        kept |= keys >= np.partition(keys, len(keys) - plan.n)[len(keys) - plan.n]
    return np.flatnonzero(kept)


def combine(parts: Sequence[PoolShare]) -> DebiasResult:
    """Join consecutive shares of the pool and draw from it (step 3): the result of the whole run.

    `seconds` is the longest share's plus the selection's.
    """
    start = time.perf_counter()
    plan = parts[0].plan
    for before, part in zip(parts, parts[1:]):
        if part.start != before.rows.stop:
            raise UsageError(f"pool rows {before.rows.stop}:{part.start} are missing between two shares")
    if parts[0].start != 0 or parts[-1].rows.stop != plan.pool:
        raise UsageError(
            f"the shares cover rows {parts[0].start}:{parts[-1].rows.stop} of a pool of {plan.pool}"
        )
    latents = np.concatenate([p.latents for p in parts])
    measures = LatentMeasures.concatenate([p.measures for p in parts])
    candidates = np.concatenate([p.candidates for p in parts])
    outputs = np.concatenate([p.outputs for p in parts])
    chosen = select(measures.log_volume, plan.rho, plan.n, plan.replace, plan.seed)
    baseline = select(measures.log_volume, [0.0], plan.n, plan.replace, plan.seed).index[0]
    tiles, tile_index = _tiles(measures.codes)

    def generated(rows: np.ndarray) -> np.ndarray:
        at = np.searchsorted(candidates, rows)
        if not np.array_equal(candidates[np.minimum(at, len(candidates) - 1)], rows):
            raise RuntimeError("a drawn latent is not among the shares' candidates")  # see PoolShare
        return outputs[at]

    return DebiasResult(
        pool_latents=latents,
        singular_values=measures.singular_values,
        log_volume=measures.log_volume,
        tile_index=tile_index,
        tile_codes=tiles,
        node_names=plan.node_names,
        node_code_bits=plan.node_code_bits,
        rho=np.asarray(plan.rho, dtype=np.float64),
        weights=chosen.weights,
        selected_index=chosen.index,
        samples=generated(chosen.index.reshape(-1)).reshape(len(plan.rho), plan.n, -1),
        baseline_index=baseline,
        baseline_samples=generated(baseline),
        ess=chosen.ess,
        prior=plan.prior,
        replace=plan.replace,
        top_k=plan.top_k,
        proj_dim=plan.proj_dim,
        projection=plan.projection,
        output_shape=plan.output_shape,
        jacobian_mode=plan.jacobian_mode,
        seed=plan.seed,
        dtype=plan.dtype,
        warnings=chosen.warnings,
        seconds=max(p.seconds for p in parts) + time.perf_counter() - start,
    )


def run(
    net: PLNet, options: DebiasOptions = DebiasOptions(), progress: Progress | None = None
) -> DebiasResult:
    """Draw a pool of latents, measure each one's volume change, and resample it ∝ volume^ρ."""
    return combine([run_share(net, range(options.pool), options, progress)])


def run_share(
    net: PLNet, rows: range, options: DebiasOptions = DebiasOptions(), progress: Progress | None = None
) -> PoolShare:
    """What one share of a split run computes: step 2 on `rows` of the pool (`combine` joins the shares
    in pool order and draws)."""
    return measure_share(net, plan(net, options), rows, options.batch_size, progress)


@dataclass(frozen=True)
class DebiasJob:
    """One generator's pool of latents: the work a command shares out, a latent an item."""

    net: PLNet
    options: DebiasOptions = DebiasOptions()
    checkpoint_sha256: str = ""

    @property
    def total(self) -> int:
        return self.options.pool

    def compute(self, rows: range | None = None, progress: Progress | None = None) -> PoolShare:
        return run_share(self.net, range(self.total) if rows is None else rows, self.options, progress)


def _check_memory(net: PLNet, pool: int, n: int, rhos: int, singular_values: int) -> None:
    """Refuse a pool or a draw whose arrays cannot be held, before drawing it.

    Per pool latent, in float64: the latent (drawn whole by every share, then kept and joined), its
    singular values, log-volume and Gumbel key, and its weight and key under each ρ; plus its code
    bytes, kept and joined. Per draw: its index and G(z) under each ρ and the baseline.
    """
    code_bytes = math.ceil(sum(node.code_bits for node in net.pl_nodes) / 8)
    per_latent = 8 * (3 * net.input_dim + singular_values + 4 + 3 * rhos) + 2 * code_bytes
    per_draw = 8 * (rhos + 1) * (net.output_dim + 1)
    check_memory(
        pool * per_latent,
        f"`pool` {pool:,} latents of {net.input_dim} dimensions",
        "draw a smaller `pool`",
    )
    check_memory(n * per_draw, f"`n` {n:,} draws of {net.output_dim} outputs", "draw a smaller `n`")


def _check_top_k(top_k: int | None, measured_dim: int, d: int, proj_dim: int | None) -> None:
    if top_k is not None and not 1 <= top_k <= measured_dim:
        raise UsageError(
            f"`top_k` {top_k}: expected 1 to {measured_dim} (the Jacobian has min(d, D) = {measured_dim} "
            "singular values)"
        )
    if top_k is None and measured_dim < d:
        where = "`proj_dim`" if proj_dim is not None else "the generator's output"
        raise UsageError(
            f"{where} has {measured_dim} dimensions, fewer than the {d} of the latent, so every tile "
            f"collapses (volume 0); give `top_k` {measured_dim} or less"
        )


def _output_shape(output_shape: Sequence[int] | None, net: PLNet) -> tuple[int, ...]:
    if output_shape is None:
        return tuple(net.output_shape)
    shape = tuple(int(s) for s in output_shape)
    if math.prod(shape) != net.output_dim:
        raise UsageError(
            f"`output_shape` {','.join(map(str, shape))}: holds {math.prod(shape)} values but the generator "
            f"outputs {net.output_dim}"
        )
    return shape


def _tiles(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if codes.shape[1] == 0:  # no PL nodes: the whole latent space is one tile
        return codes[:1], np.zeros(len(codes), dtype=np.int64)
    unique, inverse = region_ids(torch.as_tensor(codes))
    return unique.numpy(), inverse.numpy().astype(np.int64)


@torch.no_grad()
def _generate(net: PLNet, latents: np.ndarray, chunk_size: int | None) -> np.ndarray:
    """G(z) as the model outputs it (after any output-only transform such as a sigmoid), flattened."""
    chunk = chunk_size or 4096
    parts = []
    for first in range(0, len(latents), chunk):
        z = torch.as_tensor(latents[first : first + chunk], dtype=net.dtype, device=net.device)
        out = net.apply_output_transforms(net(z))
        parts.append(out.reshape(len(z), -1).double().cpu().numpy())
    return np.concatenate(parts)
