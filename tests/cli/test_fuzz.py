"""Every option of every command, fed malformed values: exit 2, one message, no traceback, no file left.

The options are enumerated from the commands' Typer parameters, so a new option is fuzzed by its type
(int, float, str, file) as soon as it exists; options with a format of their own (bounds, index
triples, shard specs, architectures) get values that break that format too, and values an option
legitimately accepts are listed in VALID. Each run starts from a small invocation that succeeds (see
test_the_bases_succeed), with one option replaced by a bad value, in an empty folder as the working
directory (outputs go there); nothing may be left in it afterwards.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from splinetool.cli import app
from tests.conftest import ARCHS, SAMPLES

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands

MOONS = str(SAMPLES / "moons-mlp.ts.pt")
GMM = str(SAMPLES / "gmm-wgan.ts.pt")
# each TorchScript base model as a state dict and its architecture, for --arch and --input-shape
STATE_DICTS = {
    MOONS: (str(SAMPLES / "moons-mlp.state.pt"), str(ARCHS / "moons-mlp.toml")),
    GMM: (str(SAMPLES / "gmm-wgan.state.pt"), str(ARCHS / "gmm-wgan.toml")),
}
HUGE_INT = "100000000000"  # fits int64, but as a count of anything it cannot be allocated
BEYOND_INT64 = str(2**64)

# A small run of each command that succeeds: positional arguments, then option -> value
BASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "info": ([MOONS], {"--samples": "2"}),
    "slice": ([MOONS], {"--bounds": "-1,1,-1,1", "--output": "out.h5"}),
    "count-regions": ([MOONS], {"--bounds": "-1,1,-1,1", "--output": "out.h5"}),
    "local-complexity": ([MOONS], {"--data": "moons:20", "--directions": "2", "--output": "out.h5"}),
    "bn-density": ([MOONS], {"--data": "moons:20", "--grid": "4", "--init": "as-is", "--output": "out.h5"}),
    "condition": ([MOONS], {"--data": "moons:20", "--block-points": "4", "--output": "out.h5"}),
    "debias-sample": ([GMM], {"--n": "4", "--pool": "16", "--output": "out.h5"}),
    "merge": (["{shard0}", "{shard1}"], {"--output": "out.h5"}),
}

# Other options an option needs to matter at all (--max-increase bounds the increase over --baseline)
MOONS_DATA = str(SAMPLES / "data" / "moons.npz")  # with train and test splits
CONTEXT: dict[tuple[str, str], dict[str, str | bool | None]] = {
    **{(c, "--split"): {"--data": MOONS_DATA} for c in BASES if c not in ("info", "debias-sample", "merge")},
    ("local-complexity", "--max-increase"): {"--baseline": "{baseline}"},
    ("count-regions", "--pairs"): {"--data": "moons:20", "--bounds": None},
    ("count-regions", "--around"): {"--sample": "10"},
    ("count-regions", "--radius"): {"--sample": "10", "--around": "ball", "--data": "moons:20"},
    ("count-regions", "--sample"): {"--bounds": None, "--data": "moons:20"},
    ("slice", "--anchor-index"): {"--data": "moons:20", "--bounds": None},
    ("slice", "--anchor-index-list"): {"--data": "moons:20", "--bounds": None},
    ("count-regions", "--anchor-index"): {"--data": "moons:20", "--bounds": None},
    ("count-regions", "--anchor-index-list"): {"--data": "moons:20", "--bounds": None},
    ("bn-density", "--anchor-index"): {"--bounds": None},
    ("slice", "--color"): {"--png": "out.png"},
    ("bn-density", "--max-regions"): {"--exact": True},
    ("condition", "--k"): {"--max-dense": "0"},
    ("condition", "--lanczos-steps"): {"--max-dense": "0"},
    ("debias-sample", "--output-shape"): {"--png": "out.png"},
}
# a state dict, so that --arch and --input-shape are read
STATE_DICT_OPTIONS = ("--arch", "--input-shape")

INTS = ["-1", "0", "2.5", "abc", BEYOND_INT64, HUGE_INT]
FLOATS = ["-1", "0", "nan", "inf", "abc", "1e300"]
STRINGS = ["", "abc", "-1", "nan"]
FILES = ["{missing}", "{folder}", "{empty}", "{garbage}", "{toml}", "{npz}"]
OUTPUTS = ["existing-folder", "no-such-folder/out.h5"]
PICTURES = [*OUTPUTS, "out.txt"]

# values breaking the format of particular options
FORMATS: dict[str, list[str]] = {
    "--bounds": ["1,2,3", "1,0,0,1", "nan,1,0,1", "0,inf,0,1", "a,b,c,d", "-1e300,1e300,-1e300,1e300"],
    "--anchor-index": ["0,1", "0,0,0", "-1,0,1", "0,1,99999", "a,b,c"],
    "--pairs": ["0", "0,99999", "random:0", "random:-1", "random:abc", f"random:{HUGE_INT}"],
    "--data": ["moons:0", "moons:-1", "moons:abc", f"moons:{HUGE_INT}", *FILES],
    "--layers": ["0", "99", "1,,2", ","],
    "--init": ["as-is,as-is", "zero-bias,nope"],
    "--steps": ["1,2", "a"],
    "--output-shape": ["0", "3,3", "1,-2"],
    "--input-shape": ["0", "3", "1,2,3", "a,b"],
    "--device": ["tpu", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"]),
    "--dtype": ["float16", "int64"],
    "--shard": ["0/0", "2/2", "-1/2", "a/b", "1"],
    "--norm": ["3", "inf"],
    "--arch": [
        "mlp{",
        "nosuch",
        "mlp{widths=[-1], outputs=1, input_shape=[2]}",
        "mlp{widths=[100000, 100000], outputs=1, input_shape=[2]}",
        "splinetool_nosuch_module:make",
        "os:getcwd",
        "{toml}",
    ],
}
# values that are valid for an option (or beyond what it checks): not failures
VALID: dict[str, set[str]] = {
    "--seed": {"-1", "0", HUGE_INT},
    "--random": {"0"},
    "--max-dense": {"0", HUGE_INT},
    "--max-regions": {HUGE_INT},
    "--lanczos-steps": {HUGE_INT},
    "--max-increase": {"0", "1e300"},
    "--max-lc": {"1e300"},
    "--rho": {"-1", "0"},
    "--delta": {"1e300"},
    "--batch-size": {HUGE_INT},
    "--config": {"{empty}"},
    "--data": {"{npz}"},  # a data file all the same
    "--k": {HUGE_INT},  # the most eigenvalues to report
    "--block-points": {"0", HUGE_INT},  # 0 and more than the data: every point
    "--bias-std": {"0", "1e300"},
}
VALID_IN: dict[tuple[str, str], set[str]] = {
    # 0 fails the gate (exit 1, its purpose), not the usage
    ("local-complexity", "--max-lc"): {"0"},
    # a margin float64 holds, where --bounds place the plane (anchors that far out are refused)
    **{(c, "--margin"): {"1e300"} for c in ("slice", "count-regions", "bn-density")},
    # neighbourhoods as large as float64 allows, still finite
    ("local-complexity", "--radius"): {"1e300"},
    ("local-complexity", "--relative-radius"): {"1e300"},
}


def option_name(param) -> str:
    return param.opts[0] if param.opts[0].startswith("-") else param.name


def element_type(command: str, param) -> type:
    """The type a parameter's values have, from the command's signature: X for X, X | None, list[X]."""
    hint = inspect.signature(COMMANDS[command].callback, eval_str=True).parameters[param.name].annotation
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) in (list, tuple):
        hint = typing.get_args(hint)[0]
    return hint


def bad_values(command: str, param) -> list[str]:
    """The malformed values to try for one parameter, from its type and its format."""
    name = option_name(param)
    element = element_type(command, param)
    if name == "--output":
        values = list(OUTPUTS)
    elif name in ("--png", "--svg", "--tessellation"):
        values = list(PICTURES)
    elif element is Path:
        values = list(FILES)
    elif element is int:
        values = list(INTS)
    elif element is float:
        values = list(FLOATS)
    else:
        values = list(STRINGS)
    values += [v for v in FORMATS.get(name, []) if v not in values]
    skip = VALID.get(name, set()) | VALID_IN.get((command, name), set())
    return [v for v in values if v not in skip]


def fuzzed_params(command: str) -> list:
    """Every parameter that takes a value (flags take none)."""
    return [p for p in COMMANDS[command].params if not getattr(p, "is_flag", False)]


CASES = [
    pytest.param(command, option_name(p), value, id=f"{command} {option_name(p)} {value!r}")
    for command in BASES
    for p in fuzzed_params(command)
    for value in bad_values(command, p)
]


def test_every_option_of_every_command_is_fuzzed():
    assert set(BASES) == set(COMMANDS)
    covered = {(c, o) for c, o, _ in (case.values for case in CASES)}
    for command in COMMANDS:
        for param in fuzzed_params(command):
            assert (command, option_name(param)) in covered, (command, option_name(param))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Files for the file options: broken ones, and the shards and baseline some options need."""
    root = tmp_path_factory.mktemp("fuzz-inputs")
    (root / "folder.npz").mkdir()
    (root / "empty.pt").write_bytes(b"")
    (root / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    (root / "wrong.toml").write_text('family = "mlp"\nwidths = "wide"\n')
    np.savez(root / "wrong.npz", x=np.arange(12.0).reshape(6, 2))
    files = {
        "missing": str(root / "missing.pt"),
        "folder": str(root / "folder.npz"),
        "empty": str(root / "empty.pt"),
        "garbage": str(root / "garbage.pt"),
        "toml": str(root / "wrong.toml"),
        "npz": str(root / "wrong.npz"),
    }
    lc = ["local-complexity", MOONS, "--data", "moons:20", "--directions", "2", "--quiet"]
    for i in range(2):
        files[f"shard{i}"] = str(root / f"shard{i}.h5")
        result = runner.invoke(app, [*lc, "--shard", f"{i}/2", "-o", files[f"shard{i}"]])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*lc, "--json"])
    assert result.exit_code == 0, result.output
    (root / "baseline.json").write_text(result.stdout)
    files["baseline"] = str(root / "baseline.json")
    return files


