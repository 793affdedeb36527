"""What a command that splits its work needs from the CLI: run it alone, under torchrun or as a shard.

A command joins by building its work lazily, `prepare() -> parallel.Work`, and calling `run_work`:
preparing (loading checkpoints and data) happens inside the guarded share, so that a rank that
cannot prepare fails the whole run like a rank whose share fails. Rank 0 (or the only process) gets
the result; other ranks get None and print nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import typer

from splinetool import parallel
from splinetool.cli.common import print_json, progress_bar, stdout
from splinetool.errors import UsageError
from splinetool.parallel import WHOLE, Share, Work

# options that say where results go or how the run looks, not what the result is: shards of one run
# may differ in them (each shard has its own -o); every other option must agree for `merge`
NOT_PARAMETERS = {"output", "png", "svg", "json", "quiet", "config", "shard", "device", "batch_size"}


@dataclass(frozen=True)
class Outcome:
    result: object  # the result of every item, or with --shard the partial result of the share
    share: Share
    items: range
    total: int


def run_work(
    prepare: Callable[[], Work], shard: Share | None, device: torch.device, quiet: bool, label: str, unit: str
) -> Outcome | None:
    """The result of the whole work (or of the --shard share) on rank 0 / alone; None on other ranks."""

    def one_share(share: Share) -> Outcome:
        work = prepare()
        items = share.items(work.total)
        with progress_bar(quiet or not parallel.is_leader(), label, unit) as report:
            return Outcome(work.compute(items, report), share, items, work.total)

    outcomes = parallel.run_shared(one_share, shard, device)
    if outcomes is None:
        return None
    if len(outcomes) == 1:
        return outcomes[0]
    from splinetool.io.shards import combine

    total = outcomes[0].total
    return Outcome(combine([o.result for o in outcomes]), WHOLE, range(total), total)


def check_shard(shard: str | None, output: Path | None, refused: dict[str, object]) -> Share | None:
    """The --shard share, refusing it without -o or with options that need the whole result."""
    if shard is None:
        return None
    share = parallel.parse_share(shard)
    if output is None:
        raise UsageError(f"--shard {shard} writes its share to a shard file: give -o FILE.h5")
    given = [name for name, value in refused.items() if value not in (None, False)]
    if given:
        raise UsageError(
            f"--shard {shard} computes part of the result; {', '.join(given)} need(s) all of it: "
            "use them on the file `splinetool merge` writes"
        )
    return share


def parameters(ctx: typer.Context) -> dict:
    """The options that define the result, normalised to JSON values, for a shard file."""
    return {
        name: _normalised(value) for name, value in sorted(ctx.params.items()) if name not in NOT_PARAMETERS
    }


def _normalised(value):
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_shard(
    ctx: typer.Context,
    outcome: Outcome,
    command: str,
    group: str,
    output: Path,
    checkpoint_sha256: str,
    device: torch.device,
    seed: int,
    json: bool,
    quiet: bool,
) -> None:
    """Write a --shard run's partial result with what `merge` checks, and say what was written."""
    from splinetool.io import Provenance
    from splinetool.io.shards import ShardInfo
    from splinetool.io.shards import write_shard as write

    share = outcome.share
    info = ShardInfo(
        command,
        parameters(ctx),
        checkpoint_sha256,
        share.index,
        share.count,
        outcome.items.start,
        outcome.items.stop,
        outcome.total,
    )
    write(
        output,
        {group: outcome.result},
        Provenance(command, sys.argv, checkpoint_sha256, str(device), seed),
        info,
    )
    summary = {
        "shard": str(share),
        "items": [outcome.items.start, outcome.items.stop],
        "total": outcome.total,
        "output": str(output),
    }
    if json:
        print_json(summary)
    elif not quiet:
        stdout.print(
            f"share {share}: items {outcome.items.start}:{outcome.items.stop} of {outcome.total} "
            f"written to {output}; join the shares with splinetool merge",
            soft_wrap=True,
            highlight=False,
        )
