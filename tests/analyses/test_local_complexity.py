"""Local complexity against independent counts: hyperplanes from W and b, hand-written forward passes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from splinetool.analyses import local_complexity as lc
from splinetool.analyses import local_complexity_gate as gating
from splinetool.engine.memory import auto_chunk
from splinetool.errors import UsageError
from splinetool.ir import lower
from tests.zoo import build, mlp


def net_of(model, shape):
    return lower(model.eval(), shape).to(dtype=torch.float64)


def one_layer(inputs=5, hidden=12, outputs=3, seed=0):
    torch.manual_seed(seed)
    return mlp((inputs, hidden, outputs)).double()


def vertices(x: np.ndarray, frame: np.ndarray, radius: float) -> np.ndarray:
    """[N, 2P, D]: x ± r u_p, built here rather than by the library."""
    return np.concatenate([x[:, None] + radius * frame, x[:, None] - radius * frame], axis=1)


def crossed(z: np.ndarray) -> np.ndarray:
    """[N]: units of z [N, V, units] positive at one vertex and negative at another."""
    return ((z > 0).any(axis=1) & (z < 0).any(axis=1)).sum(axis=1)


def gaussian_points(n, d, seed=1):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_one_hidden_layer_counts_the_hyperplanes_that_separate_the_vertices():
    model = one_layer()
    w, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    x = gaussian_points(40, 5)
    result = lc.run(net_of(model, (5,)), [lc.PointSet("data", x)], lc.LCOptions(directions=4, radius=0.7))
    v = vertices(x, result.frame_vectors, 0.7)
    side = v @ w.T + b > 0  # [N, 2P, hidden]: which side of each hyperplane w·x + b = 0
    separating = (side.any(axis=1) & ~side.all(axis=1)).sum(axis=1)
    np.testing.assert_array_equal(result.per_point[0, :, 0], separating)
    assert 0 < separating.mean() < 12  # neither trivial nor saturated
    # for a hyperplane, crossing the vertices is crossing the cross-polytope: |w·x + b| < r max_p |w·u_p|
    reach = 0.7 * np.abs(w @ result.frame_vectors.T).max(axis=1)
    np.testing.assert_array_equal(separating, (np.abs(x @ w.T + b) < reach).sum(axis=1))


def test_output_units_are_counted_on_request():
    model = one_layer()
    x = gaussian_points(30, 5)
    net = net_of(model, (5,))
    result = lc.run(
        net, [lc.PointSet("data", x)], lc.LCOptions(directions=5, radius=1.5, include_output=True)
    )
    assert result.node_names[1] == "output" and result.node_units == [12, 3]
    v = torch.as_tensor(vertices(x, result.frame_vectors, 1.5))
    with torch.no_grad():
        logits = model(v.reshape(-1, 5)).reshape(30, 10, 3).numpy()
    np.testing.assert_array_equal(result.per_point[0, :, 1], crossed(logits))
    assert result.per_point[0, :, 1].sum() > 0


def test_lc_is_zero_far_from_every_boundary_and_grows_with_the_radius():
    model = one_layer()
    w, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    x = gaussian_points(50, 5)
    distance = (np.abs(x @ w.T + b) / np.linalg.norm(w, axis=1)).min(axis=1)  # to the nearest hyperplane
    net = net_of(model, (5,))
    far = lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=5, radius=0.99 * distance.min()))
    assert far.per_point.sum() == 0
    counts = [
        lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=5, radius=r)).lc(0)
        for r in (0.05, 0.2, 0.5, 1, 3)
    ]
    # on a fixed frame each segment [x - r u, x + r u] contains the shorter ones: a hyperplane crossing
    # a small neighbourhood also crosses every larger one
    for small, large in zip(counts, counts[1:]):
        assert (large >= small).all() and large.sum() > small.sum()


def test_reproducible_with_a_seed_and_independent_of_chunking():
    net = net_of(build("resnet")[0], (1, 6, 6))
    x = gaussian_points(23, 36)
    for frame in lc.FRAMES:
        runs = [
            lc.run(
                net,
                [lc.PointSet("data", x)],
                lc.LCOptions(directions=6, radius=0.4, frame=frame, seed=3, batch_size=size),
            )
            for size in (1, 7, None)
        ]
        for other in runs[1:]:
            np.testing.assert_array_equal(other.per_point, runs[0].per_point)
        assert runs[0].per_point.sum() > 0
    shared = lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=6, radius=0.4, seed=3))
    moved = lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=6, radius=0.4, seed=4))
    assert not np.allclose(shared.frame_vectors, moved.frame_vectors)


def test_frames_are_orthonormal_and_per_point_frames_differ():
    frame = lc.shared_frame(10, 4, seed=2)
    np.testing.assert_allclose(frame @ frame.T, np.eye(4), atol=1e-12)
    frames = lc.point_frames(range(5, 8), 10, 4, seed=2)
    np.testing.assert_allclose(
        frames @ frames.transpose(0, 2, 1), np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-12
    )
    assert not np.allclose(frames[0], frames[1])
    np.testing.assert_array_equal(lc.point_frames([6], 10, 4, seed=2)[0], frames[1])  # a row's own frame


def brute_force(net, x, frame, radius, forward):
    """Per-node counts from the model's own layers, evaluated at explicitly built vertices."""
    v = torch.as_tensor(vertices(x, frame, radius))
    n, per_point = len(x), v.shape[1]
    with torch.no_grad():
        pres = forward(v.reshape(n * per_point, *net.input_shape))
    return np.stack([crossed(p.reshape(n, per_point, -1).numpy()) for p in pres], axis=1)


