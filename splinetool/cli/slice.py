"""`splinetool slice`: the exact tiles of a 2-D slice of input space, its decision boundary, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.table import Table

from splinetool.analyses import slice as analysis
from splinetool.analyses.plane import Plane, anchor_plane, given_plane, input_plane
from splinetool.cli.common import (
    ArchOption,
    ConfigOption,
    DeviceOption,
    DtypeOption,
    InputShapeOption,
    JsonOption,
    OutputOption,
    PngOption,
    QuietOption,
    SeedOption,
    ShardOption,
    SvgOption,
    TrustOption,
    load_net,
    parse_device,
    parse_floats,
    parse_ints,
    print_json,
    reported_errors,
    stdout,
)
from splinetool.cli.sharing import check_shard, run_work, write_shard
from splinetool.data.loading import Dataset, load_data
from splinetool.errors import UsageError
from splinetool.parallel import Work

COLORS = ("jacobian", "region", "layer", "class")
IN_PLANE_TOL = 1e-6  # relative distance under which a data point is drawn as lying in the plane


def command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="TorchScript archive, .pt2 export, or state dict.")],
    bounds: Annotated[
        str | None,
        typer.Option(
            help="xmin,xmax,ymin,ymax in plane coordinates (2-D inputs, or with --origin/--directions)."
        ),
    ] = None,
    anchors: Annotated[
        Path | None, typer.Option(help="File with three inputs: the plane through them.")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data file or generator (e.g. moons:200): drawn, and anchors.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="train or test, for data files holding both.")] = None,
    anchor_index: Annotated[str | None, typer.Option(help="i,j,k: three rows of --data as anchors.")] = None,
    anchors_list: Annotated[
        Path | None,
        typer.Option(
            help="Slice many planes: a .npy/.npz/.h5/.pt array x of shape [planes, 3, ...], three inputs "
            "per plane.",
            show_default=False,
        ),
    ] = None,
    anchor_index_list: Annotated[
        Path | None,
        typer.Option(
            help="Slice many planes: a text file with one plane per line, three rows of --data "
            "(i,j,k or i j k; # starts a comment).",
            show_default=False,
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option(help="Half-width of the square domain / largest anchor radius.")
    ] = 1.25,
    origin: Annotated[Path | None, typer.Option(help="File with the plane's origin (one input).")] = None,
    directions: Annotated[Path | None, typer.Option(help="File with the plane's two directions.")] = None,
    project: Annotated[bool, typer.Option(help="Draw every data point, projected onto the plane.")] = False,
    max_regions: Annotated[
        int, typer.Option(help="Stop (writing nothing) beyond this many tiles.", min=1)
    ] = 2_000_000,
    norm: Annotated[str, typer.Option(help="Norm of the input-space Jacobian per tile: 2 or fro.")] = "2",
    verify: Annotated[bool, typer.Option(help="Check every tile's code at random interior points.")] = False,
    color: Annotated[str, typer.Option(help="Tile colours: jacobian, region, layer or class.")] = "jacobian",
    arch: ArchOption = None,
    input_shape: InputShapeOption = None,
    trust_checkpoint: TrustOption = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float64",
    seed: SeedOption = 0,
    shard: ShardOption = None,
    output: OutputOption = None,
    png: PngOption = None,
    svg: SvgOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Exact linear regions of the network on a 2-D slice of its input space, and its decision boundary.

    The plane is the input space itself (2-D models, --bounds), the plane through three inputs
    (--anchors, or --data with --anchor-index) on a square scaled by --margin, or --origin and
    --directions with --bounds. With --anchors-list or --anchor-index-list, each plane of the list
    through its three anchors (one result per plane); the planes split into shares under torchrun
    and with --shard.
    """
    with reported_errors():
        if norm not in analysis.NORMS:
            raise UsageError(f"--norm {norm!r}: expected 2 or fro")
        if color not in COLORS:
            raise UsageError(f"--color {color!r}: expected one of {', '.join(COLORS)}")
        many = _check_plane_list(anchors_list, anchor_index_list, anchors, anchor_index, bounds, origin)
        share = check_shard(shard, output, {"--png": png, "--svg": svg})
        if share is not None and not many:
            raise UsageError(
                f"--shard {shard} splits a list of planes: give --anchors-list or --anchor-index-list"
            )
        where = parse_device(device)
        here: dict = {}  # what this process prepared, for drawing and provenance

        def prepare() -> Work:
            loaded, net = load_net(checkpoint, arch, input_shape, trust_checkpoint, device, dtype)
            dataset = load_data(data, split=split, seed=seed) if data else None
            if many:
                planes, rows = _plane_list(net.input_dim, anchors_list, anchor_index_list, dataset, margin)
            else:
                planes = [
                    _plane(net.input_dim, bounds, anchors, dataset, anchor_index, margin, origin, directions)
                ]
                rows = None
            here.update(loaded=loaded, dataset=dataset, planes=planes, rows=rows)

            def compute(items: range, report) -> analysis.SliceList:
                # one plane: the bar follows its PL nodes; a list: the bar counts planes
                by_node = (
                    None
                    if report is None or many
                    else lambda done, total, tiles: report(done, total, f"({tiles:,} tiles)")
                )
                slices = []
                for i in items:
                    slices.append(
                        analysis.run(
                            net,
                            planes[i],
                            max_regions=max_regions,
                            norm=norm,
                            verify_samples=4 if verify else 0,
                            seed=seed,
                            progress=by_node,
                        )
                    )
                    if many and report is not None:
                        report(len(slices), len(items))
                return analysis.SliceList(slices)

            return Work(len(planes), compute)

        outcome = run_work(prepare, share, where, quiet, "slicing", "planes" if many else "PL nodes")
        if outcome is None:
            return  # a rank other than 0: rank 0 reports
        loaded = here["loaded"]
        if share is not None:
            write_shard(ctx, outcome, "slice", "slice", output, loaded.sha256, where, seed, json, quiet)
            return
        if many:
            _many(outcome.result, here, output, png, svg, color, project, device, seed, json, quiet)
            return
        result = outcome.result.slices[0]
        points, labels = _points_in_plane(here["planes"][0], here["dataset"], project)
        _write(result, loaded, output, png, svg, color, points, labels, device, seed)
    summary = result.summary()
    if json:
        print_json(summary)
    elif not quiet:
        _print(result, summary)
    if result.verify is not None and not result.verify["passed"]:
        raise typer.Exit(1)


