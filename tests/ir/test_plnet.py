"""Codes and pre-activations against quantities computed by hand."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from splinetool.ir import lower
from splinetool.ir.codes import bit_range, pack_bits, region_ids, unpack_bits
from splinetool.ir.pl import ArgmaxKind
from splinetool.ir.plnet import same_graph
from tests.zoo import CANCELLING_BOX, ZOO, build, concurrent_lines_net, mlp


def test_codes_are_the_signs_of_the_hidden_units():
    torch.manual_seed(1)
    model = mlp((2, 7, 5, 3)).double()
    net = lower(model, (2,)).to(dtype=torch.float64)
    x = torch.randn(50, 2, dtype=torch.float64)
    h1 = model[0](x)
    h2 = model[2](torch.relu(h1))
    expected = torch.cat([h1 > 0, h2 > 0], dim=1)
    assert torch.equal(net.code_bits(x), expected)
    assert torch.equal(unpack_bits(net.codes(x), 12), expected)
    for got, want in zip(net.preactivations(x), [h1, h2]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


def test_a_unit_that_cancels_exactly_reads_zero_at_every_point_whatever_its_batch():
    net = lower(concurrent_lines_net(), (2,)).to(dtype=torch.float64)
    xmin, xmax, ymin, ymax = CANCELLING_BOX
    g = torch.Generator().manual_seed(0)
    inside = torch.rand(500, 2, generator=g, dtype=torch.float64) * torch.tensor([xmax - xmin, ymax - ymin])
    inside += torch.tensor([xmin, ymin])
    pre = net.preactivations(inside)[1]
    assert (pre != 0).any() and pre.abs().max() < 1e-14  # ±1e-16 where reals say 0
    bits = net.code_bits(inside)
    assert torch.equal(bits, torch.tensor([[True, True, True, False]]).expand(500, 4))
    # a point's code is its own: alone, among these points or among points where the unit is large
    elsewhere = torch.rand(500, 2, generator=g, dtype=torch.float64) * 2 - 1
    assert torch.equal(net.code_bits(torch.cat([inside, elsewhere]))[:500], bits)
    assert all(torch.equal(net.code_bits(inside[i : i + 1]), bits[i : i + 1]) for i in range(0, 500, 50))


def test_max_pool_ties_within_the_tolerance_pick_the_first_candidate():
    net = lower(nn.MaxPool1d(2), (1, 4)).to(dtype=torch.float64)
    x = torch.tensor([[[1e-17, 0.0, 0.5, 1.0]], [[0.0, 1e-17, 1.0, 0.5]]], dtype=torch.float64)
    # windows (1e-17, 0) and (0, 1e-17) tie at zero next to a 1: the first wins; (0.5, 1) does not tie
    assert net.code_bits(x).tolist() == [[False, True], [False, False]]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_code_names_a_side_each_point_is_on(name):
    # the code's side of every unit (max-pool: its candidate) is among the point's weak sides
    model, shape = build(name)
    net = lower(model, shape).to(dtype=torch.float64)
    x = torch.randn(20, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bits, start = net.code_bits(x), 0
    for node, sides in zip(net.pl_nodes, net.weak_sides(x)):
        if node.code_bits:
            side = node.pl.sides(bits[:, start : start + node.code_bits])
            assert side.shape == sides.shape[:2]
            assert sides.gather(-1, side[..., None]).all()
        start += node.code_bits


def test_hardtanh_code_has_one_bit_per_breakpoint():
    model = nn.Sequential(nn.Linear(1, 1), nn.Hardtanh(-1.0, 2.0))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    net = lower(model, (1,)).to(dtype=torch.float64)
    x = torch.tensor([[-3.0], [0.5], [4.0]], dtype=torch.float64)
    assert net.code_bits(x).tolist() == [[False, False], [True, False], [True, True]]


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,ceil_mode",
    [
        (2, 2, 0, 1, False),
        (3, 2, 1, 1, True),
        (2, 1, 0, 2, False),
        (3, 3, 1, 1, True),
        ((2, 3), (1, 2), (1, 0), 1, False),
    ],
)
def test_max_pool_candidates_reproduce_the_pool(kernel, stride, padding, dilation, ceil_mode):
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    net = lower(pool, (2, 7, 8)).to(dtype=torch.float64)
    (node,) = net.pl_nodes
    assert isinstance(node.pl, ArgmaxKind)
    x = torch.randn(3, 2, 7, 8, dtype=torch.float64)
    candidates = node.pl.candidates(x)
    expected = pool(x)
    assert candidates.shape[:2] == (3, expected[0].numel())
    torch.testing.assert_close(candidates.max(dim=-1).values, expected.reshape(3, -1), rtol=0, atol=0)
    _, indices = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    winners = candidates.argmax(dim=-1)
    picked = candidates.gather(-1, winners[..., None])[..., 0]
    flat = x.reshape(3, 2, -1).gather(-1, indices.reshape(3, 2, -1)).reshape(3, -1)
    torch.testing.assert_close(picked, flat, rtol=0, atol=0)
    assert node.code_bits == expected[0].numel() * math.ceil(math.log2(candidates.shape[-1]))


def test_walk_yields_each_node_then_the_output_and_stops_where_asked():
    model, shape = build("resnet")
    net = lower(model, shape).to(dtype=torch.float64)
    x = torch.randn(5, *shape, dtype=torch.float64)
    walked = list(net.walk(x, output=True))
    assert [index for index, _ in walked] == list(range(len(net.pl_nodes) + 1))
    for (_, got), want in zip(walked, net.preactivations(x)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(walked[-1][1], net(x), rtol=0, atol=0)
    assert [pre.shape[1:] for _, pre in walked[:-1]] == [node.in_shape for node in net.pl_nodes]
    ran = []
    for index, _ in net.walk(x):
        ran.append(index)
        if index == 1:
            break
    assert ran == [0, 1]


def test_region_ids_group_equal_codes():
    bits = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=torch.bool)
    packed = pack_bits(bits)
    assert packed.tolist() == [[160], [0], [160]]
    unique, inverse = region_ids(packed)
    assert len(unique) == 2 and inverse[0] == inverse[2] != inverse[1]


def test_bit_range_keeps_exactly_the_asked_bits():
    g = torch.Generator().manual_seed(0)
    bits = torch.rand(50, 45, generator=g) > 0.5
    packed = pack_bits(bits)
    for start, stop in [(0, 45), (3, 4), (7, 9), (8, 16), (13, 45), (0, 1), (44, 45)]:
        part = unpack_bits(bit_range(packed, start, stop), 8 * (-(-stop // 8) - start // 8))
        offset = 8 * (start // 8)
        expected = torch.zeros_like(part)
        expected[:, start - offset : stop - offset] = bits[:, start:stop]
        assert torch.equal(part, expected), (start, stop)


@pytest.mark.parametrize("name", ["mlp", "convnet", "resnet", "clamps"])
def test_checkpoints_of_one_architecture_share_a_graph(name):
    first, second = (lower(*build(name, seed)) for seed in (0, 1))
    assert same_graph(first, second)
    assert not same_graph(first, second.to(dtype=torch.float64))
    # a device named with and without its index is one device (as "cuda" and "cuda:0" are)
    assert first.to("cpu:0").device == second.device
    assert same_graph(first.to("cpu:0"), second)


def test_other_widths_activations_or_input_shapes_are_other_graphs():
    def net(hidden=4, act=nn.ReLU, inputs=2):
        return lower(nn.Sequential(nn.Linear(inputs, hidden), act(), nn.Linear(hidden, 1)), (inputs,))

    assert same_graph(net(), net())
    assert not same_graph(net(), net(hidden=5))
    assert not same_graph(net(), net(act=nn.LeakyReLU))
    assert not same_graph(net(), net(inputs=3))
    assert not same_graph(net(act=lambda: nn.Hardtanh(-1, 1)), net(act=lambda: nn.Hardtanh(-2, 2)))
