"""`splinetool bn-density`: where each layer's boundaries lie relative to the data, per initialisation."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer

from splinetool.analyses.defaults import (
    DEFAULT_BIAS_STD,
    DEFAULT_GRID,
    DEFAULT_MAX_REGIONS,
    DEFAULT_RELATIVE_DELTA,
)
from splinetool.cli.common import (
    MODEL,
    OUTPUTS,
    Shared,
    progress_bar,
    report,
    reported_errors,
    with_shared,
    write_outputs,
)
from splinetool.cli.planes import ONE_PLANE, SplitOption, plane_options, with_plane
from splinetool.errors import UsageError

# the density figure's colour scales, as splinetool.render.bn_density draws them; checked by the parser
Scale = Literal["shared", "row"]


@with_shared(*MODEL, *OUTPUTS)
@with_plane(*ONE_PLANE)
def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            help="TorchScript archive, .pt2 export or state dict (.pt, .ckpt, .safetensors); optional when "
            "--arch gives an "
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
    split: SplitOption = None,
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
    grid: Annotated[int, typer.Option(help="G: the view is cut into G x G cells.", min=1)] = DEFAULT_GRID,
    delta: Annotated[
        float | None,
        typer.Option(
            help=f"δ in plane units for the share of boundary near the data (default: "
            f"{DEFAULT_RELATIVE_DELTA:g} × the view's larger side).",
            show_default=False,
        ),
    ] = None,
    bias_std: Annotated[
        float, typer.Option(help="Standard deviation of the biases drawn by --init random-bias.", min=0.0)
    ] = DEFAULT_BIAS_STD,
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
    ] = DEFAULT_MAX_REGIONS,
    scale: Annotated[
        Scale,
        typer.Option(
            help="Colour scale of the density figure: shared (one for every panel) or row (one per "
            "initialisation, for rows of very different densities)."
        ),
    ] = "shared",
    bounds: Annotated[
        str | None,
        typer.Option(
            help="xmin,xmax,ymin,ymax of the view in plane coordinates (default for 2-D inputs: the "
            "data's box, 10% wider)."
        ),
    ] = None,
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
    from splinetool import parsing
    from splinetool.analyses import bn_density as analysis
    from splinetool.analyses.plane import one_plane
    from splinetool.data.loading import load_data
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: the data batch, a data file or a generator such as star:50")
        source = str(checkpoint if checkpoint is not None else shared.arch)
        chosen = analysis.layers_named(layers)
        options = analysis.BNDensityOptions(
            chosen, grid, delta, exact, tessellation is not None, max_regions, bias_std, shared.seed, source
        )
        shared.check_outputs({"--tessellation": tessellation})
        dataset = load_data(data, split=split, seed=shared.seed)
        loaded = shared.open(checkpoint) if checkpoint is not None else None
        nets = analysis.compared_networks(
            init,
            dataset,
            options,
            loaded,
            shared.arch,
            parsing.shape(shared.input_shape),
            shared.where,
            shared.torch_dtype,
        )
        plane = one_plane(plane_options(ctx), nets[0].net.input_shape, dataset)
        with progress_bar(shared.quiet, "boundary density", "grid rows") as bar:
            result = analysis.run(nets, plane, dataset, options, bar)
        title = Path(source).name
        drawn = partial(_figure, result, title, scale)
        write_outputs(shared, "bn-density", result, loaded.sha256 if loaded else "", figure=drawn)
        if tessellation is not None:
            from splinetool.render.bn_density import draw_tessellation
            from splinetool.render.slice import save_figure

            save_figure(draw_tessellation(result, title=title), tessellation)
    report(shared, result.summary(), tables.print_bn_density, result)


def _figure(result, title: str, scale: str):
    from splinetool.render.bn_density import draw_bn_density

    return draw_bn_density(result, title=title, scale=scale)
