"""Exact local counts against line arrangements computed here; the rank correlation against hand ranks."""

import numpy as np
import pytest
import torch

from splinetool.analyses import local_complexity as lc
from splinetool.analyses import local_exact
from splinetool.analyses.local_exact import spearman, tiles_meeting_disc
from splinetool.errors import UsageError
from splinetool.ir import lower
from tests.zoo import mlp


def one_layer(inputs=5, hidden=12, seed=0):
    torch.manual_seed(seed)
    model = mlp((inputs, hidden, 3)).double().eval()
    return model, lower(model, (inputs,)).to(dtype=torch.float64)


def arrangement_regions(w, b, x, plane, radius):
    """Regions of the lines {s : w_j·(x + s·plane) + b_j = 0} inside the disc |s| < radius, for lines in
    general position: 1 + (lines meeting the disc) + (pairwise intersections inside it)."""
    a, c = w @ plane.T, w @ x + b  # line j: a_j·s + c_j = 0
    meeting = np.abs(c) / np.linalg.norm(a, axis=1) < radius
    crossings = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            s = np.linalg.solve(np.stack([a[i], a[j]]), -np.array([c[i], c[j]]))
            crossings += np.linalg.norm(s) < radius
    return 1 + int(meeting.sum()) + crossings


def grid_codes(w, b, x, plane, radius, n=200):
    """Distinct activation codes on a dense polar grid of the disc (a lower bound of the regions)."""
    rho, theta = np.meshgrid(np.linspace(0, radius, n)[1:-1], np.linspace(0, 2 * np.pi, 4 * n))
    s = np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=-1).reshape(-1, 2)
    return len(np.unique((x + s @ plane) @ w.T + b > 0, axis=0))


@pytest.mark.parametrize("at_once", [1, 4, 64])  # planes per sweep: alone, in chunks, all together
def test_exact_counts_are_the_line_arrangement_inside_the_disc(at_once, monkeypatch):
    monkeypatch.setattr(local_exact, "PLANES_AT_ONCE", at_once)
    model, net = one_layer()
    w, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    x = np.random.default_rng(1).normal(size=(6, 5))
    radius = 0.8
    result = lc.run(net, [lc.PointSet("data", x)], lc.LCOptions(directions=3, radius=radius, exact_planes=3))
    planes = lc.exact_planes(range(6), 5, 3, 0)
    expected = np.array(
        [[arrangement_regions(w, b, x[i], planes[i, k], radius) for k in range(3)] for i in range(6)]
    )
    np.testing.assert_array_equal(result.exact[0], expected)
    assert expected.min() >= 1 and expected.max() > 4  # crossings inside some discs: not a trivial case
    # the dense grid of the disc meets no region the engine missed (a lower bound, reached here)
    assert grid_codes(w, b, x[0], planes[0, 0], radius) == expected[0, 0]
    np.testing.assert_allclose(result.exact_mean(0), expected.mean(axis=1))
    stats = result.stats(0)
    assert stats["exact_mean"] == pytest.approx(expected.mean())
    assert stats["exact_spearman"] == pytest.approx(spearman(result.lc(0), expected.mean(axis=1)))
    summary = result.summary()
    assert summary["exact_planes"] == 3 and summary["exact_tiles"] >= expected.sum()
    assert summary["exact_tiles_per_second"] > 0


