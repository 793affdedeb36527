"""One layer's parameter Jacobian with the patterns frozen, against autograd through the module."""

import pytest
import torch
from torch import nn

from splinetool.engine.layer_jacobian import LayerJacobian, parameter_layers
from splinetool.engine.memory import MEMORY_BUDGET
from splinetool.ir import lower

F64 = torch.float64


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    model = (
        nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    )
    net = lower(model, (3,)).to(dtype=F64)
    x = torch.randn(9, 3, dtype=F64)
    return model, net, x


def autograd_jacobian(model: nn.Module, x: torch.Tensor, prefix: str) -> torch.Tensor:
    """[points · outputs, params]: ∂f(x_i)/∂(weight, bias) of the layer `prefix`, weight first."""
    params = dict(model.named_parameters())
    weight, bias = params[f"{prefix}.weight"], params[f"{prefix}.bias"]

    def outputs(theta):
        w, b = theta[: weight.numel()].reshape(weight.shape), theta[weight.numel() :]
        out = torch.func.functional_call(model, {f"{prefix}.weight": w, f"{prefix}.bias": b}, (x,))
        return out.reshape(-1)

    theta = torch.cat([weight.detach().reshape(-1), bias.detach()])
    return torch.func.jacrev(outputs)(theta)


def test_parameter_layers_are_the_trained_steps_in_order(mlp):
    _, net, _ = mlp
    layers = parameter_layers(net)
    assert [layer.params for layer in layers] == [20, 24, 10]
    assert [layer.shapes for layer in layers] == [((5, 3), (5,)), ((4, 5), (4,)), ((2, 4), (2,))]
    assert [layer.step for layer in layers] == sorted({layer.step for layer in layers})


@pytest.mark.parametrize("memory", [MEMORY_BUDGET, 0], ids=["factored", "through"])
@pytest.mark.parametrize("index, prefix", [(0, "0"), (1, "2"), (2, "4")])
def test_rows_and_products_equal_autograd(mlp, memory, index, prefix):
    model, net, x = mlp
    jacobian = LayerJacobian(net, parameter_layers(net)[index], x, chunk_size=4, memory=memory)
    assert jacobian.factored is (memory > 0)
    expected = autograd_jacobian(model, x, prefix)
    assert (jacobian.rows, jacobian.params) == expected.shape
    rows = torch.cat(list(jacobian.row_chunks(3)))
    torch.testing.assert_close(rows, expected, rtol=1e-12, atol=1e-12)
    v = torch.randn(jacobian.params, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(jacobian.jvp(v).reshape(-1), expected @ v, rtol=1e-12, atol=1e-12)
    u = torch.randn(len(x), net.output_dim, dtype=F64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(jacobian.vjp(u), expected.T @ u.reshape(-1), rtol=1e-12, atol=1e-12)
