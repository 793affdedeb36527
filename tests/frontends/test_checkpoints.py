"""Checkpoints as people have them: their own module's state dict, wrapped, from Lightning, as
safetensors, built by a library's factory, with the input shape left for the file or the data to say,
and whole pickled modules whose class lives beside them."""

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.frontends.families import build
from splinetool.frontends.loading import load_model
from tests.refusal import refused
from tests.zoo import HyperParameters, lightning_checkpoint, mlp

runner = CliRunner()
FAMILY = "mlp{widths=[5, 4], outputs=2, input_shape=[3]}"
SEQUENTIAL_NAMES = {  # nn.Sequential(Linear, ReLU, Linear, ReLU, Linear) -> the mlp family
    "0.weight": "hidden.0.linear.weight",
    "0.bias": "hidden.0.linear.bias",
    "2.weight": "hidden.1.linear.weight",
    "2.bias": "hidden.1.linear.bias",
    "4.weight": "output.weight",
    "4.bias": "output.bias",
}


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    return result


def info(*args) -> dict:
    payload = json.loads(run("info", *args, "--json").stdout)
    assert payload["passed"] and payload["max_abs_diff"] < 1e-9
    return payload


def _sequential(widths=(3, 5, 4, 2), seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(widths).eval()


def _same_function(path, arch, model, shape=(3,)):
    loaded = load_model(path, arch=arch)
    x = torch.randn(9, *shape)
    torch.testing.assert_close(loaded.module(x), model(x), rtol=0, atol=0)
    return loaded


# -- a state dict of one's own module, matched to a family by shapes in order ----------------------


def test_own_sequential_state_dict_opens_with_a_family_and_reports_the_mapping(tmp_path):
    model = _sequential()
    torch.save(model.state_dict(), tmp_path / "own.pt")
    _same_function(tmp_path / "own.pt", FAMILY, model)
    assert info(tmp_path / "own.pt", "--arch", FAMILY)["renamed"] == SEQUENTIAL_NAMES
    table = run("info", tmp_path / "own.pt", "--arch", FAMILY).stdout
    assert "checkpoint tensors renamed" in table
    assert all(theirs in table and ours in table for theirs, ours in SEQUENTIAL_NAMES.items())


@pytest.mark.parametrize("save", ["pt", "safetensors"])
def test_a_vector_family_without_input_shape_takes_it_from_the_first_weight(tmp_path, save):
    model = _sequential()
    path = tmp_path / f"own.{save}"
    if save == "pt":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), str(path))
    loaded = _same_function(path, "mlp{widths=[5, 4], outputs=2}", model)
    assert loaded.input_shape == (3,)
    assert info(path, "--arch", "mlp{widths=[5, 4], outputs=2}")["input_shape"] == [3]


def test_a_family_state_dict_under_its_own_names_reports_no_mapping(tmp_path):
    model = _family()
    torch.save(model.state_dict(), tmp_path / "family.pt")
    assert info(tmp_path / "family.pt", "--arch", FAMILY)["renamed"] == {}
    assert "renamed" not in run("info", tmp_path / "family.pt", "--arch", FAMILY).stdout


def test_batch_norm_layers_match_by_their_tensors_names(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(-1, 1)
    model.eval()
    torch.save(model.state_dict(), tmp_path / "bn.pt")
    arch = "mlp{widths=[5], outputs=2, input_shape=[3], batch_norm=true}"
    renamed = _same_function(tmp_path / "bn.pt", arch, model).renamed
    assert (
        renamed["1.running_var"] == "hidden.0.bn.running_var" and renamed["1.weight"] == "hidden.0.bn.weight"
    )


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "model.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(tmp_path, prefix):
    model = _family()
    path = tmp_path / "wrapped.pt"
    torch.save({prefix + name: tensor for name, tensor in model.state_dict().items()}, path)
    renamed = info(path, "--arch", FAMILY)["renamed"]
    assert renamed == {prefix + name: name for name in model.state_dict()}
    _same_function(path, FAMILY, model)


class _OwnNorm(nn.Module):
    """A batch norm of one's own: its tensors' names differ from BatchNorm1d's, and four share a shape."""

    def __init__(self, n):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n))
        self.beta = nn.Parameter(torch.zeros(n))
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("var", torch.ones(n))
        self.register_buffer("steps", torch.tensor(0))


def test_a_layer_whose_same_shaped_tensors_cannot_be_told_apart_is_refused(tmp_path):
    model = nn.Sequential(nn.Linear(3, 5), _OwnNorm(5), nn.ReLU(), nn.Linear(5, 2))
    torch.save(model.state_dict(), tmp_path / "own_norm.pt")
    arch = "mlp{widths=[5], outputs=2, input_shape=[3], batch_norm=true}"
    message = refused("info", tmp_path / "own_norm.pt", "--arch", arch, names="--arch")
    assert "ambiguous" in message and "gamma [5]" in message and "running_var [5]" in message


