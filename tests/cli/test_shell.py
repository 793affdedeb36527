"""The command line at the shell: it starts without loading the library, its help renders as text,
and the package's modules are reachable from `import splinetool` alone."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from splinetool.cli import COMMANDS, app
from tests.conftest import SAMPLES

runner = CliRunner()
# what takes seconds to import (pydantic: 0.1-0.2 s, through Typer 0.29's option conversion): a start
# that does not run a command never needs them
HEAVY = ("torch", "matplotlib", "h5py", "numpy", "pydantic")


def imported_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; the heavy modules it imported, and what it printed."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    *printed, heavy = done.stdout.splitlines()
    return {"heavy": json.loads(heavy), "printed": printed}


def test_importing_the_command_line_loads_no_library():
    assert imported_after("import splinetool.cli")["heavy"] == []


def test_help_and_usage_errors_load_no_library(tmp_path):
    model = str(SAMPLES / "moons-mlp.ts.pt")
    config = tmp_path / "bad.toml"
    config.write_text('colour = "layer"\n')
    starts = [["--help"], [], ["slice", "--bogus"], ["count-regions", "--seed", "x"], ["slice"]]
    # values from a fixed set, and a config file's unknown key, are refused before the library loads
    starts += [["slice", model, "--color", "nope"], ["bn-density", "--scale", "column"]]
    starts += [["slice", model, "--config", str(config)]]
    starts += [[name, "--help"] for name in COMMANDS]
    code = (
        "from splinetool.cli import app\n"
        f"for args in {starts!r}:\n"
        "    try:\n"
        "        app(args, prog_name='splinetool')\n"
        "    except SystemExit as stop:\n"
        "        print('exit', stop.code)\n"
    )
    found = imported_after(code)
    assert found["heavy"] == []
    codes = [line for line in found["printed"] if line.startswith("exit ")]
    # help exits 0; no arguments, unknown options, bad values and missing arguments exit 2
    assert codes == ["exit 0"] + ["exit 2"] * 7 + ["exit 0"] * len(COMMANDS)


def test_a_command_that_runs_still_loads_what_it_needs():
    code = (
        "from splinetool.cli import app\n"
        "try:\n"
        f"    app(['info', {str(SAMPLES / 'moons-mlp.ts.pt')!r}, '--json'], prog_name='splinetool')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
    )
    assert {"torch", "numpy"} <= set(imported_after(code)["heavy"])


def test_a_command_that_runs_keeps_freed_memory_and_help_does_not(monkeypatch):
    from splinetool.engine import memory

    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(True))
    assert runner.invoke(app, ["info", "--help"]).exit_code == 0
    assert calls == []
    assert runner.invoke(app, ["info", str(SAMPLES / "moons-mlp.ts.pt"), "--json"]).exit_code == 0
    assert calls == [True]


# -- import splinetool -------------------------------------------------------------------------------


def test_the_package_reaches_its_modules_without_importing_torch_first():
    code = "import splinetool\nassert 'torch' not in sys.modules\nprint(splinetool.io.read.__module__)"
    found = imported_after(code)
    assert found["printed"] == ["splinetool.io.hdf5"]
    assert "h5py" in found["heavy"]  # reading a run file needs it: loaded on first use


def test_the_package_names_load_on_first_use():
    code = (
        "import splinetool\n"
        "print(splinetool.load_model.__name__, splinetool.PLNet.__name__, splinetool.lower.__name__)\n"
        "print(hasattr(splinetool, 'no_such_name'))"
    )
    assert imported_after(code)["printed"] == ["load_model PLNet lower", "False"]


# -- help text ---------------------------------------------------------------------------------------


def help_of(*args: str, columns: int = 80) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_shows_no_type_names_metavars_or_markup(name):
    text = help_of(name)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: splinetool {name} [OPTIONS]")
    assert "{" not in usage and "}" not in usage
    for leak in ("<bool>", "list[", "Path]", "[/]", "[bold"):
        assert leak not in text, leak
    assert "--help" in text and "--json" in text


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("slice", "Usage: splinetool slice [OPTIONS] CHECKPOINTS..."),
        ("bn-density", "Usage: splinetool bn-density [OPTIONS] [CHECKPOINT]"),
        ("condition", "Usage: splinetool condition [OPTIONS] CHECKPOINTS..."),
        ("merge", "Usage: splinetool merge [OPTIONS] SHARDS..."),
    ],
)
def test_usage_names_arguments_as_the_shell_does(name, shown):
    assert help_of(name).splitlines()[0] == shown


@pytest.mark.parametrize(
    ("name", "bracketed"),
    [
        ("slice", "[planes, 3, ...]"),
        ("count-regions", "[S, 2, ...]"),
        ("condition", "[points, outputs]"),
    ],
)
def test_bracketed_shapes_in_help_are_printed(name, bracketed):
    # wide enough that no shape is wrapped across lines
    assert bracketed in help_of(name, columns=200)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_docstrings_are_wrapped_once_to_the_terminal(name):
    text = help_of(name)
    description = text.split("\nArguments:")[0].split("\nOptions:")[0].splitlines()[2:]
    assert all(len(line) <= 80 for line in text.splitlines())
    paragraphs = "\n".join(description).split("\n\n")
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        # a paragraph filled once: every line but its last reaches far into the 80 columns
        assert all(len(line.rstrip()) > 55 for line in lines[:-1]), paragraph


def test_the_command_list_shows_each_first_sentence_whole():
    listed = help_of().split("Commands:")[1]
    sentence = "Load and lower a checkpoint; list its piecewise-linear nodes and check the lowering."
    assert sentence in " ".join(listed.split())  # wrapped, not cut
    assert "..." not in listed


def test_bare_splinetool_exits_2_with_the_usage():
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert result.output.startswith("Usage: splinetool [OPTIONS] COMMAND [ARGS]...")
    assert "count-regions" in result.output


# -- tables ------------------------------------------------------------------------------------------


def test_piped_tables_print_every_number_whole():
    # condition's table is wider than 80 columns: piped, it is printed at its own width
    args = ["condition", str(SAMPLES / "moons-mlp.ts.pt"), "--data", "moons:40"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) > 80
    summary = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    hessians = result.output.split("block Jacobians")[0].splitlines()
    body = [[cell.strip() for cell in line.strip("│").split("│")] for line in hessians]
    shown = {row[0]: row for row in body if len(row) > 3}
    for layer in summary["models"][0]["layers"]:
        row = shown[layer["name"]]
        assert f"{layer['lambda_max']:.3g}" in row and f"{layer['condition_number']:.3g}" in row
