"""`splinetool debias-sample`: MaGNET uniform sampling and polarity sampling from a PL generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from splinetool.cli.common import (
    MODEL,
    OUTPUTS,
    Shared,
    report,
    reported_errors,
    stderr,
    with_shared,
    write_outputs,
)
from splinetool.cli.sharing import run_shares


@with_shared(*MODEL, "shard", *OUTPUTS)
def command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="The generator: its input is the latent z, its output x = G(z).")
    ],
    n: Annotated[int, typer.Option("--n", help="Samples to draw.")] = 1000,
    pool: Annotated[int, typer.Option(help="Latents drawn from the prior to choose from.")] = 100_000,
    rho: Annotated[
        list[float] | None,
        typer.Option(
            help="Polarity ρ: weight ∝ volume^ρ. 1 (default) is MaGNET, uniform on the manifold; ρ < 0 "
            "favours the modes, ρ > 0 the anti-modes, 0 is plain sampling. Repeat for several.",
            show_default=False,
            metavar="<float>",
        ),
    ] = None,
    prior: Annotated[str, typer.Option(help="Latent prior: normal (N(0, I)) or uniform (on [-1, 1]^d).")] = (
        "normal"
    ),
    top_k: Annotated[
        int | None,
        typer.Option(
            help="Use only the k largest singular values (default: all of them).", show_default=False
        ),
    ] = None,
    proj_dim: Annotated[
        int | None,
        typer.Option(
            help="Approximate: take the Jacobian of a fixed random orthonormal projection of the output to "
            "this many dimensions (for large outputs such as images); default: the exact Jacobian.",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Draw with replacement (default: without).")
    ] = False,
    output_shape: Annotated[
        str | None,
        typer.Option(
            help="Per-sample output shape for the pictures, e.g. 1,8,8 for 8×8 images (default: the "
            "model's own output shape).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Latents per Jacobian batch (default: about 8,000 Jacobian-vector products per batch on "
            "a CPU; on a GPU, as many as fit in 256 MiB).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Resample a generator's latents by the volume change of each tile (MaGNET, polarity sampling).

    On the tile of a latent z the generator is affine with slope A (D × d); it scales d-dimensional
    volume by sqrt(det AᵀA) = ∏σ_k(A). From a pool of latents drawn from the prior (seeded), latents
    are drawn with weight ∝ (∏σ_k)^ρ: ρ = 1 makes the samples uniform on the learned manifold
    (MaGNET, Humayun et al., ICLR 2022), ρ < 0 favours the modes and ρ > 0 the anti-modes (polarity
    sampling, CVPR 2022), ρ = 0 is the plain sampler. Prints the effective sample size and warns when
    it is under 10 × n; also draws the same number of latents with ρ = 0 as a baseline.

    The pool splits into shares under torchrun and with --shard: each share measures its latents, and
    the draws are made once from the whole pool's measures (by rank 0, or by `splinetool merge`).
    """
    from splinetool import parsing
    from splinetool.analyses import debias_sample as analysis
    from splinetool.render import tables

    shared = Shared.of(ctx)
    with reported_errors(ctx):
        shared.check_outputs()
        shape = parsing.shape(output_shape, "output_shape")
        options = analysis.DebiasOptions(
            n, pool, tuple(rho or [1.0]), prior, top_k, proj_dim, replace, shared.seed, shape, batch_size
        )

        def prepare() -> analysis.DebiasJob:
            loaded, net = shared.load(checkpoint)
            return analysis.DebiasJob(net, options, loaded.sha256)

        outcome = run_shares(shared, "debias-sample", prepare, "Jacobians", "latents")
        if outcome is None:
            return
        result = outcome.result
        if isinstance(result, analysis.PoolShare):  # one process measured the whole pool: draw here
            result = analysis.combine([result])
        write_outputs(shared, "debias-sample", result, outcome.job.checkpoint_sha256, title=checkpoint.name)
    report(shared, result.summary(), tables.print_debias, result, checkpoint)
    if not shared.quiet:
        for warning in result.warnings:
            stderr.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
