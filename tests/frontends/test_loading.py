"""Every checkpoint format opens, by content, and every bad checkpoint is refused with a clear message."""

import pickle
import sys

import pytest
import torch
import torch.nn as nn

from splinetool.errors import CheckpointError, UnsafeCheckpointError, UsageError
from splinetool.frontends.families import build as build_family
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from tests.refusal import refused
from tests.zoo import mlp

MLP_SPEC = "mlp{widths=[5, 4], outputs=2, input_shape=[3]}"


def _family_mlp() -> nn.Module:
    torch.manual_seed(0)
    return build_family("mlp", {"widths": [5, 4], "outputs": 2, "input_shape": [3]}).eval()


def _agrees(loaded, model, shape):
    net = lower(loaded).to(dtype=torch.float64)
    x = torch.randn(7, *shape, dtype=torch.float64)
    torch.testing.assert_close(net.apply_output_transforms(net(x)), model.double()(x), rtol=0, atol=1e-12)


def test_torchscript_is_detected_by_content_whatever_the_extension(tmp_path):
    model = mlp((3, 4, 2)).eval()
    path = tmp_path / "weights.bin"
    extra = {"splinetool.json": '{"input_shape": [3]}'}
    torch.jit.save(torch.jit.script(model), str(path), _extra_files=extra)
    loaded = load_model(path)
    assert loaded.format == "torchscript" and loaded.input_shape == (3,)
    _agrees(loaded, model, (3,))


def test_torchscript_without_recorded_shape_takes_the_given_one(tmp_path):
    # a convolution first: nothing in the archive tells the input's spatial size
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    assert load_model(path).input_shape is None
    assert load_model(path, input_shape=(1, 5, 5)).input_shape == (1, 5, 5)


def test_exported_program_records_its_input_shape(tmp_path):
    model = mlp((3, 4, 2)).eval()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(5, 3),)), str(path))
    loaded = load_model(path)
    assert loaded.format == "export" and loaded.input_shape == (3,)
    _agrees(loaded, model, (3,))
    ones = torch.ones(7, 3, dtype=torch.float64)  # more rows than the exported batch of 5
    torch.testing.assert_close(loaded.reference(ones), model(ones))


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model_state_dict"])
def test_state_dict_with_inline_family(tmp_path, wrapper):
    model = _family_mlp()
    state = model.state_dict() if wrapper is None else {wrapper: model.state_dict(), "epoch": 3}
    path = tmp_path / "m.pt"
    torch.save(state, path)
    loaded = load_model(path, arch=MLP_SPEC)
    assert loaded.format == "state_dict" and loaded.input_shape == (3,)
    _agrees(loaded, model, (3,))


def test_state_dict_with_toml_arch(tmp_path):
    model = _family_mlp()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    toml = tmp_path / "arch.toml"
    toml.write_text('family = "mlp"\nwidths = [5, 4]\noutputs = 2\ninput_shape = [3]\n')
    _agrees(load_model(tmp_path / "m.pt", arch=str(toml)), model, (3,))


def test_state_dict_with_factory_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))\n"
        "    m.input_shape = (3,)\n"
        "    return m\n"
    )
    model = mlp((3, 4, 2)).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    loaded = load_model("m.pt", arch="my_models:make")
    assert loaded.input_shape == (3,)
    _agrees(loaded, model, (3,))


def test_state_dict_without_arch_asks_for_one(tmp_path):
    torch.save(_family_mlp().state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="`arch`"):
        load_model(tmp_path / "m.pt")


def test_mismatched_keys_are_listed_on_both_sides(tmp_path):
    torch.save(mlp((3, 4, 2)).state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as caught:
        load_model(tmp_path / "m.pt", arch=MLP_SPEC)
    message = str(caught.value)
    assert "0.weight" in message and "hidden.0.linear.weight" in message
    assert "missing from the checkpoint" in message and "not in the architecture" in message


def test_mismatched_shapes_are_named(tmp_path):
    torch.save(_family_mlp().state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(tmp_path / "m.pt", arch="mlp{widths=[6, 4], outputs=2, input_shape=[3]}")


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump(_Payload(marker), handle)
    torch.save(_Payload(marker), tmp_path / "evil_zip.pt")
    for candidate in (path, tmp_path / "evil_zip.pt"):
        with pytest.raises(UnsafeCheckpointError, match="`trust`"):
            load_model(candidate)
    assert not marker.exists()


def test_pickled_module_loads_only_when_trusted(tmp_path):
    model = mlp((3, 4, 2)).eval()
    model.input_shape = (3,)
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(UnsafeCheckpointError):
        load_model(tmp_path / "whole.pt")
    loaded = load_model(tmp_path / "whole.pt", trust=True)
    assert loaded.format == "pickle" and loaded.input_shape == (3,)
    _agrees(loaded, model, (3,))


def test_missing_and_garbage_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_model(tmp_path / "garbage.pt")


def test_bad_inline_arch_is_a_usage_error(tmp_path):
    torch.save(_family_mlp().state_dict(), tmp_path / "m.pt")
    with pytest.raises(UsageError, match="inline table"):
        load_model(tmp_path / "m.pt", arch="mlp{widths=[5,")
    with pytest.raises(UsageError):
        load_model(tmp_path / "m.pt", arch="nosuchfamily")
    with pytest.raises(UsageError, match="cannot import"):
        load_model(tmp_path / "m.pt", arch="no_such_module:make")


# -- issue 13: a factory module that cannot be imported or run names its file and line -------------

FACTORIES = {
    # module source -> what the one message must say
    "import torch\ndef make(:\n    pass\n": ("line 2", "SyntaxError"),
    "def make():\n    return 1\n  x = 2\n": ("line 3", "IndentationError"),
    "raise ValueError('no weights here')\n": ("line 1", "ValueError: no weights here"),
    "import sys\nsys.exit(3)\n": ("line 2", "SystemExit: 3"),
    "def make():\n    return helper()\n\ndef helper():\n    raise RuntimeError('boom')\n": (
        "line 5",
        "RuntimeError: boom",
    ),
    "import sys\ndef make():\n    sys.exit()\n": ("line 3", "SystemExit"),
}


@pytest.mark.parametrize(("number", "source"), enumerate(FACTORIES))
def test_a_broken_factory_module_names_its_file_and_line(tmp_path, monkeypatch, number, source):
    # a fresh module name each time: a module that imported before would be served from sys.modules
    name = f"issue13_factory_{number}"
    (tmp_path / f"{name}.py").write_text(source)
    torch.save(_family_mlp().state_dict(), tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)
    message = refused("info", "m.pt", "--arch", f"{name}:make", names=f"--arch {name}:make", folder=tmp_path)
    line, what = FACTORIES[source]
    assert f"{tmp_path / name}.py" in message and line in message and what in message
