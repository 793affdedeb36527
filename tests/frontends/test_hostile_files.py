"""Files built to run code when opened, or damaged after saving: refused before anything runs.

Each test builds its hostile file, shows where it matters that the attack is real (trusted, it does
run), and asserts that untrusted it is refused with exit 2 or 3, a message naming the entry or op,
no traceback, and no trace of the attack.
"""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from typer.testing import CliRunner

from splinetool.cli import app
from tests.zoo import mlp

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


class TouchesMarker:
    """Unpickling this object creates the file at `path` (as any code in a pickle could)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickled(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _rewrite(path, edit):
    """Rewrite a zip archive member by member through edit(name, data) -> data."""
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, edit(info.filename, data))


def _export(path):
    model = mlp((3, 4, 2)).eval()
    torch.export.save(torch.export.export(model, (torch.randn(5, 3),)), str(path))


def _pickle_first_weight(path, marker):
    names = {}

    def edit(name, data):
        if name.endswith("_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            names["weight"] = first["path_name"]
            return json.dumps(config).encode()
        return data

    _rewrite(path, edit)
    _rewrite(
        path,
        lambda name, data: _pickled(TouchesMarker(str(marker))) if name.endswith(names["weight"]) else data,
    )


def test_pt2_with_a_pickled_weight_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "m.pt2", tmp_path / "marker"
    _export(path)
    _pickle_first_weight(path, marker)
    result = run("info", path)
    assert result.exit_code == 2
    assert "would run code" in result.output and "(pickled) in" in result.output
    assert "--trust-checkpoint" in result.output
    assert not marker.exists()
    run("info", path, "--trust-checkpoint")  # the file is a real attack: trusted, it runs
    assert marker.exists()


def test_pt2_with_pickled_sample_inputs_is_refused(tmp_path):
    path, marker = tmp_path / "m.pt2", tmp_path / "marker"
    _export(path)
    payload = _pickled(TouchesMarker(str(marker)))
    _rewrite(path, lambda name, data: payload if "/data/sample_inputs/" in name else data)
    for command in (["info"], ["slice", *_plane(tmp_path, 3)]):
        result = run(*command, path)
        assert result.exit_code == 2, result.output
        assert "sample_inputs" in result.output and "(a pickle)" in result.output
    assert not marker.exists()


def test_pt2_with_compiled_code_is_refused(tmp_path):
    path = tmp_path / "m.pt2"
    _export(path)
    root = zipfile.ZipFile(path).namelist()[0].split("/")[0]
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    result = run("info", path)
    assert result.exit_code == 2 and "compiled code" in result.output


class WritesThroughFromFile(nn.Module):
    """A scripted forward that maps a file into memory and overwrites it."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.fc = nn.Linear(2, 1)

    def forward(self, x):
        mapped = torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8)
        mapped.fill_(65)
        return torch.relu(self.fc(x)) + mapped.sum() * 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_calling_unsupported_ops_is_refused_before_it_runs(tmp_path):
    target, path = tmp_path / "victim", tmp_path / "m.ts.pt"
    target.write_bytes(b"0000")
    torch.jit.save(torch.jit.script(WritesThroughFromFile(str(target))), str(path))
    for command in (["info"], ["slice", *_plane(tmp_path, 2)]):
        result = run(*command, path, "--input-shape", "2")
        assert result.exit_code == 3, result.output
        assert "aten::from_file" in result.output and "aten::fill_" in result.output
        assert "refused before running the model" in result.output
    assert target.read_bytes() == b"0000"
    torch.jit.load(str(path))(torch.zeros(1, 2))  # the archive is a real attack: run, it writes
    assert target.read_bytes() == b"AAAA"


def _plane(folder, dims: int) -> list:
    """Options for a slice through the origin along the first two axes of a dims-dimensional input."""
    np.save(folder / "origin.npy", np.zeros(dims))
    np.save(folder / "directions.npy", np.eye(2, dims))
    return [
        "--origin",
        folder / "origin.npy",
        "--directions",
        folder / "directions.npy",
        "--bounds=-1,1,-1,1",
    ]


class Restores(torch.nn.Module):
    """A scripted class with __setstate__, which torch.jit.load runs while reading the archive."""

    def __init__(self):
        super().__init__()
        self.weight = torch.ones(1, 2)

    def forward(self, x):
        return torch.relu(torch.nn.functional.linear(x, self.weight))

    @torch.jit.export
    def __getstate__(self):
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        self.weight = state[0]
        self.training = state[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_with_setstate_needs_trust(tmp_path):
    path = tmp_path / "m.ts.pt"
    torch.jit.save(torch.jit.script(Restores()), str(path))
    result = run("info", path, "--input-shape", "2")
    assert result.exit_code == 2 and "__setstate__" in result.output
    assert run("info", path, "--input-shape", "2", "--trust-checkpoint").exit_code == 0


@pytest.mark.parametrize("kind", ["torchscript", "pt2", "state"])
def test_an_archive_damaged_after_saving_is_refused(tmp_path, kind):
    path = tmp_path / "m.pt"
    model = mlp((3, 4, 2)).eval()
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(model), str(path))
    elif kind == "pt2":
        torch.export.save(torch.export.export(model, (torch.randn(5, 3),)), str(path))
    else:
        torch.save(model.state_dict(), path)
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the largest member: a weight
    data = bytearray(path.read_bytes())
    # the member's data follow its local header, whose name and extra-field lengths sit at 26 and 28
    header = info.header_offset
    at = header + 30 + int.from_bytes(data[header + 26 : header + 28], "little")
    at += int.from_bytes(data[header + 28 : header + 30], "little")
    data[at] ^= 0xFF  # one flipped byte inside the member's stored data
    path.write_bytes(bytes(data))
    result = run("info", path, "--input-shape", "3", "--arch", "mlp{widths=[4], outputs=2, input_shape=[3]}")
    assert result.exit_code == 2, result.output
    assert "damaged" in result.output and info.filename in result.output


class Exponential(nn.Module):
    def forward(self, x):
        return torch.exp(x)


def test_pt2_graph_is_checked_before_the_lowering_folds_or_runs_anything(tmp_path):
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(Exponential(), (torch.randn(2, 3),)), str(path))
    result = run("info", path)
    assert result.exit_code == 3
    assert "aten::exp" in result.output and "refused before running the model" in result.output