def _check_plane_list(anchors_list, anchor_index_list, anchors, anchor_index, bounds, origin) -> bool:
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


def _plane_list(
    input_dim, anchors_list, anchor_index_list, dataset, margin
) -> tuple[list[Plane], list | None]:
    """The planes of --anchors-list or --anchor-index-list, and the data rows of each (index list only)."""
    if anchors_list is not None:
        what = f"--anchors-list {anchors_list}"
        x = load_data(str(anchors_list)).x
        if x.ndim < 3 or x.shape[1] != 3:
            raise UsageError(
                f"{what}: array of shape {list(x.shape)}; expected [planes, 3, ...], three inputs per plane"
            )
        triples, rows = [_as_inputs(t, input_dim, what) for t in x], None
    else:
        if dataset is None:
            raise UsageError("--anchor-index-list needs --data")
        rows = _index_rows(anchor_index_list, len(dataset.x))
        triples = [_as_inputs(dataset.x[list(r)], input_dim, f"--data {dataset.source}") for r in rows]
        what = f"--anchor-index-list {anchor_index_list}"
    planes = []
    for i, triple in enumerate(triples):
        try:
            planes.append(anchor_plane(triple, margin))
        except UsageError as error:
            raise UsageError(f"{what}, plane {i}: {error}") from None
    return planes, rows


def _index_rows(path: Path, count: int) -> list[tuple[int, int, int]]:
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


def _plane(input_dim, bounds, anchors, dataset, anchor_index, margin, origin, directions) -> Plane:
    box = parse_floats(bounds, 4, "--bounds")
    if anchors is not None:
        points = load_data(str(anchors)).x
        if len(points) != 3:
            raise UsageError(f"--anchors {anchors}: expected exactly three inputs, found {len(points)}")
        return anchor_plane(_as_inputs(points, input_dim, f"--anchors {anchors}"), margin)
    if anchor_index is not None:
        if dataset is None:
            raise UsageError("--anchor-index needs --data")
        rows = parse_ints(anchor_index, 3, "--anchor-index")
        if any(not 0 <= r < len(dataset.x) for r in rows):
            raise UsageError(f"--anchor-index {anchor_index}: rows must lie in 0..{len(dataset.x) - 1}")
        return anchor_plane(_as_inputs(dataset.x[list(rows)], input_dim, f"--data {dataset.source}"), margin)
    if (origin is None) != (directions is None):
        raise UsageError("--origin and --directions go together")
    if origin is not None:
        if box is None:
            raise UsageError("--origin/--directions need --bounds in plane coordinates")
        o = _as_inputs(load_data(str(origin)).x.reshape(1, -1), input_dim, f"--origin {origin}")
        d = _as_inputs(load_data(str(directions)).x.reshape(2, -1), input_dim, f"--directions {directions}")
        return given_plane(o[0], d, box)
    if box is None:
        box = _data_box(dataset) if dataset is not None and input_dim == 2 else (-1.0, 1.0, -1.0, 1.0)
    return input_plane(input_dim, box)


