"""`splinetool debias-sample` from the shell: JSON, HDF5, pictures, warnings and bad input."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.analyses import debias_sample as ds
from splinetool.cli import app
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from tests.conftest import ARCHS, SAMPLES
from tests.refusal import refused

runner = CliRunner()
GMM = SAMPLES / "gmm-wgan.ts.pt"
DECODER = SAMPLES / "digits-decoder.state.pt"


def invoke(*args):
    result = runner.invoke(app, ["debias-sample", *[str(a) for a in args]])
    # a traceback escaping the CLI would surface as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_json_has_the_issue_fields_and_matches_the_library():
    result = invoke(GMM, "--pool", "2000", "--n", "100", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in ("pool", "n", "rho", "ess", "log_volume_mean", "log_volume_std", "distinct_tiles"):
        assert key in payload
    assert payload["pool"] == 2000 and payload["n"] == 100 and payload["rho"] == 1.0
    net = lower(load_model(GMM)).to(dtype=torch.float64)
    direct = ds.run(net, ds.DebiasOptions(n=100, pool=2000, seed=3))
    finite = direct.log_volume[np.isfinite(direct.log_volume)]
    assert payload["ess"] == pytest.approx(direct.ess[0])
    assert payload["log_volume_mean"] == pytest.approx(finite.mean())
    assert payload["distinct_tiles"] == len(np.unique(direct.tile_codes, axis=0))
    assert payload["volume"].startswith("exact")


def test_several_rho_hdf5_and_picture(tmp_path):
    out, png = tmp_path / "d.h5", tmp_path / "d.png"
    args = ["--pool", "1000", "--n", "50", "--rho", "-1", "--rho", "0", "--rho", "1", "-o", out, "--png", png]
    result = invoke(GMM, *args, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rho"] == [-1.0, 0.0, 1.0] and len(payload["ess"]) == 3
    from splinetool.io import read, read_provenance

    stored = read(out)["debias-sample"]
    np.testing.assert_array_equal(stored.rho, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(stored.selected_index[1], stored.baseline_index)  # ρ = 0 is the baseline
    assert stored.summary()["ess"] == pytest.approx(payload["ess"])
    assert read_provenance(out)["command"] == "debias-sample"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_images_projection_and_warning(tmp_path):
    svg = tmp_path / "digits.svg"
    result = invoke(
        DECODER,
        "--arch",
        ARCHS / "digits-decoder.toml",
        "--pool",
        "300",
        "--n",
        "64",
        "--proj-dim",
        "16",
        "--top-k",
        "4",
        "--output-shape",
        "1,8,8",
        "--svg",
        svg,
    )
    assert result.exit_code == 0, result.output
    assert "approximate, top 4 singular values" in result.stdout and "0 (baseline)" in result.stdout
    assert "warning:" in result.stderr and "effective sample size" in result.stderr
    assert svg.stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "50", "--pool", "10"], "more than --pool"),
        (["--output-shape", "3,3"], "--output-shape 3,3"),
        (["--top-k", "5"], "--top-k 5"),
        (["--prior", "cauchy"], "--prior 'cauchy'"),
        (["--png", "picture.jpg"], "ending in .png"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never.h5"
    result = invoke(GMM, "--pool", "100", "--n", "5", *args, "-o", out)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not out.exists()


# -- issue 13: a pool or a draw too large to hold is refused before any work ----------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--pool", "100000000000", "--n", "5"], "--pool 100,000,000,000"),
        (["--pool", "100", "--n", "100000000000", "--replace"], "--n 100,000,000,000"),
    ],
)
def test_sizes_too_large_to_hold_are_refused(tmp_path, args, names):
    message = refused("debias-sample", GMM, *args, "-o", tmp_path / "d.h5", names=names, folder=tmp_path)
    assert "GiB" in message
