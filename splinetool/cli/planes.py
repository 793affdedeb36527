"""Options that place a 2-D plane in input space, shared by the commands that work on planes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from splinetool.analyses.plane import Plane, anchor_plane, given_plane, input_plane
from splinetool.cli.common import parse_floats, parse_ints
from splinetool.data.loading import Dataset, load_data
from splinetool.errors import UsageError

BoundsOption = Annotated[
    str | None,
    typer.Option(
        help="xmin,xmax,ymin,ymax in plane coordinates (2-D inputs, or with --origin and --directions)"
    ),
]
AnchorsOption = Annotated[Path | None, typer.Option(help="File with three inputs: the plane through them.")]
SplitOption = Annotated[str | None, typer.Option(help="train or test, for data files holding both.")]
AnchorIndexOption = Annotated[str | None, typer.Option(help="i,j,k: three rows of --data as anchors.")]
MarginOption = Annotated[float, typer.Option(help="Half-width of the square domain / largest anchor radius.")]
OriginOption = Annotated[Path | None, typer.Option(help="File with the plane's origin (one input).")]
DirectionsOption = Annotated[Path | None, typer.Option(help="File with the plane's two directions.")]


def plane_from_options(
    input_dim: int, bounds, anchors, dataset: Dataset | None, anchor_index, margin, origin, directions
) -> Plane:
    """The plane the options describe; without any, the input space itself for 2-D models."""
    box = parse_floats(bounds, 4, "--bounds")
    if anchors is not None:
        points = load_data(str(anchors)).x
        if len(points) != 3:
            raise UsageError(f"--anchors {anchors}: expected exactly three inputs, found {len(points)}")
        return anchor_plane(as_inputs(points, input_dim, f"--anchors {anchors}"), margin)
    if anchor_index is not None:
        if dataset is None:
            raise UsageError("--anchor-index needs --data")
        rows = parse_ints(anchor_index, 3, "--anchor-index")
        if any(not 0 <= r < len(dataset.x) for r in rows):
            raise UsageError(f"--anchor-index {anchor_index}: rows must lie in 0..{len(dataset.x) - 1}")
        return anchor_plane(as_inputs(dataset.x[list(rows)], input_dim, f"--data {dataset.source}"), margin)
    if (origin is None) != (directions is None):
        raise UsageError("--origin and --directions go together")
    if origin is not None:
        if box is None:
            raise UsageError("--origin/--directions need --bounds in plane coordinates")
        o = as_inputs(load_data(str(origin)).x.reshape(1, -1), input_dim, f"--origin {origin}")
        d = as_inputs(load_data(str(directions)).x.reshape(2, -1), input_dim, f"--directions {directions}")
        return given_plane(o[0], d, box)
    if box is None:
        box = data_box(dataset) if dataset is not None and input_dim == 2 else (-1.0, 1.0, -1.0, 1.0)
    return input_plane(input_dim, box)


def as_inputs(points: np.ndarray, input_dim: int, what: str) -> torch.Tensor:
    flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if flat.shape[1] != input_dim:
        raise UsageError(f"{what}: rows have {flat.shape[1]} values but the model takes {input_dim}-D inputs")
    return torch.as_tensor(flat)


def data_box(dataset: Dataset) -> tuple[float, float, float, float]:
    x = dataset.x.reshape(len(dataset.x), -1)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-9)
    return (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
