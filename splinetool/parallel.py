"""Splitting a command's work over torch.distributed ranks (under torchrun) or job-array shards.

A command whose work is a list of independent items (points, planes, segments, latents) computes a
contiguous share of them at a time; the shares' partial results are combined into the one result
(io/shards.py keeps the combiner of each Result type). Under torchrun every rank takes the share of
its rank, and rank 0 gathers them; with `--shard i/n` one process takes share i and the partial
result goes to a shard file for `splinetool merge`. Shares depend only on the item count and the
number of shares, so the same seed gives the same numbers whatever the split.

torchrun is recognised by the variables it sets for every worker (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR); without them everything runs in one process, as it always did. Nothing here prints.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import torch

from splinetool.errors import SplinetoolError, UsageError

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
# a rank that finishes its share waits for the slowest one at the gather: allow for long shares
# (a rank that dies is noticed by torchrun, which stops the others, so this never hides a hang)
COLLECTIVE_TIMEOUT = timedelta(hours=24)
WORK_FAILED = 1  # exit code for an unexpected error (not a SplinetoolError) inside a share


@dataclass(frozen=True)
class Share:
    """Share `index` of `count` (0-based): a contiguous block of the items, the same for any caller."""

    index: int
    count: int

    def items(self, total: int) -> range:
        # floor division spreads the remainder over the shares, each at most one item longer
        return range(total * self.index // self.count, total * (self.index + 1) // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Share(0, 1)


def parse_share(text: str, option: str = "`shard`") -> Share:
    """'i/n' with 0 <= i < n (0-based, as SLURM_ARRAY_TASK_ID with --array=0-(n-1))."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"{option} {text!r}: expected i/n, share i (counted from 0) of n, such as 0/4")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise UsageError(
            f"{option} {text}: expected 0 <= i < n, such as 0/{max(count, 1)} to {count - 1}/{count}"
        )
    return Share(index, count)


class Job(Protocol):
    """A command's work as items: how many there are, and how to compute a contiguous share of them.

    `compute(items, progress)` returns the partial result over `items` (a range of 0..total), of a
    Result type whose `combine` (registered in io/commands.py) joins consecutive shares into the
    result of all items; progress, when given, is called as progress(done, total, note="") within
    the share. `checkpoint_sha256` names the checkpoints measured, for shard files. The analyses'
    jobs (SliceJob, CountJob, LCJob, DebiasJob) are such objects.
    """

    checkpoint_sha256: str

    @property
    def total(self) -> int: ...

    def compute(self, items: range, progress: Callable[..., None] | None) -> Any: ...


@dataclass(frozen=True)
class World:
    """This worker's place among torchrun's workers."""

    rank: int
    size: int
    local_rank: int

    @property
    def share(self) -> Share:
        return Share(self.rank, self.size)


def world() -> World | None:
    """The torchrun world this process belongs to, or None when it runs on its own."""
    if not all(name in os.environ for name in TORCHRUN_VARIABLES):
        return None
    try:
        rank, size, local = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise UsageError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun)"
        ) from None
    return World(rank, size, local)


def is_leader() -> bool:
    """True for the process that reports (rank 0, or the only process)."""
    here = world()
    return here is None or here.rank == 0


def cuda_device(index: int | None) -> torch.device:
    """The CUDA device a worker uses: cuda:LOCAL_RANK under torchrun, else the one asked for."""
    here = world()
    if here is None:
        return torch.device("cuda", index) if index is not None else torch.device("cuda")
    if index is not None and here.size > 1:
        raise UsageError(
            f"`device` cuda:{index}: under torchrun each worker takes cuda:LOCAL_RANK; give `device` cuda"
        )
    return torch.device("cuda", here.local_rank)


@dataclass(frozen=True)
class Failure:
    rank: int
    exit_code: int
    reason: str


class WorkerFailed(SplinetoolError):
    """One or more ranks failed: the run fails with the first failure's exit code."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        self.exit_code = failures[0].exit_code
        super().__init__("\n".join(f"rank {f.rank} failed: {f.reason}" for f in failures))


def run_shared(work: Callable[[Share], Any], share: Share | None, device: torch.device) -> list | None:
    """Run `work` on this process's share; every partial result, in share order, where they meet.

    Alone: `work(share or WHOLE)`, returned as a one-element list. Under torchrun: every rank runs its
    share, then the ranks exchange an ok/error status, so that a failure anywhere fails every rank
    (WorkerFailed, naming each failed rank and its reason) instead of leaving some waiting; rank 0
    gets the list of partial results and the other ranks None. `work` should raise SplinetoolError
    for bad input; anything else is reported with its type and message.
    """
    here = world()
    if here is None:
        return [work(share or WHOLE)]
    if share is not None:
        raise UsageError("`shard` is for job arrays: under torchrun every rank already takes its share")
    _join(here, device)
    try:
        part, status = None, None
        try:
            part = work(here.share)
        except SplinetoolError as error:
            status = Failure(here.rank, error.exit_code, str(error))
        except Exception as error:  # noqa: BLE001 - the other ranks must hear of any failure
            where = traceback.extract_tb(error.__traceback__)[-1]
            reason = f"{type(error).__name__}: {error} ({os.path.basename(where.filename)}:{where.lineno})"
            status = Failure(here.rank, WORK_FAILED, reason)
        statuses: list[Failure | None] = [None] * here.size
        torch.distributed.all_gather_object(statuses, status)
        failures = [s for s in statuses if s is not None]
        if failures:
            raise WorkerFailed(failures)
        parts = [None] * here.size if here.rank == 0 else None
        torch.distributed.gather_object(part, parts, dst=0)
        return parts
    finally:
        # leave together: a rank that tears gloo down while its peer is still inside the last
        # collective can abort the peer's process (SIGABRT) instead of letting it exit with its code
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _join(here: World, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's object collectives go through the current device
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
