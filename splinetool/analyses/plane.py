"""Planes of input space: x = origin + t1 * d1 + t2 * d2, with a convex domain in plane coordinates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splinetool.analyses.defaults import PLANE_LISTS
from splinetool.data.loading import Dataset, read_array
from splinetool.engine.planar import polygon_areas
from splinetool.errors import UsageError
from splinetool.parsing import numbers

__all__ = [
    "LIMIT",
    "Plane",
    "anchor_plane",
    "as_inputs",
    "input_rows",
    "box",
    "given_plane",
    "input_plane",
    "polygon_areas",
]

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
    what = what or f"`bounds` {xmin},{xmax},{ymin},{ymax}"
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
            f"the model takes {dim}-D inputs: give a plane with `anchors`, `data` with `anchor_index`, "
            "or `origin` and `directions`"
        )
    domain = box(*bounds, what=what)
    return Plane(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), domain)


def check_margin(margin: float) -> None:
    if not 1 < margin < math.inf:  # also refuses NaN
        raise UsageError(f"`margin` {margin}: expected a number greater than 1 (anchors must lie inside)")


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
    far = f"the anchors and the `margin` {margin:g} square around them"
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
    what: str = "`origin`, `directions` and `bounds`",
) -> Plane:
    """The plane origin + t1·d1 + t2·d2 over the box `bounds`; `what` names the options, for messages."""
    origin = origin.to(torch.float64).reshape(-1)
    directions = directions.to(torch.float64).reshape(2, -1)
    if directions.shape[1] != origin.shape[0]:
        raise UsageError(
            f"`directions` has {directions.shape[1]} columns but `origin` has {origin.shape[0]} entries"
        )
    if torch.linalg.matrix_rank(directions) < 2:
        raise UsageError("`directions`: the two directions are parallel (or zero): they do not span a plane")
    plane = Plane(origin, directions, box(*bounds))
    # the bounds alone may be modest while origin + t·d is not
    return _in_range(plane, what, "every corner origin + t·directions")


COUNTS = {1: "one input", 2: "two inputs", 3: "three inputs"}


def input_rows(
    array: np.ndarray, input_shape: Sequence[int], what: str, count: int, otherwise: str = ""
) -> torch.Tensor:
    """`count` inputs, given as one input or a stack, as float64 rows [count, D] of flattened inputs.

    One input is any array of D values (flat [D], the form `np.save` gives a vector, or the input
    shape); a stack is [K, D] or [K, *input_shape] (any [K, ...] of D values per row). The two
    readings agree where both fit (K = 1). `what` names the option and its file, and `otherwise`
    adds other forms the option accepts to the message.
    """
    array = np.asarray(array)
    shape, dim = list(array.shape), math.prod(input_shape)
    expected = f"expected {accepted_inputs(input_shape, count)}{otherwise}"
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise UsageError(f"{what}: array of type {array.dtype}; {expected}, real numbers")
    if array.size == dim:
        rows = array.reshape(1, dim)
    elif array.ndim >= 1 and math.prod(shape[1:]) == dim:
        rows = array.reshape(len(array), dim)
    else:
        raise UsageError(
            f"{what}: array of shape {shape} does not fit the model's inputs of shape {list(input_shape)}; "
            f"{expected}"
        )
    if len(rows) != count:
        found = "one input" if len(rows) == 1 else f"{len(rows)} inputs"
        raise UsageError(f"{what}: array of shape {shape} holds {found}; {expected}")
    if not np.isfinite(rows).all():
        raise UsageError(f"{what}: NaN or infinite values; {expected}, finite numbers")
    return torch.as_tensor(rows.astype(np.float64))


def accepted_inputs(input_shape: Sequence[int], count: int) -> str:
    """The shapes `input_rows` accepts for `count` inputs, in words."""
    lead = () if count == 1 else (count,)
    noun = COUNTS.get(count, f"{count} inputs")
    return f"{noun} of {math.prod(input_shape)} values: shape {input_shapes(input_shape, *lead)}"


def input_shapes(input_shape: Sequence[int], *lead: int | str) -> str:
    """The shapes of inputs stacked along the axes `lead`, flat and in the input shape: '[*lead, D] or
    [*lead, *input_shape]'."""
    dim, inner = math.prod(input_shape), list(input_shape)
    each = [[dim]] + ([inner] if inner != [dim] else [])
    return " or ".join("[" + ", ".join(str(size) for size in (*lead, *shape)) + "]" for shape in each)


def as_inputs(points: np.ndarray, input_dim: int, what: str) -> torch.Tensor:
    """Points as float64 rows of the model's flattened inputs; `what` names where they came from."""
    flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if flat.shape[1] != input_dim:
        raise UsageError(f"{what}: rows have {flat.shape[1]} values but the model takes {input_dim}-D inputs")
    return torch.as_tensor(flat)


# -- planes chosen by options -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaneOptions:
    """Where the planes lie: one plane (the input space of a 2-D model, `bounds`; three `anchors`, or
    rows `anchor_index` of the data; `origin` and `directions` with `bounds`) or a list of planes
    through anchors (`anchors_list`, or `anchor_index_list` rows of the data). `bounds` and
    `anchor_index` are text as options give them: 'xmin,xmax,ymin,ymax', 'i,j,k'."""

    bounds: str | None = None
    anchors: Path | None = None
    anchor_index: str | None = None
    anchors_list: Path | None = None
    anchor_index_list: Path | None = None
    margin: float = 1.25
    origin: Path | None = None
    directions: Path | None = None

    @property
    def listed(self) -> bool:
        """True for a list of planes, refusing the single-plane options beside it."""
        lists = [name for name in PLANE_LISTS if getattr(self, name) is not None]
        if not lists:
            return False
        if len(lists) == 2:
            raise UsageError("`anchors_list` and `anchor_index_list` both give the planes: use one of them")
        clash = [
            f"`{name}`" for name in ("anchors", "anchor_index", "bounds", "origin") if getattr(self, name)
        ]
        if clash:
            raise UsageError(
                f"`{lists[0]}` gives the planes (through anchors, with `margin`): drop {', '.join(clash)}"
            )
        return True

    def planes(self, input_shape: Sequence[int], dataset: Dataset | None) -> tuple[list[Plane], list | None]:
        """The planes (one, or the list's) in a model's input space, and the data rows of each plane
        of an index list."""
        if self.listed:
            return listed_planes(self, input_shape, dataset)
        return [one_plane(self, input_shape, dataset)], None


