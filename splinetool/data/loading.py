"""Load input points from a data file or a built-in generator into a `Dataset`.

A spec is either a path (`.npy`, `.npz`, `.h5`/`.hdf5`, `.pt`) or a generator name with an optional
count (`moons`, `moons:200`). Files hold an array `x` (one row per sample) and optionally labels `y`;
a split such as `train` selects `x_train`/`y_train`, or `train/x`/`train/y` (an HDF5 group, say).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from splinetool.data.generators import GENERATORS, generate
from splinetool.engine.store import check_memory
from splinetool.errors import UsageError

DEFAULT_COUNT = 500
# a generated point: x (2 float64), y (int64) and the generators' temporaries, about as many again twice
GENERATED_POINT_BYTES = 96

# What numpy, h5py and torch raise on a truncated, corrupt or mislabelled file.
READ_ERRORS = (OSError, ValueError, RuntimeError, EOFError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Dataset:
    """Points `x` (float64, [N, ...]), labels `y` ([N] or None) and a description of where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    source: str


class _Whole(dict):
    """A file that is one array (a .npy file, a bare .pt tensor): the points `x` where points are read,
    and the array itself wherever another array is asked for (`read_array`)."""


@contextmanager
def _open_npy(path: Path) -> Iterator[Mapping]:
    yield _Whole(x=np.load(path, allow_pickle=False))


@contextmanager
def _open_npz(path: Path) -> Iterator[Mapping]:
    with np.load(path, allow_pickle=False) as archive:
        yield archive


@contextmanager
def _open_h5(path: Path) -> Iterator[Mapping]:
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        # Datasets are read only when picked, so unused splits of a large file stay on disk.
        yield {name: f[name] for name in names}


@contextmanager
def _open_pt(path: Path) -> Iterator[Mapping]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        obj = _Whole(x=obj)
    if not isinstance(obj, dict):
        raise UsageError(
            f"data file {path} holds a {type(obj).__name__}; expected a tensor (the points) or a dict "
            "with a tensor 'x' and optional labels 'y'"
        )
    yield obj


READERS: dict[str, Callable[[Path], AbstractContextManager[Mapping]]] = {
    ".npy": _open_npy,
    ".npz": _open_npz,
    ".h5": _open_h5,
    ".hdf5": _open_h5,
    ".pt": _open_pt,
}


def _names(kind: str, split: str | None) -> list[str]:
    return [kind] if split is None else [f"{kind}_{split}", f"{split}/{kind}"]