def resnet_preactivations(m, v):
    s = m.stem(v)
    h = F.relu(s)
    inner = m.b1(m.c1(h))
    return [s, inner, h + m.b2(m.c2(F.relu(inner)))]


def convnet_preactivations(m, v):
    a = m.bn1(m.conv1(v))
    c = m.conv2(F.leaky_relu(a, 0.1))
    # the pool's 2x2 windows (stride 2, padding 1, ceil mode: 3x3 windows over the 4x4 map, padded
    # with -inf on every side), one row of 4 candidates per window
    padded = F.pad(F.relu(c), (1, 1, 1, 1), value=-math.inf)
    windows = padded.unfold(2, 2, 2).unfold(3, 2, 2).reshape(len(v), -1, 4)
    return [a, c, windows]


def clamps_preactivations(m, v):
    a = m.a(v)
    b = 3.0 * m.b(F.hardtanh(a, -0.5, 0.75)) - 0.2
    c = m.c(F.relu6(b)) / 2.0
    # two breakpoints per unit, each counted: the sign of the distance to each threshold
    return [torch.cat([a + 0.5, a - 0.75], 1), torch.cat([b, b - 6], 1), torch.cat([c + 0.3, c - 0.4], 1)]


@pytest.mark.parametrize(
    "name,forward,radius",
    [
        ("resnet", resnet_preactivations, 0.3),
        ("convnet", convnet_preactivations, 0.3),
        ("clamps", clamps_preactivations, 0.2),
    ],
)
def test_conv_residual_and_two_breakpoint_nodes_match_a_brute_force_count(name, forward, radius):
    model, shape = build(name)
    model = model.double()
    net = net_of(model, shape)
    x = gaussian_points(12, int(np.prod(shape)))
    directions = min(5, x.shape[1])
    result = lc.run(
        net, [lc.PointSet("data", x)], lc.LCOptions(directions=directions, radius=radius, batch_size=5)
    )
    if name == "convnet":
        # the max-pool index is constant over the vertices iff it is the same as at the first vertex
        with torch.no_grad():
            pres = forward(
                model, torch.as_tensor(vertices(x, result.frame_vectors, radius)).reshape(-1, *shape)
            )
        expected = [crossed(p.reshape(12, 10, -1).numpy()) for p in pres[:2]]
        # a window is crossed when no candidate is the maximum at every vertex (ReLUs that are off
        # tie at exactly 0: ties are no change)
        windows = pres[2].reshape(12, 10, -1, 4).numpy()
        on_top = windows == windows.max(axis=-1, keepdims=True)
        expected.append((~on_top.all(axis=1).any(axis=-1)).sum(axis=1))
        expected = np.stack(expected, axis=1)
    else:
        expected = brute_force(net, x, result.frame_vectors, radius, lambda v: forward(model, v))
    np.testing.assert_array_equal(result.per_point[0], expected)
    assert (expected.sum(axis=0) > 0).all()
    assert result.node_units == [n.neurons if n.kind == "maxpool" else n.code_bits for n in net.pl_nodes]


