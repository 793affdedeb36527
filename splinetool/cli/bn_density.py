"""`splinetool bn-density`: where each layer's boundaries lie relative to the data, per initialisation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.markup import escape
from rich.table import Table

from splinetool.analyses import bn_density as analysis
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
    SvgOption,
    TrustOption,
    check_outputs,
    parse_device,
    parse_dtype,
    parse_shape,
    print_json,
    progress_bar,
    reported_errors,
    stdout,
)
from splinetool.cli.planes import plane_from_options
from splinetool.data.loading import load_data
from splinetool.errors import UsageError


def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            help="TorchScript archive, .pt2 export or state dict; optional when --arch gives an "
            "architecture to initialise.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="The data batch: a data file or a generator such as star:50. Batch-norm statistics are "
            "computed on it, and distances are measured to it."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="train or test, for data files holding both.")] = None,
    init: Annotated[
        str,
        typer.Option(
            help="as-is, zero-bias, random-bias, batchnorm, or several separated by commas; all: every "
            "re-initialisation (and as-is with a checkpoint)."
        ),
    ] = "all",
    layers: Annotated[
        str | None,
        typer.Option(
            help="PL nodes to measure, counted from 1, e.g. 3,7,11 (default: all).", show_default=False
        ),
    ] = None,
    grid: Annotated[
        int, typer.Option(help="G: the view is cut into G x G cells.", min=1)
    ] = analysis.DEFAULT_GRID,
    delta: Annotated[
        float | None,
        typer.Option(
            help=f"δ in plane units for the share of boundary near the data (default: "
            f"{analysis.DEFAULT_RELATIVE_DELTA:g} × the view's larger side).",
            show_default=False,
        ),
    ] = None,
    bias_std: Annotated[
        float, typer.Option(help="Standard deviation of the biases drawn by --init random-bias.", min=0.0)
    ] = analysis.DEFAULT_BIAS_STD,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Boundary length per cell, distances and shares from the exact planar partition "
            "(small networks only).",
        ),
    ] = False,
    tessellation: Annotated[
        Path | None,
        typer.Option(
            help="Draw the exact boundaries of the last chosen node over the earlier ones, per "
            "initialisation, to this PNG or SVG file (small networks only)."
        ),
    ] = None,
    max_regions: Annotated[
        int, typer.Option(help="With --exact or --tessellation: stop beyond this many tiles.", min=1)
    ] = analysis.DEFAULT_MAX_REGIONS,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="xmin,xmax,ymin,ymax of the view in plane coordinates (default for 2-D inputs: the "
            "data's box, 10% wider)."
        ),
    ] = None,
    anchors: Annotated[
        Path | None, typer.Option(help="File with three inputs: the plane through them.")
    ] = None,
    anchor_index: Annotated[str | None, typer.Option(help="i,j,k: three rows of --data as anchors.")] = None,
    margin: Annotated[
        float, typer.Option(help="Half-width of the square view / largest anchor radius.")
    ] = 1.25,
    origin: Annotated[Path | None, typer.Option(help="File with the plane's origin (one input).")] = None,
    directions: Annotated[Path | None, typer.Option(help="File with the plane's two directions.")] = None,
    arch: ArchOption = None,
    input_shape: InputShapeOption = None,
    trust_checkpoint: TrustOption = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float64",
    seed: SeedOption = 0,
    output: OutputOption = None,
    png: PngOption = None,
    svg: SvgOption = None,
    json: JsonOption = False,
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Boundary density of chosen layers over a 2-D plane, and how far the boundaries lie from the data.

    For each PL node and each cell of a G x G grid over the plane: how many of the node's units change
    sign over the cell's corners (with --exact: the length of the node's boundary in the cell). Per
    node: the distance from each data point to the node's nearest boundary, in the plane (grid: to the
    nearest crossed cell, within one cell diagonal; --exact: to the exact boundary) and in input space
    through the local linearisation |z_k(x)| / |grad z_k(x)|; the share of the boundary within --delta
    of the data; the number of units with a boundary in view.

    --init compares initialisations of the same architecture (the checkpoint's, or --arch without a
    checkpoint): He-normal weights (the same for every initialisation) with zero biases, random biases,
    or batch-norm whose statistics come from the --data batch only, frozen before the grid is evaluated
    (Balestriero & Baraniuk, "Batch normalization explained", 2022).
    """
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: the data batch, a data file or a generator such as star:50")
        if checkpoint is None and arch is None:
            raise UsageError("give a checkpoint, or --arch with an architecture to initialise")
        if delta is not None and not delta > 0:
            raise UsageError(f"--delta {delta}: expected a positive distance")
        check_outputs(ctx, output, png, svg, {"--tessellation": tessellation})
        inits = _inits(init, checkpoint is not None)
        chosen = _layers(layers)
        dataset = load_data(data, split=split, seed=seed)
        loaded, architecture = _model(checkpoint, arch, input_shape, trust_checkpoint, inits)
        x = torch.as_tensor(dataset.x.reshape(len(dataset.x), -1), dtype=torch.float64)
        nets = analysis.networks(
            inits, x, architecture, loaded, parse_device(device), parse_dtype(dtype), seed, bias_std
        )
        input_dim = nets[0].net.input_dim
        if x.shape[1] != input_dim:
            raise UsageError(
                f"--data {dataset.source}: rows have {x.shape[1]} values but the model takes "
                f"{input_dim}-D inputs"
            )
        plane = plane_from_options(
            input_dim, bounds, anchors, dataset, anchor_index, margin, origin, directions
        )
        source = str(checkpoint) if checkpoint is not None else str(arch)
        with progress_bar(quiet, "boundary density", "grid rows") as report:
            result = analysis.run(
                nets,
                plane,
                dataset.x,
                dataset.y,
                layers=chosen,
                grid=grid,
                delta=delta,
                exact=exact,
                segments=tessellation is not None,
                max_regions=max_regions,
                bias_std=bias_std,
                seed=seed,
                source=source,
                data_source=dataset.source,
                progress=None
                if report is None
                else lambda done, total, note: report(done, total, f"({note})"),
            )
        _write(result, loaded, output, png, svg, tessellation, device, seed)
    if json:
        print_json(result.summary())
    elif not quiet:
        _print(result)


