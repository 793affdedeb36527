"""Batched Jacobians against PLNet.affine_maps (d separate products) and dense autograd Jacobians."""

import pytest
import torch

from splinetool.engine.jacobian import auto_chunk, cheaper_mode, jacobians
from splinetool.ir import lower
from tests.zoo import build, mlp


@pytest.mark.parametrize(
    ("name", "mode"), [("convnet", "reverse"), ("clamps", "reverse"), ("nested", "forward")]
)
def test_both_modes_match_the_affine_maps_of_the_zoo(name, mode):
    module, shape = build(name)
    net = lower(module.double(), shape).to(dtype=torch.float64)
    x = torch.randn(6, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert cheaper_mode(net.input_dim, net.output_dim) == mode
    with torch.no_grad():
        got = jacobians(net, x)
    torch.testing.assert_close(got, net.affine_maps(x)[0], rtol=1e-12, atol=1e-12)


def test_forward_mode_and_projection_match_dense_jacobians():
    torch.manual_seed(0)
    module = mlp((3, 10, 10, 7)).double()
    net = lower(module, (3,)).to(dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    dense = torch.stack([torch.autograd.functional.jacobian(lambda v: module(v[None])[0], r) for r in x])
    projection = torch.linalg.qr(torch.randn(7, 2, dtype=torch.float64))[0].T  # k = 2 < d: reverse
    with torch.no_grad():
        torch.testing.assert_close(jacobians(net, x), dense, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(jacobians(net, x, projection), projection @ dense, rtol=1e-12, atol=1e-12)
    assert auto_chunk(net, 3) == 8192 // 3 and auto_chunk(net, 3, budget=1) == 1
