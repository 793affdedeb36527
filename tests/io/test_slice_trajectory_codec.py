"""The slice_trajectory encoding: one slice subgroup per checkpoint named by its step, with its
placement numbers, read back through splinetool.io.read as the trajectory that was written."""

import h5py
import numpy as np

from splinetool.analyses.slice import SliceTrajectory
from splinetool.analyses.tile_placement import PlacementOptions, place
from splinetool.io import read, slice_codec, write
from tests.io.test_hdf5 import PROVENANCE, assert_same
from tests.zoo import slice_grid


def trajectory() -> SliceTrajectory:
    slices = [slice_grid(n, seed=n, jacobian=True) for n in (2, 4)]
    data = np.array([[0.1, 0.2], [0.5, -0.3]])
    options = PlacementOptions(bins=5, delta=0.1, raster=64)
    placements = [place(s.vertices, s.offsets, s.domain, data, s.boundary, options) for s in slices]
    return SliceTrajectory([0, 1000], ["a/step-0.pt", "a/step-1000.pt"], slices, placements, data)


def test_a_trajectory_reads_back_step_for_step(tmp_path):
    written = trajectory()
    write(tmp_path / "run.h5", {"slice": written}, PROVENANCE)
    with h5py.File(tmp_path / "run.h5") as f:
        group = f["slice"]
        assert group.attrs["encoding-type"] == slice_codec.TRAJECTORY_ENCODING_TYPE
        assert [name for name in group if name != "data_points"] == ["0", "1000"]
        assert group["1000"].attrs["encoding-type"] == slice_codec.ENCODING_TYPE
    back = read(tmp_path / "run.h5")["slice"]
    assert isinstance(back, SliceTrajectory)
    assert back.steps == [0, 1000] and back.checkpoints == written.checkpoints
    np.testing.assert_array_equal(back.data, written.data)
    for one, again in zip(written.slices, back.slices):
        assert_same(one, again)
    for placed, again in zip(written.placements, back.placements):
        np.testing.assert_array_equal(again.bin_edges, placed.bin_edges)
        for target in ("data", "boundary"):
            np.testing.assert_array_equal(again.density[target], placed.density[target])
        assert again.summary() == placed.summary()
    assert back.summary() == written.summary()
