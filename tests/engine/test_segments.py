"""The 1-D segment partition against analytic counts and brute-force activation codes along the segments."""

import pytest
import torch
import torch.nn as nn

from splinetool.engine.segments import SEGMENT_END, partition_segments
from splinetool.ir import lower
from tests.zoo import CANCELLING_BOX, build, concurrent_lines_net, mlp, tent_network

F64 = torch.float64


def lowered(model, shape):
    return lower(model, shape).to(dtype=F64)


def codes_at(net, starts, ends, segment, t):
    x = starts[segment] + t[:, None] * (ends[segment] - starts[segment])
    return net.codes(x.reshape(len(t), *net.input_shape))


def assert_exact(net, starts, ends, part, samples_per_piece=7):
    """Each piece holds one activation code, and neighbouring pieces differ (every breakpoint is real)."""
    segment = part.segment_of_point()
    last = torch.ones_like(segment, dtype=torch.bool)
    last[:-1] = segment[1:] != segment[:-1]
    piece = torch.nonzero(~last).flatten()  # piece i runs from point i to point i + 1
    lo, hi = part.t[piece], part.t[piece + 1]
    assert (hi > lo).all()
    inside = torch.linspace(0.02, 0.98, samples_per_piece, dtype=F64)
    t = (lo[:, None] + inside[None, :] * (hi - lo)[:, None]).reshape(-1)
    codes = codes_at(net, starts, ends, segment[piece].repeat_interleave(samples_per_piece), t)
    codes = codes.reshape(len(piece), samples_per_piece, -1)
    assert (codes == codes[:, :1]).all(), "a piece holds two activation codes"
    same_segment = segment[piece[1:]] == segment[piece[:-1]]
    changed = (codes[1:, 0] != codes[:-1, 0]).any(dim=1)
    assert changed[same_segment].all(), "a breakpoint where no code changes"


def test_a_unit_that_cancels_exactly_breaks_no_segment():
    # inside the box the second node is ±1e-16: every segment there is one piece, however batched
    net = lowered(concurrent_lines_net(), (2,))
    xmin, xmax, ymin, ymax = CANCELLING_BOX
    g = torch.Generator().manual_seed(0)
    scale, low = torch.tensor([xmax - xmin, ymax - ymin], dtype=F64), torch.tensor([xmin, ymin], dtype=F64)
    starts, ends = (torch.rand(2, 200, 2, generator=g, dtype=F64) * scale + low).unbind()
    part = partition_segments(net, starts, ends)
    assert part.pieces.tolist() == [1] * 200
    assert partition_segments(net, starts[:1], ends[:1]).pieces.tolist() == [1]


@pytest.mark.parametrize("depth", [1, 2, 5, 10, 16])
def test_tent_map_composition_has_two_to_the_depth_pieces(depth):
    net = lowered(tent_network(depth), (1,))
    part = partition_segments(net, torch.zeros(1, 1), torch.ones(1, 1))
    assert part.pieces.tolist() == [2**depth]
    assert part.pieces_per_node[0].tolist() == [2**k for k in range(1, depth + 1)]
    # the breakpoints of the L-fold tent map are exactly the dyadic points j / 2^L
    expected = torch.arange(2**depth + 1, dtype=F64) / 2**depth
    assert torch.equal(part.t, expected)
    assert torch.allclose(part.outputs[:, 0], net(part.t[:, None])[:, 0], atol=1e-12, rtol=0)


