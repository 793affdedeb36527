"""Small helpers the codecs share to put arrays and lists into HDF5 groups and get them back."""

from __future__ import annotations

import h5py
import numpy as np

# below this many elements compression costs more than it saves (and tiny chunks bloat the file)
GZIP_MIN_ELEMENTS = 4096


def put(group: h5py.Group, name: str, array) -> h5py.Dataset:
    array = np.asarray(array)
    compress = {"compression": "gzip", "shuffle": True} if array.size >= GZIP_MIN_ELEMENTS else {}
    return group.create_dataset(name, data=array, **compress)


def strings(values: list[str]) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def string_list(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def scalar(value):
    """numpy scalars (as h5py returns them) to plain Python values."""
    return value.item() if isinstance(value, np.generic) else value
