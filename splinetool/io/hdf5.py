"""One HDF5 file per run: provenance at the root, one group per result, each tagged with its encoding."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import h5py
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


def write(
    path: str | os.PathLike,
    results: dict[str, object],
    provenance: Provenance,
    attrs: dict[str, str] | None = None,
) -> None:
    """Write `results` (group name -> Result) to `path`, atomically; `attrs` adds root attributes."""
    codecs = {name: _codec_for(result) for name, result in results.items()}
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
        for name, result in results.items():
            group = f.create_group(name, track_order=True)
            group.attrs["encoding-type"] = codecs[name].encoding_type
            group.attrs["encoding-version"] = codecs[name].encoding_version
            codecs[name].write(group, result)


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


def _read_group(path, group) -> object:
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
    try:
        return codec.read(group)
    except KeyError as error:
        raise UsageError(f"cannot read group '{group.name}' of {path}: missing {error}") from None
