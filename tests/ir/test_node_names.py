"""One model has the same PL node names whichever way it was saved, so one gate file checks them all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from splinetool.analyses import info
from splinetool.cli import app
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from tests.conftest import ARCHS, SAMPLES
from tests.zoo import build

runner = CliRunner()

# zoo model -> (factory for `--arch tests.zoo:factory`, its PL node names in every format)
NAMES = {
    "mlp": ("mlp", ["1", "3"]),
    "nested": ("Nested", ["stem.1", "blocks.0.relu", "blocks.1.relu", "abs"]),
    "convnet": ("ConvNet", ["leaky_relu", "relu", "pool"]),
    "conv1d": ("Conv1dNet", ["act", "pool"]),
    "clamps": ("Clamps", ["hardtanh", "relu6", "clamp"]),
    "shrinks": ("Shrinks", ["shrink", "softshrink"]),
    "resnet": ("ResNetLike", ["relu", "relu_1", "relu_2"]),
}


def save_every_way(name: str, folder) -> dict[str, tuple[str, list[str]]]:
    """The zoo model `name` saved in every format: format -> (file, extra command-line arguments)."""
    model, shape = build(name)
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    torch.export.save(torch.export.export(model, (example,), strict=False), folder / "model.pt2")
    torch.jit.save(torch.jit.script(model), folder / "scripted.ts.pt")
    torch.jit.save(torch.jit.trace(model, example), folder / "traced.ts.pt")
    torch.save(model.state_dict(), folder / "model.state.pt")
    shape_flag = ["--input-shape", ",".join(map(str, shape))]
    factory = ["--arch", f"tests.zoo:{NAMES[name][0]}"]
    return {
        "pt2": (str(folder / "model.pt2"), []),
        "scripted": (str(folder / "scripted.ts.pt"), shape_flag),
        "traced": (str(folder / "traced.ts.pt"), shape_flag),
        "state dict": (str(folder / "model.state.pt"), factory + shape_flag),
    }


def node_names(path: str, args: list[str]) -> list[str]:
    options = dict(zip(args[::2], args[1::2]))
    shape = options.get("--input-shape")
    loaded = load_model(
        path,
        arch=options.get("--arch"),
        input_shape=tuple(int(s) for s in shape.split(",")) if shape else None,
    )
    return [node.name for node in lower(loaded).pl_nodes]


@pytest.mark.parametrize("name", list(NAMES))
def test_one_model_saved_every_way_has_the_same_node_names(name, tmp_path):
    files = save_every_way(name, tmp_path)
    names = {kind: node_names(*file) for kind, file in files.items()}
    assert names == {kind: NAMES[name][1] for kind in files}


def test_a_family_saved_every_way_has_the_same_node_names():
    files = [
        load_model(SAMPLES / "digits-mlp.ts.pt"),
        load_model(SAMPLES / "digits-mlp.pt2"),
        load_model(SAMPLES / "digits-mlp.state.pt", arch=str(ARCHS / "digits-mlp.toml")),
    ]
    for loaded in files:
        assert [n.name for n in lower(loaded).pl_nodes] == [f"hidden.{k}.act" for k in range(4)]


def test_a_functional_activation_under_control_flow_keeps_the_name_of_the_module_it_follows(tmp_path):
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)
            self.flip = True

        def forward(self, x):
            h = self.fc(x)
            # an attribute, not a constant: TorchScript keeps both branches
            return torch.relu(-h) if self.flip else torch.relu(h)

    torch.jit.save(torch.jit.script(Branchy()), tmp_path / "branchy.ts.pt")
    assert node_names(str(tmp_path / "branchy.ts.pt"), ["--input-shape", "3"]) == ["fc.relu"]


def lc_gate(path: str, args: list[str], data, gate) -> dict:
    result = runner.invoke(
        app, ["local-complexity", path, *args, "--data", str(data), "--gate", str(gate), "--json"]
    )
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.fixture
def nested_every_way(tmp_path):
    files = save_every_way("nested", tmp_path)
    data = tmp_path / "points.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(40, 3)))
    return files, data


def test_a_gate_written_against_one_format_gates_the_same_nodes_on_the_others(nested_every_way, tmp_path):
    files, data = nested_every_way
    pt2 = node_names(*files["pt2"])
    gate = tmp_path / "gate.toml"
    gate.write_text("[per_node]\n" + "".join(f'"{node}" = 1.5\n' for node in pt2))
    checks = {kind: lc_gate(*file, data, gate)["checks"] for kind, file in files.items()}
    labels = {kind: [c["check"] for c in found] for kind, found in checks.items()}
    assert labels == {kind: [f"per_node_mean[{node}]" for node in pt2] for kind in files}
    for found in checks.values():
        assert [c["value"] for c in found] == pytest.approx([c["value"] for c in checks["pt2"]], abs=1e-9)
        assert [c["passed"] for c in found] == [c["passed"] for c in checks["pt2"]]


def test_a_gate_may_name_nodes_by_their_position(nested_every_way, tmp_path):
    files, data = nested_every_way
    by_name, by_position = tmp_path / "names.toml", tmp_path / "positions.toml"
    by_name.write_text('[per_node]\n"blocks.0.relu" = 1.5\nabs = 0.1\n')
    by_position.write_text('[per_node]\n"node 2" = 1.5\n"node 4" = 0.1\n')
    named = lc_gate(*files["scripted"], data, by_name)
    positioned = lc_gate(*files["traced"], data, by_position)
    checked = [c["check"] for c in positioned["checks"]]
    assert checked == ["per_node_mean[blocks.0.relu]", "per_node_mean[abs]"]
    assert [c["value"] for c in positioned["checks"]] == pytest.approx([c["value"] for c in named["checks"]])
    assert [c["passed"] for c in positioned["checks"]] == [True, False]
    assert positioned["failed_checks"] == [
        f"per_node_mean[abs] = {named['checks'][1]['value']:.4g} > 0.1 (--gate positions.toml)"
    ]


def test_a_position_past_the_last_node_exits_2_listing_the_positions(nested_every_way, tmp_path):
    files, data = nested_every_way
    gate = tmp_path / "gate.toml"
    gate.write_text('[per_node]\n"node 5" = 1\n')
    path, args = files["pt2"]
    result = runner.invoke(app, ["local-complexity", path, *args, "--data", str(data), "--gate", str(gate)])
    assert result.exit_code == 2 and "node 5" in result.output
    assert "stem.1 (node 1)" in result.output and "abs (node 4)" in result.output


def test_info_numbers_the_nodes_as_a_gate_file_counts_them():
    result = info.run(load_model(SAMPLES / "moons-mlp.pt2"))
    assert [(n.position, n.name) for n in result.nodes] == [(k + 1, f"hidden.{k}.act") for k in range(4)]
    printed = runner.invoke(app, ["info", str(SAMPLES / "moons-mlp.pt2")])
    rows = [line.split("│")[1:3] for line in printed.stdout.splitlines() if "hidden." in line]
    assert [(a.strip(), b.strip()) for a, b in rows] == [(str(k + 1), f"hidden.{k}.act") for k in range(4)]
    payload = json.loads(runner.invoke(app, ["info", str(SAMPLES / "moons-mlp.pt2"), "--json"]).stdout)
    assert [n["position"] for n in payload["nodes"]] == [1, 2, 3, 4]
