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


# a growing dataset's chunks: big enough to compress well, small enough to read a few rows cheaply
CHUNK_BYTES = 1 << 18


def put_growing(group: h5py.Group, name: str, array) -> h5py.Dataset:
    """A dataset holding `array` that `append_rows` can extend along its first axis (chunked, gzip)."""
    array = np.asarray(array)
    rest = array.shape[1:]
    row_bytes = max(1, array.dtype.itemsize * int(np.prod(rest)))
    # a zero-length trailing axis cannot be chunked at its length: that axis is left unbounded
    chunks = (max(1, CHUNK_BYTES // row_bytes), *(max(1, d) for d in rest))
    maxshape = (None, *(d if d else None for d in rest))
    return group.create_dataset(
        name, data=array, chunks=chunks, maxshape=maxshape, compression="gzip", shuffle=True
    )


def append_rows(dataset: h5py.Dataset, array) -> None:
    array = np.asarray(array)
    if array.size == 0:
        return
    if array.shape[1:] != dataset.shape[1:]:
        raise ValueError(f"cannot append rows of shape {array.shape[1:]} to {dataset.name} {dataset.shape}")
    start = dataset.shape[0]
    dataset.resize(start + len(array), axis=0)
    dataset[start:] = array