def test_a_state_dict_of_other_layers_names_the_first_that_differs(tmp_path):
    torch.save(_sequential((3, 5, 6, 2)).state_dict(), tmp_path / "other.pt")
    message = refused("info", tmp_path / "other.pt", "--arch", FAMILY, names="--arch")
    assert "Matching by shapes in order failed too: shapes differ in the checkpoint's layer 2" in message
    assert "weight [6, 5]" in message and "weight [4, 5]" in message


def _family() -> nn.Module:
    torch.manual_seed(2)
    return build("mlp", {"widths": [5, 4], "outputs": 2, "input_shape": [3]}).eval()


# -- Lightning checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["model", "net"])
def test_lightning_checkpoint_opens_with_arch(tmp_path, attribute):
    model = _sequential()
    torch.save(lightning_checkpoint(model.state_dict(), attribute), tmp_path / "last.ckpt")
    renamed = info(tmp_path / "last.ckpt", "--arch", FAMILY)["renamed"]
    assert renamed == {f"{attribute}.{theirs}": ours for theirs, ours in SEQUENTIAL_NAMES.items()}
    _same_function(tmp_path / "last.ckpt", FAMILY, model)


def test_lightning_checkpoint_holding_objects_is_refused_unless_trusted(tmp_path):
    model = _sequential()
    path = tmp_path / "epoch=3.ckpt"
    torch.save(lightning_checkpoint(model.state_dict(), hyper=HyperParameters), path)
    message = refused("info", path, "--arch", FAMILY, names="--trust-checkpoint")
    assert "training checkpoint" in message and "tests.zoo.HyperParameters" in message
    assert info(path, "--arch", FAMILY, "--trust-checkpoint")["format"] == "state_dict"


def test_a_training_checkpoint_is_told_from_a_pickled_module_by_its_top_level_dict(tmp_path):
    model = _sequential()
    torch.save({"model": model.state_dict(), "args": HyperParameters(lr=0.1)}, tmp_path / "run.pt")
    torch.save(model, tmp_path / "whole.pt")
    assert "training checkpoint" in refused(
        "info", tmp_path / "run.pt", "--arch", FAMILY, names="--trust-checkpoint"
    )
    message = refused("info", tmp_path / "whole.pt", "--arch", FAMILY, names="--trust-checkpoint")
    assert "pickled Python object" in message and "training checkpoint" not in message


# -- safetensors ----------------------------------------------------------------------------------


def test_safetensors_with_the_familys_names(tmp_path):
    model = _family()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    payload = info(tmp_path / "model.safetensors", "--arch", FAMILY)
    assert payload["format"] == "safetensors" and payload["renamed"] == {}
    _same_function(tmp_path / "model.safetensors", FAMILY, model)


def test_safetensors_of_a_long_sequential_is_read_in_natural_order(tmp_path):
    # safetensors sorts its names, 10.weight before 2.weight; the layers are read as 0, 2, ..., 10
    widths = (3, 7, 6, 5, 4, 3, 2)
    model = _sequential(widths)
    path = tmp_path / "long.bin"  # detected by content, not by extension
    save_file(model.state_dict(), path)
    arch = "mlp{widths=[7, 6, 5, 4, 3], outputs=2, input_shape=[3]}"
    renamed = _same_function(path, arch, model).renamed
    assert renamed["10.weight"] == "output.weight" and renamed["2.bias"] == "hidden.1.linear.bias"


def test_damaged_safetensors_is_refused(tmp_path):
    save_file(_sequential().state_dict(), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 20])
    message = refused("info", tmp_path / "cut.safetensors", "--arch", FAMILY, names="cut.safetensors")
    assert "safetensors" in message


@pytest.mark.parametrize("name", ["head.safetensors", "head.bin"])
def test_safetensors_cut_inside_its_header_is_named_so(tmp_path, name):
    save_file(_sequential().state_dict(), tmp_path / "m.safetensors")
    (tmp_path / name).write_bytes((tmp_path / "m.safetensors").read_bytes()[:20])
    message = refused("info", tmp_path / name, "--arch", FAMILY, names=name)
    assert "a safetensors file cut short" in message and "the whole file holds 20" in message


def test_a_file_named_safetensors_too_short_for_one_is_refused(tmp_path):
    (tmp_path / "tiny.safetensors").write_bytes(b"hello")
    message = refused("info", tmp_path / "tiny.safetensors", "--arch", FAMILY, names="tiny.safetensors")
    assert "5 bytes, too short for a safetensors file" in message


# -- package.module:factory(key=literal, ...) ------------------------------------------------------


def test_factory_with_keyword_arguments(tmp_path):
    model = _sequential((3, 6, 2))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    arch = "tests.zoo:mlp(widths=[3, 6, 2])"
    payload = info(tmp_path / "m.pt", "--arch", arch)
    assert payload["input_shape"] == [3] and payload["parameters"] == 3 * 6 + 6 + 6 * 2 + 2
    _same_function(tmp_path / "m.pt", arch, model)


