from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from splinetool.data.generators import generate
from splinetool.data.loading import DEFAULT_COUNT, load_data
from splinetool.errors import UsageError

DIGITS = Path(__file__).resolve().parents[2] / "sample_models" / "data" / "digits.npz"

X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
Y = np.arange(12) % 4


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def write_h5(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f[name] = value
    return path


def write_pt(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def assert_loaded(data, x, y):
    assert data.x.dtype == np.float64
    np.testing.assert_array_equal(data.x, x)
    if y is None:
        assert data.y is None
    else:
        np.testing.assert_array_equal(data.y, y)


def test_npy_holds_points_only(tmp_path):
    np.save(tmp_path / "x.npy", X)
    data = load_data(str(tmp_path / "x.npy"))
    assert_loaded(data, X, None)
    assert data.source == str(tmp_path / "x.npy")


def test_npz_with_and_without_labels(tmp_path):
    assert_loaded(load_data(str(write_npz(tmp_path / "a.npz", x=X, y=Y))), X, Y)
    assert_loaded(load_data(str(write_npz(tmp_path / "b.npz", x=X))), X, None)


def test_npz_splits(tmp_path):
    path = write_npz(tmp_path / "d.npz", x_train=X[:8], y_train=Y[:8], x_test=X[8:], y_test=Y[8:])
    assert_loaded(load_data(str(path), split="train"), X[:8], Y[:8])
    test = load_data(str(path), split="test")
    assert_loaded(test, X[8:], Y[8:])
    assert "test" in test.source


def test_h5_root_datasets_and_split_groups(tmp_path):
    assert_loaded(load_data(str(write_h5(tmp_path / "a.h5", x=X, y=Y))), X, Y)
    path = write_h5(tmp_path / "b.hdf5", **{"train/x": X[:8], "train/y": Y[:8], "test/x": X[8:]})
    assert_loaded(load_data(str(path), split="train"), X[:8], Y[:8])
    assert_loaded(load_data(str(path), split="test"), X[8:], None)
    path = write_h5(tmp_path / "c.h5", x_test=X[8:], y_test=Y[8:])
    assert_loaded(load_data(str(path), split="test"), X[8:], Y[8:])


def test_pt_tensor_and_dict(tmp_path):
    assert_loaded(load_data(str(write_pt(tmp_path / "a.pt", torch.from_numpy(X)))), X, None)
    # bfloat16 has no numpy counterpart: it must come back widened, not fail.
    half = torch.from_numpy(X).to(torch.bfloat16)
    path = write_pt(tmp_path / "b.pt", {"x": half, "y": torch.from_numpy(Y)})
    data = load_data(str(path))
    np.testing.assert_allclose(data.x, X, rtol=1e-2)
    np.testing.assert_array_equal(data.y, Y)
    path = write_pt(tmp_path / "c.pt", {"x_train": torch.from_numpy(X), "y_train": torch.from_numpy(Y)})
    assert_loaded(load_data(str(path), split="train"), X, Y)


def test_images_keep_their_shape(tmp_path):
    images = np.zeros((5, 1, 4, 4))
    assert load_data(str(write_npz(tmp_path / "img.npz", x=images))).x.shape == (5, 1, 4, 4)


def test_n_keeps_a_seeded_subset_in_file_order(tmp_path):
    path = str(write_npz(tmp_path / "a.npz", x=X, y=Y))
    subset = load_data(path, n=5, seed=1)
    assert subset.x.shape == (5, 3)
    rows = [int(np.flatnonzero((row == X).all(axis=1))[0]) for row in subset.x]
    assert rows == sorted(rows) and Y[rows].tolist() == subset.y.tolist()
    np.testing.assert_array_equal(load_data(path, n=5, seed=1).x, subset.x)
    assert load_data(path, n=100).x.shape == (12, 3)


def test_generator_specs():
    data = load_data("moons:200", seed=3)
    x, y = generate("moons", 200, seed=3)
    assert_loaded(data, x, y)
    assert data.source == "moons:200 (seed 3)"
    assert load_data("star").x.shape == (DEFAULT_COUNT, 2)
    assert load_data("spiral", n=40).x.shape == (40, 2)
    assert load_data("gaussian-mixture:40", n=40).x.shape == (40, 2)


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("moons:abc", {}, "positive integer"),
        ("moons:0", {}, "positive integer"),
        ("moons:20", {"n": 30}, "asks for 20 points"),
        ("moons", {"split": "test"}, "no 'test' split"),
        ("moons", {"n": 0}, "integer >= 1"),
    ],
)
def test_bad_generator_specs(spec, kwargs, message):
    with pytest.raises(UsageError) as info:
        load_data(spec, **kwargs)
    assert message in str(info.value)


def csv(path):
    path.write_text("1,2\n")
    return path


def plain_npy(path):
    np.save(path, X)
    return path


def nan_x(path):
    return write_npz(path, x=np.array([[0.0, 1.0], [np.nan, 2.0]]))


def inf_x(path):
    return write_h5(path, x=np.array([[0.0, np.inf]]))


def short_y(path):
    return write_pt(path, {"x": torch.zeros(4, 2), "y": torch.zeros(3)})


def no_x(path):
    return write_npz(path, points=X)


def only_train(path):
    return write_npz(path, x_train=X)


def corrupt(path):
    path.write_bytes(b"not an array file")
    return path


def pickled_module(path):
    return write_pt(path, torch.nn.Linear(2, 2))


def flat_x(path):
    np.save(path, np.zeros(5))
    return path


def text_x(path):
    return write_h5(path, x=np.array([[b"a", b"b"]]))


@pytest.mark.parametrize(
    ("name", "make", "split", "message"),
    [
        ("missing.npz", None, None, "does not exist"),
        ("points.csv", csv, None, "unknown extension"),
        ("nan.npz", nan_x, None, "NaN or infinite values in 1 of its 2 rows"),
        ("inf.h5", inf_x, None, "NaN or infinite"),
        ("short.pt", short_y, None, "one label per row of x (4)"),
        ("nox.npz", no_x, None, "no array 'x'; it holds: points"),
        ("train.npz", only_train, "test", "'x_test' or 'test/x'"),
        ("train.npz", only_train, None, "it holds: x_train"),
        ("single.npy", plain_npy, "train", "'x_train'"),
        ("corrupt.npz", corrupt, None, "not a readable .npz file"),
        ("corrupt.npy", corrupt, None, "not a readable .npy file"),
        ("corrupt.h5", corrupt, None, "not a readable .h5 file"),
        ("corrupt.pt", corrupt, None, "weights_only=True"),
        ("module.pt", pickled_module, None, "weights_only=True"),
        ("flat.npy", flat_x, None, "store a single feature as [N, 1]"),
        ("text.h5", text_x, None, "expected real numbers"),
    ],
)
def test_bad_files_raise_usage_error_naming_the_file(tmp_path, name, make, split, message):
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(UsageError) as info:
        load_data(str(path), split=split)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sample_digits_splits():
    train = load_data(str(DIGITS), split="train")
    test = load_data(str(DIGITS), split="test")
    everything = load_data(str(DIGITS))
    assert train.x.shape == (1347, 64) and test.x.shape == (450, 64) and everything.x.shape == (1797, 64)
    assert everything.x.min() >= 0.0 and everything.x.max() == 1.0
    assert sorted(set(train.y.tolist())) == list(range(10))
