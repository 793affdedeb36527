"""Batched Jacobians and local affine maps against dense autograd Jacobians and the network itself."""

import pytest
import torch

from splinetool.engine.jacobian import CPU_BATCH_ROWS, affine_maps, cheaper_mode, jacobians
from splinetool.engine.memory import auto_chunk
from splinetool.ir import lower
from tests.zoo import ZOO, build, mlp


@pytest.mark.parametrize(
    ("name", "mode"), [("convnet", "reverse"), ("clamps", "reverse"), ("nested", "forward")]
)
def test_both_modes_match_dense_jacobians_of_the_zoo(name, mode):
    module, shape = build(name)
    net = lower(module.double(), shape).to(dtype=torch.float64)
    x = torch.randn(6, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert cheaper_mode(net.input_dim, net.output_dim) == mode
    dense = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v: net(v[None]).reshape(-1), r).reshape(-1, r.numel())
            for r in x
        ]
    )
    with torch.no_grad():
        got, one_by_one = jacobians(net, x), jacobians(net, x, budget=1)
    torch.testing.assert_close(got, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(one_by_one, dense, rtol=1e-12, atol=1e-12)


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
    assert (
        auto_chunk(net, 3, CPU_BATCH_ROWS) == 8192 // 3 and auto_chunk(net, 3, CPU_BATCH_ROWS, budget=1) == 1
    )


@pytest.mark.parametrize("name", sorted(ZOO))
def test_local_affine_map_reproduces_the_output(name):
    model, shape = build(name)
    net = lower(model, shape).to(dtype=torch.float64)
    x = torch.randn(6, *shape, dtype=torch.float64)
    a, c = affine_maps(net, x)
    assert a.shape == (6, net.output_dim, net.input_dim)
    y = net(x).reshape(6, -1)
    torch.testing.assert_close(torch.einsum("boi,bi->bo", a, x.reshape(6, -1)) + c, y, rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", ["mlp", "convnet", "resnet"])
def test_local_affine_map_matches_finite_differences_inside_the_region(name):
    model, shape = build(name)
    net = lower(model, shape).to(dtype=torch.float64)
    x = torch.randn(4, *shape, dtype=torch.float64)
    a, _ = affine_maps(net, x)
    step = 1e-7
    direction = torch.randn_like(x)
    direction /= direction.reshape(4, -1).norm(dim=1).reshape(4, *[1] * len(shape))
    moved = x + step * direction
    same_region = (net.codes(moved) == net.codes(x)).all(dim=1)
    assert same_region.all()
    numeric = (net(moved) - net(x)).reshape(4, -1) / step
    analytic = torch.einsum("boi,bi->bo", a, direction.reshape(4, -1))
    torch.testing.assert_close(numeric, analytic, rtol=1e-6, atol=1e-6)
