"""What a command that splits its work needs from the CLI: run it alone, under torchrun or as a shard.

A command joins by building its work lazily, `prepare() -> parallel.Job`, and calling `run_shares`:
preparing (loading checkpoints and data) happens inside the guarded share, so that a rank that
cannot prepare fails the whole run like a rank whose share fails. Rank 0 (or the only process) gets
the result; other ranks get None and print nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from splinetool.cli.common import Shared, progress_bar, report
from splinetool.errors import UsageError

if TYPE_CHECKING:
    import torch

    from splinetool.parallel import Job, Share

# options that say where results go or how the run looks, not what the result is: shards of one run
# may differ in them (each shard has its own -o); every other option must agree for `merge`
NOT_PARAMETERS = {"output", "png", "svg", "json", "quiet", "config", "shard", "device", "batch_size"}


@dataclass(frozen=True)
class Outcome:
    result: object  # the result of every item, or with --shard the partial result of the share
    share: Share
    items: range
    total: int
    # what this process's `prepare` returned (its inputs, for the outputs); kept here, never sent
    # between ranks
    job: Job | None = None


def run_work(
    prepare: Callable[[], Job], shard: Share | None, device: torch.device, quiet: bool, label: str, unit: str
) -> Outcome | None:
    """The result of the whole work (or of the --shard share) on rank 0 / alone; None on other ranks.

    `prepare` returns the Job: the outcome hands it back as `job`, so that what was loaded to compute
    the result also serves to write and draw it.
    """
    from splinetool import parallel

    prepared: list[Job] = []

    def one_share(share: Share) -> Outcome:
        work = prepare()
        prepared.append(work)
        items = share.items(work.total)
        with progress_bar(quiet or not parallel.is_leader(), label, unit) as report:
            return Outcome(work.compute(items, report), share, items, work.total)

    outcomes = parallel.run_shared(one_share, shard, device)
    if outcomes is None:
        return None
    if len(outcomes) == 1:
        return replace(outcomes[0], job=prepared[0])
    from splinetool.io.shards import combine
    from splinetool.parallel import WHOLE

    total = outcomes[0].total
    return Outcome(combine([o.result for o in outcomes]), WHOLE, range(total), total, prepared[0])


def run_shares(
    shared: Shared,
    command: str,
    prepare: Callable[[], Job],
    label: str,
    unit: str,
    whole: dict | None = None,
) -> Outcome | None:
    """The outcome of the whole work on rank 0 (or alone); None where nothing is left to report: on
    other ranks, and with --shard, whose share is then written to -o. `whole`: the options (flag ->
    value) that need the whole result, refused with --shard beside --png and --svg. The shard file
    records the work's `checkpoint_sha256`."""
    refused = {"--png": shared.png, "--svg": shared.svg, **(whole or {})}
    share = check_shard(shared.shard, shared.output, refused)
    outcome = run_work(prepare, share, shared.where, shared.quiet, label, unit)
    if outcome is not None and share is not None:
        write_shard(shared, outcome, command)
        return None
    return outcome


def check_shard(shard: str | None, output: Path | None, refused: dict[str, object]) -> Share | None:
    """The --shard share, refusing it without -o or with options that need the whole result."""
    if shard is None:
        return None
    from splinetool import parallel

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


def write_shard(shared: Shared, outcome: Outcome, command: str) -> None:
    """Write a --shard run's partial result (in the command's group) with what `merge` checks, and
    say what was written."""
    from splinetool.io.shards import ShardInfo
    from splinetool.io.shards import write_shard as write
    from splinetool.render import tables

    share, items, sha256 = outcome.share, outcome.items, outcome.job.checkpoint_sha256
    place = (share.index, share.count, items.start, items.stop, outcome.total)
    info = ShardInfo(command, parameters(shared.ctx), sha256, *place)
    write(shared.output, {command: outcome.result}, shared.provenance(command, sha256), info)
    summary = {"shard": str(share), "items": [items.start, items.stop], "total": outcome.total}
    report(shared, summary | {"output": str(shared.output)}, tables.print_shard, summary, shared.output)
