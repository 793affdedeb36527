"""Layer Hessians against autograd and a closed form; Lanczos against the dense spectrum; singular blocks."""

import re

import numpy as np
import pytest
import torch
from torch import nn

from splinetool.analyses import condition
from splinetool.engine.layer_jacobian import parameter_layers
from splinetool.frontends.families import build
from splinetool.ir import lower
from tests import zoo


def _net(model, input_shape):
    torch.manual_seed(0)
    return lower(model.double().eval(), input_shape).to(dtype=torch.float64)


def _full_spectrum(spectrum: condition.LayerSpectrum) -> np.ndarray:
    """All params eigenvalues of H, descending: the decomposed side's plus the zeros it leaves out."""
    zeros = np.zeros(spectrum.params - len(spectrum.eigenvalues))
    return np.sort(np.concatenate([spectrum.eigenvalues, zeros]))[::-1]


def _autograd_spectrum(model, x, y, parameter_names) -> np.ndarray:
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in parameter_names]
    sizes = [params[n].numel() for n in parameter_names]

    def loss(theta):
        parts = dict(zip(parameter_names, (p.reshape(s) for p, s in zip(theta.split(sizes), shapes))))
        out = torch.func.functional_call(model, parts, (x,))
        return ((out.reshape(len(x), -1) - y) ** 2).sum(dim=1).mean()

    theta = torch.cat([params[n].detach().reshape(-1) for n in parameter_names])
    hessian = torch.autograd.functional.hessian(loss, theta)
    return np.sort(torch.linalg.eigvalsh(hessian).numpy())[::-1]


def test_layer_hessians_equal_autograd_inside_one_region():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    y = torch.randn(7, 2, dtype=torch.float64)
    net = _net(model, (3,))
    layers = parameter_layers(net)
    # rows = 14: the first two layers (20 and 24 params) go through JJᵀ, the output (10) through JᵀJ
    assert [layer.params for layer in layers] == [20, 24, 10]
    methods = []
    for layer, prefix in zip(layers, ("0", "2", "4")):
        spectrum = condition.layer_spectrum(net, layer, x, y)
        methods.append(spectrum.method)
        expected = _autograd_spectrum(model, x, y, [f"{prefix}.weight", f"{prefix}.bias"])
        np.testing.assert_allclose(_full_spectrum(spectrum), expected, rtol=0, atol=1e-8 * expected[0])
        assert spectrum.rank == np.sum(expected > spectrum.tolerance)
    assert methods == ["dense JJᵀ", "dense JJᵀ", "dense JᵀJ"]


def test_conv_and_batch_norm_hessians_equal_autograd():
    torch.manual_seed(2)
    model = zoo.ConvNet().double().eval()
    with torch.no_grad():  # statistics away from their defaults, so the running ones matter
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    y = torch.randn(3, 3, dtype=torch.float64)
    net = _net(model, (2, 7, 7))
    by_name = {layer.name: layer for layer in parameter_layers(net)}
    for name in ("bn1", "conv2"):  # conv2: strided, dilated, grouped
        spectrum = condition.layer_spectrum(net, by_name[name], x, y)
        expected = _autograd_spectrum(model, x, y, [f"{name}.weight", f"{name}.bias"])
        np.testing.assert_allclose(_full_spectrum(spectrum), expected, rtol=0, atol=1e-8 * expected[0])


def test_identity_activations_match_the_second_moment_closed_form():
    # f = W3 (W2 h + b2) + b3 with h = W1 x + b1: J_i = W3 ⊗ [h_i; 1]ᵀ for the middle layer, so
    # H = 2 (W3ᵀW3) ⊗ M with M = (1/n) Σ [h; 1][h; 1]ᵀ, the second moment of the layer's inputs
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5), nn.Linear(5, 2)).double()
    x = torch.randn(30, 3, dtype=torch.float64)
    net = _net(model, (3,))
    middle = parameter_layers(net)[1]
    spectrum = condition.layer_spectrum(net, middle, x)
    with torch.no_grad():
        h = torch.cat([model[0](x), torch.ones(30, 1, dtype=torch.float64)], dim=1)
        moment = h.T @ h / 30
        w3 = model[2].weight.detach()
    products = np.kron(torch.linalg.eigvalsh(w3.T @ w3).numpy(), torch.linalg.eigvalsh(moment).numpy())
    expected = 2 * np.sort(products)[::-1]
    np.testing.assert_allclose(_full_spectrum(spectrum), expected, rtol=0, atol=1e-10 * expected[0])
    # W3ᵀW3 (5 × 5) has rank 2 and M rank 4 (h spans a 3-D affine set), so 8 of 25 are non-zero
    assert spectrum.rank == 8 and spectrum.summary()["zero_eigenvalues"] == 17


