"""Planes of input space: x = origin + t1 * d1 + t2 * d2, with a convex domain in plane coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from splinetool.engine.planar import polygon_areas
from splinetool.errors import UsageError

__all__ = ["Plane", "anchor_plane", "box", "given_plane", "input_plane", "polygon_areas"]


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


def box(xmin: float, xmax: float, ymin: float, ymax: float, dtype=torch.float64) -> torch.Tensor:
    if not (xmin < xmax and ymin < ymax):
        raise UsageError(f"--bounds {xmin},{xmax},{ymin},{ymax}: expected xmin < xmax and ymin < ymax")
    return torch.tensor([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=dtype)


def input_plane(dim: int, bounds: tuple[float, float, float, float]) -> Plane:
    """The input space itself, for models with 2-D inputs."""
    if dim != 2:
        raise UsageError(
            f"the model takes {dim}-D inputs: give a plane with --anchors, --data with --anchor-index, "
            "or --origin and --directions"
        )
    return Plane(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), box(*bounds))


def anchor_plane(anchors: torch.Tensor, margin: float = 1.25) -> Plane:
    """The plane through three inputs (Gram–Schmidt on the two edges, centroid as origin).

    The domain is the square centred on the centroid whose half-width is `margin` times the largest
    distance from the centroid to an anchor, so every anchor lies inside at 1/margin of the way out.
    """
    a = anchors.to(torch.float64).reshape(3, -1)
    if margin <= 1:
        raise UsageError(f"--margin {margin}: expected a number greater than 1 (anchors must lie inside)")
    origin = a.mean(dim=0)
    e1, e2 = a[1] - a[0], a[2] - a[0]
    scale = max(float(e1.norm()), float(e2.norm()), 1e-300)
    u1 = e1 / e1.norm().clamp(min=1e-300)
    w = e2 - (e2 @ u1) * u1
    if float(e1.norm()) <= 1e-12 * scale or float(w.norm()) <= 1e-9 * scale:
        raise UsageError("the three anchors are collinear (or repeated): they do not span a plane")
    directions = torch.stack([u1, w / w.norm()])
    t = (a - origin) @ directions.T
    half = margin * float(t.norm(dim=1).max())
    return Plane(origin, directions, box(-half, half, -half, half), anchors=t)


def given_plane(
    origin: torch.Tensor, directions: torch.Tensor, bounds: tuple[float, float, float, float]
) -> Plane:
    origin = origin.to(torch.float64).reshape(-1)
    directions = directions.to(torch.float64).reshape(2, -1)
    if directions.shape[1] != origin.shape[0]:
        raise UsageError(
            f"--directions has {directions.shape[1]} columns but --origin has {origin.shape[0]} entries"
        )
    if torch.linalg.matrix_rank(directions) < 2:
        raise UsageError("--directions: the two directions are parallel (or zero): they do not span a plane")
    return Plane(origin, directions, box(*bounds))