def test_planes_are_orthonormal_seeded_by_row_and_the_same_for_every_checkpoint():
    planes = lc.exact_planes(range(3, 7), 6, 4, seed=2)
    assert planes.shape == (4, 4, 2, 6)
    np.testing.assert_allclose(
        planes @ np.swapaxes(planes, -1, -2), np.broadcast_to(np.eye(2), (4, 4, 2, 2)), atol=1e-12
    )
    np.testing.assert_array_equal(lc.exact_planes(range(5, 6), 6, 4, seed=2)[0], planes[2])
    assert not np.allclose(lc.exact_planes(range(3, 4), 6, 4, seed=3)[0], planes[0])
    # a trajectory measures every checkpoint on the same planes: each equals that checkpoint alone
    nets = [one_layer(seed=s)[1] for s in range(2)]
    sets = [lc.PointSet("data", np.random.default_rng(1).normal(size=(5, 5)))]
    options = lc.LCOptions(directions=2, radius=0.6, exact_planes=2)
    trajectory = lc.run(iter(nets), sets, options, checkpoints=["a", "b"], steps=[0, 5])
    for c, net in enumerate(nets):
        np.testing.assert_array_equal(trajectory.exact[c], lc.run(net, sets, options).exact[0])
    assert trajectory.exact.shape == (2, 5, 2)


def test_shares_combined_equal_one_run():
    _, net = one_layer()
    sets = [
        lc.PointSet("a", np.random.default_rng(1).normal(size=(7, 5))),
        lc.PointSet("b", np.zeros((3, 5))),
    ]
    options = lc.LCOptions(directions=2, radius=0.7, exact_planes=2, batch_size=3)
    whole = lc.run(net, sets, options)
    parts = [lc.run(net, sets, options, rows=rows) for rows in (range(0, 4), range(4, 9), range(9, 10))]
    combined = lc.combine(parts)
    np.testing.assert_array_equal(combined.exact, whole.exact)
    assert combined.exact_tiles == whole.exact_tiles
    assert combined.stats(0, "a") == whole.stats(0, "a") | {"accuracy": combined.stats(0, "a")["accuracy"]}


def test_without_exact_planes_nothing_changes():
    _, net = one_layer()
    result = lc.run(net, [lc.PointSet("data", np.ones((3, 5)))], lc.LCOptions(directions=2, radius=0.5))
    assert result.exact is None
    assert not any(key.startswith("exact") for key in result.summary())
    with pytest.raises(UsageError, match="no exact local counts"):
        result.exact_mean(0)


@pytest.mark.parametrize("planes", [0, -2])
def test_no_planes_is_a_usage_error(planes):
    with pytest.raises(UsageError, match=f"`exact_planes` {planes}: expected a positive number"):
        lc.LCOptions(exact_planes=planes)


def test_a_one_dimensional_input_has_no_planes():
    torch.manual_seed(0)
    net = lower(mlp((1, 4, 1)).double().eval(), (1,)).to(dtype=torch.float64)
    with pytest.raises(UsageError, match="`exact_planes` needs planes"):
        lc.run(net, [lc.PointSet("data", np.ones((2, 1)))], lc.LCOptions(radius=0.5, exact_planes=1))


def test_a_tile_meets_the_disc_when_it_holds_the_centre_or_comes_within_the_radius():
    coords = torch.tensor(
        [[-1, -1], [1, -1], [1, 1], [-1, 1], [2, 2], [3, 2], [3, 3], [0.5, 2], [3, 0], [3, 1]],
        dtype=torch.float64,
    )
    verts = torch.tensor([[0, 1, 2, 3], [4, 5, 6, -1], [1, 8, 9, 2], [2, 4, 7, -1]])
    # the unit square holds the centre; the far triangle is 2.83 away; the right square is 1 away;
    # the last triangle's edge from (1, 1) to (0.5, 2) passes at distance 1.41 of the centre
    np.testing.assert_array_equal(tiles_meeting_disc(coords, verts, 1.0).numpy(), [True, False, True, False])
    np.testing.assert_array_equal(tiles_meeting_disc(coords, verts, 1.5).numpy(), [True, False, True, True])


def test_spearman_averages_ties():
    a, b = np.array([1.0, 2.0, 2.0, 3.0, 7.0]), np.array([10.0, 30.0, 20.0, 40.0, 40.0])
    ra, rb = np.array([1, 2.5, 2.5, 4, 5]), np.array([1, 3, 2, 4.5, 4.5])  # ranks by hand
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert spearman(a, a**3) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones(5))) and np.isnan(spearman(a[:1], b[:1]))
