"""Blocks of a network and the singular values of each block's Jacobian: `D W`, and `I + D W` in bounds."""

import torch

from splinetool.engine.blocks import block_singular_values, find_blocks
from splinetool.frontends.families import build
from splinetool.ir import lower


def _net(model, input_shape):
    torch.manual_seed(0)
    return lower(model.double().eval(), input_shape).to(dtype=torch.float64)


def test_residual_blocks_stay_within_one_plus_minus_the_weight_norm():
    torch.manual_seed(5)
    model = build("mlp", {"input_shape": [6], "outputs": 3, "widths": [6, 6, 6], "residual": True}).double()
    with torch.no_grad():
        for layer in model.hidden:
            layer.linear.weight.mul_(0.8)
    net = _net(model, (6,))
    blocks = find_blocks(net)
    assert [b.residual for b in blocks] == [True, True, True, False]
    x = torch.randn(200, 6, dtype=torch.float64)
    values = block_singular_values(net, blocks, x)
    for dense, sv in zip(model.hidden, values):
        norm = float(torch.linalg.matrix_norm(dense.linear.weight.detach(), ord=2))
        assert sv.max() <= 1 + norm + 1e-12
        assert sv.min() >= 1 - norm - 1e-12
        assert sv.min() < 1 < sv.max()  # the bound is not met trivially


def test_plain_block_singular_values_are_those_of_d_w():
    torch.manual_seed(6)
    model = build("mlp", {"input_shape": [5], "outputs": 2, "widths": [7, 4]}).double()
    net = _net(model, (5,))
    blocks = find_blocks(net)
    assert [b.name for b in blocks] == ["hidden.0", "hidden.1", "output"]
    assert [(b.in_dim, b.out_dim) for b in blocks] == [(5, 7), (7, 4), (4, 2)]
    x = torch.randn(50, 5, dtype=torch.float64)
    first = block_singular_values(net, blocks, x)[0]
    with torch.no_grad():
        layer = model.hidden[0].linear
        slopes = (layer(x) > 0).double()
    expected = torch.linalg.svdvals(slopes[:, :, None] * layer.weight)
    torch.testing.assert_close(first, expected, rtol=1e-12, atol=1e-12)
    # D W (7 × 5) loses rank exactly where fewer than 5 units are on: its smallest value is zero there
    torch.testing.assert_close(first[:, -1] == 0, slopes.sum(dim=1) < 5)


def test_small_chunks_give_the_same_values():
    torch.manual_seed(7)
    model = build("mlp", {"input_shape": [4], "outputs": 3, "widths": [6, 5]}).double()
    net = _net(model, (4,))
    blocks = find_blocks(net)
    x = torch.randn(30, 4, dtype=torch.float64)
    whole = block_singular_values(net, blocks, x)
    seen = []
    chunked = block_singular_values(
        net, blocks, x, memory=3 * 6 * 5 * 8 * 7, progress=lambda d, t: seen.append((d, t))
    )
    assert len(seen) > 1 and seen[-1] == (30, 30)  # a few points at a time
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
