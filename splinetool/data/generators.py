"""Built-in 2-D toy data sets, drawn by name.

Every generator is a function `(n, rng, **options) -> (x, y)` registered in `GENERATORS`; call them
through `generate`, which checks the name and options and seeds numpy's default generator, so the same
(name, n, seed, options) always gives the same points.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np

from splinetool.errors import UsageError


def _nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"generator option '{name}' must be a number >= 0, got {value!r}")
    return float(value)


def _weights(value: object) -> np.ndarray:
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        p = np.empty(0)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise UsageError(f"generator option 'weights' must list numbers >= 0, not all 0; got {value!r}")
    return p


def _balanced_labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    # Equal class sizes (up to one point) in random order, so any prefix is also roughly balanced.
    return rng.permutation(np.arange(n) % classes)


def moons(n: int, rng: np.random.Generator, *, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles of radius 1, classes 0 and 1 of equal size.

    Class 0 is the upper half circle centred at (0, 0); class 1 the lower one centred at (1, 0.5).
    Angles are uniform on [0, pi]; isotropic Gaussian noise of standard deviation `noise` is added.
    """
    noise = _nonnegative("noise", noise)
    y = _balanced_labels(n, 2, rng)
    t = rng.uniform(0.0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower)
    return x + noise * rng.standard_normal((n, 2)), y


def spiral(
    n: int, rng: np.random.Generator, *, turns: float = 1.5, noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Two-arm spiral, classes 0 and 1 of equal size, one per arm.

    A point at parameter t ~ U[0, 1] has radius t and angle 2*pi*turns*t, plus pi for class 1, so both
    arms start at the origin and end on the unit circle; Gaussian noise of std `noise` is added.
    """
    turns = _nonnegative("turns", turns)
    noise = _nonnegative("noise", noise)
    y = _balanced_labels(n, 2, rng)
    t = rng.uniform(0.0, 1.0, n)
    angle = 2.0 * np.pi * turns * t + np.pi * y
    x = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x + noise * rng.standard_normal((n, 2)), y


def star(
    n: int, rng: np.random.Generator, *, arms: int = 5, noise: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Star-shaped distribution: points along `arms` (5) straight arms radiating from the origin.

    Arm k points at angle pi/2 + 2*pi*k/arms (the first arm points straight up); a point lies at a
    radius uniform on [0.1, 1.0] along its arm, plus isotropic Gaussian noise of std `noise` (0.03).
    The label is the arm index; arms hold equal numbers of points (up to one).
    """
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 1:
        raise UsageError(f"generator option 'arms' must be an integer >= 1, got {arms!r}")
    noise = _nonnegative("noise", noise)
    y = _balanced_labels(n, arms, rng)
    angle = np.pi / 2 + 2.0 * np.pi * y / arms
    radius = rng.uniform(0.1, 1.0, n)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x + noise * rng.standard_normal((n, 2)), y


def gaussian_mixture(
    n: int,
    rng: np.random.Generator,
    *,
    components: int | None = None,
    weights: Sequence[float] | None = None,
    radius: float = 1.0,
    std: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussians (std `std`) centred evenly on a circle of radius `radius`.

    Component k sits at angle 2*pi*k/K. `weights` (any non-negative numbers, normalised) sets how
    likely each component is and K = len(weights); otherwise K = `components` (default 3), equally
    weighted. The label is the component index.
    """
    if weights is None:
        k = 3 if components is None else components
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UsageError(f"generator option 'components' must be an integer >= 1, got {k!r}")
        weights = [1.0] * k
    p = _weights(weights)
    if components is not None and components != p.size:
        raise UsageError(f"generator options disagree: components={components} but {p.size} weights")
    radius = _nonnegative("radius", radius)
    std = _nonnegative("std", std)
    y = rng.choice(p.size, size=n, p=p / p.sum())
    angle = 2.0 * np.pi * y / p.size
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2)), y


GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "moons": moons,
    "spiral": spiral,
    "star": star,
    "gaussian-mixture": gaussian_mixture,
}


def generate(name: str, n: int, seed: int = 0, **options) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` points of a built-in data set: x float64 [n, 2], integer labels y int64 [n]."""
    if name not in GENERATORS:
        raise UsageError(f"unknown data generator {name!r}; built-in generators: {', '.join(GENERATORS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"the number of points to generate must be an integer >= 1, got {n!r}")
    valid = [p for p in inspect.signature(GENERATORS[name]).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - {p.name for p in valid})
    if unknown:
        listing = ", ".join(f"{p.name}={p.default!r}" for p in valid)
        raise UsageError(f"generator '{name}' has no option(s) {', '.join(unknown)}; its options: {listing}")
    # numpy takes non-negative seeds: a negative seed maps to its 64-bit pattern
    x, y = GENERATORS[name](int(n), np.random.default_rng(seed % 2**64), **options)
    return x.astype(np.float64), y.astype(np.int64)