def _array(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        # numpy has no bfloat16 and no half-precision arithmetic worth keeping: widen first.
        value = value.detach().cpu()
        return (value.double() if value.is_floating_point() else value).numpy()
    return np.asarray(value)


def _read_file(path: Path, split: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        generators = ", ".join(GENERATORS)
        raise UsageError(f"data file {path} does not exist (nor is it a built-in generator: {generators})")
    with _opened(path, f"data file {path}") as arrays:
        x_name = next((name for name in _names("x", split) if name in arrays), None)
        if x_name is None:
            wanted = " or ".join(repr(name) for name in _names("x", split))
            hint = "" if split is None else f" (the {split!r} split)"
            held = ", ".join(arrays) or "nothing"
            raise UsageError(f"data file {path} has no array {wanted}{hint}; it holds: {held}")
        y_name = next((name for name in _names("y", split) if name in arrays), None)
        return _array(arrays[x_name]), None if y_name is None else _array(arrays[y_name])


def read_array(path: Path, name: str, what: str) -> np.ndarray:
    """The array `name` of a file (an .npz key, an HDF5 dataset, an entry of a .pt dict), or the one
    array of a file that holds nothing else (.npy, a bare .pt tensor), in its own shape and dtype;
    `what` names the file (and the option that gave it) for messages."""
    if not path.is_file():
        raise UsageError(f"{what} does not exist")
    with _opened(path, what) as arrays:
        if isinstance(arrays, _Whole):
            return _array(arrays["x"])
        if name not in arrays:
            raise UsageError(f"{what} has no array {name!r}; it holds: {', '.join(arrays) or 'nothing'}")
        return _array(arrays[name])


@contextmanager
def _opened(path: Path, what: str) -> Iterator[Mapping]:
    """The arrays of an existing file by name; what the readers raise on a bad file becomes a message
    naming `what`."""
    opener = READERS.get(path.suffix.lower())
    if opener is None:
        raise UsageError(f"{what} has an unknown extension; expected one of {', '.join(READERS)}")
    try:
        with opener(path) as arrays:
            yield arrays
    except pickle.UnpicklingError:
        raise UsageError(
            f"{what} cannot be loaded safely (torch.load with weights_only=True): it is corrupt or "
            "holds objects other than tensors; expected a tensor, or a dict {'x': tensor, 'y': tensor}"
        ) from None
    except READ_ERRORS as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "allow_pickle" in reason:
            # numpy's advice here is to unpickle untrusted data; say what the file is instead.
            reason = "not an array file, or it holds pickled Python objects"
        raise UsageError(f"{what} is not a readable {path.suffix} file ({reason})") from None


def _checked(x: np.ndarray, y: np.ndarray | None, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise UsageError(f"x in {source} has dtype {x.dtype}; expected real numbers")
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(
            f"x in {source} has shape {list(x.shape)}; expected [N, ...] with one row per sample "
            "(N >= 1; store a single feature as [N, 1])"
        )
    x = x.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
    if bad:
        raise UsageError(f"x in {source} has NaN or infinite values in {bad} of its {len(x)} rows")
    if y is not None and (y.ndim == 0 or len(y) != len(x)):
        raise UsageError(
            f"y in {source} has shape {list(y.shape)}; expected one label per row of x ({len(x)})"
        )
    return x, y


def load_data(spec: str, split: str | None = None, n: int | None = None, seed: int = 0) -> Dataset:
    """Load a data file or draw from a built-in generator.

    For a generator, `n` (or the count in `name:count`, default 500) points are drawn with `seed`;
    generators have no splits. For a file, `split` picks `x_SPLIT`/`SPLIT/x` instead of `x`, and `n`,
    when smaller than the file, keeps a random subset of `n` rows (chosen with `seed`, in file order).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise UsageError(f"the number of points must be an integer >= 1, got {n!r}")
    if not str(spec).strip():
        raise UsageError("an empty data spec: expected a data file or a generator such as moons:500")
    name, _, count = str(spec).partition(":")
    if name in GENERATORS and not Path(spec).exists():
        return _generated(name, count, split, n, seed)

    path = Path(spec)
    source = str(path) if split is None else f"{path} ({split} split)"
    x, y = _checked(*_read_file(path, split), source)
    if n is not None and n < len(x):
        keep = np.sort(np.random.default_rng(seed % 2**64).choice(len(x), size=n, replace=False))
        x, y = x[keep], None if y is None else y[keep]
        source += f", {n} random rows (seed {seed})"
    return Dataset(x=x, y=y, source=source)


def _generated(name: str, count: str, split: str | None, n: int | None, seed: int) -> Dataset:
    if split is not None:
        raise UsageError(
            f"generator '{name}' has no {split!r} split; draw a separate set with another seed instead"
        )
    if count:
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"data spec '{name}:{count}': the count after ':' must be a positive integer")
        if n is not None and n != int(count):
            raise UsageError(f"data spec '{name}:{count}' asks for {count} points but {n} were requested")
    total = int(count) if count else n if n is not None else DEFAULT_COUNT
    check_memory(total * GENERATED_POINT_BYTES, f"data spec '{name}:{total}'", "draw fewer points")
    x, y = generate(name, total, seed)
    return Dataset(x=x, y=y, source=f"{name}:{total} (seed {seed})")


def spread(x: np.ndarray) -> float:
    """Root-mean-square distance of the rows of `x` to their mean: the data's scale."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    # points spread past ~1e154 overflow the squares: the caller is told by an inf, not a warning
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))
