"""`splinetool condition`: loss-Hessian spectra per layer and block Jacobian conditioning, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from splinetool.analyses.defaults import (
    DEFAULT_BLOCK_POINTS,
    DEFAULT_K,
    DEFAULT_LANCZOS_STEPS,
    DEFAULT_MAX_DENSE,
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
from splinetool.errors import UsageError


@with_shared(*MODEL, *OUTPUTS)
def command(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="One checkpoint, or several to compare side by side.", show_default=False),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            help="Points x with targets y, a data file or a generator: integer class labels (made "
            "one-hot), or floating regression targets of shape [points, outputs] ([points] for one output)."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="train or test, for files holding both.")] = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            help="Regression targets instead of the data's y: a .npy file, or the y of a .npz/.h5/.pt file, "
            "of shape [points] or [points, outputs], row i for data point i. They set the loss and its "
            "gradient only: the Hessian does not depend on them."
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
    ] = DEFAULT_MAX_DENSE,
    k: Annotated[
        int, typer.Option("--k", help="Lanczos: this many largest and smallest non-zero eigenvalues.")
    ] = DEFAULT_K,
    lanczos_steps: Annotated[
        int, typer.Option(help="Lanczos: at most this many products with the Hessian per layer.")
    ] = DEFAULT_LANCZOS_STEPS,
    block_points: Annotated[
        int | None,
        typer.Option(
            help="Measure block Jacobians at this many data points (a seeded random subset); "
            "default 256, 0 for all of them."
        ),
    ] = DEFAULT_BLOCK_POINTS,
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
    from splinetool.analyses import condition as analysis
    from splinetool.data.loading import load_data
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        if data is None:
            raise UsageError("--data is needed: a data file with x (and labels y, or give --targets)")
        shared.check_outputs()
        points = load_data(data, split=split, seed=shared.seed)
        x = points.x.reshape(len(points.x), -1)
        chosen = [n.strip() for n in layers.split(",") if n.strip()] if layers is not None else None
        if chosen is not None and not chosen:
            raise UsageError(f"--layers {layers!r}: expected comma-separated node names")
        loaded = [shared.load(path) for path in checkpoints]
        nets = [net for _, net in loaded]
        options = analysis.ConditionOptions(
            chosen, max_dense, k, lanczos_steps, None if block_points == 0 else block_points, shared.seed
        )
        y = analysis.targets_for(points.y, points.source, len(x), nets[0].output_dim, targets)
        with progress_bar(shared.quiet, "condition", "layers") as bar:
            result = analysis.run(
                nets, x, y, options, [str(p) for p in checkpoints], [m.sha256 for m, _ in loaded], bar
            )
        write_outputs(shared, "condition", result, ",".join(m.sha256 for m, _ in loaded))
    report(shared, result.summary(), tables.print_condition, result)
