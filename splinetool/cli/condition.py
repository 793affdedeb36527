"""`splinetool condition`: loss-Hessian spectra per layer and block Jacobian conditioning, side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from splinetool.analyses import condition as analysis
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
    load_net,
    print_json,
    progress_bar,
    reported_errors,
    stdout,
)
from splinetool.data.loading import load_data
from splinetool.errors import UsageError


def command(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="One checkpoint, or several to compare side by side.", show_default=False),
    ],
    data: Annotated[
        str | None,
        typer.Option(help="Points x with class labels y (made one-hot targets), a data file or a generator."),
    ] = None,
    split: Annotated[str | None, typer.Option(help="train or test, for files holding both.")] = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            # \[ keeps rich from reading [points] as a style tag
            help="Regression targets instead of one-hot labels: a .npy file of shape \\[points] or "
            "\\[points, outputs], row i for data point i. They set the loss and its gradient only: the "
            "Hessian does not depend on them."
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(help="Comma-separated parameterised nodes to analyse (default: every one)."),
    ] = None,
    max_dense: Annotated[
        int,
        typer.Option(
            help="Decompose exactly when the smaller of JᵀJ and JJᵀ has at most this many rows "
            "(params, or points × outputs); otherwise Lanczos."
        ),
    ] = analysis.DEFAULT_MAX_DENSE,
    k: Annotated[
        int, typer.Option("--k", help="Lanczos: this many largest and smallest non-zero eigenvalues.")
    ] = (analysis.DEFAULT_K),
    lanczos_steps: Annotated[
        int, typer.Option(help="Lanczos: at most this many products with the Hessian per layer.")
    ] = analysis.DEFAULT_LANCZOS_STEPS,
    block_points: Annotated[
        int | None,
        typer.Option(
            help="Measure block Jacobians at this many data points (a seeded random subset); "
            "default 256, 0 for all of them."
        ),
    ] = analysis.DEFAULT_BLOCK_POINTS,
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
    """Conditioning of the local loss landscape of each layer and of each block's map.

    With L = (1/n) Σ ‖y_i − f(x_i)‖² and every activation pattern fixed, L is exactly quadratic in one
    layer's parameters, with Hessian H = (2/n) Σ J_iᵀ J_i (J_i = ∂f(x_i)/∂θ). Per layer: H's
    eigenvalues (all of them through the smaller of JᵀJ and JJᵀ when it fits --max-dense; otherwise
    the --k largest and smallest non-zero by Lanczos), λ_max / λ_min over the non-zero spectrum, the
    numerical rank (eigenvalues above λ_max · side · eps) and the zero eigenvalues. Per block (a
    plain layer D W, or a block with a skip connection, I + D W): the singular values of its Jacobian
    at each point and their ratio κ, summarised over the points (Riedi, Balestriero & Baraniuk,
    Constructive Approximation 2023).
    """
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: a data file with x (and labels y, or give --targets)")
        check_outputs(ctx, output, png, svg)
        points = load_data(data, split=split, seed=seed)
        x = points.x.reshape(len(points.x), -1)
        chosen = [n.strip() for n in layers.split(",") if n.strip()] if layers is not None else None
        if chosen is not None and not chosen:
            raise UsageError(f"--layers {layers!r}: expected comma-separated node names")
        loaded = [load_net(p, arch, input_shape, trust_checkpoint, device, dtype) for p in checkpoints]
        nets = [net for _, net in loaded]
        y, source = _targets(targets, points, len(x), nets[0].output_dim)
        with progress_bar(quiet, "condition", "layers") as report:
            result = analysis.run(
                nets,
                x,
                y,
                source,
                layers=chosen,
                max_dense=max_dense,
                k=k,
                lanczos_steps=lanczos_steps,
                block_points=None if block_points == 0 else block_points,
                seed=seed,
                checkpoints=[str(p) for p in checkpoints],
                checkpoint_sha256=[m.sha256 for m, _ in loaded],
                progress=report,
            )
        _write(result, output, png, svg, device, seed)
    if json:
        print_json(result.summary())
    elif not quiet:
        _print(result)


def _targets(path: Path | None, points, n: int, outputs: int) -> tuple[np.ndarray | None, str]:
    if path is not None:
        if path.suffix.lower() != ".npy" or not path.is_file():
            raise UsageError(f"--targets {path}: expected an existing .npy file of regression targets")
        try:
            y = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UsageError(f"--targets {path}: cannot read it as a .npy array ({err})") from None
        y = y.reshape(len(y), -1) if y.ndim else y
        if y.ndim != 2 or y.shape != (n, outputs) or not np.issubdtype(y.dtype, np.number):
            raise UsageError(
                f"--targets {path}: expected numbers of shape [{n}] or [{n}, {outputs}] "
                f"({n} data points, {outputs} model outputs), got {list(np.shape(y))}"
            )
        return y.astype(np.float64), f"regression targets from {path}"
    if points.y is None:
        return None, "none (the data has no labels y): the loss and gradients are not reported"
    return analysis.one_hot(points.y, outputs, points.source), "one-hot class labels y"


def _write(result: analysis.ConditionResult, output, png, svg, device, seed) -> None:
    if output is not None:
        from splinetool.io import Provenance, write

        shas = ",".join(m.checkpoint_sha256 for m in result.models)
        write(output, {"condition": result}, Provenance("condition", sys.argv, shas, str(device), seed))
    if png is not None or svg is not None:
        from splinetool.render.condition import draw_condition
        from splinetool.render.slice import save_figure

        figure = draw_condition(result)
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)


def _number(value: float | None, fmt: str = ".3g") -> str:
    return "∞" if value is None else format(value, fmt)


def _print(result: analysis.ConditionResult) -> None:
    several = len(result.models) > 1
    table = Table(title="loss Hessian per layer (patterns fixed)", title_justify="left")
    if several:
        table.add_column("model")
    for label in ("layer", "params", "method", "λ_max", "λ_min≠0", "κ", "rank", "zero λ"):
        table.add_column(label, justify="left" if label in ("layer", "method") else "right")
    for model in result.models:
        for layer in model.layers:
            s = layer.summary()
            kappa = _number(s["condition_number"])
            if s["condition_number_is_lower_bound"]:
                kappa = "≥ " + kappa
            cells = [
                escape(layer.name), f"{layer.params:,}", layer.method, _number(s["lambda_max"]),
                _number(s["lambda_min_nonzero"]), kappa,
                "?" if s["rank"] is None else f"{s['rank']:,}",
                "?" if s["zero_eigenvalues"] is None else f"{s['zero_eigenvalues']:,}",
            ]  # fmt: skip
            table.add_row(*([escape(Path(model.checkpoint).name)] if several else []), *cells)
        table.add_section()
    stdout.print(table)
    blocks = Table(title="block Jacobians (κ = σ_max / σ_min, ∞ when singular)", title_justify="left")
    if several:
        blocks.add_column("model")
    for label in ("block", "skip", "in → out", "κ median", "κ p95", "κ max", "singular"):
        blocks.add_column(label, justify="left" if label == "block" else "right")
    for model in result.models:
        for block in model.blocks:
            s = block.summary()
            cells = [
                escape(block.name), "yes" if block.residual else "no", f"{block.in_dim} → {block.out_dim}",
                _number(s["kappa_median"]), _number(s["kappa_p95"]), _number(s["kappa_max"]),
                f"{s['singular_share']:.1%}",
            ]  # fmt: skip
            blocks.add_row(*([escape(Path(model.checkpoint).name)] if several else []), *cells)
        blocks.add_section()
    stdout.print(blocks)
    losses = ", ".join(f"{Path(m.checkpoint).name} {m.loss:.4g}" for m in result.models if m.loss is not None)
    block_points = len(result.models[0].block_points) if result.models else 0
    stdout.print(
        f"{result.points:,} points, {result.outputs} outputs; targets: {result.targets}"
        f"{'; loss ' + losses if losses else ''}; blocks at {block_points:,} points; "
        f"zero: eigenvalues ≤ λ_max · side · eps; {result.dtype}; {result.seconds:.1f} s",
        soft_wrap=True,
        highlight=False,
    )
