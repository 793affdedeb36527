"""`splinetool debias-sample`: MaGNET uniform sampling and polarity sampling from a PL generator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from splinetool.analyses import debias_sample as analysis
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
    load_net,
    parse_device,
    parse_shape,
    print_json,
    reported_errors,
    stderr,
    stdout,
)
from splinetool.cli.sharing import check_shard, run_work, write_shard
from splinetool.parallel import Work

GROUP = "debias"  # the run file's group


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
    with reported_errors(ctx):
        share = check_shard(shard, output, {"--png": png, "--svg": svg})
        check_outputs(ctx, output, png, svg)
        shape = parse_shape(output_shape, "--output-shape")
        where = parse_device(device)
        here: dict = {}

        def prepare() -> Work:
            loaded, net = load_net(checkpoint, arch, input_shape, trust_checkpoint, device, dtype)
            here["sha256"] = loaded.sha256
            rhos = rho or [1.0]
            plan = analysis.plan(net, n, pool, rhos, prior, top_k, proj_dim, replace, seed, shape)
            return Work(
                pool, lambda rows, report: analysis.measure_share(net, plan, rows, batch_size, report)
            )

        outcome = run_work(prepare, share, where, quiet, "Jacobians", "latents")
        if outcome is None:
            return  # a rank other than 0: rank 0 reports
        if share is not None:
            write_shard(
                ctx, outcome, "debias-sample", GROUP, output, here["sha256"], where, seed, json, quiet
            )
            return
        result = outcome.result
        if isinstance(result, analysis.PoolShare):  # one process measured the whole pool: draw here
            result = analysis.combine([result])
        _write(result, checkpoint, here["sha256"], output, png, svg, device, seed)
    if json:
        print_json(result.summary())
    elif not quiet:
        _print(result, checkpoint)
    if not quiet:
        for warning in result.warnings:
            stderr.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def _write(result, checkpoint: Path, sha256: str, output, png, svg, device, seed) -> None:
    if output is not None:
        from splinetool.io import Provenance, write

        write(output, {GROUP: result}, Provenance("debias-sample", sys.argv, sha256, str(device), seed))
    if png is not None or svg is not None:
        from splinetool.render.debias_sample import draw_debias
        from splinetool.render.slice import save_figure

        figure = draw_debias(result, title=checkpoint.name)
        for path in (png, svg):
            if path is not None:
                save_figure(figure, path)


def _print(result: analysis.DebiasResult, checkpoint: Path) -> None:
    summary = result.summary()
    table = Table(title=f"debiased sampling: {escape(str(checkpoint))}", title_justify="left")
    table.add_column("ρ", justify="right")
    table.add_column("ESS", justify="right")
    table.add_column("ESS / pool", justify="right")
    table.add_column("mean log-volume drawn", justify="right")
    table.add_column("distinct draws", justify="right")
    rows = [(0.0, None, result.baseline_index)] if 0.0 not in result.rho else []
    rows += [(float(r), float(e), i) for r, e, i in zip(result.rho, result.ess, result.selected_index)]
    pool = len(result.pool_latents)
    for r, ess, index in rows:
        ess = float(pool) if ess is None else ess
        mean = analysis.finite_mean(result.log_volume[index])
        table.add_row(
            f"{r:g}{' (baseline)' if r == 0 else ''}",
            f"{ess:,.1f}",
            f"{ess / pool:.1%}",
            _number(mean),
            f"{len(set(index.tolist())):,}",
        )
    stdout.print(table)
    stdout.print(
        f"pool {pool:,} ({result.prior} prior, seed {result.seed}), n {result.selected_index.shape[1]:,} "
        f"{'with' if result.replace else 'without'} replacement; log-volume over the pool: mean "
        f"{_number(summary['log_volume_mean'])}, std {_number(summary['log_volume_std'])}; "
        f"{summary['distinct_tiles']:,} distinct tiles, "
        f"{result.collapsed:,} collapsed; {result.volume_label()}; d = {result.pool_latents.shape[1]}, "
        f"D = {result.samples.shape[-1]}, {result.jacobian_mode}-mode Jacobians, {result.dtype}; "
        f"{result.seconds:.2f} s",
        soft_wrap=True,
        highlight=False,
    )


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"
