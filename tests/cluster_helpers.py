"""Small data, plane lists and file comparison shared by the shard, merge and torchrun tests."""

import h5py
import numpy as np

from tests.conftest import SAMPLES

TRAJECTORY = [SAMPLES / "digits-mlp-trajectory" / f"step-{s:06d}.ts.pt" for s in (0, 100, 300000)]
MOONS = SAMPLES / "moons-mlp.ts.pt"
# three planes of the moons model's input space: 207, 1,596 and 268 tiles (default margin)
ANCHORS = np.array(
    [[[0.2, 0.1], [0.1, 0.3], [-0.3, 0.2]], [[-1, 0], [1, 0.2], [0, 1]], [[0, 0], [0.5, 0], [0, 0.5]]]
)
# run-dependent attributes: how long it took, when, from which command line
VOLATILE = {"seconds", "created_utc", "argv", "merged_from", "shard", "device"}


def small_digits(path):
    """30 train and 21 test digits, the test labels shuffled so that accuracy is neither 0 nor 1."""
    with np.load(SAMPLES / "data" / "digits.npz") as f:
        y_test = np.random.default_rng(0).permutation(f["y_test"][:21])
        np.savez(
            path, x_train=f["x_train"][:30], y_train=f["y_train"][:30], x_test=f["x_test"][:21], y_test=y_test
        )
    return path


def contents(path) -> dict:
    """Every dataset and attribute of a run file by name, leaving out the run-dependent attributes."""
    found = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            found[name] = item[()]
        for key, value in item.attrs.items():
            if key not in VOLATILE:
                found[f"{name}@{key}"] = value

    with h5py.File(path, "r") as f:
        visit("", f)
        f.visititems(visit)
    return found


def assert_same_file(a, b, rounding: float = 0.0):
    """Equal files; with `rounding`, floating-point arrays may differ by that much (relative), as matrix
    products over batches of other sizes round differently. Integers and strings must always agree."""
    left, right = contents(a), contents(b)
    assert sorted(left) == sorted(right)
    for key in left:
        a, b = np.asarray(left[key]), np.asarray(right[key])
        if rounding and a.dtype.kind == "f":
            assert np.allclose(a, b, rtol=rounding, atol=rounding), key
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key
