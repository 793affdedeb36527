"""Lanczos with full reorthogonalisation: extreme eigenvalues of a symmetric PSD operator from products.

The start vector is A r for a random r, so in exact arithmetic the Krylov space lies in A's range and
the Ritz values approximate A's non-zero eigenvalues only; rounding leaves null-space components of
the order of the unit roundoff, which full reorthogonalisation keeps from growing. By Cauchy
interlacing the largest Ritz value is at most λ_max and the smallest is at least the smallest non-zero
eigenvalue, so a ratio of Ritz values never exceeds the true condition number; each Ritz value θ has
an eigenvalue within its residual bound |β_j s_j| (and within |β_j s_j|² / gap when it is isolated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from splinetool.engine.threads import one_thread

CHECK_EVERY = 10  # steps between convergence checks (each solves the tridiagonal eigenproblem)


@dataclass
class LanczosResult:
    values: np.ndarray  # Ritz values, ascending
    residuals: np.ndarray  # |β_j s_ji|: an eigenvalue of A lies within this of each Ritz value
    steps: int  # products with A
    exhausted: bool  # the Krylov space became invariant: the Ritz values are A's non-zero eigenvalues


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    k: int,
    max_steps: int,
    rtol: float,
    zero_tolerance: Callable[[float], float],
) -> LanczosResult:
    """Run until the k largest and the k smallest non-zero Ritz values have residual bounds within
    rtol of themselves, the Krylov space is exhausted, or max_steps products were made.

    `zero_tolerance(θ_max)` says below which value a Ritz value counts as zero.
    """
    dim = start.numel()
    max_steps = min(max_steps, dim)
    basis = torch.zeros((max_steps + 1, dim), dtype=start.dtype, device=start.device)
    norm = torch.linalg.vector_norm(start)
    if norm == 0:
        return LanczosResult(np.zeros(0), np.zeros(0), 0, True)
    basis[0] = start / norm
    alphas: list[float] = []
    betas: list[float] = []
    values = residuals = np.zeros(0)
    for j in range(max_steps):
        w = matvec(basis[j])
        alphas.append(float(basis[j] @ w))
        done = basis[: j + 1]
        for _ in range(2):  # twice is enough (Kahan, Parlett) to keep the basis orthonormal to roundoff
            w = w - done.T @ (done @ w)
        beta = float(torch.linalg.vector_norm(w))
        scale = max(abs(a) for a in alphas) + max(betas, default=0.0)  # bounds ‖T‖ within a factor 3
        exhausted = beta <= scale * dim * torch.finfo(start.dtype).eps
        if exhausted or (j + 1) % CHECK_EVERY == 0 or j + 1 == max_steps:
            values, vectors = _ritz(alphas, betas)
            residuals = beta * np.abs(vectors[-1])
            if exhausted:
                return LanczosResult(values, np.zeros_like(values), j + 1, True)
            if _converged(values, residuals, k, rtol, zero_tolerance(values[-1])):
                return LanczosResult(values, residuals, j + 1, False)
        betas.append(beta)
        basis[j + 1] = w / beta
    return LanczosResult(values, residuals, max_steps, False)


def _ritz(alphas: list[float], betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    t = torch.tensor(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1), dtype=torch.float64)
    with one_thread():
        values, vectors = torch.linalg.eigh(t)
    return values.numpy(), vectors.numpy()


def _converged(values: np.ndarray, residuals: np.ndarray, k: int, rtol: float, zero: float) -> bool:
    nonzero = np.flatnonzero(values > zero)
    wanted = np.union1d(nonzero[:k], nonzero[-k:])
    return len(nonzero) >= 2 * k and bool(np.all(residuals[wanted] <= rtol * values[wanted]))