def test_breakpoints_of_lines_on_a_segment_are_where_each_unit_vanishes():
    # units x - c for c in a known set, read along [-1, 1]: one breakpoint per c inside, ends excluded
    cuts = torch.tensor([-0.75, -0.5, 0.1, 0.1, 0.6, 1.0, 2.0])
    model = nn.Sequential(nn.Linear(1, len(cuts)), nn.ReLU(), nn.Linear(len(cuts), 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(-cuts)
    net = lowered(model, (1,))
    part = partition_segments(net, torch.tensor([[-1.0]]), torch.tensor([[1.0]]))
    x = -1 + 2 * part.t
    assert torch.allclose(x, torch.tensor([-1.0, -0.75, -0.5, 0.1, 0.6, 1.0], dtype=F64), atol=1e-12)
    assert part.labels.tolist() == [SEGMENT_END, 0, 0, 0, 0, SEGMENT_END]


def test_softshrink_breaks_a_segment_at_each_centre_plus_and_minus_lambda():
    # softshrink(x - c) has breakpoints at c - lambd and c + lambd: along [-1, 1] the pieces end there
    lambd = 0.25
    centres = torch.tensor([-0.6, 0.1, 0.9])
    model = nn.Sequential(nn.Linear(1, 3), nn.Softshrink(lambd), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(-centres)
    net = lowered(model, (1,))
    part = partition_segments(net, torch.tensor([[-1.0]]), torch.tensor([[1.0]]))
    expected = [-1.0, -0.85, -0.35, -0.15, 0.35, 0.65, 1.0]  # 1.15 lies past the end
    assert torch.allclose(-1 + 2 * part.t, torch.tensor(expected, dtype=F64), atol=1e-12)
    assert part.pieces.tolist() == [6]
    # each piece holds one activation code, and each breakpoint changes it
    assert_exact(net, torch.tensor([[-1.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64), part)


@pytest.mark.parametrize("name", ["mlp", "nested", "convnet", "conv1d", "clamps", "shrinks", "resnet"])
def test_every_piece_is_one_region_and_every_breakpoint_changes_region(name):
    model, shape = build(name, seed=3)
    net = lowered(model, shape)
    g = torch.Generator().manual_seed(0)
    # short segments: some zoo layers (dilated float64 convolutions) are slow on the CPU
    ends = 0.5 * torch.randn(2, 3, net.input_dim, generator=g, dtype=F64)
    starts, ends = ends[0], ends[1]
    part = partition_segments(net, starts, ends)
    assert (part.pieces >= 1).all() and part.pieces.sum() >= 6  # breakpoints to check
    assert_exact(net, starts, ends, part, samples_per_piece=5)
    assert (part.pieces_per_node.diff(dim=1) >= 0).all()
    assert torch.equal(part.pieces_per_node[:, -1], part.pieces)
    x = starts[part.segment_of_point()] + part.t[:, None] * (ends - starts)[part.segment_of_point()]
    expected = net(x.reshape(len(x), *net.input_shape)).reshape(len(x), -1)
    assert torch.allclose(part.outputs, expected, atol=1e-10)


def test_dense_sampling_never_finds_more_regions_than_the_exact_count():
    net = lowered(mlp((3, 24, 24, 24, 2)), (3,))
    g = torch.Generator().manual_seed(1)
    starts, ends = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    part = partition_segments(net, starts, ends)
    t = torch.linspace(0, 1, 20001, dtype=F64)
    for s in range(4):
        codes = codes_at(net, starts, ends, torch.full_like(t, s, dtype=torch.long), t)
        changes = int((codes[1:] != codes[:-1]).any(dim=1).sum())
        assert changes + 1 <= int(part.pieces[s])
        assert changes + 1 >= int(part.pieces[s]) - 2  # only pieces shorter than the grid step are missed


def test_splitting_batches_changes_nothing():
    net = lowered(mlp((4, 16, 16, 16, 3)), (4,))
    g = torch.Generator().manual_seed(2)
    starts, ends = torch.randn(9, 4, generator=g, dtype=F64), torch.randn(9, 4, generator=g, dtype=F64)
    together = partition_segments(net, starts, ends)
    split = partition_segments(net, starts, ends, max_points=8)
    assert torch.equal(together.offsets, split.offsets)
    assert torch.equal(together.labels, split.labels)
    assert torch.equal(together.pieces_per_node, split.pieces_per_node)
    # matrix products may round differently in batches of another size
    assert torch.allclose(together.t, split.t, atol=1e-12, rtol=0)
    assert torch.allclose(together.outputs, split.outputs, atol=1e-12, rtol=0)
    for s in range(9):
        alone = partition_segments(net, starts[s : s + 1], ends[s : s + 1])
        rows = slice(int(together.offsets[s]), int(together.offsets[s + 1]))
        assert torch.equal(alone.pieces_per_node[0], together.pieces_per_node[s])
        assert torch.equal(alone.labels, together.labels[rows])
        assert torch.allclose(alone.t, together.t[rows], atol=1e-12, rtol=0)


def test_degenerate_segments():
    net = lowered(mlp((2, 8, 8, 1)), (2,))
    point = torch.tensor([[0.3, -0.2]], dtype=F64)
    part = partition_segments(net, point, point)
    assert part.pieces.tolist() == [1]
    # a segment inside a unit's zero set is not cut by it: x2 = 0 along the x1 axis
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 1.0]]))
        model[0].bias.zero_()
    part = partition_segments(lowered(model, (2,)), torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert part.pieces.tolist() == [1]
    # a segment ending exactly on a boundary gains no extra point there
    part = partition_segments(lowered(model, (2,)), torch.tensor([[0.0, -1.0]]), torch.tensor([[0.0, 0.0]]))
    assert part.pieces.tolist() == [1]