def test_default_radius_and_directions():
    x = gaussian_points(30, 3) * [1.0, 2.0, 3.0]
    net = net_of(one_layer(inputs=3), (3,))
    result = lc.run(net, [lc.PointSet("data", x)])
    scale = np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())
    assert result.radius == pytest.approx(0.05 * scale, rel=1e-12)
    assert result.directions == 3  # 25 capped at the input dimension
    assert "RMS distance" in result.radius_rule


def test_random_points_are_seeded_and_inside_the_data_box():
    sets = [lc.PointSet("train", gaussian_points(40, 4)), lc.PointSet("test", gaussian_points(10, 4, seed=2))]
    r1, r2 = lc.random_points(sets, 100, seed=5), lc.random_points(sets, 100, seed=5)
    np.testing.assert_array_equal(r1.x, r2.x)
    box = np.concatenate([s.x for s in sets])
    assert (r1.x >= box.min(axis=0)).all() and (r1.x <= box.max(axis=0)).all()
    net = net_of(one_layer(inputs=4), (4,))
    result = lc.run(net, [*sets, r1], lc.LCOptions(directions=2))
    # the random points do not change the radius, which comes from the data
    assert result.radius == pytest.approx(0.05 * lc.data_scale(sets))
    assert result.set_names == ["train", "test", "random"] and list(result.set_offsets) == [0, 40, 50, 150]


def test_a_trajectory_is_each_checkpoint_measured_alone():
    nets = [net_of(one_layer(seed=s), (5,)) for s in range(3)]
    x = gaussian_points(20, 5)
    y = np.arange(20) % 3
    sets = [lc.PointSet("data", x, y)]
    trajectory = lc.run(
        iter(nets), sets, lc.LCOptions(directions=3, radius=0.5), checkpoints=["a", "b", "c"], steps=[0, 5, 9]
    )
    for c, net in enumerate(nets):
        alone = lc.run(net, sets, lc.LCOptions(directions=3, radius=0.5))
        np.testing.assert_array_equal(trajectory.per_point[c], alone.per_point[0])
        with torch.no_grad():
            predicted = net(torch.as_tensor(x)).argmax(dim=1).numpy()
        assert trajectory.accuracy[c, 0] == pytest.approx((predicted == y).mean())
    summary = trajectory.summary()
    assert [e["step"] for e in summary["checkpoints"]] == [0, 5, 9]
    for other in (net_of(one_layer(hidden=13), (5,)), net_of(mlp((5, 12, 4, 3)), (5,))):
        with pytest.raises(UsageError, match="a trajectory must keep one architecture"):
            lc.run([nets[0], other], sets, lc.LCOptions(directions=2, radius=0.5))


def test_statistics_of_a_set():
    net = net_of(one_layer(), (5,))
    x = gaussian_points(37, 5)
    result = lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=4, radius=0.7))
    totals = result.per_point[0].sum(axis=1)
    stats = result.stats(0, "data")
    assert stats["lc_mean"] == pytest.approx(totals.mean())
    assert stats["lc_median"] == pytest.approx(np.median(totals))
    ranked, at = np.sort(totals), 0.95 * (len(totals) - 1)  # linear interpolation between order statistics
    low = int(at)
    assert stats["lc_p95"] == pytest.approx(ranked[low] + (at - low) * (ranked[low + 1] - ranked[low]))
    assert stats["per_node_mean"] == {"1": pytest.approx(totals.mean())}
    assert stats["accuracy"] is None


