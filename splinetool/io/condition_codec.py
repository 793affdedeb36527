"""The `splinetool.condition` encoding of a ConditionResult: one subgroup per model, one per node in it.

Layout: `<group>/<model>/layers/<node>` (<model>: the checkpoint's file name) holds `eigenvalues`
and `residuals` of the layer's Hessian;
`<group>/<model>/blocks/<block>` holds `singular_values` [points, min(in, out)] of the block's Jacobian
at the points listed in `<group>/<model>/block_points` (rows of the data).
"""

from __future__ import annotations

from pathlib import PurePath

import h5py
import numpy as np

from splinetool.analyses.condition import BlockSpectrum, ConditionResult, LayerSpectrum, ModelCondition
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.condition"
ENCODING_VERSION = "0.1.0"


def write(group: h5py.Group, result: ConditionResult) -> None:
    attrs = group.attrs
    for key in ("points", "outputs", "max_dense", "k", "lanczos_steps", "seed"):
        attrs[key] = int(getattr(result, key))
    attrs["targets"] = result.targets
    attrs["dtype"] = result.dtype
    attrs["seconds"] = float(result.seconds)
    names = _group_names([m.checkpoint for m in result.models])
    put(group, "models", strings(names)).attrs["checkpoints"] = strings([m.checkpoint for m in result.models])
    for name, model in zip(names, result.models):
        _write_model(group.create_group(name, track_order=True), model)


def _group_names(checkpoints: list[str]) -> list[str]:
    """Each model's group is named after its checkpoint's file name (made unique)."""
    names: list[str] = []
    for checkpoint in checkpoints:
        base = _key(PurePath(checkpoint).name) or "model"
        name, k = base, 1
        while name in names or name == "models":
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _write_model(group: h5py.Group, model: ModelCondition) -> None:
    group.attrs["checkpoint"] = model.checkpoint
    group.attrs["checkpoint_sha256"] = model.checkpoint_sha256
    group.attrs["loss"] = np.nan if model.loss is None else float(model.loss)
    put(group, "block_points", np.asarray(model.block_points, dtype=np.int64))
    layers = group.create_group("layers", track_order=True)
    for layer in model.layers:
        node = layers.create_group(_key(layer.name), track_order=True)
        put(node, "eigenvalues", np.asarray(layer.eigenvalues, dtype=np.float64))
        put(node, "residuals", np.asarray(layer.residuals, dtype=np.float64))
        node.attrs["name"] = layer.name
        node.attrs["op"] = layer.op
        node.attrs["params"] = int(layer.params)
        node.attrs["rows"] = int(layer.rows)
        node.attrs["method"] = layer.method
        node.attrs["tolerance"] = float(layer.tolerance)
        node.attrs["exact"] = bool(layer.exact)
        node.attrs["lanczos_steps"] = int(layer.lanczos_steps)
        node.attrs["gradient_norm"] = np.nan if layer.gradient_norm is None else float(layer.gradient_norm)
    blocks = group.create_group("blocks", track_order=True)
    for block in model.blocks:
        node = blocks.create_group(_key(block.name), track_order=True)
        values = put(node, "singular_values", np.asarray(block.singular_values, dtype=np.float64))
        values.attrs["dims"] = strings(["point", "singular value"])
        node.attrs["name"] = block.name
        node.attrs["residual"] = bool(block.residual)
        node.attrs["in_dim"] = int(block.in_dim)
        node.attrs["out_dim"] = int(block.out_dim)
        node.attrs["step_names"] = strings(block.step_names)


def _key(name: str) -> str:
    return name.replace("/", "|")  # a node name may not contain HDF5's path separator


def read(group: h5py.Group) -> ConditionResult:
    attrs = group.attrs
    models = [_read_model(group[name]) for name in string_list(group["models"][()])]
    return ConditionResult(
        models=models,
        points=int(scalar(attrs["points"])),
        outputs=int(scalar(attrs["outputs"])),
        targets=str(scalar(attrs["targets"])),
        max_dense=int(scalar(attrs["max_dense"])),
        k=int(scalar(attrs["k"])),
        lanczos_steps=int(scalar(attrs["lanczos_steps"])),
        seed=int(scalar(attrs["seed"])),
        dtype=str(scalar(attrs["dtype"])),
        seconds=float(scalar(attrs["seconds"])),
    )


def _optional(value) -> float | None:
    value = float(scalar(value))
    return None if np.isnan(value) else value


def _read_model(group: h5py.Group) -> ModelCondition:
    layers = [
        LayerSpectrum(
            name=str(scalar(node.attrs["name"])),
            op=str(scalar(node.attrs["op"])),
            params=int(scalar(node.attrs["params"])),
            rows=int(scalar(node.attrs["rows"])),
            method=str(scalar(node.attrs["method"])),
            eigenvalues=node["eigenvalues"][()],
            residuals=node["residuals"][()],
            tolerance=float(scalar(node.attrs["tolerance"])),
            exact=bool(scalar(node.attrs["exact"])),
            lanczos_steps=int(scalar(node.attrs["lanczos_steps"])),
            gradient_norm=_optional(node.attrs["gradient_norm"]),
        )
        for node in group["layers"].values()
    ]
    blocks = [
        BlockSpectrum(
            name=str(scalar(node.attrs["name"])),
            residual=bool(scalar(node.attrs["residual"])),
            in_dim=int(scalar(node.attrs["in_dim"])),
            out_dim=int(scalar(node.attrs["out_dim"])),
            step_names=string_list(node.attrs["step_names"]),
            singular_values=node["singular_values"][()],
        )
        for node in group["blocks"].values()
    ]
    return ModelCondition(
        checkpoint=str(scalar(group.attrs["checkpoint"])),
        checkpoint_sha256=str(scalar(group.attrs["checkpoint_sha256"])),
        loss=_optional(group.attrs["loss"]),
        layers=layers,
        blocks=blocks,
        block_points=group["block_points"][()],
    )
