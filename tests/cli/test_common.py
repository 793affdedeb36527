"""What every command shares: config files never grant trust, outputs never replace what they should
not, and a signal stops a run cleanly. Each test checks the exit code, the message, and that nothing
outside the intended output changed."""

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from splinetool.cli import app
from tests.conftest import ROOT, SAMPLES
from tests.refusal import refused

runner = CliRunner()
MOONS = SAMPLES / "moons-mlp.ts.pt"
MOONS_DATA = SAMPLES / "data" / "moons.npz"
SLICE = ["slice", MOONS, "--data", MOONS_DATA, "--anchor-index", "0,1,2"]


def run(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TouchesMarker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- a config file sets options, never trust, code or checkpoints ---


def test_config_cannot_switch_on_trust_but_the_environment_can(tmp_path):
    checkpoint, marker, config = tmp_path / "m.pt", tmp_path / "marker", tmp_path / "c.toml"
    torch.save(TouchesMarker(str(marker)), checkpoint)
    config.write_text("trust_checkpoint = true\n")
    result = run("info", checkpoint, "--config", config)
    assert result.exit_code == 2
    assert "trust_checkpoint" in result.output and "SPLINETOOL_TRUST_CHECKPOINT" in result.output
    assert not marker.exists()
    assert run("info", checkpoint).exit_code == 2 and not marker.exists()
    run("info", checkpoint, env={"SPLINETOOL_TRUST_CHECKPOINT": "1"})
    assert marker.exists()  # trust from the environment unpickles (the file is a real attack)


def test_config_cannot_name_a_factory_to_import(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "hostile_factory.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\ndef build():\n    return torch.nn.Linear(2, 1)\n"
    )
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "w.pt")
    (tmp_path / "c.toml").write_text('arch = "hostile_factory:build"\n')
    monkeypatch.chdir(tmp_path)
    result = run("info", "w.pt", "--config", "c.toml")
    assert result.exit_code == 2 and "hostile_factory:build" in result.output
    assert not marker.exists()
    # a TOML architecture or an inline family stays allowed
    (tmp_path / "c.toml").write_text('arch = "mlp{widths=[3], outputs=1, input_shape=[2]}"\n')
    assert "may not come from a config file" not in run("info", "w.pt", "--config", "c.toml").output


def test_config_cannot_name_checkpoints(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f"checkpoints = [{str(MOONS)!r}]\n")
    result = run("local-complexity", MOONS, "--data", MOONS_DATA, "--config", config)
    assert result.exit_code == 2 and "checkpoints" in result.output


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"dtype = 'float32'\n\x80\n"])
def test_binary_config_is_refused(tmp_path, content):
    config = tmp_path / "c.toml"
    config.write_bytes(content)
    result = run("info", MOONS, "--config", config)
    assert result.exit_code == 2 and "c.toml" in result.output


# --- a config file's paths are relative to it: it works from any directory ---


def test_paths_in_a_config_resolve_beside_it(tmp_path, monkeypatch):
    import json

    import numpy as np

    presets, elsewhere = tmp_path / "presets", tmp_path / "elsewhere"
    presets.mkdir(), elsewhere.mkdir()
    np.save(presets / "segment.npy", np.array([[-2.0, 0.0], [2.0, 0.5]]))
    shutil.copy(MOONS_DATA, presets / "points.npz")
    config = presets / "count.toml"
    # path options (--segment, --png): beside the config, whatever the current directory
    config.write_text('segment = "segment.npy"\npng = "pieces.png"\n')
    monkeypatch.chdir(elsewhere)
    result = run("count-regions", MOONS, "--config", config, "--json")
    assert result.exit_code == 0, result.output
    direct = run("count-regions", MOONS, "--segment", presets / "segment.npy", "--json")
    assert json.loads(result.stdout)["per_layer"] == json.loads(direct.stdout)["per_layer"]
    assert (presets / "pieces.png").exists() and not (elsewhere / "pieces.png").exists()
    # a file-or-generator option: a file beside the config, or a generator's name, which stays a name
    for data, given in (("points.npz", presets / "points.npz"), ("moons:30", "moons:30")):
        config.write_text(f'data = "{data}"\npairs = "0,1"\n')
        result = run("count-regions", MOONS, "--config", config, "--json")
        assert result.exit_code == 0, result.output
        direct = run("count-regions", MOONS, "--data", given, "--pairs", "0,1", "--json")
        assert json.loads(result.stdout)["per_layer"] == json.loads(direct.stdout)["per_layer"]


