from pathlib import Path

import pytest
import torch

from splinetool.errors import UsageError
from splinetool.frontends.families import (
    ACTIVATIONS,
    FAMILIES,
    build,
    build_from_toml,
    estimated_parameters,
    load_arch_toml,
)
from tests.conftest import SAMPLES
from tests.refusal import refused

# TorchScript is deprecated upstream but remains one of the formats users save checkpoints in.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

ARCH_DIR = Path(__file__).resolve().parents[2] / "configs" / "arch"

CASES = [
    ("mlp", {"input_shape": [2], "outputs": 1, "widths": [8, 8]}),
    ("mlp", {"input_shape": [3], "outputs": 4, "widths": []}),
    (
        "mlp",
        {
            "input_shape": [1, 4, 4],
            "outputs": 3,
            "widths": [16, 16, 5],
            "activation": "prelu",
            "batch_norm": True,
            "residual": True,
            "bias": False,
        },
    ),
    ("convnet", {"input_shape": [1, 8, 8], "outputs": 10, "channels": [4, 8]}),
    (
        "convnet",
        {
            "input_shape": [3, 9, 7],
            "outputs": 2,
            "channels": [4],
            "kernel_size": 2,
            "batch_norm": False,
            "pool": "avg",
            "activation": "abs",
            "hidden": [6, 5],
        },
    ),
    ("convnet", {"input_shape": [2, 5, 5], "outputs": 3, "channels": [3, 3], "pool": "none"}),
    ("resnet", {"input_shape": [1, 8, 8], "outputs": 10, "stages": [4, 8]}),
    (
        "resnet",
        {
            "input_shape": [3, 12, 12],
            "outputs": 5,
            "stem_channels": 6,
            "stages": [4, 8, 8],
            "blocks_per_stage": 2,
        },
    ),
    ("resnet", {"input_shape": [3, 16, 16], "outputs": 4, "stages": [4, 8], "stem": "imagenet"}),
]
IDS = [f"{family}-{i}" for i, (family, _) in enumerate(CASES)]


def batch(options: dict, size: int = 3) -> torch.Tensor:
    return torch.randn(size, *options["input_shape"], generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_output_shape_in_train_and_eval_mode(family, options):
    model = build(family, options)
    x = batch(options)
    assert model(x).shape == (3, options["outputs"])
    assert model.eval()(x).shape == (3, options["outputs"])


@pytest.mark.parametrize(("family", "options"), CASES, ids=IDS)
def test_torchscript_fx_and_export_agree_with_eager(family, options):
    model = build(family, options).eval()
    x = batch(options)
    expected = model(x)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), expected)
    assert scripted.input_shape == tuple(options["input_shape"])
    torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), expected)
    program = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.testing.assert_close(program.module()(x), expected)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_builds_and_scripts(activation):
    options = {"input_shape": [2], "outputs": 2, "widths": [4], "activation": activation}
    model = build("mlp", options)
    x = batch(options)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_submodule_names_are_readable():
    mlp = dict(
        build("mlp", {"input_shape": [2], "outputs": 1, "widths": [3], "batch_norm": True}).named_modules()
    )
    assert {"hidden.0.linear", "hidden.0.bn", "hidden.0.act", "output"} <= set(mlp)
    conv = dict(
        build(
            "convnet", {"input_shape": [1, 8, 8], "outputs": 2, "channels": [2], "hidden": [4]}
        ).named_modules()
    )
    assert {"blocks.0.conv", "blocks.0.bn", "blocks.0.pool", "head.0.linear", "output"} <= set(conv)
    resnet = dict(build("resnet", {"input_shape": [1, 8, 8], "outputs": 2, "stages": [2, 4]}).named_modules())
    assert {"stem.conv", "blocks.1.conv1", "blocks.1.bn2", "blocks.1.shortcut.conv", "pool", "output"} <= set(
        resnet
    )


def test_imagenet_stem_is_a_strided_7x7_convolution_and_a_max_pool():
    model = build("resnet", {"input_shape": [3, 32, 32], "outputs": 2, "stages": [8], "stem": "imagenet"})
    assert model.stem.conv.kernel_size == (7, 7) and model.stem.conv.stride == (2, 2)
    assert isinstance(model.stem.pool, torch.nn.MaxPool2d)
    assert model.stem(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 8, 8)


def test_resnet_projects_the_shortcut_only_where_the_shape_changes():
    model = build("resnet", {"input_shape": [1, 8, 8], "outputs": 2, "stages": [4, 8], "blocks_per_stage": 2})
    shortcuts = [type(block.shortcut).__name__ for block in model.blocks]
    assert shortcuts == ["Identity", "Identity", "Sequential", "Identity"]
    assert [block.conv1.stride for block in model.blocks] == [(1, 1), (1, 1), (2, 2), (1, 1)]


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_residual_mlp_adds_the_skip(activation):
    options = {
        "input_shape": [5],
        "outputs": 2,
        "widths": [5, 5, 3],
        "activation": activation,
        "residual": True,
    }
    model = build("mlp", options)
    with torch.no_grad():
        for layer in model.hidden:
            layer.linear.weight.zero_()
            layer.linear.bias.zero_()
    x = batch(options)
    # With W = 0 and b = 0 a block is x + act(0) = x: every activation here maps 0 to 0.
    torch.testing.assert_close(model.hidden[0](x), x)
    torch.testing.assert_close(model.hidden[1](x), x)
    # Widths differ (5 -> 3): no skip, so the block is act(0) = 0.
    torch.testing.assert_close(model.hidden[2](x), torch.zeros(3, 3))