@pytest.mark.parametrize(
    "options,message",
    [
        ({"directions": 6}, "`directions` 6"),
        ({"directions": 0}, "`directions` 0"),
        ({"radius": -1.0}, "`radius`"),
        ({"relative_radius": 0.0}, "`relative_radius`"),
        ({"frame": "fresh"}, "`frame`"),
        ({"batch_size": 0}, "`batch_size`"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    net = net_of(one_layer(), (5,))
    with pytest.raises(UsageError, match=message):
        lc.run(net, [lc.PointSet("data", gaussian_points(5, 5))], lc.LCOptions(**options))


def test_points_of_the_wrong_size_are_a_usage_error():
    net = net_of(one_layer(), (5,))
    with pytest.raises(UsageError, match="points have 4 values each but the model takes 5-D inputs"):
        lc.run(net, [lc.PointSet("data", gaussian_points(5, 4), source="pts.npy")])
    with pytest.raises(UsageError, match="give no scale"):
        lc.run(net, [lc.PointSet("data", np.ones((5, 5)))])


def test_gate_checks_and_baseline(tmp_path):
    net = net_of(one_layer(), (5,))
    result = lc.run(
        net, [lc.PointSet("data", gaussian_points(40, 5))], lc.LCOptions(directions=4, radius=0.7)
    )
    stats = result.stats(0)
    gate_file = tmp_path / "gate.toml"
    gate_file.write_text(
        f'mean = {stats["lc_mean"] + 0.01}\np95 = {stats["lc_p95"] - 1}\n[per_node]\n"1" = 100\n'
    )
    gate = gating.load_gate(gate_file)
    checks = gating.evaluate(result, gate.limits)
    assert [c.passed for c in checks] == [True, False, True]
    assert "lc_p95" in checks[1].message() and "gate.toml" in checks[1].message()

    payload = result.summary()
    payload["sets"]["data"]["lc_mean"] = stats["lc_mean"] / 1.2  # the baseline run was 20 % lower
    limits = gating.baseline_limits(payload, "base.json", result, gating.Gate(), max_increase=0.25)
    assert [c.passed for c in gating.evaluate(result, limits)] == [True]
    limits = gating.baseline_limits(payload, "base.json", result, gating.Gate(), max_increase=0.1)
    assert [c.passed for c in gating.evaluate(result, limits)] == [False]
    with pytest.raises(UsageError, match="other neighbourhoods"):
        gating.baseline_limits(payload | {"radius": 0.5}, "base.json", result, gating.Gate())
    with pytest.raises(UsageError, match="does not have|nodes"):
        gating.evaluate(result, [gating.Limit("per_node_mean", "conv9", 1.0, "x")])


@pytest.mark.parametrize(
    "text,message",
    [
        ("mean = -1\n", "expected a number >= 0"),
        ("average = 3\n", "unknown key"),
        ("[baseline]\nstatistics = ['max']\n", "baseline.statistics"),
        ("mean = \n", "cannot read it as a TOML"),
    ],
)
def test_bad_gate_files_are_usage_errors(tmp_path, text, message):
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        gating.load_gate(path)


def test_the_memory_estimate_counts_a_convolution_whichever_format_it_came_from(tmp_path):
    # modules and .pt2 files lower a convolution to conv2d, TorchScript to convolution: the column
    # buffer it unfolds its input into is the same, so the points per chunk must be too
    model, shape = build("convnet")
    scripted, exported = tmp_path / "m.ts", tmp_path / "m.pt2"
    torch.jit.save(torch.jit.script(model), str(scripted))
    torch.export.save(torch.export.export(model, (torch.randn(3, *shape),)), str(exported))
    sources = [model, torch.jit.load(str(scripted)), torch.export.load(str(exported))]
    nets = [lower(source, shape).to(dtype=torch.float64) for source in sources]
    # no CPU batch cap, so that nothing hides the estimate
    chunks = {auto_chunk(net, rows_per_point=4, cpu_rows=2**40, budget=2**24) for net in nets}
    assert len(chunks) == 1
