"""Fit a checkpoint's tensors to an architecture's parameter names.

A state dict saved from one's own module names its tensors after that module's attributes
(`net.0.weight`), often under a wrapper's prefix: `module.` (DataParallel), `_orig_mod.`
(torch.compile), `model.` or a LightningModule's attribute. The architecture names its own
(`hidden.0.linear.weight`). The tensors are fitted, in this order:

1. by name;
2. by name after stripping the wrappers' prefixes, or one prefix that every key shares;
3. layer by layer, in order: a layer is the tensors of one module (the name up to its last dot). The
   i-th layer of the checkpoint fills the i-th layer of the architecture; inside a layer, tensors
   pair by their own name (`weight`, `bias`, `running_mean`) where both sides use the same names,
   else in order, which is refused as ambiguous where two of the layer's tensors have the same shape.
   Every pair must agree in shape.

A file that keeps no order (safetensors sorts its names) is read in natural order (`net.2` before
`net.10`), which is the order of an `nn.Sequential`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

# prefixes wrappers add to every key: DataParallel, torch.compile, a training module's `model`
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


class NoFit(Exception):
    """The checkpoint's tensors do not fit the architecture; the message says where."""


@dataclass(frozen=True)
class Fit:
    state: dict[str, torch.Tensor]  # keyed by the architecture's names
    renamed: dict[str, str] = field(default_factory=dict)  # checkpoint name -> architecture name


def fit_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], ordered: bool = True) -> Fit:
    """The checkpoint `state` keyed by the names of `expected` (an architecture's state dict).
    `ordered`: whether the checkpoint's keys are in its module's order. Raises NoFit."""
    if _fits_by_name(state, expected):
        return Fit(state)
    for stripped in _prefixes_stripped(list(state)):
        renamed = {stripped[k]: v for k, v in state.items()}
        if _fits_by_name(renamed, expected):
            return Fit(renamed, stripped)
    names = list(state) if ordered else sorted(state, key=_natural)
    pairs = _paired_by_layer(_layers(names), _layers(expected), state, expected)
    return Fit(
        {ours: state[theirs] for theirs, ours in pairs},
        {theirs: ours for theirs, ours in pairs if theirs != ours},
    )


def input_width(state: dict[str, torch.Tensor], ordered: bool = True) -> int | None:
    """The input width of a network whose checkpoint starts with a dense layer: the second size of
    its first matrix (in the module's order, or natural order where the file keeps none)."""
    names = list(state) if ordered else sorted(state, key=_natural)
    first = next((state[name] for name in names if state[name].dim() >= 2), None)
    return int(first.shape[1]) if first is not None and first.dim() == 2 else None


def _fits_by_name(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> bool:
    same_names = state.keys() == expected.keys()
    return same_names and all(tuple(state[k].shape) == tuple(v.shape) for k, v in expected.items())


def _prefixes_stripped(names: list[str]) -> Iterable[dict[str, str]]:
    """Renamings (old -> new) that strip the wrappers' prefixes, then one prefix every key shares."""
    stripped = dict(zip(names, names))
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if all(n.startswith(p) for n in stripped.values())), None)
        if prefix is None:
            break
        stripped = {old: new.removeprefix(prefix) for old, new in stripped.items()}
        yield stripped
    heads = {new.partition(".")[0] for new in stripped.values()}
    if len(heads) == 1 and all("." in new for new in stripped.values()):
        yield {old: new.partition(".")[2] for old, new in stripped.items()}


def _natural(name: str) -> list:
    """Sort key reading runs of digits as numbers: `net.2` before `net.10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _layers(names: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(module path, its tensors' names) in the order the modules first appear."""
    layers: dict[str, list[str]] = {}
    for name in names:
        layers.setdefault(name.rpartition(".")[0], []).append(name)
    return list(layers.items())


def _paired_by_layer(
    theirs: list[tuple[str, list[str]]],
    ours: list[tuple[str, list[str]]],
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> list[tuple[str, str]]:
    """(checkpoint name, architecture name) for every tensor, layer by layer."""
    if len(theirs) != len(ours):
        raise NoFit(
            f"the checkpoint's tensors form {len(theirs)} layers, the architecture's {len(ours)}: "
            f"checkpoint layers {_listed(theirs)}; architecture layers {_listed(ours)}"
        )
    pairs = []
    for (their_layer, their_names), (our_layer, our_names) in zip(theirs, ours, strict=True):
        described = (
            f"the checkpoint's layer {_shown(their_layer)} ({_shapes(their_names, state)}) against the "
            f"architecture's {_shown(our_layer)} ({_shapes(our_names, expected)})"
        )
        layer = _paired_in_layer(their_names, our_names, expected, described)
        mismatched = [t for t, o in layer if tuple(state[t].shape) != tuple(expected[o].shape)]
        if mismatched:
            raise NoFit(f"shapes differ in {described}")
        pairs += layer
    return pairs


def _paired_in_layer(
    theirs: list[str], ours: list[str], expected: dict[str, torch.Tensor], described: str
) -> list[tuple[str, str]]:
    leaf = {name: name.rpartition(".")[2] for name in [*theirs, *ours]}
    if sorted(leaf[t] for t in theirs) == sorted(leaf[o] for o in ours):
        by_leaf = {leaf[o]: o for o in ours}
        return [(t, by_leaf[leaf[t]]) for t in theirs]
    if len(theirs) != len(ours):
        raise NoFit(f"the number of tensors differs in {described}")
    shapes = [tuple(expected[o].shape) for o in ours]
    if len(set(shapes)) < len(shapes):
        raise NoFit(
            f"ambiguous: {described}: their names differ and several have the same shape, so which "
            "tensor is which cannot be told; save the state dict with the architecture's names"
        )
    return list(zip(theirs, ours, strict=True))


def _shapes(names: list[str], tensors: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{name.rpartition('.')[2]} {list(tensors[name].shape)}" for name in names)


def _shown(layer: str) -> str:
    return layer or "(top level)"


def _listed(layers: list[tuple[str, list[str]]]) -> str:
    return first_items([_shown(layer) for layer, _ in layers])


def first_items(items: list[str], n: int = 4) -> str:
    """The first `n` items and how many more there are, for a message."""
    shown = ", ".join(items[:n])
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")
