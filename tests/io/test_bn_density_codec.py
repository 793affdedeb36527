"""A BNDensityResult survives HDF5 unchanged, with the grid axes attached as dimension scales."""

import dataclasses

import h5py
import numpy as np

from splinetool.io import Provenance, read, write
from tests.zoo import bn_density_result


def written(tmp_path, result):
    path = tmp_path / "run.h5"
    write(path, {"bn-density": result}, Provenance("bn-density", ["splinetool"], "", "cpu", 0))
    return path


def assert_same(got, expected):
    for field in dataclasses.fields(expected):
        a, b = getattr(got, field.name), getattr(expected, field.name)
        if isinstance(b, list) and b and isinstance(b[0], np.ndarray):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        elif isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, field.name


def test_round_trip_with_and_without_segments(tmp_path):
    for segments in (True, False):
        result = bn_density_result(segments=segments)
        assert_same(read(written(tmp_path, result))["bn-density"], result)


def test_layout_density_per_init_and_node_with_dimension_scales(tmp_path):
    result = bn_density_result()
    with h5py.File(written(tmp_path, result)) as f:
        group = f["bn-density"]
        assert group.attrs["encoding-type"] == "splinetool.bn_density"
        density = group["batchnorm/hidden.2.act/density"]
        np.testing.assert_array_equal(density[()], result.density[1, 2])
        assert density.dims[0].label == "y" and density.dims[1].label == "x"
        np.testing.assert_allclose(density.dims[1][0][()], (result.x_edges[1:] + result.x_edges[:-1]) / 2)
        np.testing.assert_allclose(density.dims[0][0][()], (result.y_edges[1:] + result.y_edges[:-1]) / 2)
        distance = group["zero-bias/hidden.0.act/distance_to_data"][()]
        assert np.isinf(distance).all()
