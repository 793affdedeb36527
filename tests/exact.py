"""Exact answers in rational arithmetic for small ReLU networks with integer weights, to test against.

Floats are rationals, so a network whose weights and biases are integers (or any floats) can be
evaluated exactly with `fractions.Fraction`: a unit that cancels to zero is 0, not ±1e-16.

Tiles are counted two ways, layer by layer, never in floating point: on a cell of the previous layers'
arrangement every unit of the next layer is affine, so its zero set there is a line. `exact_tile_count`
cuts the cells by those lines (polygons with rational corners); `exact_region_count` cuts only the
layers before the last, then counts the last layer's regions in each cell by formula: a convex cell
crossed by lines has 1 + L + Σ_p (m_p − 1) regions (L lines crossing its interior, m_p lines through
each interior point p where lines meet).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import torch
import torch.nn as nn

Point = tuple[Fraction, Fraction]


def integer_mlp(widths, seed: int, low: int = -2, high: int = 2, cancel: bool = False) -> nn.Sequential:
    """ReLU network with weights and biases drawn uniformly from the integers low..high.

    With `cancel`, the first layer's third unit is the sum of the first two and the second layer's
    first unit is relu(z0) + relu(z1) - relu(z2): exactly 0 wherever the three agree in sign, and
    ±1e-16 in floating point where they are all active, since z2 rounds differently from z0 + z1.
    """
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(a, b).double()
        with torch.no_grad():
            linear.weight.copy_(torch.randint(low, high + 1, (b, a), generator=g))
            linear.bias.copy_(torch.randint(low, high + 1, (b,), generator=g))
        layers.append(linear)
        if cancel and i < 2:
            _cancelling(linear, i)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def _cancelling(linear: nn.Linear, layer: int) -> None:
    if layer == 0:
        linear.weight[2] = linear.weight[0] + linear.weight[1]
        linear.bias[2] = linear.bias[0] + linear.bias[1]
    else:
        linear.weight[0] = 0.0
        linear.weight[0, :3] = torch.tensor([1.0, 1.0, -1.0])
        linear.bias[0] = 0.0


def _affine_layers(model: nn.Sequential) -> list[tuple[list[list[Fraction]], list[Fraction]]]:
    out = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            w = [[Fraction(float(v)) for v in row] for row in layer.weight.detach().tolist()]
            b = [Fraction(float(v)) for v in layer.bias.detach().tolist()]
            out.append((w, b))
    return out


def exact_codes(model: nn.Sequential, points: np.ndarray) -> np.ndarray:
    """[N, hidden units] activation bits in exact arithmetic (zero reads as 0, as PLNet.codes)."""
    layers = _affine_layers(model)[:-1]
    rows = []
    for p in points:
        h = [Fraction(float(v)) for v in p]
        bits = []
        for w, b in layers:
            z = [sum((wi * hi for wi, hi in zip(row, h)), Fraction(0)) + bi for row, bi in zip(w, b)]
            bits += [v > 0 for v in z]
            h = [max(v, Fraction(0)) for v in z]
        rows.append(bits)
    return np.array(rows, dtype=bool)


def exact_tile_count(model: nn.Sequential, bounds: tuple[float, float, float, float]) -> int:
    """Tiles of a 2-input ReLU network on the box, by cutting cells exactly, layer by layer."""
    return len(_cells(model, tuple(Fraction(float(v)) for v in bounds)))


def exact_region_count(model: nn.Sequential, bounds: tuple[float, float, float, float]) -> int:
    """Tiles by the counting formula on the previous layer's cells, independent of `exact_tile_count`
    for the last layer: 1 + L + Σ_p (m_p − 1) regions per cell."""
    layers = _affine_layers(model)[:-1]
    if len(layers) < 2:
        raise ValueError("needs two hidden layers or more")
    shallower = nn.Sequential(*list(model)[:-3], nn.Linear(1, 1))  # drop the last hidden layer
    xmin, xmax, ymin, ymax = (Fraction(float(v)) for v in bounds)
    total = 0
    for polygon, (ax, ay, c) in _cells(shallower, (xmin, xmax, ymin, ymax)):
        w, b = layers[-1]
        units = [
            (
                sum((wi * a for wi, a in zip(row, ax)), Fraction(0)),
                sum((wi * a for wi, a in zip(row, ay)), Fraction(0)),
                sum((wi * a for wi, a in zip(row, c)), Fraction(0)) + bi,
            )
            for row, bi in zip(w, b)
        ]
        lines = [line for line in _distinct_lines(units) if _crosses(polygon, line)]
        meeting: dict[Point, int] = {}
        for p, q in itertools.combinations(lines, 2):
            point = _intersection(p, q)
            if point is not None and _strictly_inside(polygon, point):
                meeting[point] = meeting.get(point, 0) + 1
        # m lines through a point make m (m - 1) / 2 pairs there: recover m from the pair count
        total += 1 + len(lines) + sum(_lines_through(pairs) - 1 for pairs in meeting.values())
    return total


def _cells(model, bounds):
    """The cells of the hidden layers' arrangement on the box: (polygon, the affine map from (x, y)
    to the last hidden layer's output on it, per coordinate and constant)."""
    xmin, xmax, ymin, ymax = bounds
    square = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax)]
    identity = ([Fraction(1), Fraction(0)], [Fraction(0), Fraction(1)], [Fraction(0), Fraction(0)])
    cells = [(square, identity)]
    for w, b in _affine_layers(model)[:-1]:
        next_cells = []
        for polygon, (ax, ay, c) in cells:
            units = [
                (
                    sum((wi * a for wi, a in zip(row, ax)), Fraction(0)),
                    sum((wi * a for wi, a in zip(row, ay)), Fraction(0)),
                    sum((wi * a for wi, a in zip(row, c)), Fraction(0)) + bi,
                )
                for row, bi in zip(w, b)
            ]
            pieces = [polygon]
            for line in _distinct_lines(units):
                pieces = [part for piece in pieces for part in _split(piece, line)]
            for piece in pieces:
                centre = _centroid(piece)
                active = [u[0] * centre[0] + u[1] * centre[1] + u[2] > 0 for u in units]
                mapped = tuple(
                    [u[j] if on else Fraction(0) for u, on in zip(units, active)] for j in range(3)
                )
                next_cells.append((piece, mapped))
        cells = next_cells
    return cells


