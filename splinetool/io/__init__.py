"""Run outputs: one HDF5 file per run, read back into the Result objects the analyses return."""

from splinetool.io.hdf5 import (
    Provenance,
    SliceInfo,
    iter_slice,
    read,
    read_provenance,
    slice_info,
    stream,
    write,
)

__all__ = [
    "Provenance",
    "SliceInfo",
    "iter_slice",
    "read",
    "read_provenance",
    "slice_info",
    "stream",
    "write",
]
