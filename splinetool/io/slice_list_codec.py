"""The `splinetool.slice_list` encoding of a SliceList: one `splinetool.slice` subgroup per plane."""

from __future__ import annotations

import h5py

from splinetool.analyses.slice import SliceList
from splinetool.io import slice_codec
from splinetool.io.storage import scalar

ENCODING_TYPE = "splinetool.slice_list"
ENCODING_VERSION = "0.1.0"


def plane_name(index: int) -> str:
    return f"{index:04d}"  # zero-padded, so that the subgroups also sort in plane order by name


def write(group: h5py.Group, result: SliceList) -> None:
    group.attrs["planes"] = len(result.slices)
    for index, one in enumerate(result.slices):
        sub = group.create_group(plane_name(index), track_order=True)
        sub.attrs["encoding-type"] = slice_codec.ENCODING_TYPE
        sub.attrs["encoding-version"] = slice_codec.ENCODING_VERSION
        slice_codec.write(sub, one)


def read(group: h5py.Group) -> SliceList:
    planes = int(scalar(group.attrs["planes"]))
    return SliceList([slice_codec.read(group[plane_name(i)]) for i in range(planes)])
