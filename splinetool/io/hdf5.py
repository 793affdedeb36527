"""One HDF5 file per run: provenance at the root, one group per result, each tagged with its encoding."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
import torch

from splinetool.analyses.slice import SliceResult
from splinetool.errors import UsageError
from splinetool.io import slice_codec
from splinetool.io.atomic import atomic_path
from splinetool.io.commands import GROUP_OF_OLD, KINDS, Codec, kind_of
from splinetool.io.storage import scalar


@dataclass
class Provenance:
    command: str
    argv: list[str]
    checkpoint_sha256: str
    device: str
    seed: int


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
    kind = KINDS.get(result_type)
    if kind is None or kind.appender is None:
        raise TypeError(f"no streaming HDF5 encoding for {result_type.__name__}")
    with _new_file(path, provenance, attrs) as f:
        appender = kind.appender(_result_group(f, name, kind.codec))
        yield appender
        if not appender.finished:
            raise RuntimeError(f"the stream to {path} ended before finish(): nothing was written")


def read(path: str | os.PathLike) -> dict[str, object]:
    """Every result in a run file, as group name -> the Result object the analysis returned.

    Groups are named after the command that wrote them; the group of a file an earlier version of
    that command wrote under another name reads under today's name."""
    with _open(path) as f:
        command = scalar(f.attrs["command"]) if "command" in f.attrs else None
        return {_current_name(name, command): _read_group(path, group) for name, group in f.items()}


def _current_name(group: str, command: object) -> str:
    renamed = GROUP_OF_OLD.get(group)
    return renamed if renamed is not None and renamed == command else group


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
    return kind_of(result).codec


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
    by_type = {kind.codec.encoding_type: kind.codec for kind in KINDS.values()}
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
