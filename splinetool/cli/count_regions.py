"""`splinetool count-regions`: exact region counts on segments and planes, sampled estimates, sweeps."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.markup import escape
from rich.table import Table

from splinetool import parallel
from splinetool.analyses import count_regions as analysis
from splinetool.analyses import count_regions_sweep as sweeps
from splinetool.analyses.plane import check_reach
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
    parse_dtype,
    parse_floats,
    parse_ints,
    print_json,
    progress_bar,
    reported_errors,
    stdout,
)
from splinetool.cli.planes import (
    AnchorIndexListOption,
    AnchorIndexOption,
    AnchorsListOption,
    AnchorsOption,
    DirectionsOption,
    MarginOption,
    OriginOption,
    SplitOption,
    as_inputs,
    check_plane_list,
    plane_from_options,
    plane_list,
)
from splinetool.cli.sharing import check_shard, run_work, write_shard
from splinetool.data.loading import Dataset, load_data
from splinetool.errors import UsageError
from splinetool.parallel import Work

GROUP = "count"
MAX_PAIRS = 10_000_000
RANDOM_PAIRS = re.compile(r"random:(\d+)")


def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            help="TorchScript archive, .pt2 export, or state dict (not with --sweep).", show_default=False
        ),
    ] = None,
    segment: Annotated[
        Path | None,
        typer.Option(help="File with two inputs (one segment), or an array [S, 2, ...] of S segments."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Data file or generator: ends of --pairs, anchors, or where to --sample."),
    ] = None,
    split: SplitOption = None,
    pairs: Annotated[
        str | None,
        typer.Option(help="Segments between rows of --data: 'i,j' for one, 'random:N' for N random pairs."),
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="1-D inputs: lo,hi (the segment). Otherwise the plane's xmin,xmax,ymin,ymax (2-D inputs, "
            "or with --origin/--directions); with --sample, the box to sample in."
        ),
    ] = None,
    anchors: AnchorsOption = None,
    anchor_index: AnchorIndexOption = None,
    anchors_list: AnchorsListOption = None,
    anchor_index_list: AnchorIndexListOption = None,
    margin: MarginOption = 1.25,
    origin: OriginOption = None,
    directions: DirectionsOption = None,
    sample: Annotated[
        int | None,
        typer.Option(help="Estimate by sampling this many points instead of counting exactly.", min=1),
    ] = None,
    around: Annotated[
        str,
        typer.Option(help="Where --sample draws: bbox (the data's bounding box, or --bounds), box or ball."),
    ] = "bbox",
    radius: Annotated[
        float | None,
        typer.Option(
            help="Half-width of the --around box or ball (default: 0.1 × the RMS distance of the data to "
            "its mean).",
            show_default=False,
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            help="Sweep file (configs/sweeps/*.toml): count random-initialised networks, no checkpoint."
        ),
    ] = None,
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
    """Count the network's linear regions: exactly on segments (1-D) and planes (2-D), or by sampling.

    Segments: --segment FILE, --data with --pairs i,j or random:N, or --bounds lo,hi for a model with
    1-D inputs; the result is the breakpoints along each segment, its pieces, and the distinct regions
    the segments cross together. Planes: the options of `slice`; the tiles are counted without being
    kept. Every count is also given for each prefix network (PL nodes 1..k).

    --sample N estimates in any dimension: the distinct activation codes among N random points are a
    lower bound on the regions of the sampled domain. Beside it, the Chao1 estimate
    S + f1(f1 - 1) / (2(f2 + 1)) (f1, f2: codes seen once, twice) extrapolates to the unseen regions,
    assuming the points are independent and every region has a chance of being hit proportional to its
    share of the sampling distribution. It is itself a lower-bound estimator and says nothing of regions
    too small to be hit; with f2 = 0 it is unreliable.

    --sweep FILE counts random-initialised networks of one family over depths at a fixed neuron budget
    and seeds, on the same plane or segments, and plots count against depth and width.
    """
    with reported_errors(ctx):
        check_outputs(ctx, output, png, svg)
        if sweep is not None:
            result, label = _sweep(checkpoint, sweep, locals(), device, dtype, quiet)
            sha = ""
        else:
            if checkpoint is None:
                raise UsageError("give a checkpoint to count, or --sweep FILE to count random networks")
            many = check_plane_list(anchors_list, anchor_index_list, anchors, anchor_index, bounds, origin)
            share = check_shard(shard, output, {"--png": png, "--svg": svg, "--sample": sample})
            if sample is not None and parallel.world() is not None and parallel.world().size > 1:
                raise UsageError("--sample counts codes over all its points in one process: run it alone")
            where = parse_device(device)
            here: dict = {}

            def prepare() -> Work:
                loaded, net = load_net(checkpoint, arch, input_shape, trust_checkpoint, device, dtype)
                dataset = load_dataset(data, split, seed)
                here["loaded"] = loaded
                single = {"--anchors": anchors, "--anchor-index": anchor_index, "--origin": origin}
                planes_given = [name for name, value in single.items() if value is not None]
                planes_given += ["--anchors-list or --anchor-index-list"] if many else []
                if sample is not None:
                    _refuse(planes_given + _given(segment=segment, pairs=pairs), "--sample")
                    points, how = _samples(net.input_dim, sample, around, radius, bounds, dataset, seed)
                    check_reach(points, _source(None, bounds, dataset))
                    return Work(1, lambda items, report: analysis.count_sampled(net, points, how, report))
                if segment is not None or pairs is not None or (bounds is not None and net.input_dim == 1):
                    _refuse(planes_given, "segments")
                    starts, ends = _segments(net.input_dim, segment, pairs, bounds, dataset, seed)
                    check_reach(torch.cat([starts, ends]), _source(segment, bounds, dataset))
                    return Work(
                        len(starts),
                        lambda items, report: analysis.count_segments(
                            net, _part(starts, items), _part(ends, items), progress=report
                        ),
                    )
                if many:
                    planes, _ = plane_list(net.input_dim, anchors_list, anchor_index_list, dataset, margin)
                else:
                    planes = [
                        plane_from_options(
                            net.input_dim, bounds, anchors, dataset, anchor_index, margin, origin, directions
                        )
                    ]
                return Work(
                    len(planes),
                    lambda items, report: analysis.count_planes(net, _part(planes, items), progress=report),
                )

            unit = "segments" if segment is not None or pairs is not None else "planes" if many else ""
            outcome = run_work(prepare, share, where, quiet, "counting", unit)
            if outcome is None:
                return  # a rank other than 0: rank 0 reports
            result = outcome.result
            label, sha = here["loaded"].path.name, here["loaded"].sha256
            if share is not None:
                write_shard(ctx, outcome, "count-regions", GROUP, output, sha, where, seed, json, quiet)
                return
        _write(result, output, png, svg, label, sha, device, seed)
    if json:
        print_json(result.summary())
    elif not quiet:
        (_print_sweep if isinstance(result, sweeps.SweepResult) else _print)(result, label)


def _part(items_of_all, items: range):
    return items_of_all[items.start : items.stop]


def _given(**options) -> list[str]:
    return [f"--{name}" for name, value in options.items() if value is not None]


def _refuse(given: list[str], mode: str) -> None:
    if given:
        raise UsageError(f"{', '.join(given)} cannot be combined with {mode}: choose one way to count")


def _sweep(checkpoint, path: Path, options: dict, device: str, dtype: str, quiet: bool):
    if options["shard"] is not None or (parallel.world() is not None and parallel.world().size > 1):
        raise UsageError("a --sweep runs in one process: drop --shard and run it without torchrun")
    if checkpoint is not None:
        raise UsageError(f"--sweep builds its own networks: drop the checkpoint {checkpoint}")
    measure = (
        "segment",
        "data",
        "pairs",
        "bounds",
        "anchors",
        "anchor_index",
        "anchors_list",
        "anchor_index_list",
        "origin",
        "sample",
        "arch",
    )
    given = [f"--{name.replace('_', '-')}" for name in measure if options[name] is not None]
    if given:
        raise UsageError(f"--sweep takes where to count from its file, not from {', '.join(given)}")
    plan = sweeps.load_sweep(path)
    with progress_bar(quiet, "sweep", "networks") as report:
        result = sweeps.run(plan, parse_device(device), parse_dtype(dtype), report)
    return result, path.name


def _segments(input_dim, segment, pairs, bounds, dataset: Dataset | None, seed: int):
    if segment is not None and pairs is not None:
        raise UsageError("--segment and --pairs both give segments: choose one")
    if segment is not None:
        x = np.asarray(load_data(str(segment)).x, dtype=np.float64)
        if x.shape[0] == 2 and x[0].size == input_dim:
            ends = x.reshape(1, 2, input_dim)
        elif x.ndim >= 2 and x.shape[1] == 2 and x[0, 0].size == input_dim:
            ends = x.reshape(len(x), 2, input_dim)
        else:
            raise UsageError(
                f"--segment {segment}: expected two inputs of {input_dim} values (shape [2, ...]) or "
                f"S segments (shape [S, 2, ...]); found shape {list(x.shape)}"
            )
        return torch.as_tensor(ends[:, 0]), torch.as_tensor(ends[:, 1])
    if pairs is not None:
        if dataset is None:
            raise UsageError("--pairs picks rows of --data: give --data")
        x = _flat_data(dataset, input_dim)
        rows = _pairs(pairs, len(x), seed)
        return torch.as_tensor(x[rows[:, 0]]), torch.as_tensor(x[rows[:, 1]])
    lo, hi = parse_floats(bounds, 2, "--bounds")
    if not lo < hi:
        raise UsageError(f"--bounds {bounds}: expected lo < hi")
    return torch.tensor([[lo]], dtype=torch.float64), torch.tensor([[hi]], dtype=torch.float64)


def _source(segment, bounds, dataset: Dataset | None) -> str:
    """The option or file the segments or samples were made from, for messages."""
    if segment is not None:
        return f"--segment {segment}"
    if bounds is not None:
        return f"--bounds {bounds}"
    return f"--data {dataset.source}" if dataset is not None else "the sampled points"


def _flat_data(dataset: Dataset, input_dim: int) -> np.ndarray:
    return as_inputs(dataset.x, input_dim, f"--data {dataset.source}").numpy()


def _pairs(text: str, rows: int, seed: int) -> np.ndarray:
    if rows < 2:
        raise UsageError(f"--pairs needs at least two data points, --data has {rows}")
    random = RANDOM_PAIRS.fullmatch(text.strip())
    if random:
        count = int(random.group(1))
        if not 1 <= count <= MAX_PAIRS:
            raise UsageError(f"--pairs {text}: expected random:N with 1 <= N <= {MAX_PAIRS:,}")
        rng = np.random.default_rng(seed % 2**64)
        first = rng.integers(0, rows, size=count)
        # the second end is any other row, so no segment is a single point
        second = (first + rng.integers(1, rows, size=count)) % rows
        return np.stack([first, second], axis=1)
    try:
        i, j = parse_ints(text, 2, "--pairs")
    except UsageError:
        raise UsageError(f"--pairs {text!r}: expected 'i,j' (two row numbers) or 'random:N'") from None
    if not (0 <= i < rows and 0 <= j < rows):
        raise UsageError(f"--pairs {text}: rows must lie in 0..{rows - 1}")
    return np.array([[i, j]])


def _samples(input_dim, count, around, radius, bounds, dataset: Dataset | None, seed):
    data = None if dataset is None else _flat_data(dataset, input_dim)
    if around == "bbox" and radius is not None:
        raise UsageError("--radius sets the size of --around box or ball; --around bbox takes no radius")
    box = None
    if bounds is not None:
        if around != "bbox" or input_dim > 2:
            raise UsageError("--bounds sets the sampling box of 1-D or 2-D models (with --around bbox)")
        values = parse_floats(bounds, 2 * input_dim, "--bounds")
        lo, hi = np.array(values[0::2]), np.array(values[1::2])
        if not (lo < hi).all():
            raise UsageError(f"--bounds {bounds}: expected each min < max")
        box = (lo, hi)
    if around != "bbox" and radius is None and data is not None:
        radius = analysis.data_radius(data)
    return analysis.sample_points(around, count, seed, data=data, radius=radius, box=box)


def _write(result, output, png, svg, label: str, sha: str, device: str, seed: int) -> None:
    if output is not None:
        from splinetool.io import Provenance, write

        write(output, {GROUP: result}, Provenance("count-regions", sys.argv, sha, str(device), seed))
    if png is not None or svg is not None:
        from splinetool.render.count_regions import draw_count, draw_sweep
        from splinetool.render.slice import save_figure

        is_sweep = isinstance(result, sweeps.SweepResult)
        figure = draw_sweep(result) if is_sweep else draw_count(result, title=label)
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)


def _print(result: analysis.CountResult, label: str) -> None:
    noun = {"exact-1d": "pieces", "exact-2d": "tiles", "sampled": "distinct codes"}[result.method]
    table = Table(title=f"{noun} per prefix network: {escape(label)} ({result.method})", title_justify="left")
    for name in ("PL nodes", "last node", "kind"):
        table.add_column(name)
    table.add_column(noun, justify="right")
    distinct = result.method == "exact-1d" and len(result.pieces) > 1
    if distinct:
        table.add_column("distinct regions", justify="right")
    for k, (name, kind) in enumerate(zip(result.node_names, result.node_kinds)):
        cells = [f"{result.per_layer[k]:,}"] + ([f"{result.distinct_per_layer[k]:,}"] if distinct else [])
        table.add_row(f"1..{k + 1}", escape(name), kind, *cells)
    stdout.print(table)
    several, per_item = {"exact-1d": ("segments", result.pieces), "exact-2d": ("planes", result.tiles)}.get(
        result.method, (None, None)
    )
    lines = []
    if per_item is not None and len(per_item) > 1:
        lines.append(
            f"{len(per_item):,} {several}: {noun} per {several[:-1]} mean {per_item.mean():.1f}, median "
            f"{np.median(per_item):g}, min {per_item.min():,}, max {per_item.max():,}; "
            f"{result.regions:,} in all"
            + (f", {result.distinct_regions:,} distinct regions crossed" if distinct else "")
        )
    if result.method == "sampled":
        lines.append(
            f"at least {result.regions:,} regions (distinct codes among {result.samples:,} points, "
            f"{result.sampling}); Chao1 estimate {result.estimate:,.1f} (f1 = {result.singletons:,}, "
            f"f2 = {result.doubletons:,})" + (f"; {result.estimate_caveat}" if result.estimate_caveat else "")
        )
    lines.append(f"{result.dtype}; {result.seconds:.2f} s")
    for line in lines:
        stdout.print(line, soft_wrap=True, highlight=False)


def _print_sweep(result: sweeps.SweepResult, label: str) -> None:
    unit = "tiles" if result.method == "exact-2d" else "pieces per segment"
    table = Table(
        title=f"sweep {escape(label)}: {result.neurons} hidden neurons ({unit})", title_justify="left"
    )
    for name in ("depth", "width", "median", "min", "max"):
        table.add_column(name, justify="right")
    for row in result.by_depth():
        table.add_row(*(f"{row[k]:,g}" for k in ("depth", "width", "median", "min", "max")))
    stdout.print(table)
    stdout.print(f"{result.measure}; {result.init}; {result.seconds:.2f} s", soft_wrap=True, highlight=False)
