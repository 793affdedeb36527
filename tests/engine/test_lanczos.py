"""Lanczos: extreme eigenvalues of known symmetric PSD matrices, from products alone."""

import numpy as np
import pytest
import torch

from splinetool.engine.lanczos import lanczos

F64 = torch.float64


def zero_below(theta_max: float) -> float:
    return 1e-10 * theta_max


def run(matrix: torch.Tensor, k: int, max_steps: int, rtol: float = 1e-10, seed: int = 0):
    r = torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(seed), dtype=F64)
    return lanczos(lambda v: matrix @ v, matrix @ r, k, max_steps, rtol, zero_below)


def random_psd(eigenvalues: np.ndarray, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(
            len(eigenvalues), len(eigenvalues), generator=torch.Generator().manual_seed(seed), dtype=F64
        )
    )
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=F64)) @ q.T


def test_a_diagonal_matrix_gives_its_non_zero_eigenvalues_once_the_space_is_exhausted():
    # rank 12 of 20: the Krylov space of A r lies in A's range, so the zeros never appear
    eigenvalues = np.concatenate([np.arange(1.0, 13.0), np.zeros(8)])
    found = run(torch.diag(torch.tensor(eigenvalues, dtype=F64)), k=3, max_steps=20)
    assert found.exhausted and found.steps == 12
    np.testing.assert_allclose(found.values, np.arange(1.0, 13.0), rtol=1e-10)
    assert (found.residuals == 0).all()


def test_extremes_of_a_random_symmetric_matrix_match_eigvalsh():
    rng = np.random.default_rng(1)
    eigenvalues = np.concatenate([np.sort(rng.uniform(1.0, 100.0, 300)), np.zeros(100)])
    matrix = random_psd(eigenvalues, seed=1)
    truth = torch.linalg.eigvalsh(matrix).numpy()
    nonzero = truth[truth > 1e-8]
    k = 4
    found = run(matrix, k=k, max_steps=400, rtol=1e-8, seed=2)
    assert not found.exhausted and found.steps < 300  # converged before spanning the range
    # rounding may leave a Ritz value of the null space, at the order of roundoff: not counted
    ritz = found.values[found.values > zero_below(found.values[-1])]
    assert len(found.values) - len(ritz) <= 1
    np.testing.assert_allclose(ritz[-k:], nonzero[-k:], rtol=1e-8)
    np.testing.assert_allclose(ritz[:k], nonzero[:k], rtol=1e-8)
    # every Ritz value has an eigenvalue within its residual bound, and interlacing holds
    for value, bound in zip(found.values, found.residuals):
        assert np.min(np.abs(truth - value)) <= bound + 1e-9 * truth[-1]
    assert ritz[-1] <= truth[-1] * (1 + 1e-12) and ritz[0] >= nonzero[0] * (1 - 1e-12)


def test_a_short_run_stops_at_max_steps_within_the_spectrum():
    eigenvalues = np.linspace(1.0, 50.0, 200)
    matrix = random_psd(eigenvalues, seed=3)
    found = run(matrix, k=3, max_steps=15, rtol=1e-12)
    assert found.steps == 15 and not found.exhausted and len(found.values) == 15
    assert found.values[0] >= 1.0 - 1e-9 and found.values[-1] <= 50.0 + 1e-9
    assert found.values[-1] == pytest.approx(50.0, rel=1e-2)


def test_a_zero_start_gives_nothing():
    found = lanczos(lambda v: v, torch.zeros(5, dtype=F64), 2, 5, 1e-8, zero_below)
    assert found.exhausted and found.steps == 0 and len(found.values) == 0
