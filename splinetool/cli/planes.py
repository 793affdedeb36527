"""Options that place a 2-D plane in input space, shared by the commands that work on planes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from splinetool.analyses.plane import Plane, anchor_plane, check_margin, given_plane, input_plane
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
AnchorsListOption = Annotated[
    Path | None,
    typer.Option(
        help="Many planes: a .npy/.npz/.h5/.pt array x of shape [planes, 3, ...], three inputs per plane.",
        show_default=False,
    ),
]
AnchorIndexListOption = Annotated[
    Path | None,
    typer.Option(
        help="Many planes: a text file with one plane per line, three rows of --data "
        "(i,j,k or i j k; # starts a comment).",
        show_default=False,
    ),
]
DirectionsOption = Annotated[Path | None, typer.Option(help="File with the plane's two directions.")]


def plane_from_options(
    input_dim: int, bounds, anchors, dataset: Dataset | None, anchor_index, margin, origin, directions
) -> Plane:
    """The plane the options describe; without any, the input space itself for 2-D models."""
    check_margin(margin)  # even where other options place the plane: a bad value is a mistake
    box = parse_floats(bounds, 4, "--bounds")
    if anchors is not None:
        points = load_data(str(anchors)).x
        if len(points) != 3:
            raise UsageError(f"--anchors {anchors}: expected exactly three inputs, found {len(points)}")
        what = f"--anchors {anchors}"
        return anchor_plane(as_inputs(points, input_dim, what), margin, what)
    if anchor_index is not None:
        if dataset is None:
            raise UsageError("--anchor-index needs --data")
        rows = parse_ints(anchor_index, 3, "--anchor-index")
        if any(not 0 <= r < len(dataset.x) for r in rows):
            raise UsageError(f"--anchor-index {anchor_index}: rows must lie in 0..{len(dataset.x) - 1}")
        points = as_inputs(dataset.x[list(rows)], input_dim, f"--data {dataset.source}")
        return anchor_plane(points, margin, f"--data {dataset.source} with --anchor-index {anchor_index}")
    if (origin is None) != (directions is None):
        raise UsageError("--origin and --directions go together")
    if origin is not None:
        if box is None:
            raise UsageError("--origin/--directions need --bounds in plane coordinates")
        o, d = load_data(str(origin)).x, load_data(str(directions)).x
        if o.size != input_dim or d.size != 2 * input_dim:
            raise UsageError(
                f"--origin {origin} and --directions {directions}: expected one input and two inputs of "
                f"{input_dim} values each, found {o.size} and {d.size} values"
            )
        o = as_inputs(o.reshape(1, -1), input_dim, f"--origin {origin}")
        d = as_inputs(d.reshape(2, -1), input_dim, f"--directions {directions}")
        return given_plane(
            o[0], d, box, f"--origin {origin}, --directions {directions} and --bounds {bounds}"
        )
    if box is not None:
        return input_plane(input_dim, box, f"--bounds {bounds}")
    if dataset is not None and input_dim == 2:
        return input_plane(
            input_dim, data_box(dataset), f"--data {dataset.source} (its box, the default --bounds)"
        )
    return input_plane(input_dim, (-1.0, 1.0, -1.0, 1.0))


def as_inputs(points: np.ndarray, input_dim: int, what: str) -> torch.Tensor:
    flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if flat.shape[1] != input_dim:
        raise UsageError(f"{what}: rows have {flat.shape[1]} values but the model takes {input_dim}-D inputs")
    return torch.as_tensor(flat)


def data_box(dataset: Dataset) -> tuple[float, float, float, float]:
    x = dataset.x.reshape(len(dataset.x), -1)
    lo, hi = x.min(axis=0), x.max(axis=0)
    with np.errstate(over="ignore"):  # data spanning float64's range: the plane refuses the inf box
        pad = 0.1 * np.maximum(hi - lo, 1e-9)
        return (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])


def check_plane_list(anchors_list, anchor_index_list, anchors, anchor_index, bounds, origin) -> bool:
    """True for a list of planes, refusing the single-plane options beside it."""
    given = [
        name
        for name, value in (("--anchors-list", anchors_list), ("--anchor-index-list", anchor_index_list))
        if value is not None
    ]
    if not given:
        return False
    if len(given) == 2:
        raise UsageError("--anchors-list and --anchor-index-list both give the planes: use one of them")
    single = {"--anchors": anchors, "--anchor-index": anchor_index, "--bounds": bounds, "--origin": origin}
    clash = [name for name, value in single.items() if value is not None]
    if clash:
        raise UsageError(
            f"{given[0]} gives the planes (through anchors, with --margin): drop {', '.join(clash)}"
        )
    return True


def plane_list(
    input_dim, anchors_list, anchor_index_list, dataset, margin
) -> tuple[list[Plane], list | None]:
    """The planes of --anchors-list or --anchor-index-list, and the data rows of each (index list only)."""
    check_margin(margin)
    if anchors_list is not None:
        what = f"--anchors-list {anchors_list}"
        x = load_data(str(anchors_list)).x
        if x.ndim < 3 or x.shape[1] != 3:
            raise UsageError(
                f"{what}: array of shape {list(x.shape)}; expected [planes, 3, ...], three inputs per plane"
            )
        triples, rows = [as_inputs(t, input_dim, what) for t in x], None
    else:
        if dataset is None:
            raise UsageError("--anchor-index-list needs --data")
        rows = index_rows(anchor_index_list, len(dataset.x))
        triples = [as_inputs(dataset.x[list(r)], input_dim, f"--data {dataset.source}") for r in rows]
        what = f"--anchor-index-list {anchor_index_list}"
    planes = [anchor_plane(triple, margin, f"{what}, plane {i}") for i, triple in enumerate(triples)]
    return planes, rows


def index_rows(path: Path, count: int) -> list[tuple[int, int, int]]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--anchor-index-list {path}: cannot read it as text ({error})") from None
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
                f"--anchor-index-list {path}, line {number}: expected three row numbers, found {line!r}"
            )
        if any(not 0 <= r < count for r in row):
            raise UsageError(f"--anchor-index-list {path}, line {number}: rows must lie in 0..{count - 1}")
        rows.append(row)
    if not rows:
        raise UsageError(
            f"--anchor-index-list {path}: no planes in it (one line of three row numbers per plane)"
        )
    return rows
