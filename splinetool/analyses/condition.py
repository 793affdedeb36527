"""`condition`: singular values of the local loss landscape of each layer and of each block's map.

Riedi, Balestriero & Baraniuk (Constructive Approximation, 2023). Under the squared loss
L = (1/n) Σ ‖y_i − f(x_i)‖², with every activation pattern held fixed, f is affine in one layer's
parameters θ (f(x_i) = J_i θ + c_i), so L is exactly quadratic in θ with Hessian
H = (2/n) Σ J_iᵀ J_i = (2/n) JᵀJ. H does not depend on the targets; they set L and its gradient.

Per layer: H's non-zero eigenvalues are (2/n) times those of the smaller of JᵀJ (params × params)
and JJᵀ (points·outputs square). When that side is at most `max_dense`, the Gram matrix is formed
and decomposed: every eigenvalue, the numerical rank (eigenvalues above λ_max · side · eps, numpy's
matrix_rank rule applied to the decomposed matrix) and the count of zero eigenvalues
(params − rank). Otherwise Lanczos on matrix-free products (J v then Jᵀ u) gives the k largest and
the k smallest non-zero eigenvalues with residual bounds; its condition number is then a lower bound
(exact once converged), and the rank is known only when the Krylov space was exhausted.

Per block (engine/blocks.py says what a block is): the Jacobian of the block's map at each point
(`D W` for a plain layer, `I + D W` with a skip), its singular values and κ = σ_max / σ_min over the
min(in, out) singular values; the block is singular at a point when σ_min ≤ σ_max · max(in, out) ·
eps (κ = ∞ there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from splinetool.analyses import Progress
from splinetool.analyses.defaults import (
    DEFAULT_BLOCK_POINTS,
    DEFAULT_K,
    DEFAULT_LANCZOS_STEPS,
    DEFAULT_MAX_DENSE,
)
from splinetool.data.loading import read_array
from splinetool.engine.blocks import block_singular_values, find_blocks
from splinetool.engine.lanczos import lanczos
from splinetool.engine.layer_jacobian import LayerJacobian, ParameterLayer, parameter_layers
from splinetool.engine.memory import MEMORY_BUDGET
from splinetool.errors import UsageError
from splinetool.ir import PLNet

DEFAULT_RTOL = 1e-6  # a Lanczos eigenvalue counts as converged when its residual bound is this relative


@dataclass
class LayerSpectrum:
    name: str
    op: str
    params: int
    rows: int  # points × outputs: J is rows × params
    method: str  # "dense JᵀJ", "dense JJᵀ" or "lanczos"
    eigenvalues: np.ndarray  # of H, descending: all of the smaller side's (dense), or Ritz values
    residuals: np.ndarray  # bound on the distance to an eigenvalue of H (zeros when exact)
    tolerance: float  # eigenvalues at or below it count as zero
    exact: bool  # every non-zero eigenvalue of H is in `eigenvalues` (dense, or an exhausted Krylov space)
    lanczos_steps: int  # products with H (0 for dense)
    gradient_norm: float | None  # ‖∂L/∂θ‖ (None without targets)

    @property
    def nonzero(self) -> np.ndarray:
        return self.eigenvalues[self.eigenvalues > self.tolerance]

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[0]) if len(self.eigenvalues) else 0.0

    @property
    def lambda_min_nonzero(self) -> float | None:
        return float(self.nonzero.min()) if len(self.nonzero) else None

    @property
    def condition_number(self) -> float | None:
        low = self.lambda_min_nonzero
        return self.lambda_max / low if low else None

    @property
    def rank(self) -> int | None:
        return len(self.nonzero) if self.exact else None

    @property
    def converged(self) -> bool:
        wanted = self.eigenvalues > self.tolerance
        return bool(np.all(self.residuals[wanted] <= DEFAULT_RTOL * self.eigenvalues[wanted]))

    def summary(self) -> dict:
        rank = self.rank
        return {
            "name": self.name,
            "op": self.op,
            "params": self.params,
            "method": self.method,
            "lambda_max": self.lambda_max,
            "lambda_min_nonzero": self.lambda_min_nonzero,
            "condition_number": self.condition_number,
            "condition_number_is_lower_bound": not self.exact and not self.converged,
            "rank": rank,
            "rank_upper_bound": min(self.params, self.rows),
            "zero_eigenvalues": None if rank is None else self.params - rank,
            "tolerance": self.tolerance,
            "lanczos_steps": self.lanczos_steps,
            "gradient_norm": self.gradient_norm,
        }


@dataclass
class BlockSpectrum:
    name: str
    residual: bool
    in_dim: int
    out_dim: int
    step_names: list[str]
    singular_values: np.ndarray  # [points, min(in, out)], descending per point

    @property
    def tolerance(self) -> np.ndarray:
        top = self.singular_values[:, 0] if self.singular_values.shape[1] else np.zeros(0)
        return top * max(self.in_dim, self.out_dim) * np.finfo(self.singular_values.dtype).eps

    @property
    def singular(self) -> np.ndarray:
        return self.singular_values[:, -1] <= self.tolerance

    @property
    def kappa(self) -> np.ndarray:
        """σ_max / σ_min at each point, ∞ where the block is singular."""
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = self.singular_values[:, 0] / self.singular_values[:, -1]
        return np.where(self.singular, np.inf, kappa)

    def summary(self) -> dict:
        kappa = self.kappa
        finite = kappa[np.isfinite(kappa)]
        return {
            "name": self.name,
            "residual": self.residual,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            # percentiles over every point, singular ones counting as ∞ (null in JSON)
            "kappa_median": _finite(np.percentile(kappa, 50, method="lower")) if len(kappa) else None,
            "kappa_p95": _finite(np.percentile(kappa, 95, method="higher")) if len(kappa) else None,
            "kappa_max": _finite(kappa.max()) if len(kappa) else None,
            "kappa_max_nonsingular": float(finite.max()) if len(finite) else None,
            "singular_share": float(self.singular.mean()) if len(kappa) else None,
            "sigma_max_median": float(np.median(self.singular_values[:, 0])) if len(kappa) else None,
        }


@dataclass
class ModelCondition:
    checkpoint: str
    checkpoint_sha256: str
    loss: float | None
    layers: list[LayerSpectrum]
    blocks: list[BlockSpectrum]
    block_points: np.ndarray  # rows of the data the blocks were measured at

    def summary(self) -> dict:
        return {
            "checkpoint": self.checkpoint,
            "loss": self.loss,
            "layers": [layer.summary() for layer in self.layers],
            "blocks": [block.summary() for block in self.blocks],
        }


@dataclass
class ConditionResult:
    models: list[ModelCondition]
    points: int
    outputs: int
    targets: str  # where the targets came from, in words
    max_dense: int
    k: int
    lanczos_steps: int
    seed: int
    dtype: str
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "points": self.points,
            "outputs": self.outputs,
            "targets": self.targets,
            "max_dense": self.max_dense,
            "k": self.k,
            "max_lanczos_steps": self.lanczos_steps,
            "seed": self.seed,
            "dtype": self.dtype,
            "models": [m.summary() for m in self.models],
            "seconds": self.seconds,
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# -- targets -----------------------------------------------------------------------------------------


class Targets(NamedTuple):
    values: np.ndarray | None  # [n, outputs], or None: no loss and gradient reported
    source: str  # what they are, for the reader


NO_TARGETS = Targets(None, "none")


def targets_for(
    labels: np.ndarray | None, source: str, points: int, outputs: int, regression: Path | None = None
) -> Targets:
    """The loss's targets: regression targets from the file `regression` (a .npy array, or the `y` of
    an .npz, .h5 or .pt file); else the data's `y` (`labels`, from the data file `source`): floating
    values with one column per output ([n, outputs], or [n] for one output) are regression targets,
    anything else class labels made one-hot; else none."""
    if regression is not None:
        what = f"`targets` {regression}"
        values = regression_targets(read_array(regression, "y", what), points, outputs, what)
        return Targets(values, f"regression targets from {regression}")
    if labels is None:
        return Targets(None, "none (the data has no labels y): the loss and gradients are not reported")
    if _regression_shaped(labels, outputs):
        labels_instead = f", or integer class indices 0..{max(outputs, 2) - 1} as labels, or `targets`"
        values = regression_targets(labels, points, outputs, f"y in {source}", labels_instead)
        return Targets(values, f"regression targets y from {source}")
    return Targets(one_hot(labels, outputs, source), "one-hot class labels y")


def _regression_shaped(labels: np.ndarray, outputs: int) -> bool:
    """Whether the data's `y` reads as regression targets: floating, with one column per output, or
    with columns no class label has (at least two: a wrong width is then refused as such)."""
    if not np.issubdtype(labels.dtype, np.floating):
        return False  # integers and booleans stay class labels
    if labels.ndim == 1:
        return outputs == 1
    return labels.ndim == 2 and (labels.shape[1] > 1 or outputs == 1)


def regression_targets(y: np.ndarray, n: int, outputs: int, what: str, otherwise: str = "") -> np.ndarray:
    """Regression targets [n, outputs] (float64) from `y` of shape [n, outputs], or [n] for a
    one-output model; `what` names where they came from and `otherwise` what else would do, for
    messages."""
    y = np.asarray(y)
    accepted = [[n, outputs]] + ([[n]] if outputs == 1 else [])
    shapes = " or ".join(str(shape) for shape in accepted)
    plural = "s" if outputs != 1 else ""
    expected = f"expected regression targets of shape {shapes} ({n} data points, {outputs} output{plural})"
    expected += otherwise
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool) or np.iscomplexobj(y):
        raise UsageError(f"{what} has values of type {y.dtype}; {expected}")
    if list(y.shape) not in accepted:
        raise UsageError(f"{what} has shape {list(y.shape)}; {expected}")
    if not np.isfinite(y).all():
        raise UsageError(f"{what} has NaN or infinite values; {expected}")
    return y.reshape(n, outputs).astype(np.float64)


def one_hot(labels: np.ndarray, outputs: int, source: str = "the data") -> np.ndarray:
    """Class labels 0..outputs-1 (one per point: [n] or [n, 1]) as one-hot rows; a single-output
    (binary) model's targets are 0 or 1. `source` names where the labels came from, for messages."""
    labels = np.asarray(labels)
    classes = max(outputs, 2)
    expected = (
        f"y in {source} must hold class indices 0..{classes - 1}, one per point (the model has {outputs} "
        "outputs); for regression give floating y, one column per output, or `targets`"
    )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if labels.ndim != 1:
        raise UsageError(f"{expected}; found an array of shape {list(labels.shape)}")
    # strings, objects and complex numbers are no class indices; neither are NaN or inf
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise UsageError(f"{expected}; found labels of type {labels.dtype}")
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(labels).all() and np.array_equal(np.round(labels), labels)
    if not whole or labels.min(initial=0) < 0 or labels.max(initial=0) >= classes:
        raise UsageError(expected)
    as_int = labels.astype(np.int64)
    return as_int[:, None].astype(np.float64) if outputs == 1 else np.eye(outputs)[as_int]


