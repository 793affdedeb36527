"""Shard files (one share of a command's work, from `--shard i/n`) and merging them into one run file.

A shard file is an ordinary run file whose results cover one share of the items, with a root
attribute `shard` (JSON) recording what the merged result depends on: the command, its parameters
(normalised option values, without output paths or --shard), the checkpoints' sha256, and the share
(index, count, its item range start:stop, and the total item count). `merge` accepts a set of shards
only when all of that agrees and every share 0..count-1 is present exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from splinetool.analyses import count_regions, debias_sample, local_complexity, slice
from splinetool.errors import UsageError
from splinetool.io.hdf5 import Provenance, read, read_provenance, write
from splinetool.parallel import Share

SHARD_ATTRIBUTE = "shard"

# how the partial results of consecutive shares become one result, per Result type
COMBINERS: dict[type, Callable[[Sequence], object]] = {
    count_regions.CountResult: count_regions.combine,
    debias_sample.PoolShare: debias_sample.combine,
    local_complexity.LCResult: local_complexity.combine,
    slice.SliceList: slice.combine,
}


def combine(parts: Sequence[object]) -> object:
    """One result from the partial results of shares 0..n-1, in share order."""
    kind = type(parts[0])
    if kind not in COMBINERS:
        raise TypeError(f"no way to combine shares of {kind.__name__}")
    return COMBINERS[kind](parts)


@dataclass(frozen=True)
class ShardInfo:
    command: str
    parameters: dict  # option name -> normalised value (JSON types)
    checkpoint_sha256: str
    index: int
    count: int
    start: int  # the share's items are start:stop of `total`
    stop: int
    total: int

    @property
    def share(self) -> Share:
        return Share(self.index, self.count)


def write_shard(
    path: str | os.PathLike, results: dict[str, object], provenance: Provenance, info: ShardInfo
) -> None:
    write(path, results, provenance, {SHARD_ATTRIBUTE: json.dumps(asdict(info), sort_keys=True)})


def read_shard_info(path: str | os.PathLike) -> ShardInfo:
    attrs = read_provenance(path)
    if SHARD_ATTRIBUTE not in attrs:
        raise UsageError(f"{path} is not a shard file (those are written by a command run with --shard i/n)")
    try:
        return ShardInfo(**json.loads(attrs[SHARD_ATTRIBUTE]))
    except (TypeError, ValueError) as error:
        raise UsageError(f"{path}: unreadable shard attribute ({error})") from None


def merge(paths: Sequence[Path], output: Path, argv: list[str]) -> tuple[ShardInfo, dict[str, object]]:
    """Check that `paths` are the shares of one run, and write the combined results to `output`."""
    infos = [read_shard_info(p) for p in paths]
    _check_together(paths, infos)
    order = sorted(range(len(paths)), key=lambda i: infos[i].index)
    parts = [read(paths[i]) for i in order]
    names = list(parts[0])
    for i, part in zip(order, parts):
        if list(part) != names:
            raise UsageError(f"{paths[i]} holds results {list(part)}, {paths[order[0]]} holds {names}")
    results = {name: combine([part[name] for part in parts]) for name in names}
    first = read_provenance(paths[order[0]])
    devices = sorted({str(read_provenance(p).get("device")) for p in paths})
    provenance = Provenance(
        infos[0].command, argv, infos[0].checkpoint_sha256, ",".join(devices), first["seed"]
    )
    write(output, results, provenance, {"merged_from": json.dumps([str(paths[i]) for i in order])})
    return infos[0], results


def _check_together(paths: Sequence[Path], infos: Sequence[ShardInfo]) -> None:
    first, head = paths[0], infos[0]
    for path, info in zip(paths[1:], infos[1:]):
        if info.command != head.command:
            raise UsageError(f"{path} is a shard of '{info.command}', {first} of '{head.command}'")
        differ = sorted(
            k
            for k in head.parameters.keys() | info.parameters.keys()
            if head.parameters.get(k) != info.parameters.get(k)
        )
        if differ:
            detail = "; ".join(
                f"{k.replace('_', '-')}: {head.parameters.get(k)!r} vs {info.parameters.get(k)!r}"
                for k in differ
            )
            raise UsageError(f"{path} was run with other parameters than {first} ({detail})")
        if info.checkpoint_sha256 != head.checkpoint_sha256:
            raise UsageError(
                f"{path} measured other checkpoint contents than {first} "
                f"(sha256 {info.checkpoint_sha256} vs {head.checkpoint_sha256})"
            )
        if (info.count, info.total) != (head.count, head.total):
            raise UsageError(
                f"{path} is share {info.index}/{info.count} of {info.total} items, "
                f"{first} share {head.index}/{head.count} of {head.total}"
            )
    seen: dict[int, Path] = {}
    for path, info in zip(paths, infos):
        if range(info.start, info.stop) != info.share.items(info.total):
            raise UsageError(
                f"{path}: items {info.start}:{info.stop} are not share {info.share} of {info.total}"
            )
        if info.index in seen:
            raise UsageError(f"share {info.share} is given twice: {seen[info.index]} and {path}")
        seen[info.index] = path
    missing = [str(i) for i in range(head.count) if i not in seen]
    if missing:
        raise UsageError(
            f"missing share(s) {', '.join(missing)} of {head.count} (written by --shard i/{head.count})"
        )
