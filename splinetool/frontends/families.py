"""Built-in architecture families, rebuilt from a family name and a dict of options.

The modules are plain `nn.Module`s written so that `torch.jit.script`, `torch.export.export` and
`torch.fx` all accept them: a state dict saved from one of them can be loaded into `build(...)`, and
the saved model can be analysed through any of the three frontends.

The options of a family are the keyword arguments of its constructor, which is also the set of keys
an architecture TOML file may hold next to `family = "..."`.
"""

from __future__ import annotations

import inspect
import math
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn

from splinetool.engine.store import check_memory
from splinetool.errors import UsageError


class Abs(nn.Module):
    """Absolute value as a module, so it can sit in an activation slot like the others."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "abs": Abs,
    "hardtanh": nn.Hardtanh,
    "relu6": nn.ReLU6,
    "softshrink": nn.Softshrink,
}

POOLS: dict[str, Callable[[], nn.Module]] = {
    "max": lambda: nn.MaxPool2d(2, 2),
    "avg": lambda: nn.AvgPool2d(2, 2),
    "none": nn.Identity,
}


def _count(name: str, value: object) -> int:
    # bool is a subclass of int, and `outputs = true` in a TOML file is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"option '{name}' must be a positive integer, got {value!r}")
    return value


def _counts(name: str, value: object, length: int | None = None) -> list[int]:
    ok = isinstance(value, (list, tuple)) and (length is None or len(value) == length)
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        expected = f"a list of {length} positive integers" if length else "a list of positive integers"
        raise UsageError(f"option '{name}' must be {expected}, got {value!r}")
    return list(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"option '{name}' must be true or false, got {value!r}")
    return value


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"option '{name}' must be one of {', '.join(choices)}; got {value!r}")
    return value


class Dense(nn.Module):
    """Linear -> batch norm (optional) -> activation, with an optional identity skip around all three."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str,
        batch_norm: bool = False,
        residual: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=bias)
        self.bn = nn.BatchNorm1d(n_out) if batch_norm else nn.Identity()
        self.act = ACTIVATIONS[activation]()
        # A skip is only defined where the widths agree; other layers of a residual MLP stay plain.
        self.residual = residual and n_in == n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn(self.linear(x)))
        return x + h if self.residual else h