@pytest.fixture(scope="module")
def mid_size():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Linear(12, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 4)
    ).double()
    x = torch.randn(60, 12, dtype=torch.float64)
    net = _net(model, (12,))
    layer = parameter_layers(net)[1]  # 1,640 params, 240 rows
    return net, layer, x, condition.layer_spectrum(net, layer, x)


def test_lanczos_extremes_match_the_dense_spectrum(mid_size):
    net, layer, x, dense = mid_size
    assert dense.method == "dense JJᵀ"
    found = condition.layer_spectrum(net, layer, x, max_dense=0, k=5, lanczos_steps=240)
    assert found.method == "lanczos"
    truth = dense.nonzero
    top = found.eigenvalues[:5]
    np.testing.assert_allclose(top, truth[:5], rtol=1e-8)
    # every reported value (bottom ones included) has an eigenvalue within its residual bound
    for value, bound in zip(found.eigenvalues, found.residuals):
        assert np.min(np.abs(truth - value)) <= bound + 1e-9 * truth[0]
    assert found.converged and not found.exact  # 240 steps would have exhausted the Krylov space
    np.testing.assert_allclose(found.eigenvalues[-5:], truth[-5:], rtol=1e-6)
    assert found.condition_number == pytest.approx(dense.condition_number, rel=1e-6)


def test_a_short_lanczos_run_bounds_the_condition_number_from_below(mid_size):
    net, layer, x, dense = mid_size
    found = condition.layer_spectrum(net, layer, x, max_dense=0, k=3, lanczos_steps=40)
    assert found.lanczos_steps == 41 and not found.exact and found.rank is None
    np.testing.assert_allclose(found.eigenvalues[:3], dense.nonzero[:3], rtol=1e-8)
    assert found.lambda_min_nonzero >= dense.lambda_min_nonzero * (1 - 1e-9)
    assert found.condition_number <= dense.condition_number * (1 + 1e-9)
    assert found.summary()["condition_number_is_lower_bound"]


def test_a_block_is_singular_where_its_smallest_singular_value_vanishes():
    # D W (3 × 2) at three points: full rank, rank one up to rounding, rank one
    values = np.array([[3.0, 1.5], [2.0, 1e-17], [4.0, 0.0]])
    spectrum = condition.BlockSpectrum("b", False, 2, 3, [], values)
    np.testing.assert_array_equal(spectrum.singular, [False, True, True])
    np.testing.assert_array_equal(spectrum.kappa, [2.0, np.inf, np.inf])


def test_run_compares_models_and_one_hot_targets():
    torch.manual_seed(7)
    a = build("mlp", {"input_shape": [2], "outputs": 3, "widths": [5]}).double()
    b = build("mlp", {"input_shape": [2], "outputs": 3, "widths": [4, 4], "residual": True}).double()
    x = np.random.default_rng(0).normal(size=(20, 2))
    labels = np.arange(20) % 3
    y = condition.one_hot(labels, 3)
    targets, options = condition.Targets(y, "labels"), condition.ConditionOptions(block_points=8)
    result = condition.run([_net(a, (2,)), _net(b, (2,))], x, targets, options)
    assert [len(m.layers) for m in result.models] == [2, 3]
    assert all(len(m.block_points) == 8 for m in result.models)
    with torch.no_grad():
        expected = ((a(torch.as_tensor(x)) - torch.as_tensor(y)) ** 2).sum(dim=1).mean().item()
    assert result.models[0].loss == pytest.approx(expected, rel=1e-12)
    with pytest.raises(condition.UsageError, match="class indices"):
        condition.one_hot(np.array([0, 3]), 3)


