"""The `splinetool.local_complexity` encoding of an LCResult."""

from __future__ import annotations

import h5py
import numpy as np

from splinetool.analyses.local_complexity import LCResult
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.local_complexity"
ENCODING_VERSION = "0.1.0"


def write(group: h5py.Group, result: LCResult) -> None:
    per_point = put(group, "per_point", np.asarray(result.per_point, dtype=np.int32))
    per_point.attrs["dims"] = strings(["checkpoint", "point", "node"])
    per_point.attrs["node_names"] = strings(result.node_names)
    per_point.attrs["node_kinds"] = strings(result.node_kinds)
    per_point.attrs["node_units"] = np.asarray(result.node_units, dtype=np.int64)
    put(group, "set_offsets", np.asarray(result.set_offsets, dtype=np.int64)).attrs["set_names"] = strings(
        result.set_names
    )
    put(group, "accuracy", np.asarray(result.accuracy, dtype=np.float64))
    put(group, "checkpoints", strings(result.checkpoints))
    put(group, "checkpoint_sha256", strings(result.checkpoint_sha256))
    if result.steps is not None:
        put(group, "steps", np.asarray(result.steps, dtype=np.int64))
    if result.frame_vectors is not None:
        put(group, "directions", np.asarray(result.frame_vectors, dtype=np.float64))
    else:
        # a fresh frame per point would be points × P × D numbers: store how to redraw them instead
        group.attrs["directions_rule"] = (
            "splinetool.analyses.local_complexity.point_frames(rows, input_dim, directions, seed), "
            "rows numbering the points in per_point order"
        )
    attrs = group.attrs
    attrs["radius"] = float(result.radius)
    attrs["radius_rule"] = result.radius_rule
    attrs["directions_count"] = int(result.directions)
    attrs["frame"] = result.frame
    attrs["include_output"] = bool(result.include_output)
    attrs["seed"] = int(result.seed)
    attrs["dtype"] = result.dtype
    attrs["seconds"] = float(result.seconds)
    if result.exact is not None:
        _write_exact(group.create_group("exact", track_order=True), result)


def _write_exact(group: h5py.Group, result: LCResult) -> None:
    """The per-plane counts, and for readers outside splinetool their per-point mean and the rank
    correlation of that mean with the proxy (recomputed from the counts when read back)."""
    counts = put(group, "counts", np.asarray(result.exact, dtype=np.int32))
    counts.attrs["dims"] = strings(["checkpoint", "point", "plane"])
    put(group, "mean", result.exact.mean(axis=-1)).attrs["dims"] = strings(["checkpoint", "point"])
    rho = [
        [result.stats(c, name)["exact_spearman"] for name in result.set_names]
        for c in range(len(result.checkpoints))
    ]
    spearman_dataset = put(group, "spearman", np.asarray(rho, dtype=np.float64))  # None becomes NaN
    spearman_dataset.attrs["dims"] = strings(["checkpoint", "set"])
    group.attrs["planes_rule"] = (
        "splinetool.analyses.local_complexity.exact_planes(rows, input_dim, planes, seed), rows numbering "
        "the points in per_point order; tiles meeting the disc of `radius` around each point"
    )
    group.attrs["tiles"] = int(result.exact_tiles)
    group.attrs["seconds"] = float(result.exact_seconds)


def read(group: h5py.Group) -> LCResult:
    per_point = group["per_point"]
    attrs = group.attrs
    return LCResult(
        per_point=per_point[()],
        node_names=string_list(per_point.attrs["node_names"]),
        node_kinds=string_list(per_point.attrs["node_kinds"]),
        node_units=[int(u) for u in per_point.attrs["node_units"]],
        set_names=string_list(group["set_offsets"].attrs["set_names"]),
        set_offsets=group["set_offsets"][()],
        accuracy=group["accuracy"][()],
        checkpoints=string_list(group["checkpoints"][()]),
        checkpoint_sha256=string_list(group["checkpoint_sha256"][()]),
        steps=[int(s) for s in group["steps"][()]] if "steps" in group else None,
        radius=float(scalar(attrs["radius"])),
        radius_rule=str(scalar(attrs["radius_rule"])),
        directions=int(scalar(attrs["directions_count"])),
        frame=str(scalar(attrs["frame"])),
        frame_vectors=group["directions"][()] if "directions" in group else None,
        include_output=bool(scalar(attrs["include_output"])),
        seed=int(scalar(attrs["seed"])),
        dtype=str(scalar(attrs["dtype"])),
        seconds=float(scalar(attrs["seconds"])),
        **_read_exact(group),
    )


def _read_exact(group: h5py.Group) -> dict:
    if "exact" not in group:
        return {}
    exact = group["exact"]
    return {
        "exact": exact["counts"][()],
        "exact_tiles": int(scalar(exact.attrs["tiles"])),
        "exact_seconds": float(scalar(exact.attrs["seconds"])),
    }
