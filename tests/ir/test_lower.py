"""The PLNet reproduces every model in the zoo, whichever frontend the model came through."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from splinetool.errors import UnsupportedModelError, UsageError
from splinetool.ir import lower
from tests.zoo import ZOO, build

FRONTENDS = ["module", "torchscript", "export"]


def as_frontend(model: nn.Module, shape: tuple[int, ...], frontend: str, tmp_path):
    if frontend == "module":
        return model
    if frontend == "torchscript":
        path = tmp_path / "m.ts"
        torch.jit.save(torch.jit.script(model), str(path))
        return torch.jit.load(str(path))
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(3, *shape),)), str(path))
    return torch.export.load(str(path))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("name", sorted(ZOO))
def test_plnet_output_equals_model_output(name, frontend, tmp_path):
    model, shape = build(name)
    source = as_frontend(model, shape, frontend, tmp_path)
    net = lower(source, shape).to(dtype=torch.float64)
    x = torch.randn(11, *shape, dtype=torch.float64)
    with torch.no_grad():
        expected = model.double()(x)
        got = net.apply_output_transforms(net(x))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_each_sample_is_computed_independently_of_its_batch(name):
    model, shape = build(name)
    net = lower(model, shape).to(dtype=torch.float64)
    x = torch.randn(5, *shape, dtype=torch.float64)
    together = net(x)
    alone = torch.cat([net(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-13)


def test_nodes_are_found_in_order_with_qualified_names():
    model, shape = build("nested")
    net = lower(model, shape)
    kinds = [(n.name, n.kind, n.neurons) for n in net.pl_nodes]
    assert [k for _, k, _ in kinds] == ["relu", "relu", "relu", "abs"]
    assert kinds[0] == ("stem.1", "relu", 8)
    assert kinds[1][0].startswith("blocks.0") and kinds[2][0].startswith("blocks.1")
    assert [s.op for s in net.output_transforms] == ["log_softmax"]


def test_two_breakpoint_activations_have_two_units_per_neuron():
    model, shape = build("clamps")
    net = lower(model, shape)
    assert [(n.kind, n.neurons, n.code_bits) for n in net.pl_nodes] == [("hardtanh", 6, 12)] * 3


@pytest.mark.parametrize("frontend", [*FRONTENDS, "traced"])
def test_softshrink_is_a_node_with_a_breakpoint_at_minus_and_plus_lambda(frontend, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Softshrink(0.3), nn.Linear(4, 2)).eval()
    if frontend == "traced":
        path = tmp_path / "m.ts"
        torch.jit.save(torch.jit.trace(model, torch.randn(5, 3)), str(path))
        source = torch.jit.load(str(path))
    else:
        source = as_frontend(model, (3,), frontend, tmp_path)
    net = lower(source, (3,)).to(dtype=torch.float64)
    (node,) = net.pl_nodes
    assert (node.kind, node.neurons, node.units, node.code_bits) == ("softshrink", 4, 8, 8)
    x = torch.randn(50, 3, dtype=torch.float64)
    model.double()
    with torch.no_grad():
        pre = model[0](x)
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=1e-12)
    bits = torch.stack([pre > -0.3, pre > 0.3], dim=2).reshape(50, -1)
    assert torch.equal(net.code_bits(x), bits)


def test_unsupported_ops_are_all_listed_at_once():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.gelu = nn.GELU()
            self.b = nn.Linear(3, 3)

        def forward(self, x):
            h = self.gelu(self.a(x))
            h = torch.sigmoid(F.silu(self.b(h)))
            return h * h

    with pytest.raises(UnsupportedModelError) as caught:
        lower(Bad(), (3,))
    listed = {(name, op) for name, op, _ in caught.value.unsupported}
    assert ("gelu", "gelu") in listed
    assert any(op == "silu" for _, op in listed)
    assert any(op == "sigmoid" for _, op in listed)  # not at the output
    assert any(op == "mul" for _, op in listed)  # a product of two network values
    assert "relu" in str(caught.value) and "conv2d" in str(caught.value)


def test_batch_norm_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU()).train()
    program = torch.export.export(model, (torch.randn(4, 2),))
    with pytest.raises(UnsupportedModelError, match="training mode"):
        lower(program, (2,))


def test_reshape_that_mixes_samples_is_refused():
    class Mixer(nn.Module):
        def forward(self, x):
            return torch.relu(x.reshape(-1)).reshape(x.shape[0], -1)

    with pytest.raises(UnsupportedModelError, match="batch"):
        lower(Mixer(), (4,))


def test_to_moves_every_constant():
    model, shape = build("convnet")
    net = lower(model, shape).to(dtype=torch.float64)
    assert net.dtype == torch.float64
    assert all(
        t.dtype == torch.float64 for s in net.steps for t in s.call.constants() if t.is_floating_point()
    )
    assert not any(t.requires_grad for s in net.steps for t in s.call.constants())


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_in_place_activations_keep_their_pre_activations(frontend, tmp_path):
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 5)
            self.b = nn.Linear(5, 5)

        def forward(self, x):
            h = F.relu(self.a(x), inplace=True)
            g = self.b(h)
            g += h  # in-place residual
            return nn.functional.relu6(g, inplace=True)

    model = InPlace().eval()
    net = lower(as_frontend(model, (3,), frontend, tmp_path), (3,)).to(dtype=torch.float64)
    x = torch.randn(40, 3, dtype=torch.float64)
    model.double()
    with torch.no_grad():
        first = model.a(x)
        second = model.b(torch.relu(first)) + torch.relu(first)
    got = net.preactivations(x)
    torch.testing.assert_close(got[0], first, rtol=0, atol=1e-12)
    torch.testing.assert_close(got[1], second, rtol=0, atol=1e-12)
    hardtanh_bits = torch.stack([second > 0, second > 6], dim=2).reshape(40, -1)
    assert torch.equal(net.code_bits(x), torch.cat([first > 0, hardtanh_bits], dim=1))


def test_tensors_built_from_the_batch_size_are_refused():
    class Positional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.pos = nn.Parameter(torch.randn(1, 4))

        def forward(self, x):
            return F.relu(self.a(x) + self.pos.expand(x.size(0), -1))

    # broadcasting the same parameter is fine; materialising it at the batch size is not
    with pytest.raises(UnsupportedModelError, match="batch size"):
        lower(torch.jit.script(Positional()), (3,))


def test_softmax_over_the_batch_is_refused():
    class BatchSoftmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 2)

        def forward(self, x):
            return torch.softmax(self.a(x), dim=0)

    with pytest.raises(UnsupportedModelError, match="batch"):
        lower(BatchSoftmax(), (3,))


def test_lowering_leaves_the_model_in_its_mode():
    model, shape = build("nested")
    model.train()
    lower(model, shape)
    assert model.training


def test_dtype_moves_even_without_floating_constants():
    class Tent(nn.Module):
        def forward(self, x):
            for _ in range(3):
                x = 2 * F.relu(x) - 4 * F.relu(x - 0.5)
            return x

    net = lower(Tent(), (1,)).to(dtype=torch.float64)
    assert net.dtype == torch.float64
    x = torch.rand(50, 1, dtype=torch.float64)
    torch.testing.assert_close(net(x), Tent()(x), rtol=0, atol=1e-15)


def test_scripted_whole_range_slices_are_identity():
    class Slicer(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 4)

        def forward(self, x):
            h = F.relu(self.a(x))
            return h[:, 1:] - h[:, :1]

    model = Slicer().eval()
    net = lower(torch.jit.script(model), (3,)).to(dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(net(x), model.double()(x), rtol=0, atol=1e-14)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    "where,name", [("weight", "parameter '2.weight'"), ("running_var", "buffer '1.running_var'")]
)
def test_non_finite_parameters_and_buffers_are_refused_by_name(frontend, where, name, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    model.eval()
    with torch.no_grad():
        if where == "weight":
            model[2].weight[1, 2] = float("nan")
        else:
            model[1].running_var[0] = float("inf")
    source = as_frontend(model, (3,), frontend, tmp_path)
    with pytest.raises(UsageError, match=f"the model: {name} holds NaN or inf values"):
        lower(source, (3,))


def test_finite_extreme_weights_still_lower():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].weight.mul_(1e100)
    assert len(lower(model, (2,)).pl_nodes) == 1