class MLP(nn.Module):
    """Fully connected network: flatten, hidden `Dense` layers, linear output layer."""

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        outputs: int,
        widths: Sequence[int],
        activation: str = "relu",
        batch_norm: bool = False,
        residual: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        input_shape = _counts("input_shape", input_shape)
        if not input_shape:
            raise UsageError("option 'input_shape' must not be empty")
        outputs = _count("outputs", outputs)
        widths = _counts("widths", widths)
        activation = _choice("activation", activation, list(ACTIVATIONS))
        batch_norm = _flag("batch_norm", batch_norm)
        residual = _flag("residual", residual)
        bias = _flag("bias", bias)

        # Read by the checkpoint loader (and kept by TorchScript) so that callers need not repeat it.
        self.input_shape = tuple(input_shape)
        sizes = [math.prod(input_shape), *widths]
        self.flatten = nn.Flatten()
        self.hidden = nn.ModuleList(
            Dense(n_in, n_out, activation, batch_norm, residual, bias) for n_in, n_out in pairwise(sizes)
        )
        self.output = nn.Linear(sizes[-1], outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for layer in self.hidden:
            x = layer(x)
        return self.output(x)


class ConvBlock(nn.Module):
    """Conv (k x k, 'same' padding for odd k) -> batch norm (optional) -> activation -> 2x2 pool."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, batch_norm: bool, activation: str, pool: str):
        super().__init__()
        # The batch norm's shift makes a conv bias redundant.
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.act = ACTIVATIONS[activation]()
        self.pool = POOLS[pool]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class ConvNet(nn.Module):
    """Plain ConvNet: `ConvBlock`s, flatten, a fully connected head, linear output layer."""

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        outputs: int,
        channels: Sequence[int],
        kernel_size: int = 3,
        batch_norm: bool = True,
        pool: str = "max",
        activation: str = "relu",
        hidden: Sequence[int] = (),
    ):
        super().__init__()
        c, h, w = _counts("input_shape", input_shape, length=3)
        outputs = _count("outputs", outputs)
        channels = _counts("channels", channels)
        kernel_size = _count("kernel_size", kernel_size)
        batch_norm = _flag("batch_norm", batch_norm)
        pool = _choice("pool", pool, list(POOLS))
        activation = _choice("activation", activation, list(ACTIVATIONS))
        hidden = _counts("hidden", hidden)

        self.input_shape = (c, h, w)
        self.blocks = nn.ModuleList()
        for c_out in channels:
            self.blocks.append(ConvBlock(c, c_out, kernel_size, batch_norm, activation, pool))
            # An even kernel with padding k//2 grows the map by one pixel.
            h, w = (size + 2 * (kernel_size // 2) - kernel_size + 1 for size in (h, w))
            if pool != "none":
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise UsageError(
                    f"option 'input_shape' {list(input_shape)} is too small for {len(channels)} pooled "
                    'conv blocks: use fewer channels entries or pool = "none"'
                )
            c = c_out
        self.flatten = nn.Flatten()
        sizes = [c * h * w, *hidden]
        self.head = nn.ModuleList(Dense(n_in, n_out, activation) for n_in, n_out in pairwise(sizes))
        self.output = nn.Linear(sizes[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = self.flatten(x)
        for layer in self.head:
            x = layer(x)
        return self.output(x)


def _conv_bn(c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return nn.Sequential(OrderedDict([("conv", conv), ("bn", nn.BatchNorm2d(c_out))]))


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        changes_shape = stride != 1 or c_in != c_out
        self.shortcut = _conv_bn(c_in, c_out, 1, stride) if changes_shape else nn.Identity()
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.act2(h + self.shortcut(x))


class ResNet(nn.Module):
    """Small CIFAR-style ResNet: stem, stages of basic blocks, global average pool, linear output."""

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        outputs: int,
        stages: Sequence[int],
        stem_channels: int | None = None,
        blocks_per_stage: int = 1,
        stem: str = "cifar",
    ):
        super().__init__()
        c, _, _ = _counts("input_shape", input_shape, length=3)
        outputs = _count("outputs", outputs)
        stages = _counts("stages", stages)
        if not stages:
            raise UsageError("option 'stages' must list at least one stage's channels")
        stem_channels = stages[0] if stem_channels is None else _count("stem_channels", stem_channels)
        blocks_per_stage = _count("blocks_per_stage", blocks_per_stage)

        stem = _choice("stem", stem, STEMS)
        self.input_shape = tuple(input_shape)
        # "cifar": a 3x3 convolution at full resolution; "imagenet": ResNet-18's own 7x7 stride-2
        # convolution and 3x3 stride-2 max-pool, a quarter of the resolution in each direction
        self.stem = _conv_bn(c, stem_channels, 3, 1) if stem == "cifar" else _conv_bn(c, stem_channels, 7, 2)
        self.stem.add_module("act", nn.ReLU())
        if stem == "imagenet":
            self.stem.add_module("pool", nn.MaxPool2d(3, stride=2, padding=1))
        self.blocks = nn.ModuleList()
        c = stem_channels
        for i, c_out in enumerate(stages):
            for j in range(blocks_per_stage):
                self.blocks.append(BasicBlock(c, c_out, stride=2 if i > 0 and j == 0 else 1))
                c = c_out
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.output = nn.Linear(c, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.output(self.flatten(self.pool(x)))


STEMS = ("cifar", "imagenet")

FAMILIES: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "convnet": ConvNet, "resnet": ResNet}
# families that read a flat vector first: a checkpoint's first weight matrix tells its input width
VECTOR_INPUT_FAMILIES = ("mlp",)


def describe_options(family: str) -> str:
    """One line listing a family's options, marking the required ones and showing defaults."""
    params = inspect.signature(FAMILIES[family]).parameters.values()
    return ", ".join(
        f"{p.name}={p.default!r}" if p.default is not p.empty else f"{p.name} (required)" for p in params
    )


def build(family: str, options: dict) -> nn.Module:
    """Build a freshly initialised model of a built-in family; bad names or values raise UsageError."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise UsageError(f"unknown architecture family {family!r}; built-in families: {', '.join(FAMILIES)}")
    params = inspect.signature(FAMILIES[family]).parameters
    unknown = sorted(set(options) - set(params))
    missing = [name for name, p in params.items() if p.default is p.empty and name not in options]
    if unknown or missing:
        problems = [f"unknown option(s) {', '.join(unknown)}"] if unknown else []
        problems += [f"missing option(s) {', '.join(missing)}"] if missing else []
        valid = describe_options(family)
        raise UsageError(f"family '{family}': {'; '.join(problems)}. Valid options: {valid}")
    parameters = estimated_parameters(family, options)
    if parameters is not None:
        check_memory(
            parameters * BYTES_PER_PARAMETER,
            f"family '{family}': its options make a network of about {parameters:,} parameters, which",
            f"choose smaller {SIZE_OPTIONS[family]}",
        )
    try:
        return FAMILIES[family](**options)
    except UsageError as e:
        raise UsageError(f"family '{family}': {e}") from None


# a parameter is held as built (float32), as loaded from a state dict, and lowered in float64
BYTES_PER_PARAMETER = 4 + 4 + 8
SIZE_OPTIONS = {"mlp": "widths or input_shape", "convnet": "channels or hidden", "resnet": "stages"}


def estimated_parameters(family: str, options: dict) -> int | None:
    """About how many parameters `build` makes, from the options alone, so that a network too large to
    hold is refused before it is allocated; None where an option is malformed (the family says how)."""
    value = {**{k: p.default for k, p in inspect.signature(FAMILIES[family]).parameters.items()}, **options}
    if any(v is inspect.Parameter.empty for v in value.values()):
        return None
    lists = [value[k] for k in ("input_shape", "widths", "channels", "hidden", "stages") if k in value]
    if not all(isinstance(size, (list, tuple)) for size in lists):
        return None
    numbers = [value.get(k) for k in ("outputs", "kernel_size", "stem_channels", "blocks_per_stage")]
    if not all(_positive(n) for n in [*numbers, *(n for size in lists for n in size)] if n is not None):
        return None
    outputs = value["outputs"]
    if family == "mlp":
        widths = list(value["widths"])
        norms = 4 * sum(widths) if value["batch_norm"] is True else 0
        return _dense([math.prod(value["input_shape"]), *widths, outputs]) + norms
    if len(value["input_shape"]) != 3 or (family == "resnet" and not value["stages"]):
        return None
    c, h, w = value["input_shape"]
    if family == "convnet":
        k, total = value["kernel_size"], 0
        for c_out in value["channels"]:
            total += (c * k * k + 5) * c_out  # weights, bias, batch-norm
            h, w = (size + 2 * (k // 2) - k + 1 for size in (h, w))
            h, w = (h // 2, w // 2) if value["pool"] != "none" else (h, w)
            c = c_out
        return total + _dense([c * max(h, 1) * max(w, 1), *value["hidden"], outputs])
    stem = value["stem_channels"] or value["stages"][0]
    total = c * stem * (9 if value["stem"] == "cifar" else 49) + 4 * stem
    c = stem
    for c_out in value["stages"]:
        for _ in range(value["blocks_per_stage"]):
            total += 9 * c * c_out + 9 * c_out * c_out + c * c_out + 12 * c_out  # with the shortcut
            c = c_out
    return total + (c + 1) * outputs


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _dense(sizes: list[int]) -> int:
    return sum((n_in + 1) * n_out for n_in, n_out in pairwise(sizes))


def load_arch_toml(path: str | Path) -> tuple[str, dict]:
    """Read an architecture file: `family = "NAME"` plus that family's options as top-level keys."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"architecture file {path} does not exist") from None
    except OSError as e:
        raise UsageError(f"cannot read architecture file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"architecture file {path} is not valid TOML: {e}") from None
    family = doc.pop("family", None)
    if not isinstance(family, str):
        raise UsageError(
            f'architecture file {path} must name its family on a line like family = "mlp" '
            f"(built-in families: {', '.join(FAMILIES)})"
        )
    return family, doc


def build_from_toml(path: str | Path) -> nn.Module:
    """`build` from an architecture file, with the file named in any error."""
    family, options = load_arch_toml(path)
    try:
        return build(family, options)
    except UsageError as e:
        raise UsageError(f"architecture file {path}: {e}") from None
