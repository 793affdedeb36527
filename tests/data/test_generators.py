import numpy as np
import pytest

from splinetool.data.generators import GENERATORS, generate
from splinetool.errors import UsageError


@pytest.mark.parametrize("name", list(GENERATORS))
def test_shapes_and_dtypes(name):
    x, y = generate(name, 101, seed=0)
    assert x.shape == (101, 2) and x.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert np.all(np.isfinite(x))


@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_points_other_seed_other_points(name):
    x0, y0 = generate(name, 50, seed=3)
    x1, y1 = generate(name, 50, seed=3)
    x2, _ = generate(name, 50, seed=4)
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(y0, y1)
    assert not np.allclose(x0, x2)


def test_moons_labels_are_balanced_and_shuffled():
    _, y = generate("moons", 501, seed=0)
    assert sorted(np.bincount(y)) == [250, 251]
    assert 0 < y[:100].mean() < 1


def test_moons_without_noise_lie_on_the_two_half_circles():
    x, y = generate("moons", 400, seed=1, noise=0.0)
    centres = np.where(y[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(x - centres, axis=1), 1.0)
    assert np.all(x[y == 0, 1] >= 0) and np.all(x[y == 1, 1] <= 0.5)


def test_star_has_five_arms_along_the_documented_rays():
    x, y = generate("star", 1000, seed=0, noise=0.0)
    assert np.bincount(y).tolist() == [200] * 5
    radius = np.linalg.norm(x, axis=1)
    assert radius.min() >= 0.1 and radius.max() <= 1.0
    angle = np.pi / 2 + 2 * np.pi * y / 5
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    np.testing.assert_allclose(x, radius[:, None] * direction, atol=1e-12)


def test_star_noise_is_the_documented_spread():
    x, y = generate("star", 4000, seed=0)
    angle = np.pi / 2 + 2 * np.pi * y / 5
    across = x[:, 0] * -np.sin(angle) + x[:, 1] * np.cos(angle)
    assert abs(across.std() - 0.03) < 0.003
    assert generate("star", 30, seed=0, arms=3)[1].max() == 2


def test_spiral_arms_start_at_the_origin_and_end_on_the_unit_circle():
    x, y = generate("spiral", 1000, seed=0, noise=0.0)
    assert np.bincount(y).tolist() == [500, 500]
    radius = np.linalg.norm(x, axis=1)
    assert radius.max() <= 1.0 and radius.min() < 0.05 and radius.max() > 0.95


def test_gaussian_mixture_follows_its_weights():
    x, y = generate("gaussian-mixture", 8000, seed=0, weights=[1, 3], std=0.05)
    assert abs(np.mean(y == 1) - 0.75) < 0.02
    # Two components sit at angles 0 and pi on the unit circle.
    np.testing.assert_allclose(x[y == 0].mean(axis=0), [1.0, 0.0], atol=0.01)
    np.testing.assert_allclose(x[y == 1].mean(axis=0), [-1.0, 0.0], atol=0.01)


def test_gaussian_mixture_default_and_components():
    assert set(generate("gaussian-mixture", 300, seed=0)[1]) == {0, 1, 2}
    assert set(generate("gaussian-mixture", 300, seed=0, components=5)[1]) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("name", "n", "options", "message"),
    [
        ("blobs", 10, {}, "moons, spiral, star, gaussian-mixture"),
        ("moons", 0, {}, "integer >= 1"),
        ("moons", 10, {"sigma": 0.1}, "noise=0.1"),
        ("moons", 10, {"noise": -1}, "'noise'"),
        ("star", 10, {"arms": 0}, "'arms'"),
        ("gaussian-mixture", 10, {"weights": [0, 0]}, "'weights'"),
        ("gaussian-mixture", 10, {"weights": [1, 2], "components": 3}, "components=3"),
    ],
)
def test_bad_requests_raise_usage_error(name, n, options, message):
    with pytest.raises(UsageError) as info:
        generate(name, n, 0, **options)
    assert message in str(info.value)
