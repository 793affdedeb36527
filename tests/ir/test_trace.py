"""Exported programs that torch.export writes but that cannot be lowered: one message naming the file."""

import pytest
import torch
from torch import nn

from splinetool.cli import app
from tests.refusal import refused, runner


class CountsCalls(nn.Module):
    """Updates an integer constant (a plain tensor attribute, not a buffer) in place on every call."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(2, 3), nn.Linear(3, 2)
        self.calls = torch.tensor(0)

    def forward(self, x):
        self.calls.add_(1)
        return self.out(torch.relu(self.hidden(x)))


class IntegerMatrix(nn.Module):
    """Multiplies by an integer matrix: export records it, but the graph cannot run on float inputs."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(2, 3), nn.Linear(3, 2)
        self.register_buffer("mix", torch.eye(3, dtype=torch.int64))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)) @ self.mix)


class IntegerScale(nn.Module):
    """An integer buffer that promotes like any number: a model like any other."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(2, 3), nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor([1, 2, 3]))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)) * self.scale + torch.tensor(2))


def export(model: nn.Module, path):
    torch.export.save(torch.export.export(model.eval(), (torch.randn(4, 2),)), str(path))
    return path


@pytest.mark.parametrize(
    ("model", "names", "why"),
    [
        (CountsCalls, "cannot make its graph free of in-place updates", "Constant calls is mutated"),
        (IntegerMatrix, "fails on an input of its own shape [4,2]", "same dtype"),
    ],
)
def test_exports_holding_unusable_integer_constants_are_refused(tmp_path, model, names, why):
    path = export(model(), tmp_path / "model.pt2")
    message = refused("info", path, names=f"checkpoint {path}: ", folder=tmp_path)
    assert names in message and why in message


def test_an_integer_buffer_that_promotes_is_lowered(tmp_path):
    result = runner.invoke(app, ["info", str(export(IntegerScale(), tmp_path / "model.pt2"))])
    assert result.exit_code == 0, result.output
    assert "lowering check" in result.output and " ok" in result.output
