"""Planes of input space: x = origin + t1 * d1 + t2 * d2, with a convex domain in plane coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from splinetool.engine.planar import polygon_areas
from splinetool.errors import UsageError

__all__ = ["LIMIT", "Plane", "anchor_plane", "box", "given_plane", "input_plane", "polygon_areas"]

# The largest magnitude a plane coordinate, or an input point of the plane, may have. Areas, the
# shoelace formula and squared distances multiply two coordinates: below 1e150 their products stay
# below 1e300, inside float64's range (up to 1.8e308) with room for the sums and the network's
# weights; beyond it a plane's area is inf and its tiles' areas NaN.
LIMIT = 1e150


@dataclass
class Plane:
    origin: torch.Tensor  # [D]
    directions: torch.Tensor  # [2, D]
    domain: torch.Tensor  # [P, 2] convex polygon, counter-clockwise
    anchors: torch.Tensor | None = None  # [3, 2] plane coordinates of the anchors, when built from them

    def to_input(self, t: torch.Tensor) -> torch.Tensor:
        return self.origin[None, :] + t @ self.directions

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Plane coordinates of points x [N, D] and their distance to the plane."""
        x = x.to(self.origin.dtype).reshape(x.shape[0], -1)
        t = torch.linalg.lstsq(self.directions.T, (x - self.origin).T).solution.T
        return t, (x - self.to_input(t)).norm(dim=1)

    @property
    def area(self) -> float:
        return float(polygon_areas(self.domain[None], torch.tensor([len(self.domain)]))[0])


def box(
    xmin: float, xmax: float, ymin: float, ymax: float, dtype=torch.float64, what: str | None = None
) -> torch.Tensor:
    """The rectangle's corners, counter-clockwise; `what` names where the bounds came from."""
    what = what or f"--bounds {xmin},{xmax},{ymin},{ymax}"
    if not (xmin < xmax and ymin < ymax):  # also refuses NaN
        raise UsageError(f"{what}: expected xmin < xmax and ymin < ymax")
    _refuse_far(max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)), what, "bounds")
    return torch.tensor([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=dtype)


def _refuse_far(reach: float, what: str, expected: str) -> None:
    """Refuse a plane reaching beyond LIMIT in magnitude (inf and NaN included)."""
    if not reach <= LIMIT:
        raise UsageError(
            f"{what}: the plane reaches {reach:.3g}, too far for float64 geometry (areas and squared "
            f"distances multiply two coordinates, and float64 ends near 1.8e308); expected {expected} "
            f"within ±{LIMIT:.0e}"
        )


def check_reach(points: torch.Tensor, what: str) -> torch.Tensor:
    """The points (segment ends, samples), once known to lie within ±LIMIT in every coordinate."""
    reach = float(points.abs().max()) if points.numel() else 0.0
    if not reach <= LIMIT:
        raise UsageError(
            f"{what}: the points reach {reach:.3g}, too far for float64 geometry (lengths and squared "
            f"distances multiply two coordinates, and float64 ends near 1.8e308); expected inputs within "
            f"±{LIMIT:.0e}"
        )
    return points


def _in_range(plane: Plane, what: str, expected: str) -> Plane:
    """The plane, once its domain's corners are known to map to input points within ±LIMIT.

    The map to input space is affine, so over the convex domain each |x_i| is largest at a corner.
    """
    _refuse_far(float(plane.to_input(plane.domain).abs().max()), what, expected)
    return plane


def input_plane(dim: int, bounds: tuple[float, float, float, float], what: str | None = None) -> Plane:
    """The input space itself, for models with 2-D inputs; `what` names where the bounds came from."""
    if dim != 2:
        raise UsageError(
            f"the model takes {dim}-D inputs: give a plane with --anchors, --data with --anchor-index, "
            "or --origin and --directions"
        )
    domain = box(*bounds, what=what)
    return Plane(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), domain)


def check_margin(margin: float) -> None:
    if not 1 < margin < math.inf:  # also refuses NaN
        raise UsageError(f"--margin {margin}: expected a number greater than 1 (anchors must lie inside)")


def anchor_plane(anchors: torch.Tensor, margin: float = 1.25, what: str | None = None) -> Plane:
    """The plane through three inputs (Gram–Schmidt on the two edges, centroid as origin).

    The domain is the square centred on the centroid whose half-width is `margin` times the largest
    distance from the centroid to an anchor, so every anchor lies inside at 1/margin of the way out.
    `what` names where the anchors came from, for messages.
    """
    a = anchors.to(torch.float64).reshape(3, -1)
    check_margin(margin)
    prefix = f"{what}: " if what else ""
    where = what or "the anchors"
    far = f"the anchors and the --margin {margin:g} square around them"
    # before any arithmetic, as the centroid and edges of anchors near float64's end overflow
    _refuse_far(float(a.abs().max()), where, far)
    origin = a.mean(dim=0)
    e1, e2 = a[1] - a[0], a[2] - a[0]
    scale = max(float(e1.norm()), float(e2.norm()), 1e-300)
    u1 = e1 / e1.norm().clamp(min=1e-300)
    w = e2 - (e2 @ u1) * u1
    if float(e1.norm()) <= 1e-12 * scale or float(w.norm()) <= 1e-9 * scale:
        raise UsageError(f"{prefix}the three anchors are collinear (or repeated): they do not span a plane")
    directions = torch.stack([u1, w / w.norm()])
    t = (a - origin) @ directions.T
    half = margin * float(t.norm(dim=1).max())
    _refuse_far(half, where, far)
    return _in_range(Plane(origin, directions, box(-half, half, -half, half), anchors=t), where, far)


def given_plane(
    origin: torch.Tensor,
    directions: torch.Tensor,
    bounds: tuple[float, float, float, float],
    what: str = "--origin, --directions and --bounds",
) -> Plane:
    """The plane origin + t1·d1 + t2·d2 over the box `bounds`; `what` names the options, for messages."""
    origin = origin.to(torch.float64).reshape(-1)
    directions = directions.to(torch.float64).reshape(2, -1)
    if directions.shape[1] != origin.shape[0]:
        raise UsageError(
            f"--directions has {directions.shape[1]} columns but --origin has {origin.shape[0]} entries"
        )
    if torch.linalg.matrix_rank(directions) < 2:
        raise UsageError("--directions: the two directions are parallel (or zero): they do not span a plane")
    plane = Plane(origin, directions, box(*bounds))
    # the bounds alone may be modest while origin + t·d is not
    return _in_range(plane, what, "every corner origin + t·directions")