def _as_inputs(points: np.ndarray, input_dim: int, what: str) -> torch.Tensor:
    flat = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if flat.shape[1] != input_dim:
        raise UsageError(f"{what}: rows have {flat.shape[1]} values but the model takes {input_dim}-D inputs")
    return torch.as_tensor(flat)


def _data_box(dataset: Dataset) -> tuple[float, float, float, float]:
    x = dataset.x.reshape(len(dataset.x), -1)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-9)
    return (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])


def _points_in_plane(plane: Plane, dataset: Dataset | None, project: bool):
    if dataset is None:
        return None, None
    x = torch.as_tensor(dataset.x.reshape(len(dataset.x), -1), dtype=torch.float64)
    if x.shape[1] != plane.origin.shape[0]:
        dims = plane.origin.shape[0]
        raise UsageError(
            f"--data {dataset.source}: rows have {x.shape[1]} values, the plane lives in {dims}-D"
        )
    t, distance = plane.project(x)
    scale = max(1.0, float(x.abs().max()))
    keep = torch.ones_like(distance, dtype=torch.bool) if project else distance <= IN_PLANE_TOL * scale
    labels = None if dataset.y is None else dataset.y[keep.numpy()]
    return t[keep].numpy(), labels


def _write(result, loaded, output, png, svg, color, points, labels, device, seed) -> None:
    if output is not None:
        from splinetool.io import Provenance, write

        provenance = Provenance("slice", sys.argv, loaded.sha256, str(device), seed)
        write(output, {"slice": result}, provenance)
    if png is not None or svg is not None:
        from splinetool.render.slice import draw_slice, save_figure

        figure = draw_slice(result, color=color, data=points, labels=labels, title=str(loaded.path.name))
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)


def _many(result: analysis.SliceList, here, output, png, svg, color, project, device, seed, json, quiet):
    """Outputs of a plane list: one run file, a picture per plane, a summary per plane."""
    loaded, planes, rows = here["loaded"], here["planes"], here["rows"]
    if output is not None:
        from splinetool.io import Provenance, write

        write(output, {"slice": result}, Provenance("slice", sys.argv, loaded.sha256, str(device), seed))
    if png is not None or svg is not None:
        from splinetool.render.slice import draw_slice, save_figure

        for i, (one, plane) in enumerate(zip(result.slices, planes)):
            points, labels = _points_in_plane(plane, here["dataset"], project)
            figure = draw_slice(
                one, color=color, data=points, labels=labels, title=f"{loaded.path.name}, plane {i}"
            )
            for path in (png, svg):
                if path is not None:
                    save_figure(figure, plane_file(path, i))
    summary = result.summary()
    for i, entry in enumerate(summary["slices"]):
        entry["plane"] = i
        if rows is not None:
            entry["anchor_index"] = list(rows[i])
    if json:
        print_json(summary)
    elif not quiet:
        table = Table(title=f"{len(result.slices)} planes", title_justify="left")
        for column in ("plane", "anchors", "regions", "boundary segments", "boundary length", "seconds"):
            table.add_column(column, justify="left" if column == "anchors" else "right")
        for i, entry in enumerate(summary["slices"]):
            table.add_row(
                str(i),
                ",".join(map(str, rows[i])) if rows is not None else "–",
                f"{entry['regions']:,}",
                f"{entry['boundary_segments']:,}",
                f"{entry['boundary_length']:.4g}",
                f"{entry['seconds']:.2f}",
            )
        stdout.print(table)
    failed = [i for i, one in enumerate(result.slices) if one.verify is not None and not one.verify["passed"]]
    if failed:
        raise typer.Exit(1)


def plane_file(path: Path, index: int) -> Path:
    """The picture of plane `index` of a list: NAME-0003.png for --png NAME.png."""
    return path.with_name(f"{path.stem}-{index:04d}{path.suffix}")


def _print(result: analysis.SliceResult, summary: dict) -> None:
    table = Table(title="tiles after each PL node (prefix networks)", title_justify="left")
    table.add_column("PL node")
    table.add_column("tiles", justify="right")
    for name, tiles in summary["tiles_per_node"].items():
        table.add_row(name, f"{tiles:,}")
    stdout.print(table)
    stdout.print(
        f"{summary['regions']:,} regions covering {summary['covered_area']:.6g} of the domain's "
        f"{summary['domain_area']:.6g}; decision boundary: {summary['boundary_segments']:,} segments, "
        f"length {summary['boundary_length']:.4g}; {summary['seconds']:.2f} s",
        soft_wrap=True,
    )
    if result.verify is not None:
        v = result.verify
        verdict = "[green]ok[/]" if v["passed"] else f"[bold red]{v['tiles_mismatched']} tiles MISMATCHED[/]"
        stdout.print(f"verify: {v['points']:,} interior points in {v['tiles_checked']:,} tiles {verdict}")
