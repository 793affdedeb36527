"""Run outputs: one HDF5 file per run, read back into the Result objects the analyses return."""

from splinetool.io.hdf5 import Provenance, read, read_provenance, write

__all__ = ["Provenance", "read", "read_provenance", "write"]