# -- per layer ---------------------------------------------------------------------------------------


def layer_spectrum(
    net: PLNet,
    layer: ParameterLayer,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    max_dense: int = DEFAULT_MAX_DENSE,
    k: int = DEFAULT_K,
    lanczos_steps: int = DEFAULT_LANCZOS_STEPS,
    seed: int = 0,
    memory: int = MEMORY_BUDGET,  # bytes of Jacobian rows, suffix Jacobians or points per chunk
) -> LayerSpectrum:
    n = x.shape[0]
    jac = LayerJacobian(net, layer, x, _chunk(net, memory), memory)
    side = min(jac.params, jac.rows)
    eps = torch.finfo(net.dtype).eps
    gradient = None
    if targets is not None:
        with torch.no_grad():
            residual = net(x).reshape(n, -1) - targets
        gradient = float(torch.linalg.vector_norm(jac.vjp(residual))) * 2 / n
    if side <= max_dense and _fits(jac, memory):
        gram, method = _gram(jac, memory)
        eigenvalues = torch.linalg.eigvalsh(gram).flip(0).cpu().numpy() * 2 / n
        tolerance = max(float(eigenvalues[0]), 0.0) * side * eps
        return LayerSpectrum(
            layer.name, layer.op, jac.params, jac.rows, method, eigenvalues, np.zeros_like(eigenvalues),
            tolerance, True, 0, gradient,
        )  # fmt: skip
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if jac.params <= jac.rows:
        dim, matvec = jac.params, lambda v: jac.vjp(jac.jvp(v))
    else:
        dim, matvec = jac.rows, lambda u: jac.jvp(jac.vjp(u.reshape(n, -1))).reshape(-1)
    start = matvec(torch.randn(dim, generator=generator, dtype=net.dtype).to(net.device))
    found = lanczos(matvec, start, k, lanczos_steps, DEFAULT_RTOL, lambda top: max(top, 0.0) * side * eps)
    values, residuals = found.values[::-1] * 2 / n, found.residuals[::-1] * 2 / n
    tolerance = max(float(values[0]), 0.0) * side * eps if len(values) else 0.0
    nonzero = np.flatnonzero(values > tolerance)
    keep = np.union1d(nonzero[:k], nonzero[-k:]) if not found.exhausted else nonzero
    return LayerSpectrum(
        layer.name, layer.op, jac.params, jac.rows, "lanczos", values[keep], residuals[keep], tolerance,
        found.exhausted, found.steps + 1, gradient,
    )  # fmt: skip


