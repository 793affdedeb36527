"""`splinetool slice` over a list of planes: each plane as its own single-plane run gives it."""

import json

import numpy as np
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.io import read
from tests.conftest import SAMPLES

runner = CliRunner()
MOONS = SAMPLES / "moons-mlp.ts.pt"
DATA = SAMPLES / "data" / "moons.npz"


def invoke(*args):
    result = runner.invoke(app, ["slice", *[str(a) for a in args]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_each_plane_of_an_index_list_is_the_single_plane_slice(tmp_path):
    listing = tmp_path / "planes.txt"
    listing.write_text("# i j k\n0 1 2\n\n5, 9, 14  # commas work too\n")
    result = invoke(
        MOONS, "--data", DATA, "--anchor-index-list", listing, "-o", tmp_path / "list.h5", "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["planes"] == 2 and [s["anchor_index"] for s in payload["slices"]] == [
        [0, 1, 2],
        [5, 9, 14],
    ]
    slices = read(tmp_path / "list.h5")["slice"].slices
    for plane, rows in enumerate(("0,1,2", "5,9,14")):
        single = tmp_path / f"single{plane}.h5"
        assert invoke(MOONS, "--data", DATA, "--anchor-index", rows, "-o", single, "-q").exit_code == 0
        one = read(single)["slice"]
        assert payload["slices"][plane]["regions"] == one.regions
        for name in (
            "vertices",
            "offsets",
            "codes",
            "affine_A",
            "boundary",
            "origin",
            "directions",
            "anchors",
        ):
            assert np.array_equal(getattr(slices[plane], name), getattr(one, name)), name


def test_plane_list_pictures_and_table(tmp_path):
    anchors = tmp_path / "anchors.npz"
    np.savez(anchors, x=np.array([[[0, 0], [0.5, 0], [0, 0.5]], [[0.2, 0.1], [0.1, 0.3], [-0.3, 0.2]]]))
    result = invoke(MOONS, "--anchors-list", anchors, "--png", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert "2 planes" in result.stdout and "268" in result.stdout and "207" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("p-*.png")) == ["p-0000.png", "p-0001.png"]


def test_plane_list_refusals(tmp_path):
    listing = tmp_path / "planes.txt"
    listing.write_text("0 1\n")
    assert (
        "line 1: expected three row numbers"
        in invoke(MOONS, "--data", DATA, "--anchor-index-list", listing).stderr
    )
    listing.write_text("0 1 100000\n")
    assert "rows must lie in 0.." in invoke(MOONS, "--data", DATA, "--anchor-index-list", listing).stderr
    listing.write_text("0 1 2\n")
    result = invoke(MOONS, "--data", DATA, "--anchor-index-list", listing, "--anchor-index", "0,1,2")
    assert result.exit_code == 2 and "drop --anchor-index" in result.stderr
    assert "needs --data" in invoke(MOONS, "--anchor-index-list", listing).stderr
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((2, 3, 2)) + np.arange(3)[None, :, None])  # collinear anchors
    result = invoke(MOONS, "--anchors-list", flat)
    assert result.exit_code == 2 and "plane 0: the three anchors are collinear" in result.stderr
    result = invoke(MOONS, "--shard", "0/2", "-o", tmp_path / "s.h5")
    assert result.exit_code == 2 and "splits a list of planes" in result.stderr