def _inits(text: str, has_checkpoint: bool) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(analysis.INITS if has_checkpoint else analysis.REINITS)
    unknown = [n for n in names if n not in analysis.INITS]
    if not names or unknown:
        raise UsageError(f"--init {text!r}: expected all, or some of {', '.join(analysis.INITS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--init {text!r}: an initialisation is named twice")
    return names


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        layers = [int(part) for part in text.split(",")]
    except ValueError:
        layers = []
    if not layers or any(layer < 1 for layer in layers):
        raise UsageError(f"--layers {text!r}: expected PL node numbers from 1, separated by commas")
    return layers


def _model(checkpoint, arch, input_shape, trust, inits):
    """The loaded checkpoint (or None) and the architecture to rebuild (or None if none is needed)."""
    from splinetool.frontends.loading import arch_family, load_model, recorded_architecture

    loaded = None
    architecture = None
    if checkpoint is not None:
        loaded = load_model(checkpoint, arch=arch, input_shape=parse_shape(input_shape), trust=trust)
        architecture = recorded_architecture(loaded)
    if architecture is None and arch is not None:
        architecture = arch_family(arch)
    rebuilt = [i for i in inits if i != "as-is"]
    if rebuilt and architecture is None:
        what = (
            f"checkpoint {checkpoint} records no built-in family (a TorchScript archive written by "
            "splinetool records it in splinetool.json; a state dict takes it from --arch)"
            if arch is None
            else f"--arch {arch} is a factory, not a built-in family"
        )
        raise UsageError(
            f"--init {','.join(rebuilt)} rebuilds the architecture with fresh weights, but {what}. Pass "
            "--arch with a family TOML file (configs/arch/*.toml) or an inline family, or use --init as-is."
        )
    if architecture is not None:
        family, options = architecture
        if input_shape is not None:
            options = {**options, "input_shape": list(parse_shape(input_shape))}
        architecture = analysis.Architecture(family, options)
    return loaded, architecture


def _write(result, loaded, output, png, svg, tessellation, device, seed) -> None:
    title = Path(result.source).name
    if output is not None:
        from splinetool.io import Provenance, write

        sha = loaded.sha256 if loaded is not None else ""
        write(output, {"bn_density": result}, Provenance("bn-density", sys.argv, sha, str(device), seed))
    if png is not None or svg is not None:
        from splinetool.render.bn_density import draw_bn_density
        from splinetool.render.slice import save_figure

        figure = draw_bn_density(result, title=title)
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)
    if tessellation is not None:
        from splinetool.render.bn_density import draw_tessellation
        from splinetool.render.slice import save_figure

        save_figure(draw_tessellation(result, title=title), tessellation)


def _distance(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _print(result: analysis.BNDensityResult) -> None:
    table = Table(title=f"boundaries relative to the data: {escape(result.source)}", title_justify="left")
    table.add_column("init")
    for column in ("layer", "in view", "mean dist.", "median dist.", "within δ", "mean lin. dist."):
        table.add_column(column, justify="right")
    for i, init in enumerate(result.inits):
        for k in range(len(result.node_names)):
            s = result.node_summary(i, k)
            share = "–" if s["share_within_delta"] is None else f"{s['share_within_delta']:.1%}"
            table.add_row(
                init if k == 0 else "",
                str(s["layer"]),
                f"{s['boundaries_in_view']:,}/{s['units']:,}",
                _distance(s["mean_distance_to_data"]),
                _distance(s["median_distance_to_data"]),
                share,
                _distance(s["mean_linearised_distance"]),
            )
        table.add_section()
    stdout.print(table)
    names = ", ".join(
        f"{layer} = {escape(name)}" for layer, name in zip(result.node_layers, result.node_names)
    )
    how = "the exact partition" if result.exact else "crossed grid cells"
    diagonal = float(np.hypot(result.x_edges[1] - result.x_edges[0], result.y_edges[1] - result.y_edges[0]))
    stdout.print(
        f"layers: {names}\n{len(result.data)} data points ({escape(result.data_source)}); "
        f"grid {result.grid} x {result.grid} over [{result.x_edges[0]:.3g}, {result.x_edges[-1]:.3g}] x "
        f"[{result.y_edges[0]:.3g}, {result.y_edges[-1]:.3g}] (cell diagonal {diagonal:.3g}); "
        f"dist.: in the plane, from {how}; lin. dist.: in input space, |z|/|grad z|; "
        f"δ = {result.delta:.3g}; seed {result.seed}, {result.dtype}; {result.seconds:.2f} s",
        soft_wrap=True,
        highlight=False,
    )
