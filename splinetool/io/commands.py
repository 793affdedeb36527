"""Every command's outputs, registered in one place.

A command returns one or more Result types. For each, its `ResultKind` says how it is stored in a run
file (the codec), how the partial results of consecutive shares join into one (`combine`, from the
analysis), which fields hold one row per shared-out item (`items`, checked by `merge`), whether it can
be written a piece at a time (`appender`), and which renderer draws it. A command's results live in
the run file's group named after the command; `old_groups` are the names earlier versions wrote,
still read.

Adding a command adds one `CommandSpec` here (see CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import NamedTuple

import h5py
import numpy as np

from splinetool.analyses import (
    bn_density,
    condition,
    count_regions,
    count_regions_sweep,
    debias_sample,
    local_complexity,
    slice,
)
from splinetool.io import (
    bn_density_codec,
    condition_codec,
    count_regions_codec,
    debias_sample_codec,
    local_complexity_codec,
    slice_codec,
    slice_list_codec,
)


class Codec(NamedTuple):
    encoding_type: str
    encoding_version: str
    write: Callable[[h5py.Group, object], None]
    read: Callable[[h5py.Group], object]


@dataclass(frozen=True)
class ResultKind:
    type: type
    codec: Codec
    combine: Callable[[Sequence], object] | None = None
    items: Callable[[object], dict[str, int]] | None = None  # per-item field -> rows it holds
    place: Callable[[object], tuple[int, int]] | None = None  # (first item, total) a share records itself
    appender: Callable[[h5py.Group], object] | None = None  # writes the result a piece at a time
    draw: str | None = None  # "module:function" under splinetool.render, imported when drawing

    def drawer(self) -> Callable:
        module, function = self.draw.split(":")
        return getattr(import_module(f"splinetool.render.{module}"), function)


@dataclass(frozen=True)
class CommandSpec:
    name: str  # the command, and the group its results take in a run file
    results: tuple[ResultKind, ...]
    old_groups: tuple[str, ...] = ()


def _codec(module) -> Codec:
    """The codec a codec module defines: ENCODING_TYPE, ENCODING_VERSION, write and read."""
    return Codec(module.ENCODING_TYPE, module.ENCODING_VERSION, module.write, module.read)


def _rows(array, axis: int = 0) -> int:
    """Length of `array` along `axis` (0 where it has no such axis: it then holds no rows there)."""
    return int(np.shape(array)[axis]) if np.ndim(array) > axis else 0


def _span(offsets) -> int:
    """Rows covered by an offsets array [k + 1] (rows offsets[0]:offsets[-1])."""
    return int(offsets[-1] - offsets[0]) if _rows(offsets) else 0


def _count_items(result: count_regions.RegionCount) -> dict[str, int]:
    # exact-1d shares out segments, exact-2d planes; breakpoints, outputs and piece codes are rows
    # per breakpoint or piece, not per item. A sampled count is one estimate over all its points
    # (count-regions refuses --shard with --sample): it holds no items, which merge refuses.
    if isinstance(result, count_regions.SegmentCount):
        held = {name: _rows(getattr(result, name)) for name in ("starts", "ends", "pieces_per_node")}
        return held | {"offsets": _rows(result.offsets) - 1}  # one more offset than segments
    return {name: _rows(getattr(result, name)) for name in result.PER_ITEM}


def _count_kind(result_type: type, draw: str, joined: bool = True) -> ResultKind:
    combine = count_regions.combine if joined else None
    return ResultKind(result_type, _codec(count_regions_codec), combine, _count_items, draw=draw)


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            "slice",
            (
                ResultKind(
                    slice.SliceResult,
                    _codec(slice_codec),
                    appender=slice_codec.SliceAppender,
                    draw="slice:draw_slice",
                ),
                ResultKind(
                    slice.SliceList,
                    _codec(slice_list_codec),
                    combine=slice.combine,
                    items=lambda planes: {"slices": len(planes.slices)},
                ),
                ResultKind(
                    slice.SliceTrajectory,
                    Codec(
                        slice_codec.TRAJECTORY_ENCODING_TYPE,
                        slice_codec.TRAJECTORY_ENCODING_VERSION,
                        slice_codec.write_trajectory,
                        slice_codec.read_trajectory,
                    ),
                    combine=slice.combine_trajectory,
                    items=lambda trajectory: {
                        name: len(getattr(trajectory, name)) for name in slice.SLICE_TRAJECTORY_LISTS
                    },
                    draw="slice_trajectory:draw_slice_trajectory",
                ),
            ),
        ),
        CommandSpec(
            "count-regions",
            (
                _count_kind(count_regions.SegmentCount, "count_regions:draw_segments"),
                _count_kind(count_regions.PlaneCount, "count_regions:draw_per_layer"),
                # one estimate over all the points: not shared out, so never joined
                _count_kind(count_regions.SampledCount, "count_regions:draw_per_layer", joined=False),
                ResultKind(
                    count_regions_sweep.SweepResult,
                    Codec(
                        count_regions_codec.SWEEP_ENCODING_TYPE,
                        count_regions_codec.SWEEP_ENCODING_VERSION,
                        count_regions_codec.write_sweep,
                        count_regions_codec.read_sweep,
                    ),
                    draw="count_regions:draw_sweep",
                ),
            ),
            old_groups=("count",),
        ),
        CommandSpec(
            "local-complexity",
            (
                ResultKind(
                    local_complexity.LCResult,
                    _codec(local_complexity_codec),
                    combine=local_complexity.combine,
                    # points: per_point is [checkpoints, points, nodes], set_offsets splits them into sets
                    items=lambda lc: {
                        "per_point": _rows(lc.per_point, axis=1),
                        "set_offsets": _span(lc.set_offsets),
                    },
                    draw="local_complexity:draw_local_complexity",
                ),
            ),
            old_groups=("local_complexity",),
        ),
        CommandSpec(
            "bn-density",
            (
                ResultKind(
                    bn_density.BNDensityResult, _codec(bn_density_codec), draw="bn_density:draw_bn_density"
                ),
            ),
            old_groups=("bn_density",),
        ),
        CommandSpec(
            "condition",
            (
                ResultKind(
                    condition.ConditionResult, _codec(condition_codec), draw="condition:draw_condition"
                ),
            ),
        ),
        CommandSpec(
            "debias-sample",
            (
                ResultKind(
                    debias_sample.DebiasResult, _codec(debias_sample_codec), draw="debias_sample:draw_debias"
                ),
                ResultKind(
                    debias_sample.PoolShare,
                    Codec(
                        debias_sample_codec.SHARE_ENCODING_TYPE,
                        debias_sample_codec.SHARE_ENCODING_VERSION,
                        debias_sample_codec.write_share,
                        debias_sample_codec.read_share,
                    ),
                    combine=debias_sample.combine,
                    # pool rows (latents); candidates and outputs are only the rows a draw can pick
                    items=lambda share: {
                        "latents": _rows(share.latents),
                        **{name: _rows(value) for name, value in vars(share.measures).items()},
                    },
                    place=lambda share: (share.start, share.plan.pool),
                ),
            ),
            old_groups=("debias",),
        ),
    )
}

KINDS: dict[type, ResultKind] = {kind.type: kind for spec in COMMANDS.values() for kind in spec.results}
# a group name an earlier version wrote -> the command's group today
GROUP_OF_OLD: dict[str, str] = {old: spec.name for spec in COMMANDS.values() for old in spec.old_groups}


def kind_of(result: object) -> ResultKind:
    kind = KINDS.get(type(result))
    if kind is None:
        raise TypeError(f"no registered command returns {type(result).__name__}")
    return kind