def arguments(command: str, option: str, value: str, files: dict[str, str]) -> list[str]:
    positional, options = BASES[command]
    positional, options = list(positional), dict(options)
    if option in STATE_DICT_OPTIONS and positional[0] in STATE_DICTS:
        positional[0], options["--arch"] = STATE_DICTS[positional[0]]
    for key, extra in CONTEXT.get((command, option), {}).items():
        if extra is None:
            options.pop(key, None)
        else:
            options[key] = extra
    if option.startswith("-"):
        options[option] = value
    else:
        positional = [value]  # the checkpoint(s) or shard files
    positional = [_file(item, files) for item in positional]
    options = {key: _file(item, files) for key, item in options.items()}
    return [command, *positional, *_options(options)]


def _file(value: str | bool, files: dict[str, str]) -> str | bool:
    """A "{name}" placeholder as the path of that input file."""
    if isinstance(value, str) and value[:1] == "{" and value[1:-1] in files:
        return files[value[1:-1]]
    return value


def _options(options: dict[str, str | bool]) -> list[str]:
    # --name=value, so that values starting with "-" and empty values stay values; True: a flag
    return [key if item is True else f"{key}={item}" for key, item in options.items()]


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_malformed_value_is_refused(command, option, value, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing-folder").mkdir()
    before = sorted(os.listdir(tmp_path))
    args = arguments(command, option, value, inputs)
    result = runner.invoke(app, args)
    shown = f"{' '.join(args)}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    assert result.exit_code == 2, shown
    # one message: ours (one `error:` line), or Typer's own usage error (after its usage line)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 or (not errors and "Usage:" in result.output), shown
    assert sorted(os.listdir(tmp_path)) == before, shown


def test_the_bases_succeed(inputs, tmp_path, monkeypatch):
    """The bad values above are the only thing wrong with each run."""
    monkeypatch.chdir(tmp_path)
    for command, (positional, options) in BASES.items():
        args = [command, *[_file(p, inputs) for p in positional]]
        args += _options({key: _file(item, inputs) for key, item in options.items()})
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{args}\n{result.output}"
        (tmp_path / "out.h5").unlink(missing_ok=True)
