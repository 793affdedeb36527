"""Shard files (one share of a command's work, from `--shard i/n`) and merging them into one run file.

A shard file is an ordinary run file whose results cover one share of the items, with a root
attribute `shard` (JSON) recording what the merged result depends on: the command, its parameters
(normalised option values, without output paths or --shard), the checkpoints' sha256, and the share
(index, count, its item range start:stop, and the total item count). `merge` accepts a set of shards
only when all of that agrees, every share 0..count-1 is present exactly once, and each shard's
results hold exactly the items its header declares (a file edited or cut short by hand, or written by
something else, is refused before anything is written).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from splinetool.errors import UsageError
from splinetool.io.commands import KINDS
from splinetool.io.hdf5 import Provenance, read, read_provenance, write
from splinetool.parallel import Share

SHARD_ATTRIBUTE = "shard"


def combine(parts: Sequence[object]) -> object:
    """One result from the partial results of shares 0..n-1, in share order."""
    kind = KINDS.get(type(parts[0]))
    if kind is None or kind.combine is None:
        raise TypeError(f"no way to combine shares of {type(parts[0]).__name__}")
    return kind.combine(parts)


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
        raise UsageError(f"{path} is not a shard file (those are written by a command run with `shard` i/n)")
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
    _check_contents([paths[i] for i in order], [infos[i] for i in order], parts)
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
            f"missing share(s) {', '.join(missing)} of {head.count} (written by `shard` i/{head.count})"
        )


def _check_contents(paths: Sequence[Path], infos: Sequence[ShardInfo], parts: Sequence[dict]) -> None:
    """Every result of every shard (in share order) holds the items its header declares, and combines.

    The headers agree by now; this catches a shard whose data do not match its header, before
    combining turns it into a plausible but wrong merged file (or fails half-way with a traceback).
    """
    for name, first in parts[0].items():
        kind = type(first)
        items, place = _items_of(kind), KINDS[kind].place if kind in KINDS else None
        if items is None:
            shared = sorted(t.__name__ for t, k in KINDS.items() if k.items is not None)
            raise UsageError(
                f"{paths[0]}: its '{name}' result is a {kind.__name__}, which is not split into items "
                f"(shards hold {', '.join(shared)})"
            )
        fields = sorted(items(first))
        for path, info, part in zip(paths, infos, parts):
            result = part[name]
            held = items(result) if type(result) is kind else {}
            if not held and type(result) is kind:
                raise UsageError(
                    f"{path}: its '{name}' result holds nothing per item (such as a sampled count, "
                    "which is one estimate over all its points): it is not a share of a run"
                )
            # the same type with the same per-item fields (e.g. one count-regions method) combines
            if sorted(held) != fields:
                raise UsageError(
                    f"{path}: its '{name}' result is a {type(result).__name__} with "
                    f"{', '.join(sorted(held)) or 'other fields'}, which does not combine with "
                    f"{paths[0]}'s {kind.__name__} with {', '.join(fields)}"
                )
            declared = info.stop - info.start
            for field, count in held.items():
                if count != declared:
                    raise UsageError(
                        f"{path}: declares items {info.start}:{info.stop} ({declared} items) but its "
                        f"'{name}' result holds {count} ({field})"
                    )
            if place is not None and place(result) != (info.start, info.total):
                start, total = place(result)
                raise UsageError(
                    f"{path}: declares items {info.start}:{info.stop} of {info.total} but its '{name}' "
                    f"result holds items from {start} of {total}"
                )


def _items_of(result_type: type):
    kind = KINDS.get(result_type)
    return None if kind is None else kind.items
