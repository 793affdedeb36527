"""`splinetool info`: the PL nodes a checkpoint lowers to, and a check that the lowering is faithful."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from splinetool.analyses import info as analysis
from splinetool.cli.common import (
    ArchOption,
    ConfigOption,
    DeviceOption,
    DtypeOption,
    InputShapeOption,
    JsonOption,
    QuietOption,
    SeedOption,
    TrustOption,
    parse_device,
    parse_dtype,
    parse_shape,
    print_json,
    reported_errors,
    stdout,
)
from splinetool.frontends.loading import load_model


def command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="TorchScript archive, .pt2 export, or state dict.")],
    arch: ArchOption = None,
    input_shape: InputShapeOption = None,
    trust_checkpoint: TrustOption = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float64",
    seed: SeedOption = 0,
    samples: Annotated[int, typer.Option(help="Random inputs used to check the lowering.", min=1)] = 8,
    json: JsonOption = False,
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Load and lower a checkpoint; list its piecewise-linear nodes and check the lowering."""
    with reported_errors(ctx):
        loaded = load_model(
            checkpoint, arch=arch, input_shape=parse_shape(input_shape), trust=trust_checkpoint
        )
        result = analysis.run(loaded, parse_device(device), parse_dtype(dtype), seed=seed, samples=samples)
    if json:
        print_json({**dataclasses.asdict(result), "neurons": result.neurons})
    elif not quiet:
        _print(result)
    if not result.passed:
        raise typer.Exit(1)


def _print(result: analysis.InfoResult) -> None:
    table = Table(title=f"{result.checkpoint} ({result.format})", title_justify="left")
    for column in ("PL node", "kind", "neurons", "output shape"):
        table.add_column(column, justify="right" if column == "neurons" else "left")
    for node in result.nodes:
        table.add_row(node.name, node.kind, f"{node.neurons:,}", "×".join(map(str, node.out_shape)))
    stdout.print(table)
    transforms = f" then {', '.join(result.output_transforms)} (dropped)" if result.output_transforms else ""
    stdout.print(
        f"input {'×'.join(map(str, result.input_shape))} → output {'×'.join(map(str, result.output_shape))}"
        f"{transforms}; {result.parameters:,} parameters; "
        f"{result.neurons:,} neurons in {len(result.nodes)} PL nodes",
        soft_wrap=True,
    )
    verdict = "[green]ok[/]" if result.passed else "[bold red]MISMATCH[/]"
    stdout.print(
        f"lowering check on {result.check_inputs} random inputs ({result.check_dtype}): "
        f"max |PLNet − model| = {result.max_abs_diff:.3g} (tolerance {result.tolerance:.1g}) {verdict}",
        soft_wrap=True,
    )