def test_plain_mlp_has_no_skip():
    model = build("mlp", {"input_shape": [4], "outputs": 1, "widths": [4]})
    with torch.no_grad():
        model.hidden[0].linear.weight.zero_()
        model.hidden[0].linear.bias.zero_()
    assert torch.count_nonzero(model.hidden[0](torch.randn(3, 4))) == 0


def test_batch_norm_sits_between_linear_and_activation():
    model = build("mlp", {"input_shape": [2], "outputs": 1, "widths": [3], "batch_norm": True})
    assert list(dict(model.hidden[0].named_children())) == ["linear", "bn", "act"]
    assert isinstance(model.hidden[0].bn, torch.nn.BatchNorm1d)


BAD = [
    ("transformer", {}, "built-in families: mlp, convnet, resnet"),
    ("mlp", {"input_shape": [2], "outputs": 1}, "missing option(s) widths"),
    ("mlp", {"input_shape": [2], "outputs": 1, "widths": [3], "depth": 2}, "unknown option(s) depth"),
    (
        "mlp",
        {"input_shape": [2], "outputs": 1, "widths": [3], "activation": "gelu"},
        "relu, leaky_relu, prelu",
    ),
    ("mlp", {"input_shape": [2], "outputs": 1, "widths": [3, 0]}, "'widths' must be a list of positive"),
    ("mlp", {"input_shape": [2], "outputs": True, "widths": [3]}, "'outputs' must be a positive integer"),
    ("mlp", {"input_shape": [2], "outputs": 1, "widths": [3], "batch_norm": "yes"}, "true or false"),
    ("mlp", {"input_shape": [], "outputs": 1, "widths": [3]}, "'input_shape' must not be empty"),
    ("mlp", {"input_shape": 2, "outputs": 1, "widths": [3]}, "'input_shape' must be a list"),
    ("convnet", {"input_shape": [8, 8], "outputs": 1, "channels": [3]}, "list of 3 positive integers"),
    ("convnet", {"input_shape": [1, 8, 8], "outputs": 1, "channels": [3], "pool": "mean"}, "max, avg, none"),
    ("convnet", {"input_shape": [1, 4, 4], "outputs": 1, "channels": [2, 2, 2]}, "too small"),
    ("convnet", {"input_shape": [1, 8, 8], "outputs": 1, "channels": [2], "kernel_size": 0}, "'kernel_size'"),
    ("resnet", {"input_shape": [1, 8, 8], "outputs": 1, "stages": []}, "at least one stage"),
    (
        "resnet",
        {"input_shape": [1, 8, 8], "outputs": 1, "stages": [4], "blocks_per_stage": 0},
        "blocks_per_stage",
    ),
]


@pytest.mark.parametrize(("family", "options", "message"), BAD)
def test_bad_options_raise_usage_error(family, options, message):
    with pytest.raises(UsageError) as info:
        build(family, options)
    assert message in str(info.value)


def test_unknown_option_message_lists_the_valid_ones():
    with pytest.raises(UsageError) as info:
        build("resnet", {"input_shape": [1, 8, 8], "outputs": 1, "stages": [4], "width": 3})
    assert "stem_channels" in str(info.value) and "blocks_per_stage=1" in str(info.value)


@pytest.mark.parametrize("path", sorted(ARCH_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_arch_files_load_and_build(path):
    family, options = load_arch_toml(path)
    assert family in FAMILIES
    model = build(family, options).eval()
    assert model(batch(options, 2)).shape == (2, options["outputs"])


def test_templates_cover_every_family():
    assert {load_arch_toml(ARCH_DIR / f"{family}.toml")[0] for family in FAMILIES} == set(FAMILIES)


def test_load_arch_toml_returns_family_and_options(tmp_path):
    path = tmp_path / "arch.toml"
    path.write_text('family = "mlp"\ninput_shape = [2]\noutputs = 1\nwidths = [4, 4]\n')
    assert load_arch_toml(path) == ("mlp", {"input_shape": [2], "outputs": 1, "widths": [4, 4]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ("family = mlp\n", "not valid TOML"),
        ("input_shape = [2]\n", 'family = "mlp"'),
        ("family = 3\n", 'family = "mlp"'),
    ],
)
def test_load_arch_toml_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "my-arch.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_arch_toml(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_build_from_toml_names_the_file_in_option_errors(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('family = "mlp"\ninput_shape = [2]\noutputs = 1\nwidht = [4]\n')
    with pytest.raises(UsageError) as info:
        build_from_toml(path)
    assert str(path) in str(info.value) and "widht" in str(info.value)


# -- issue 13: a network too large to hold is refused before it is built ----------------------------


@pytest.mark.parametrize(("family", "options"), CASES)
def test_estimated_parameters_bound_what_build_makes(family, options):
    module = build(family, options)
    made = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
    estimate = estimated_parameters(family, options)
    assert made <= estimate <= 1.1 * made + 50  # an upper estimate, close


def test_estimate_leaves_malformed_options_to_the_family():
    assert estimated_parameters("mlp", {"input_shape": [2], "outputs": 1, "widths": "wide"}) is None
    assert estimated_parameters("mlp", {"outputs": 1}) is None
    with pytest.raises(UsageError, match="'widths' must be a list"):
        build("mlp", {"input_shape": [2], "outputs": 1, "widths": "wide"})


def test_a_family_too_large_to_hold_is_refused_naming_arch_and_size(tmp_path):
    arch = "mlp{widths=[100000, 100000], outputs=1, input_shape=[2]}"  # 10^10 weights
    message = refused(
        "info", SAMPLES / "moons-mlp.state.pt", "--arch", arch, names=f"--arch {arch}", folder=tmp_path
    )
    assert "10,000,500,001 parameters" in message and "smaller widths" in message
