"""`splinetool slice`: the exact tiles of a 2-D slice of input space, its decision boundary, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from splinetool.analyses import slice as analysis
from splinetool.analyses.plane import Plane
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
    check_outputs,
    load_dataset,
    load_net,
    parse_device,
    print_json,
    reported_errors,
    stdout,
)
from splinetool.cli.planes import (
    AnchorIndexListOption,
    AnchorIndexOption,
    AnchorsListOption,
    AnchorsOption,
    BoundsOption,
    DirectionsOption,
    MarginOption,
    OriginOption,
    SplitOption,
    check_plane_list,
    plane_from_options,
    plane_list,
)
from splinetool.cli.sharing import check_shard, run_work, write_shard
from splinetool.data.loading import Dataset
from splinetool.errors import UsageError
from splinetool.parallel import Work

COLORS = ("jacobian", "region", "layer", "class")
IN_PLANE_TOL = 1e-6  # relative distance under which a data point is drawn as lying in the plane


def command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="TorchScript archive, .pt2 export, or state dict.")],
    bounds: BoundsOption = None,
    anchors: AnchorsOption = None,
    data: Annotated[
        str | None, typer.Option(help="Data file or generator (e.g. moons:200): drawn, and anchors.")
    ] = None,
    split: SplitOption = None,
    anchor_index: AnchorIndexOption = None,
    anchors_list: AnchorsListOption = None,
    anchor_index_list: AnchorIndexListOption = None,
    margin: MarginOption = 1.25,
    origin: OriginOption = None,
    directions: DirectionsOption = None,
    project: Annotated[bool, typer.Option(help="Draw every data point, projected onto the plane.")] = False,
    max_regions: Annotated[
        int, typer.Option(help="Stop (writing nothing) beyond this many tiles.", min=1)
    ] = 2_000_000,
    norm: Annotated[str, typer.Option(help="Norm of the input-space Jacobian per tile: 2 or fro.")] = "2",
    verify: Annotated[bool, typer.Option(help="Check every tile's code at random interior points.")] = False,
    color: Annotated[str, typer.Option(help="Tile colours: jacobian, region, layer or class.")] = "jacobian",
    jacobian_norm: Annotated[
        bool,
        typer.Option(
            "--jacobian-norm",
            help="Also compute each tile's input-space Jacobian norm (for -o; pictures coloured by "
            "jacobian compute it anyway).",
        ),
    ] = False,
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
    with reported_errors(ctx):
        if norm not in analysis.NORMS:
            raise UsageError(f"--norm {norm!r}: expected 2 or fro")
        if color not in COLORS:
            raise UsageError(f"--color {color!r}: expected one of {', '.join(COLORS)}")
        check_outputs(ctx, output, png, svg)
        many = check_plane_list(anchors_list, anchor_index_list, anchors, anchor_index, bounds, origin)
        share = check_shard(shard, output, {"--png": png, "--svg": svg})
        if share is not None and not many:
            raise UsageError(
                f"--shard {shard} splits a list of planes: give --anchors-list or --anchor-index-list"
            )
        where = parse_device(device)
        here: dict = {}  # what this process prepared, for drawing and provenance

        def prepare() -> Work:
            loaded, net = load_net(checkpoint, arch, input_shape, trust_checkpoint, device, dtype)
            dataset = load_dataset(data, split, seed)
            if many:
                planes, rows = plane_list(net.input_dim, anchors_list, anchor_index_list, dataset, margin)
            else:
                planes = [
                    plane_from_options(
                        net.input_dim, bounds, anchors, dataset, anchor_index, margin, origin, directions
                    )
                ]
                rows = None
            here.update(loaded=loaded, dataset=dataset, planes=planes, rows=rows)

            def compute(items: range, report) -> analysis.SliceList:
                # one plane: the bar follows the share of its area finished; a list: planes
                by_area = (
                    None
                    if report is None or many
                    else lambda done, total, tiles: report(done, total, f"({tiles:,} tiles in the group)")
                )
                options = dict(
                    max_regions=max_regions,
                    norm=norm,
                    verify_samples=4 if verify else 0,
                    seed=seed,
                    jacobian_norm=jacobian_norm or (color == "jacobian" and (png or svg) is not None),
                    progress=by_area,
                )
                if not many and output is not None:
                    return analysis.SliceList(
                        [_streamed(net, planes[0], options, output, loaded, where, seed)]
                    )
                slices = []
                for i in items:
                    slices.append(analysis.run(net, planes[i], **options))
                    if many and report is not None:
                        report(len(slices), len(items))
                return analysis.SliceList(slices)

            return Work(len(planes), compute)

        outcome = run_work(prepare, share, where, quiet, "slicing", "planes" if many else "‰ of the area")
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


def _streamed(net, plane: Plane, options: dict, output: Path, loaded, device, seed) -> analysis.SliceResult:
    """Slice one plane with each finished group of tiles appended to `output` as it comes."""
    from splinetool.io import Provenance, stream

    with stream(output, Provenance("slice", sys.argv, loaded.sha256, str(device), seed)) as appender:
        result = analysis.run(net, plane, sink=appender.append, **options)
        appender.finish(result)
    return result


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
    """Pictures of one plane; its tiles are already in `output` when it was given."""
    if png is not None or svg is not None:
        from splinetool.render.slice import draw_slice, draw_slice_file, save_figure

        title = str(loaded.path.name)
        if result.streamed is not None:
            figure = draw_slice_file(output, color=color, data=points, labels=labels, title=title)
        else:
            figure = draw_slice(result, color=color, data=points, labels=labels, title=title)
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
        f"length {summary['boundary_length']:.4g}; {summary['seconds']:.2f} s "
        f"({summary['tiles_per_second']:,.0f} tiles/s, peak memory "
        f"{summary['peak_memory_bytes'] / 2**20:,.0f} MiB)",
        soft_wrap=True,
    )
    if result.verify is not None:
        v = result.verify
        verdict = "[green]ok[/]" if v["passed"] else f"[bold red]{v['tiles_mismatched']} tiles MISMATCHED[/]"
        stdout.print(f"verify: {v['points']:,} interior points in {v['tiles_checked']:,} tiles {verdict}")
