"""`splinetool bn-density` from the shell: JSON, HDF5, pictures, presets and exit codes."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.io import read
from tests.conftest import ROOT, SAMPLES
from tests.refusal import refused
from tests.zoo import mlp

runner = CliRunner()
SMALL = "mlp{input_shape=[2], outputs=1, widths=[6, 6]}"
MOONS = SAMPLES / "moons-mlp.ts.pt"
KEYS = {"mean_distance_to_data", "median_distance_to_data", "share_within_delta", "boundaries_in_view"}


def invoke(*args):
    result = runner.invoke(app, ["bn-density", *[str(a) for a in args]])
    # a traceback escaping the CLI would surface as an exception other than SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_arch_without_checkpoint_writes_json_hdf5_and_pictures(tmp_path):
    out, png, tess = tmp_path / "run.h5", tmp_path / "density.png", tmp_path / "tess.svg"
    args = ["--arch", SMALL, "--data", "star:30", "--grid", "16", "--init", "zero-bias,batchnorm"]
    result = invoke(*args, "-o", out, "--png", png, "--tessellation", tess, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload["inits"]) == ["zero-bias", "batchnorm"]
    for init in payload["inits"].values():
        assert list(init) == ["hidden.0.act", "hidden.1.act"]
        assert all(set(node) >= KEYS for node in init.values())
    # every first-layer line of a bias-free network passes through the origin, inside the view
    assert payload["inits"]["zero-bias"]["hidden.0.act"]["boundaries_in_view"] == 6
    stored = read(out)["bn-density"]
    assert stored.density.shape == (2, 2, 16, 16) and stored.segments is not None
    for i, init in enumerate(stored.inits):
        for k, node in enumerate(stored.node_names):
            summary = payload["inits"][init][node]
            assert summary == stored.node_summary(i, k)
            assert summary["mean_distance_to_data"] == pytest.approx(stored.distance_to_data[i, k].mean())
    assert png.stat().st_size > 0 and tess.read_text().startswith("<?xml")


def test_torchscript_sample_as_is_and_rebuilt_from_its_recorded_family():
    result = invoke(
        SAMPLES / "moons-mlp.ts.pt", "--data", "star:20", "--grid", "8", "--layers", "1,4", "--json",
        "--init", "as-is,random-bias",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [node["layer"] for node in payload["inits"]["as-is"].values()] == [1, 4]
    assert payload["inits"]["random-bias"]["hidden.3.act"]["units"] == 20


def test_preset_reproducing_the_paper_measures_layers_3_7_11():
    tiny = "mlp{input_shape=[2], outputs=1, widths=[4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]}"
    preset = ROOT / "configs" / "bn-density" / "paper.toml"
    result = invoke("--config", preset, "--arch", tiny, "--grid", "8", "--init", "batchnorm", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [n["layer"] for n in payload["inits"]["batchnorm"].values()] == [3, 7, 11]
    assert payload["points"] == 50 and payload["bounds"] == [-1.5, 1.5, -1.5, 1.5]


def test_torchscript_without_a_family_can_only_be_measured_as_is(tmp_path):
    path = tmp_path / "plain.ts.pt"
    torch.jit.save(torch.jit.script(mlp()), str(path))
    result = invoke(path, "--input-shape", "2", "--data", "star:20", "--init", "batchnorm")
    assert result.exit_code == 2
    assert "records no built-in family" in result.output and "--init as-is" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", SMALL], "--data is needed"),
        (["--data", "star:20"], "give a checkpoint, or --arch"),
        (["--arch", SMALL, "--data", "star:20", "--init", "bogus"], "--init 'bogus'"),
        (["--arch", SMALL, "--data", "star:20", "--init", "as-is"], "--init as-is measures a checkpoint"),
        (["--arch", SMALL, "--data", "star:20", "--layers", "0,2"], "--layers '0,2'"),
        (["--arch", SMALL, "--data", "star:20", "--delta", "-1"], "--delta -1"),
        (["--arch", SMALL, "--data", "star:20", "--png", "out.jpg"], "--png out.jpg"),
        (
            ["--arch", SMALL, "--data", "star:20", "--png", "d.png", "--scale", "column"],
            "'column' is not one of 'shared', 'row'",
        ),
        (["--arch", "pkg.mod:factory", "--data", "star:20"], "is a factory, not a built-in family"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, "-o", "run.h5")
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not list(tmp_path.iterdir())


def test_layers_beyond_the_network_exit_2():
    result = invoke(
        "--arch", SMALL, "--data", "star:20", "--init", "zero-bias", "--layers", "3", "--grid", "4"
    )
    assert result.exit_code == 2
    assert "PL nodes 1..2" in result.output


def test_rich_table_names_every_init_and_layer():
    result = invoke("--arch", SMALL, "--data", "star:20", "--init", "zero-bias", "--grid", "8")
    assert result.exit_code == 0, result.output
    assert "zero-bias" in result.output and "1 = hidden.0.act, 2 = hidden.1.act" in result.output
    assert np.isfinite(float(result.output.split("δ = ")[1].split(";")[0]))


# -- issue 13: sizes that cannot be held, negative seeds ---------------------------------------------


def test_a_grid_too_large_to_hold_is_refused_before_the_work(tmp_path):
    # 10^10 cells of counts and densities: far beyond what any test machine may allocate
    message = refused(
        "bn-density", MOONS, "--data", "moons:20", "--init", "as-is", "--grid", "100000",
        "-o", tmp_path / "run.h5", names="--grid 100000", folder=tmp_path,
    )  # fmt: skip
    assert "GiB" in message and "smaller --grid" in message


def test_a_negative_seed_draws_its_own_reproducible_weights_and_data():
    args = ["--arch", SMALL, "--data", "moons:20", "--init", "random-bias", "--grid", "4", "--json"]

    def payload(seed: str) -> dict:
        result = invoke(*args, "--seed", seed)
        assert result.exit_code == 0, result.output
        return {k: v for k, v in json.loads(result.stdout).items() if k != "seconds"}

    first = payload("-1")
    assert first == payload("-1") and first["seed"] == -1
    assert first["inits"] != payload("1")["inits"]


def test_an_infinite_bias_std_is_refused(tmp_path):
    refused(
        "bn-density", "--arch", SMALL, "--data", "moons:20", "--bias-std", "inf", "-o", tmp_path / "r.h5",
        names="--bias-std inf", folder=tmp_path,
    )  # fmt: skip


def test_scale_row_draws_each_initialisation_on_its_own_colour_scale(tmp_path, monkeypatch):
    from splinetool.render import bn_density as render

    figures = []
    draw = render.draw_bn_density
    monkeypatch.setattr(
        render, "draw_bn_density", lambda *a, **k: figures.append(draw(*a, **k)) or figures[-1]
    )
    out, png = tmp_path / "run.h5", tmp_path / "density.png"
    args = ["--arch", SMALL, "--data", "star:30", "--grid", "16", "--init", "zero-bias,random-bias"]
    for scale in ("row", "shared"):
        result = invoke(*args, "-o", out, "--png", png, "--scale", scale, "--quiet")
        assert result.exit_code == 0, result.output
        assert png.stat().st_size > 0
    density = read(out)["bn-density"].density
    assert density[0].max() != density[1].max()
    rowwise, shared = ([ax.images[0].get_clim()[1] for ax in fig.axes if ax.images] for fig in figures)
    assert rowwise == pytest.approx([density[0].max()] * 2 + [density[1].max()] * 2)
    assert shared == pytest.approx([density.max()] * 4)
