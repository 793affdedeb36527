"""One HDF5 file per run: provenance at the root, one group per result, each tagged with its encoding."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch

from splinetool.analyses.bn_density import BNDensityResult
from splinetool.analyses.condition import ConditionResult
from splinetool.analyses.count_regions import CountResult
from splinetool.analyses.count_regions_sweep import SweepResult
from splinetool.analyses.debias_sample import DebiasResult, PoolShare
from splinetool.analyses.local_complexity import LCResult
from splinetool.analyses.slice import SliceList, SliceResult
from splinetool.errors import UsageError
from splinetool.io import (
    bn_density_codec,
    condition_codec,
    count_regions_codec,
    debias_sample_codec,
    local_complexity_codec,
    slice_codec,
    slice_list_codec,
)
from splinetool.io.atomic import atomic_path
from splinetool.io.storage import scalar


@dataclass
class Provenance:
    command: str
    argv: list[str]
    checkpoint_sha256: str
    device: str
    seed: int


class Codec(NamedTuple):
    encoding_type: str
    encoding_version: str
    write: Callable[[h5py.Group, object], None]
    read: Callable[[h5py.Group], object]


CODECS: dict[type, Codec] = {
    SliceResult: Codec(
        slice_codec.ENCODING_TYPE, slice_codec.ENCODING_VERSION, slice_codec.write, slice_codec.read
    ),
    LCResult: Codec(
        local_complexity_codec.ENCODING_TYPE,
        local_complexity_codec.ENCODING_VERSION,
        local_complexity_codec.write,
        local_complexity_codec.read,
    ),
    CountResult: Codec(
        count_regions_codec.ENCODING_TYPE,
        count_regions_codec.ENCODING_VERSION,
        count_regions_codec.write,
        count_regions_codec.read,
    ),
    SweepResult: Codec(
        count_regions_codec.SWEEP_ENCODING_TYPE,
        count_regions_codec.SWEEP_ENCODING_VERSION,
        count_regions_codec.write_sweep,
        count_regions_codec.read_sweep,
    ),
    BNDensityResult: Codec(
        bn_density_codec.ENCODING_TYPE,
        bn_density_codec.ENCODING_VERSION,
        bn_density_codec.write,
        bn_density_codec.read,
    ),
    SliceList: Codec(
        slice_list_codec.ENCODING_TYPE,
        slice_list_codec.ENCODING_VERSION,
        slice_list_codec.write,
        slice_list_codec.read,
    ),
    DebiasResult: Codec(
        debias_sample_codec.ENCODING_TYPE,
        debias_sample_codec.ENCODING_VERSION,
        debias_sample_codec.write,
        debias_sample_codec.read,
    ),
    PoolShare: Codec(
        debias_sample_codec.SHARE_ENCODING_TYPE,
        debias_sample_codec.SHARE_ENCODING_VERSION,
        debias_sample_codec.write_share,
        debias_sample_codec.read_share,
    ),
    ConditionResult: Codec(
        condition_codec.ENCODING_TYPE,
        condition_codec.ENCODING_VERSION,
        condition_codec.write,
        condition_codec.read,
    ),
}


# results that can also be written a piece at a time (`stream`): their appenders
STREAMS: dict[type, Callable[[h5py.Group], slice_codec.SliceAppender]] = {
    SliceResult: slice_codec.SliceAppender,
}


@dataclass(frozen=True)
class SliceInfo:
    """The size of a stored slice, read without reading its arrays."""

    regions: int
    vertices: int
    boundary_segments: int
    jacobian_norm: bool  # whether the tiles' Jacobian norms were stored
    tile_bytes: int  # bytes one tile takes in memory on average, over every per-tile and per-vertex array


def write(
    path: str | os.PathLike,
    results: dict[str, object],
    provenance: Provenance,
    attrs: dict[str, str] | None = None,
) -> None:
    """Write `results` (group name -> Result) to `path`, atomically; `attrs` adds root attributes."""
    codecs = {name: _codec_for(result) for name, result in results.items()}
    with _new_file(path, provenance, attrs) as f:
        for name, result in results.items():
            codecs[name].write(_result_group(f, name, codecs[name]), result)


@contextmanager
def stream(
    path: str | os.PathLike,
    provenance: Provenance,
    name: str = "slice",
    result_type: type = SliceResult,
    attrs: dict[str, str] | None = None,
) -> Iterator[slice_codec.SliceAppender]:
    """A run file with one result written piece by piece: yields the appender of group `name`.

    The file appears at `path` only when the block ends without an error and after the appender's
    `finish`; until then it is a temporary file beside `path`, removed on any error or interrupt.
    """
    appender_for = STREAMS.get(result_type)
    if appender_for is None:
        raise TypeError(f"no streaming HDF5 encoding for {result_type.__name__}")
    codec = CODECS[result_type]
    with _new_file(path, provenance, attrs) as f:
        appender = appender_for(_result_group(f, name, codec))
        yield appender
        if not appender.finished:
            raise RuntimeError(f"the stream to {path} ended before finish(): nothing was written")


def read(path: str | os.PathLike) -> dict[str, object]:
    """Every result in a run file, as group name -> the Result object the analysis returned."""
    with _open(path) as f:
        return {name: _read_group(path, group) for name, group in f.items()}


def read_provenance(path: str | os.PathLike) -> dict:
    with _open(path) as f:
        attrs = {key: scalar(value) for key, value in f.attrs.items()}
    if "argv" in attrs:
        attrs["argv"] = json.loads(attrs["argv"])
    return attrs


@contextmanager
def _new_file(path: str | os.PathLike, provenance: Provenance, attrs: dict[str, str] | None):
    """A new HDF5 file that replaces `path` when the block succeeds, stamped with the run's provenance."""
    with atomic_path(path) as temp, h5py.File(temp, "w-", track_order=True) as f:
        f.attrs["splinetool_version"] = version("splinetool")
        f.attrs["command"] = str(provenance.command)
        f.attrs["argv"] = json.dumps([str(a) for a in provenance.argv])
        f.attrs["created_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
        f.attrs["checkpoint_sha256"] = str(provenance.checkpoint_sha256)
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["device"] = str(provenance.device)
        f.attrs["seed"] = int(provenance.seed)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        yield f


def _result_group(f: h5py.File, name: str, codec: Codec) -> h5py.Group:
    group = f.create_group(name, track_order=True)
    group.attrs["encoding-type"] = codec.encoding_type
    group.attrs["encoding-version"] = codec.encoding_version
    return group


def _codec_for(result: object) -> Codec:
    codec = CODECS.get(type(result))
    if codec is None:
        raise TypeError(f"no HDF5 encoding for {type(result).__name__}")
    return codec


def _open(path: str | os.PathLike) -> h5py.File:
    if not Path(path).is_file():
        raise UsageError(f"cannot read {path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise UsageError(f"cannot read {path}: expected a splinetool HDF5 file ({error})") from None


def slice_info(path: str | os.PathLike, group: str = "slice") -> SliceInfo:
    """How many tiles, vertices and boundary segments the slice in `group` of a run file holds."""
    with _open(path) as f, _reading(path, group):
        found = _slice_group(path, f, group)
        regions, vertices = slice_codec.tiles(found), found["vertices"].shape[0]
        per_tile = sum(_row_bytes(found, name) for name in [*slice_codec.PER_TILE, "offsets"])
        per_vertex = sum(_row_bytes(found, name) for name in slice_codec.PER_VERTEX)
        return SliceInfo(
            regions=regions,
            vertices=vertices,
            boundary_segments=found["boundary"].shape[0],
            jacobian_norm="jacobian_norm" in found,
            tile_bytes=per_tile + (per_vertex * vertices) // max(1, regions),
        )


def iter_slice(path: str | os.PathLike, group: str = "slice", tiles: int = 100_000) -> Iterator[SliceResult]:
    """The slice in `group` of a run file, `tiles` tiles at a time, without reading the file whole.

    Each part is a SliceResult of consecutive tiles, in file order, with local offsets (from 0) and
    its rows of every per-tile and per-vertex array. The decision-boundary segments are not tied to
    tiles in the file: they are shared out in file order, part k of n getting segments
    [k S / n, (k + 1) S / n). Concatenating the parts gives the stored slice back; a slice without
    tiles comes as one part. `group` may be a path such as "slice/0003" (one plane of a list).
    """
    if tiles < 1:
        raise UsageError(f"cannot read a slice {tiles} tiles at a time: expected at least 1")
    info = slice_info(path, group)  # checks the file and group before the first part is asked for
    return _parts(path, group, tiles, info)


def _parts(path, group: str, tiles: int, info: SliceInfo) -> Iterator[SliceResult]:
    count = max(1, -(-info.regions // tiles))
    segments = info.boundary_segments
    with _open(path) as f, _reading(path, group):
        found = f[group]
        for k in range(count):
            shared = slice(k * segments // count, (k + 1) * segments // count)
            yield slice_codec.read_part(found, k * tiles, min(info.regions, (k + 1) * tiles), shared)


def _row_bytes(group: h5py.Group, name: str) -> int:
    if name not in group:
        return 0
    dataset = group[name]
    return dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))


def _slice_group(path, f: h5py.File, name: str) -> h5py.Group:
    group = f.get(name)
    if not isinstance(group, h5py.Group):
        raise UsageError(f"cannot read a slice from {path}: it has no group '{name}'")
    codec = _group_codec(path, group)
    if codec.encoding_type != slice_codec.ENCODING_TYPE:
        raise UsageError(
            f"cannot read a slice from group '{group.name}' of {path}: it holds {codec.encoding_type}"
        )
    return group


@contextmanager
def _reading(path, group: str):
    try:
        yield
    except KeyError as error:
        raise UsageError(f"cannot read group '{group}' of {path}: missing {error}") from None


def _read_group(path, group) -> object:
    codec = _group_codec(path, group)
    with _reading(path, group.name):
        return codec.read(group)


def _group_codec(path, group) -> Codec:
    by_type = {codec.encoding_type: codec for codec in CODECS.values()}
    encoding = group.attrs.get("encoding-type")
    codec = by_type.get(scalar(encoding))
    if codec is None:
        raise UsageError(
            f"cannot read group '{group.name}' of {path}: encoding-type {encoding!r} is not one of "
            + ", ".join(sorted(by_type))
        )
    found = scalar(group.attrs.get("encoding-version"))
    if found != codec.encoding_version:
        raise UsageError(
            f"cannot read group '{group.name}' of {path}: {codec.encoding_type} version {found!r}, "
            f"expected {codec.encoding_version}"
        )
    return codec
