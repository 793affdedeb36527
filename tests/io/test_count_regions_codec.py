"""A count of each method survives HDF5 as its own type, in the one `splinetool.count` encoding."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from splinetool.analyses import count_regions as counting
from splinetool.analyses.plane import input_plane
from splinetool.io import Provenance, read, write
from splinetool.ir import lower
from tests.zoo import mlp

F64 = torch.float64


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(4)
    return lower(mlp((2, 8, 8, 2)), (2,)).to(dtype=F64)


def counted(net, method):
    g = torch.Generator().manual_seed(0)
    if method is counting.SegmentCount:
        where = counting.Segments(
            torch.rand(3, 2, generator=g, dtype=F64), torch.rand(3, 2, generator=g, dtype=F64)
        )
    elif method is counting.PlaneCount:
        where = counting.Planes((input_plane(2, (-1, 1, -1, 1)), input_plane(2, (0, 1, 0, 2))))
    else:
        where = counting.Samples(torch.rand(500, 2, generator=g, dtype=F64) * 2 - 1, "uniform in the box")
    return counting.run(net, where)


def written(tmp_path, result):
    path = tmp_path / "run.h5"
    write(path, {"count-regions": result}, Provenance("count-regions", ["splinetool"], "", "cpu", 0))
    return path


@pytest.mark.parametrize("method", [counting.SegmentCount, counting.PlaneCount, counting.SampledCount])
def test_each_method_reads_back_as_its_own_type_with_equal_fields(net, tmp_path, method):
    result = counted(net, method)
    assert type(result) is method
    path = written(tmp_path, result)
    got = read(path)["count-regions"]
    assert type(got) is method
    for field in dataclasses.fields(result):
        a, b = getattr(got, field.name), getattr(result, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, field.name
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b and type(a) is type(b), field.name
    assert got.summary() == result.summary()
    with h5py.File(path) as f:
        group = f["count-regions"]
        assert group.attrs["encoding-type"] == "splinetool.count"
        assert group.attrs["method"] == method.method
        # only the method's own fields are stored
        own = {counting.SegmentCount: {"distinct_per_layer"}, counting.PlaneCount: {"region_keys"}}
        assert set(group) == {"per_layer", *method.PER_ITEM} | own.get(method, set())


def test_a_plane_list_keeps_its_distinct_regions_and_older_files_without_them_still_read(net, tmp_path):
    result = counted(net, counting.PlaneCount)
    assert 0 < result.distinct_regions < result.regions and result.region_keys.shape == (
        result.distinct_regions,
        16,
    )
    path = written(tmp_path, result)
    with h5py.File(path, "r+") as f:  # as written before distinct regions were counted
        del f["count-regions/region_keys"]
        del f["count-regions"].attrs["distinct_regions"]
    old = read(path)["count-regions"]
    assert old.distinct_regions is None and old.region_keys is None
    assert old.tiles.tolist() == result.tiles.tolist() and "distinct_regions" not in old.summary()