# -- regression targets: floating y in the data file, or the y of a --targets file -------------------


def test_a_linear_model_with_floating_targets_matches_the_closed_form(tmp_path):
    # f(x) = W x + b, L = (1/n) Σ ‖y_i − f(x_i)‖²: with X̃ = [X, 1], H = (2/n) X̃ᵀX̃ ⊗ I (each eigenvalue
    # of (2/n) X̃ᵀX̃ once per output), ∇_W,b L = (2/n) Rᵀ X̃ for the residuals R = f(X) − Y
    torch.manual_seed(3)
    model = nn.Linear(3, 2).double()
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    targets = condition.targets_for(y, "data.npz", 12, 2)
    assert targets.source == "regression targets y from data.npz"
    np.savez(tmp_path / "targets.npz", x=x, y=y)
    from_file = condition.targets_for(np.arange(12) % 2, "data.npz", 12, 2, tmp_path / "targets.npz")
    np.testing.assert_array_equal(from_file.values, targets.values)
    result = condition.run([_net(model, (3,))], x, targets, condition.ConditionOptions(block_points=4))
    (layer,) = result.models[0].layers
    xt = np.hstack([x, np.ones((12, 1))])
    gram = 2 / 12 * np.linalg.eigvalsh(xt.T @ xt)
    np.testing.assert_allclose(np.sort(layer.eigenvalues), np.sort(np.repeat(gram, 2)), rtol=1e-10)
    assert layer.condition_number == pytest.approx(gram.max() / gram.min(), rel=1e-10)
    w, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    residuals = x @ w.T + b - y
    assert result.models[0].loss == pytest.approx((residuals**2).sum(axis=1).mean(), rel=1e-12)
    assert layer.gradient_norm == pytest.approx(np.linalg.norm(2 / 12 * residuals.T @ xt), rel=1e-10)


def test_integer_labels_stay_class_labels():
    labels = np.array([0, 2, 1, 2])
    targets = condition.targets_for(labels, "data.npz", 4, 3)
    assert targets.source == "one-hot class labels y"
    np.testing.assert_array_equal(targets.values, np.eye(3)[labels])
    # whole floating labels in one column, for a model of several outputs, are class labels as before
    whole = condition.targets_for(labels.astype(np.float32), "data.npz", 4, 3)
    assert whole.source == "one-hot class labels y"
    np.testing.assert_array_equal(whole.values, np.eye(3)[labels])


def test_a_flat_floating_y_is_the_target_of_a_one_output_model():
    y = np.array([0.5, -1.0, 2.0])
    targets = condition.targets_for(y, "data.npz", 3, 1)
    assert targets.source == "regression targets y from data.npz"
    np.testing.assert_array_equal(targets.values, y[:, None])


@pytest.mark.parametrize(
    ("y", "outputs", "message"),
    [
        (np.zeros((4, 3)), 2, "y in data.npz has shape [4, 3]; expected regression targets of shape [4, 2]"),
        (np.zeros((4, 2, 1)), 1, "y in data.npz must hold class indices"),
        (np.array([0.0, np.inf, 1.0, 0.0]), 1, "y in data.npz has NaN or infinite values"),
    ],
)
def test_floating_targets_of_the_wrong_shape_are_refused(y, outputs, message):
    with pytest.raises(condition.UsageError, match=re.escape(message)):
        condition.targets_for(y, "data.npz", 4, outputs)


def test_a_targets_file_of_the_wrong_rows_is_refused(tmp_path):
    np.savez(tmp_path / "targets.npz", y=np.zeros((5, 2)))
    with pytest.raises(
        condition.UsageError, match=re.escape(f"`targets` {tmp_path / 'targets.npz'} has shape [5, 2]")
    ):
        condition.targets_for(None, "data.npz", 4, 2, tmp_path / "targets.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros((4, 2)))
    with pytest.raises(condition.UsageError, match="has no array 'y'; it holds: x"):
        condition.targets_for(None, "data.npz", 4, 2, tmp_path / "other.npz")
