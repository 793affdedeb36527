"""debias-sample against analytic volumes, dense autograd Jacobians and exact sampling probabilities."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from splinetool.analyses import debias_sample as ds
from splinetool.errors import UsageError
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from tests.conftest import SAMPLES
from tests.zoo import IdentityAndRelu, mlp, two_segments


def net_of(module: nn.Module, input_dim: int):
    return lower(module.double().eval(), (input_dim,)).to(dtype=torch.float64)


def dense_log_volume(module: nn.Module, z: np.ndarray) -> np.ndarray:
    """½ log det(JᵀJ), J from torch.autograd.functional.jacobian one latent at a time."""
    out = []
    for row in torch.as_tensor(z):
        jac = torch.autograd.functional.jacobian(lambda v: module(v[None])[0], row)
        out.append(0.5 * torch.logdet(jac.T @ jac).item())
    return np.asarray(out)


def test_identity_and_relu_volumes_and_selected_share():
    net = net_of(IdentityAndRelu(), 1)
    pool, n = 20_000, 4000
    result = ds.run(net, ds.DebiasOptions(n, pool, (1.0, 0.0), "uniform", replace=True, seed=1))
    z = result.pool_latents[:, 0]
    assert z.min() >= -1 and z.max() <= 1
    expected = np.where(z > 0, 0.5 * math.log(2.0), 0.0)  # log 1 and log √2
    np.testing.assert_allclose(result.log_volume, expected, atol=1e-14)
    assert len(result.tile_codes) == 2
    share = math.sqrt(2) / (1 + math.sqrt(2))
    # binomial error of the n draws, plus that of the pool's own split around 1/2
    error = 4 * math.sqrt(share * (1 - share) / n) + 4 * math.sqrt(0.25 / pool)
    magnet, plain = (np.mean(result.latents[r, :, 0] > 0) for r in range(2))
    assert abs(magnet - share) < error
    assert abs(plain - 0.5) < error and abs(plain - share) > error  # the check can tell them apart


def test_selected_share_without_replacement():
    net = net_of(IdentityAndRelu(), 1)
    n = 2000
    result = ds.run(net, ds.DebiasOptions(n, 100_000, prior="uniform", seed=2))
    share = math.sqrt(2) / (1 + math.sqrt(2))
    assert len(set(result.selected_index[0].tolist())) == n
    assert abs(np.mean(result.latents[0, :, 0] > 0) - share) < 4 * math.sqrt(share * (1 - share) / n) + 0.01


def test_affine_generator_gives_equal_weights_and_full_ess():
    torch.manual_seed(0)
    layer = nn.Linear(3, 5).double()
    result = ds.run(net_of(layer, 3), ds.DebiasOptions(10, 500, (1.0, -2.0)))
    np.testing.assert_allclose(result.weights, 1 / 500, rtol=1e-12)
    np.testing.assert_allclose(result.ess, 500, rtol=1e-9)
    w = layer.weight.detach()
    np.testing.assert_allclose(result.log_volume, 0.5 * torch.logdet(w.T @ w).item(), rtol=1e-12)
    assert len(result.tile_codes) == 1 and result.warnings == []


@pytest.mark.parametrize("name", ["random-mlp", "gmm-wgan", "digits-decoder"])
def test_log_volume_is_half_log_det_of_the_dense_jacobian(name):
    if name == "random-mlp":
        torch.manual_seed(3)
        module = mlp((3, 16, 16, 6)).double().eval()
    else:
        loaded = load_model(SAMPLES / f"{name}.ts.pt")
        module = loaded.module.double().eval()
    net = lower(module, (3,)) if name == "random-mlp" else lower(loaded)
    net = net.to(dtype=torch.float64)
    z = ds.draw_pool("normal", 20, net.input_dim, seed=5)
    measured = ds.measure(net, z, chunk_size=16)
    np.testing.assert_allclose(measured.log_volume, dense_log_volume(module, z), rtol=1e-9, atol=1e-9)
    assert measured.singular_values.shape == (20, net.input_dim)


def test_reverse_mode_top_k_and_projection_against_dense_jacobians():
    torch.manual_seed(4)
    module = mlp((5, 12, 3)).double().eval()  # d = 5 > D = 3: reverse mode, rank at most 3
    net = net_of(module, 5)
    z = ds.draw_pool("normal", 20, 5, seed=1)
    jac = np.stack(
        [
            torch.autograd.functional.jacobian(lambda v: module(v[None])[0], r).numpy()
            for r in torch.as_tensor(z)
        ]
    )
    top2 = ds.measure(net, z, top_k=2)
    sigma = np.linalg.svd(jac, compute_uv=False)
    np.testing.assert_allclose(top2.singular_values, sigma[:, :2], rtol=1e-10)
    np.testing.assert_allclose(top2.log_volume, np.log(sigma[:, :2]).sum(axis=1), rtol=1e-10)
    full = ds.measure(net, z, top_k=3)  # the 3 non-zero singular values: ½ log det(J Jᵀ)
    np.testing.assert_allclose(
        full.log_volume, 0.5 * np.linalg.slogdet(jac @ jac.transpose(0, 2, 1))[1], rtol=1e-9
    )
    with pytest.raises(UsageError, match="`top_k` 3 or less"):
        ds.run(net, ds.DebiasOptions(n=2, pool=10))

    wide = mlp((2, 16, 7)).double().eval()
    p = ds.projection_matrix(7, 4, seed=9)
    np.testing.assert_allclose(p @ p.T, np.eye(4), atol=1e-14)
    z = ds.draw_pool("normal", 20, 2, seed=2)
    projected = ds.measure(net_of(wide, 2), z, projection=p)
    dense = np.stack(
        [
            p @ torch.autograd.functional.jacobian(lambda v: wide(v[None])[0], r).numpy()
            for r in torch.as_tensor(z)
        ]
    )
    np.testing.assert_allclose(
        projected.log_volume, 0.5 * np.linalg.slogdet(dense.transpose(0, 2, 1) @ dense)[1], rtol=1e-9
    )


def test_magnet_samples_are_uniform_along_two_unequal_segments():
    slope = 3.0
    net = net_of(two_segments(slope), 1)
    n = 3000
    result = ds.run(net, ds.DebiasOptions(n, 50_000, (1.0, 0.0), "uniform", replace=True, seed=3))
    stretch = math.sqrt(slope**2 + 1)
    length = 1 + stretch
    for r, uniform in ((0, True), (1, False)):
        x = result.samples[r]
        # arc length from the far end of the short segment: (-1, 0) -> (0, 0) -> (slope, 1)
        s = np.where(x[:, 1] > 0, 1 + np.hypot(x[:, 0], x[:, 1]), 1 + x[:, 0])
        ks = np.abs(np.sort(s) / length - np.arange(1, n + 1) / n).max()
        assert (ks < 1.63 / math.sqrt(n)) == uniform  # Kolmogorov-Smirnov, 1% level
    assert np.mean(result.latents[0, :, 0] > 0) == pytest.approx(stretch / length, abs=4 * math.sqrt(0.2 / n))


def test_collapsed_tiles_get_no_weight_and_are_left_out_for_negative_rho():
    net = net_of(nn.Sequential(nn.ReLU()), 1)  # G(z) = relu(z): A = 0 for z < 0
    result = ds.run(net, ds.DebiasOptions(50, 400, (1.0, -1.0, 0.0), "uniform", seed=4))
    z = result.pool_latents[:, 0]
    assert result.collapsed == (z < 0).sum() and np.isneginf(result.log_volume[z < 0]).all()
    for r in (0, 1):
        assert (result.weights[r][z < 0] == 0).all() and (result.latents[r, :, 0] > 0).all()
    assert (result.latents[2, :, 0] < 0).any()  # ρ = 0 draws from the whole pool
    assert any("collapsed" in w and "ρ = -1" in w for w in result.warnings)
    with pytest.raises(UsageError, match="non-zero weight"):
        ds.run(net, ds.DebiasOptions(300, 400, prior="uniform", seed=4))


def test_gumbel_top_k_draws_without_replacement_in_proportion_to_the_weights():
    log_volume = np.log(np.array([0.5, 0.3, 0.2]))
    w = np.exp(log_volume)
    trials = 4000
    pairs = np.zeros((3, 3))
    for seed in range(trials):
        first, second = ds.select(log_volume, [1.0], 2, seed=seed).index[0]
        pairs[first, second] += 1
    # sequential sampling: P(i then j) = w_i · w_j / (1 - w_i)
    expected = np.array([[0 if i == j else w[i] * w[j] / (1 - w[i]) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(pairs / trials, expected, atol=4 * math.sqrt(0.25 / trials))


def test_weights_and_ess_in_log_space():
    log_volume = np.array([1000.0, 1000.0 + math.log(3), -math.inf, 999.0])
    selection = ds.select(log_volume, [1.0, 0.0], 2, seed=0)
    w = np.array([1.0, 3.0, 0.0, math.exp(-1)])
    np.testing.assert_allclose(selection.weights[0], w / w.sum(), rtol=1e-12)
    assert selection.ess[0] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert selection.ess[1] == pytest.approx(4.0)
    assert any("effective sample size" in m for m in selection.warnings)


def test_the_pool_splits_into_shares_that_give_the_same_rows():
    torch.manual_seed(0)
    net = net_of(mlp((2, 8, 8, 3)), 2)
    z = ds.draw_pool("normal", 101, 2, seed=7)
    np.testing.assert_array_equal(z[:40], ds.draw_pool("normal", 101, 2, seed=7)[:40])
    whole = ds.measure(net, z, chunk_size=101)
    parts = ds.LatentMeasures.concatenate([ds.measure(net, z[:37], chunk_size=5), ds.measure(net, z[37:])])
    for name in ("singular_values", "log_volume", "codes"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-13)


@pytest.mark.parametrize("replace", [False, True], ids=["without replacement", "with replacement"])
def test_shares_of_the_pool_combine_to_the_whole_run(replace):
    torch.manual_seed(0)
    module = mlp((2, 8, 8, 3))
    net = net_of(module, 2)
    options = ds.DebiasOptions(12, 101, (-1.0, 2.0), replace=replace, seed=5)
    whole = ds.run(net, dataclasses.replace(options, batch_size=7))
    plan = ds.plan(net, options)
    shares = [ds.measure_share(net, plan, rows, batch_size=4) for rows in (range(0, 30), range(30, 101))]
    joined = ds.combine(shares)
    for name in ("selected_index", "baseline_index", "tile_index", "tile_codes"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    for name in ("log_volume", "weights", "ess", "samples", "baseline_samples"):
        np.testing.assert_allclose(getattr(joined, name), getattr(whole, name), rtol=1e-13)
    # the samples are the model's outputs at the drawn latents, whichever share generated them
    with torch.no_grad():
        expected = module(torch.as_tensor(joined.latents.reshape(-1, 2))).numpy()
    np.testing.assert_allclose(joined.samples.reshape(-1, 3), expected, rtol=1e-12)
    # without replacement a share generates only the rows it cannot rule out: at most its n best per ρ
    generated = [len(share.candidates) for share in shares]
    if replace:
        assert generated == [30, 71]
    else:
        assert 12 <= generated[1] <= 3 * 12 and generated[0] < 30


def test_shares_must_be_consecutive_and_cover_the_pool():
    torch.manual_seed(0)
    net = net_of(mlp((2, 8, 3)), 2)
    plan = ds.plan(net, ds.DebiasOptions(n=3, pool=20))
    first, last = (ds.measure_share(net, plan, rows) for rows in (range(0, 8), range(10, 20)))
    with pytest.raises(UsageError, match="rows 8:10 are missing"):
        ds.combine([first, last])
    with pytest.raises(UsageError, match="rows 0:8 of a pool of 20"):
        ds.combine([first])
    with pytest.raises(UsageError, match="hold no latent"):
        ds.measure_share(net, plan, range(20, 20))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 20, "pool": 10}, "more than `pool`"),
        ({"n": 0}, "`n` 0: expected a positive number"),
        ({"pool": 0}, "`pool` 0: expected a positive number"),
        ({"top_k": 3}, "`top_k` 3: expected 1 to 2"),
        ({"proj_dim": 9}, "`proj_dim` 9: expected 1 to 3"),
        ({"proj_dim": 1}, "fewer than the 2 of the latent"),
        ({"output_shape": (2, 2)}, "holds 4 values"),
        ({"prior": "cauchy"}, "`prior` 'cauchy'"),
        ({"rho": (math.nan,)}, "finite"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    torch.manual_seed(0)
    net = net_of(mlp((2, 4, 3)), 2)
    with pytest.raises(UsageError, match=message):
        ds.run(net, ds.DebiasOptions(**({"n": 5, "pool": 10} | options)))