def given_inputs(path: Path, input_shape: Sequence[int], parameter: str, count: int) -> torch.Tensor:
    """The `count` inputs the file of option `parameter` holds (its array `x`), as rows [count, D]."""
    what = f"`{parameter}` {path}"
    return input_rows(read_array(path, "x", what), input_shape, what, count)


def one_plane(options: PlaneOptions, input_shape: Sequence[int], dataset: Dataset | None) -> Plane:
    """The plane the options describe; without any, the input space itself for 2-D models."""
    input_dim = math.prod(input_shape)
    bounds, anchors, anchor_index, margin = (
        options.bounds,
        options.anchors,
        options.anchor_index,
        options.margin,
    )
    origin, directions = options.origin, options.directions
    check_margin(margin)  # even where other options place the plane: a bad value is a mistake
    box = numbers(bounds, 4, "bounds")
    if anchors is not None:
        return anchor_plane(given_inputs(anchors, input_shape, "anchors", 3), margin, f"`anchors` {anchors}")
    if anchor_index is not None:
        if dataset is None:
            raise UsageError("`anchor_index` needs `data`")
        rows = numbers(anchor_index, 3, "anchor_index", int)
        if any(not 0 <= r < len(dataset.x) for r in rows):
            raise UsageError(f"`anchor_index` {anchor_index}: rows must lie in 0..{len(dataset.x) - 1}")
        points = as_inputs(dataset.x[list(rows)], input_dim, f"`data` {dataset.source}")
        return anchor_plane(points, margin, f"`data` {dataset.source} with `anchor_index` {anchor_index}")
    if (origin is None) != (directions is None):
        raise UsageError("`origin` and `directions` go together")
    if origin is not None:
        if box is None:
            raise UsageError("`origin`/`directions` need `bounds` in plane coordinates")
        o = given_inputs(origin, input_shape, "origin", 1)
        d = given_inputs(directions, input_shape, "directions", 2)
        return given_plane(
            o[0], d, box, f"`origin` {origin}, `directions` {directions} and `bounds` {bounds}"
        )
    if box is not None:
        return input_plane(input_dim, box, f"`bounds` {bounds}")
    if dataset is not None and input_dim == 2:
        return input_plane(
            input_dim, data_box(dataset), f"`data` {dataset.source} (its box, the default `bounds`)"
        )
    return input_plane(input_dim, (-1.0, 1.0, -1.0, 1.0))


def data_box(dataset: Dataset) -> tuple[float, float, float, float]:
    x = dataset.x.reshape(len(dataset.x), -1)
    lo, hi = x.min(axis=0), x.max(axis=0)
    with np.errstate(over="ignore"):  # data spanning float64's range: the plane refuses the inf box
        pad = 0.1 * np.maximum(hi - lo, 1e-9)
        return (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])


def listed_planes(
    options: PlaneOptions, input_shape: Sequence[int], dataset: Dataset | None
) -> tuple[list[Plane], list | None]:
    """The planes of `anchors_list` or `anchor_index_list`, and the data rows of each (index list only)."""
    input_dim = math.prod(input_shape)
    anchors_list, anchor_index_list, margin = options.anchors_list, options.anchor_index_list, options.margin
    check_margin(margin)
    if anchors_list is not None:
        what = f"`anchors_list` {anchors_list}"
        x = read_array(anchors_list, "x", what)
        if x.ndim < 3 or x.shape[1] != 3:
            raise UsageError(
                f"{what}: array of shape {list(x.shape)}; expected [planes, 3, ...], three inputs per plane"
            )
        triples, rows = [input_rows(t, input_shape, f"{what}, plane {i}", 3) for i, t in enumerate(x)], None
    else:
        if dataset is None:
            raise UsageError("`anchor_index_list` needs `data`")
        rows = index_rows(anchor_index_list, len(dataset.x))
        triples = [as_inputs(dataset.x[list(r)], input_dim, f"`data` {dataset.source}") for r in rows]
        what = f"`anchor_index_list` {anchor_index_list}"
    planes = [anchor_plane(triple, margin, f"{what}, plane {i}") for i, triple in enumerate(triples)]
    return planes, rows


def index_rows(path: Path, count: int) -> list[tuple[int, int, int]]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"`anchor_index_list` {path}: cannot read it as text ({error})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#")[0].replace(",", " ").strip()
        if not text:
            continue
        try:
            row = tuple(int(part) for part in text.split())
        except ValueError:
            row = ()
        if len(row) != 3:
            raise UsageError(
                f"`anchor_index_list` {path}, line {number}: expected three row numbers, found {line!r}"
            )
        if any(not 0 <= r < count for r in row):
            raise UsageError(f"`anchor_index_list` {path}, line {number}: rows must lie in 0..{count - 1}")
        rows.append(row)
    if not rows:
        raise UsageError(
            f"`anchor_index_list` {path}: no planes in it (one line of three row numbers per plane)"
        )
    return rows