def _chunk(net: PLNet, memory: int) -> int:
    itemsize = torch.finfo(net.dtype).bits // 8
    widest = max([net.input_dim] + [math.prod(s.out_shape) for s in net.steps])
    return max(1, memory // (4 * widest * itemsize))


def _fits(jac: LayerJacobian, memory: int) -> bool:
    itemsize = jac.theta.element_size()
    if jac.params <= jac.rows:
        return jac.params**2 * itemsize <= 4 * memory
    return jac.rows * jac.params * itemsize <= 4 * memory  # JJᵀ needs J whole


def _gram(jac: LayerJacobian, memory: int) -> tuple[torch.Tensor, str]:
    per_point = jac.outputs * jac.params * jac.theta.element_size()
    chunk = max(1, memory // per_point)
    if jac.params <= jac.rows:
        gram = torch.zeros((jac.params, jac.params), dtype=jac.theta.dtype, device=jac.theta.device)
        for rows in jac.row_chunks(chunk):
            gram += rows.T @ rows
        return gram, "dense JᵀJ"
    j = torch.cat(list(jac.row_chunks(chunk)))
    return j @ j.T, "dense JJᵀ"


# -- the analysis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionOptions:
    layers: Sequence[str] | None = None  # parameterised nodes to analyse (None: every one)
    max_dense: int = DEFAULT_MAX_DENSE
    k: int = DEFAULT_K
    lanczos_steps: int = DEFAULT_LANCZOS_STEPS
    block_points: int | None = DEFAULT_BLOCK_POINTS  # None: every point
    seed: int = 0


def run(
    nets: Sequence[PLNet],
    x: np.ndarray,
    targets: Targets = NO_TARGETS,
    options: ConditionOptions = ConditionOptions(),
    checkpoints: Sequence[str] | None = None,
    checkpoint_sha256: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ConditionResult:
    """Layer Hessian spectra and block Jacobian singular values of each network on the same points.

    `x` is [n, ...] (flattened per sample as the networks need). `options.block_points` points (a
    seeded random subset, all of them when None or when there are fewer) are used for the blocks.
    """
    begin = time.perf_counter()
    layers, max_dense, k, lanczos_steps = options.layers, options.max_dense, options.k, options.lanczos_steps
    block_points, seed = options.block_points, options.seed
    if k < 1:
        raise UsageError(f"`k` {k}: expected a positive number of eigenvalues")
    if max_dense < 0:
        raise UsageError(f"`max_dense` {max_dense}: expected a number >= 0")
    if lanczos_steps < 1:
        raise UsageError(f"`lanczos_steps` {lanczos_steps}: expected a positive number")
    if block_points is not None and block_points < 1:
        raise UsageError(f"`block_points` {block_points}: expected a positive number")
    if len(x) == 0:
        raise UsageError("no data points: the `data` file is empty")
    outputs = {net.output_dim for net in nets}
    if len(outputs) != 1:
        raise UsageError(
            f"the models have different numbers of outputs ({sorted(outputs)}): compare like with like"
        )
    n = len(x)
    rows = np.arange(n)
    if block_points is not None and block_points < n:
        rows = np.sort(np.random.default_rng(seed % 2**64).choice(n, block_points, replace=False))
    plans = [_selected_layers(net, layers) for net in nets]
    total = sum(len(p) + 1 for p in plans)
    done = 0
    models = []
    for m, (net, chosen) in enumerate(zip(nets, plans)):
        name = checkpoints[m] if checkpoints else f"#{m}"
        xt = _inputs(net, x)
        yt = (
            None
            if targets.values is None
            else torch.as_tensor(targets.values, dtype=net.dtype, device=net.device)
        )
        loss = None
        if yt is not None:
            with torch.no_grad():
                loss = float(((net(xt).reshape(n, -1) - yt) ** 2).sum(dim=1).mean())
        spectra = []
        for layer in chosen:
            if progress is not None:
                progress(done, total, f"{name}: {layer.name}")
            spectra.append(layer_spectrum(net, layer, xt, yt, max_dense, k, lanczos_steps, seed))
            done += 1
        if progress is not None:
            progress(done, total, f"{name}: blocks")
        blocks = find_blocks(net)
        values = block_singular_values(net, blocks, xt[torch.as_tensor(rows)]) if blocks else []
        block_spectra = [
            BlockSpectrum(b.name, b.residual, b.in_dim, b.out_dim, list(b.step_names), v.cpu().numpy())
            for b, v in zip(blocks, values)
        ]
        done += 1
        sha = checkpoint_sha256[m] if checkpoint_sha256 else ""
        models.append(ModelCondition(name, sha, loss, spectra, block_spectra, rows))
    if progress is not None:
        progress(done, total, "")
    return ConditionResult(
        models, n, outputs.pop(), targets.source, max_dense, k, lanczos_steps, seed,
        str(nets[0].dtype).removeprefix("torch."), time.perf_counter() - begin,
    )  # fmt: skip


def _selected_layers(net: PLNet, names: Sequence[str] | None) -> list[ParameterLayer]:
    found = parameter_layers(net)
    if names is None:
        return found
    by_name = {layer.name: layer for layer in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(
            f"`layers` {', '.join(unknown)}: no such parameterised layer; this model has {', '.join(by_name)}"
        )
    return [by_name[n] for n in names]


def _inputs(net: PLNet, x: np.ndarray) -> torch.Tensor:
    if math.prod(x.shape[1:]) != net.input_dim:
        raise UsageError(
            f"the data's points have {math.prod(x.shape[1:])} values each, the model takes {net.input_dim} "
            f"(input shape {net.input_shape})"
        )
    return torch.as_tensor(x.reshape(len(x), *net.input_shape), dtype=net.dtype, device=net.device)