def test_the_paper_preset_runs_from_another_directory(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    preset = ROOT / "configs" / "bn-density" / "paper.toml"
    result = run(
        "bn-density", "--config", preset, "--grid", "2", "--layers", "3", "--init", "zero-bias", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == str(ROOT / "configs" / "arch" / "bn-paper.toml")


# --- -o and the pictures replace only regular files that are not inputs ---


def test_output_onto_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    result = run(*SLICE, "-o", fifo)
    assert result.exit_code == 2 and "not a regular file" in result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_onto_a_device_is_refused(tmp_path):
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    result = run(
        "count-regions",
        MOONS,
        "--bounds=-1,1,-1,1",
        "--origin",
        _origin(tmp_path),
        "--directions",
        _directions(tmp_path),
        "-o",
        device,
    )
    assert result.exit_code == 2 and "not a regular file" in result.output
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_output_through_a_symbolic_link_is_refused(tmp_path):
    target, link = tmp_path / "kept.h5", tmp_path / "link.h5"
    target.write_bytes(b"precious")
    link.symlink_to(target)
    for option in ("-o", "--png"):
        path = link if option == "-o" else tmp_path / "link.png"
        if option == "--png":
            path.symlink_to(target)
        result = run(*SLICE, option, path)
        assert result.exit_code == 2 and "symbolic link" in result.output
        assert path.is_symlink() and target.read_bytes() == b"precious"


def test_output_onto_a_folder_is_refused(tmp_path):
    result = run(*SLICE, "-o", tmp_path)
    assert result.exit_code == 2 and "folder" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which", ["checkpoint", "data", "config"])
def test_output_onto_an_input_is_refused(tmp_path, which):
    checkpoint, data, config = tmp_path / "m.ts.pt", tmp_path / "moons.npz", tmp_path / "c.toml"
    checkpoint.write_bytes(MOONS.read_bytes())
    data.write_bytes(MOONS_DATA.read_bytes())
    config.write_text("seed = 1\n")
    inputs = {"checkpoint": checkpoint, "data": data, "config": config}
    before = {name: digest(path) for name, path in inputs.items()}
    args = [checkpoint, "--data", data, "--config", config]
    for command in (
        ["slice", *args, "--anchor-index", "0,1,2"],
        ["local-complexity", *args],
    ):
        result = run(*command, "-o", inputs[which])
        assert result.exit_code == 2, result.output
        assert "is also an input" in " ".join(result.output.split())
        assert {name: digest(path) for name, path in inputs.items()} == before


def test_output_onto_a_hard_link_of_the_checkpoint_is_refused(tmp_path):
    checkpoint, alias = tmp_path / "m.ts.pt", tmp_path / "alias.h5"
    checkpoint.write_bytes(MOONS.read_bytes())
    os.link(checkpoint, alias)
    result = run("slice", checkpoint, "--data", MOONS_DATA, "--anchor-index", "0,1,2", "-o", alias)
    assert result.exit_code == 2 and "is also an input" in " ".join(result.output.split())
    assert checkpoint.read_bytes() == MOONS.read_bytes()


@pytest.mark.parametrize("picture", [["--png", "picture.txt"], ["--svg", "missing/picture.svg"]])
def test_a_bad_picture_path_is_refused_before_the_output_is_replaced(tmp_path, picture):
    output = tmp_path / "old.h5"
    output.write_bytes(b"the previous run")
    option, name = picture
    result = run(*SLICE, "-o", output, option, tmp_path / name)
    assert result.exit_code == 2 and option in result.output
    assert output.read_bytes() == b"the previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]


def _origin(folder):
    import numpy as np

    np.save(folder / "origin.npy", np.zeros(2))
    return folder / "origin.npy"


def _directions(folder):
    import numpy as np

    np.save(folder / "directions.npy", np.eye(2))
    return folder / "directions.npy"


# --- a signal stops the run: exit 128 + signal, one line, no file left ---


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_write_removes_the_output_and_exits_128_plus_its_number(tmp_path, signum):
    output = tmp_path / "slice.h5"
    command = [
        sys.executable,
        "-m",
        "splinetool",
        "slice",
        str(SAMPLES / "digits-mlp.ts.pt"),
        "--data",
        str(SAMPLES / "data" / "digits.npz"),
        "--anchor-index",
        "0,1,2",
        "--margin",
        "6",
        "-o",
        str(output),
        "-q",
    ]
    # started with SIGINT ignored, as a shell starts a background job: a signal sent on purpose still stops it
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert process.poll() is None, "the run ended before it started writing"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    assert err.strip().count("\n") == 0 and signal.Signals(signum).name in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_stop_swallowed_inside_a_finaliser_prints_nothing_where_another_error_is_reported(
    capsys, monkeypatch
):
    # a signal that arrives while a weak-reference callback runs raises Stopped there; Python
    # swallows it and would print its traceback under the one-line message (the stop still happens)
    import weakref

    from splinetool.cli import _quiet_stops
    from splinetool.errors import Stopped

    monkeypatch.setattr(sys, "unraisablehook", _quiet_stops)

    class Thing:
        pass

    def finalised_raising(error: Exception) -> None:
        thing = Thing()

        def callback(_):
            raise error

        ref = weakref.ref(thing, callback)
        del thing  # the callback runs here, and its exception cannot propagate
        assert ref() is None

    finalised_raising(Stopped(2))
    assert capsys.readouterr().err == ""
    finalised_raising(ValueError("a bug in a finaliser"))
    assert "ValueError: a bug in a finaliser" in capsys.readouterr().err


# --- an allocation that fails despite the engines' budgets: exit 2, one message ---


def test_an_allocation_failure_exits_2_with_one_message(capsys):
    import typer

    from splinetool.cli.common import reported_errors

    with pytest.raises(typer.Exit) as stopped, reported_errors():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 912 bytes.")
    assert stopped.value.exit_code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: ran out of memory") and "--max-regions" in err
    with pytest.raises(RuntimeError, match="shape"), reported_errors():
        raise RuntimeError("shape mismatch")  # not an allocation: a bug, left to surface


# --- values that are malformed whatever else is given (the fuzz test tries every option) ---


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["info", MOONS, "--samples", str(2**64)], f"--samples {2**64}: expected an integer between"),
        (
            ["debias-sample", SAMPLES / "gmm-wgan.ts.pt", "--batch-size", str(2**63), "-o", "OUT"],
            "--batch-size",
        ),
        (["slice", MOONS, "--bounds=-1,1,-1,1", "--margin", "0.5", "-o", "OUT"], "--margin 0.5"),
        (["count-regions", MOONS, "--bounds=-1,1,-1,1", "--margin", "nan", "-o", "OUT"], "--margin nan"),
        (["slice", MOONS, "--split", "train", "-o", "OUT"], "--split 'train' picks a part of a --data file"),
        (["condition", MOONS, "--data", "", "-o", "OUT"], "an empty data spec"),
    ],
)
def test_malformed_values_are_refused_even_where_unused(tmp_path, args, names):
    args = [tmp_path / "r.h5" if a == "OUT" else a for a in args]
    refused(*args, names=names, folder=tmp_path)


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("--samples", ["info", MOONS]),
        ("--sample", ["count-regions", MOONS, "--bounds=-1,1,-1,1"]),
        ("--random", ["local-complexity", MOONS, "--data", MOONS_DATA]),
    ],
)
def test_counts_too_large_to_allocate_are_refused_naming_the_option(tmp_path, option, args):
    output = [] if args[0] == "info" else ["-o", tmp_path / "r.h5"]
    result = run(*args, option, "100000000000", *output)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert message.startswith(f"error: {option} 100,000,000,000") and "GiB" in message
    assert list(tmp_path.iterdir()) == []


def test_library_parameters_become_the_command_options_that_set_them():
    from types import SimpleNamespace

    from splinetool.cli.common import in_flags

    params = [
        SimpleNamespace(name="relative_radius", opts=["--relative-radius"]),
        SimpleNamespace(name="output", opts=["-o", "--output"]),
    ]
    ctx = SimpleNamespace(command=SimpleNamespace(params=params))
    message = "`relative_radius` -1: expected > 0; `output` and `trust`, not `unknown_name`"
    assert in_flags(message, ctx) == (
        "--relative-radius -1: expected > 0; --output and --trust-checkpoint, not `unknown_name`"
    )
    assert in_flags(message, None).startswith("`relative_radius` -1")