@pytest.mark.parametrize(
    ("arch", "said"),
    [
        ("tests.zoo:mlp([3, 6, 2])", "by keyword"),
        ("tests.zoo:mlp(widths=[3, 6, 2]", "argument list"),
        ("tests.zoo:mlp(**{'widths': [3, 6, 2]})", "by keyword"),
        ("tests.zoo:mlp(widths=open('opened', 'w'))", "widths=open('opened', 'w') is not a literal"),
        ("tests.zoo:mlp(depth=3)", "the factory raised TypeError"),
    ],
)
def test_factory_arguments_are_literals_given_by_keyword(tmp_path, monkeypatch, arch, said):
    torch.save(_sequential((3, 6, 2)).state_dict(), tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    message = refused("info", "m.pt", "--arch", arch, names="--arch", folder=tmp_path)
    assert said in message
    assert not (tmp_path / "opened").exists()


def test_factory_with_arguments_may_not_come_from_a_config_file(tmp_path):
    torch.save(_sequential((3, 6, 2)).state_dict(), tmp_path / "m.pt")
    config = tmp_path / "c.toml"
    config.write_text("arch = \"tests.zoo:mlp(widths=[3, 6, 2], names={'a': 1})\"\n")
    result = runner.invoke(app, ["info", str(tmp_path / "m.pt"), "--config", str(config)])
    assert result.exit_code == 2 and "may not come from a config file" in result.output


# -- the input shape, from the file, its first Linear layer, or --data ------------------------------


def test_scripted_and_traced_models_take_the_input_shape_of_their_first_linear_layer(tmp_path):
    model = _sequential((4, 5, 2))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "scripted.pt"))
    torch.jit.save(torch.jit.trace(model, torch.randn(2, 4)), str(tmp_path / "traced.pt"))
    for name in ("scripted.pt", "traced.pt"):
        assert info(tmp_path / name)["input_shape"] == [4]


class HeadDeclaredFirst(nn.Module):
    """Its first declared Linear(8, 3) runs last: the input is [5], not [8]."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.body = nn.Sequential(nn.Linear(5, 8), nn.ReLU())

    def forward(self, x):
        return self.head(self.body(x))


def test_a_linear_layer_declared_first_but_run_later_gives_no_input_shape(tmp_path):
    torch.jit.save(torch.jit.script(HeadDeclaredFirst()), str(tmp_path / "m.ts.pt"))
    assert load_model(tmp_path / "m.ts.pt").input_shape is None
    assert load_model(tmp_path / "m.ts.pt", input_shape=(5,)).input_shape == (5,)


def test_a_state_dict_with_a_factory_takes_the_input_shape_of_its_first_linear_layer(tmp_path):
    torch.save(_sequential((4, 5, 2)).state_dict(), tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt", arch="tests.zoo:mlp(widths=[4, 5, 2])").input_shape == (4,)


def _conv(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)).eval()
    path = tmp_path / "conv.ts.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    return path


def test_a_convolution_first_asks_for_the_input_shape(tmp_path):
    assert load_model(_conv(tmp_path)).input_shape is None
    refused("info", tmp_path / "conv.ts.pt", names="--input-shape")


def test_data_gives_the_input_shape(tmp_path):
    path = _conv(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(6, 1, 5, 5)))
    common = ("slice", path, "--data", tmp_path / "x.npy", "--anchor-index", "0,1,2", "--json")
    from_data = json.loads(run(*common).stdout)
    given = json.loads(run(*common, "--input-shape", "1,5,5").stdout)
    assert from_data["regions"] == given["regions"] >= 1
    assert from_data["tiles_per_node"] == given["tiles_per_node"]
    assert from_data["covered_area"] == pytest.approx(from_data["domain_area"], rel=1e-9)


# -- a trusted pickled module whose class is in the current directory ------------------------------


def _pickled_user_module(tmp_path, monkeypatch):
    """A whole module saved with torch.save, whose class is in user_networks.py beside it."""
    (tmp_path / "user_networks.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))\n"
        "    def forward(self, x):\n"
        "        return self.layers(x)\n"
    )
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(tmp_path))
        import user_networks

        torch.save(user_networks.Net().eval(), tmp_path / "whole.pt")
    # as in a fresh process: the class's module is neither imported nor on the path
    monkeypatch.delitem(sys.modules, "user_networks")
    assert str(tmp_path) not in sys.path
    return tmp_path / "whole.pt"


def test_trusted_pickled_module_finds_its_class_in_the_current_directory(tmp_path, monkeypatch):
    _pickled_user_module(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert info("whole.pt", "--trust-checkpoint")["input_shape"] == [3]
    assert str(tmp_path) not in sys.path


def test_trusted_pickled_module_whose_class_is_nowhere_says_where_to_run(tmp_path, monkeypatch):
    _pickled_user_module(tmp_path, monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    message = refused("info", "../whole.pt", "--trust-checkpoint", names="whole.pt")
    assert "user_networks" in message and "run from the folder holding their .py file" in message


def test_a_torch_save_file_named_safetensors_is_told_to_be_renamed(tmp_path):
    torch.save(_sequential().state_dict(), tmp_path / "m.safetensors")
    message = refused("info", tmp_path / "m.safetensors", "--arch", FAMILY, names="m.safetensors")
    assert "named .safetensors but saved by torch.save; rename it" in message