def _lines_through(pairs: int) -> int:
    m = 2
    while m * (m - 1) // 2 < pairs:
        m += 1
    return m


def _distinct_lines(units):
    """The zero lines of the units, each once (units that are constant on the cell draw none)."""
    seen, out = set(), []
    for alpha, beta, gamma in units:
        if alpha == 0 and beta == 0:
            continue
        lead = alpha if alpha != 0 else beta
        key = (alpha / lead, beta / lead, gamma / lead)
        if key not in seen:
            seen.add(key)
            out.append((alpha, beta, gamma))
    return out


def _value(line, p: Point) -> Fraction:
    return line[0] * p[0] + line[1] * p[1] + line[2]


def _split(polygon: list[Point], line) -> list[list[Point]]:
    """The parts of a convex polygon strictly on each side of a line (the line itself is no part)."""
    values = [_value(line, p) for p in polygon]
    if all(v >= 0 for v in values) or all(v <= 0 for v in values):
        return [polygon]
    parts = []
    for side in (1, -1):
        part = []
        for i, (p, v) in enumerate(zip(polygon, values)):
            q, u = polygon[(i + 1) % len(polygon)], values[(i + 1) % len(polygon)]
            if side * v >= 0:
                part.append(p)
            if (v > 0 and u < 0) or (v < 0 and u > 0):
                t = v / (v - u)
                part.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        parts.append(part)
    return parts


def _crosses(polygon: list[Point], line) -> bool:
    values = [_value(line, p) for p in polygon]
    return any(v > 0 for v in values) and any(v < 0 for v in values)


def _intersection(p, q) -> Point | None:
    det = p[0] * q[1] - p[1] * q[0]
    if det == 0:
        return None
    return ((p[1] * q[2] - p[2] * q[1]) / det, (p[2] * q[0] - p[0] * q[2]) / det)


def _strictly_inside(polygon: list[Point], point: Point) -> bool:
    n = len(polygon)
    signs = set()
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        cross = (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])
        if cross == 0:
            return False
        signs.add(cross > 0)
    return len(signs) == 1


def _centroid(polygon: list[Point]) -> Point:
    n = len(polygon)
    return (sum(p[0] for p in polygon) / n, sum(p[1] for p in polygon) / n)
