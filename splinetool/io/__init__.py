"""Run outputs: one HDF5 file per run, read back into the Result objects the analyses return."""

import importlib

# loaded on first use, so that the light modules of this package (atomic: safe output files, which
# the command line needs before any command runs) import without h5py and torch
HDF5_NAMES = (
    "Provenance",
    "SliceInfo",
    "iter_slice",
    "read",
    "read_provenance",
    "slice_info",
    "stream",
    "write",
)


def __getattr__(name: str) -> object:
    if name not in HDF5_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("splinetool.io.hdf5"), name)
    globals()[name] = value
    return value


__all__ = list(HDF5_NAMES)
