"""The `splinetool.slice` encoding of a SliceResult.

Tiles go in as they are found: `SliceAppender` appends groups of tiles to growing datasets and
`finish` adds what describes the slice as a whole; `write` is one append and a finish. Datasets:
`vertices` [V, 2] and `edge_node` [V] (per vertex), `offsets` [R + 1] (global, from 0 to V),
`codes` [R, bytes], `affine_A` [R, outputs, 2], `affine_c` [R, outputs], `jacobian_norm` [R]
(absent when the norms were not computed), `boundary` [S, 2, 2], `tiles_per_node` [nodes].
"""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np

from splinetool.analyses.slice import SliceResult, SliceTrajectory
from splinetool.analyses.tile_placement import TARGETS, Placement
from splinetool.io.storage import append_rows, put, put_growing, scalar, string_list, strings

ENCODING_TYPE = "splinetool.slice"
ENCODING_VERSION = "0.1.0"
# in the order the datasets are created
ARRAYS = ["vertices", "offsets", "affine_A", "affine_c", "jacobian_norm", "boundary", "edge_node", "codes"]
PER_TILE = ["affine_A", "affine_c", "jacobian_norm", "codes"]
PER_VERTEX = ["vertices", "edge_node"]


class SliceAppender:
    """Writes one SliceResult into `group` a group of tiles at a time.

    `append` takes a SliceResult holding some of the tiles (its offsets local, from 0 to its own
    vertex count, and the boundary segments found in those tiles); `finish` then writes what is
    not per tile from `meta` (its per-tile arrays are read only for their shapes when no tile was
    appended). Every part must carry `jacobian_norm`, or none may.
    """

    def __init__(self, group: h5py.Group):
        self.group = group
        self.regions = 0
        self.vertices = 0
        self.finished = False
        self._jacobian_norm: bool | None = None  # whether the parts carry norms; set by the first part

    def append(self, part: SliceResult) -> None:
        if self.finished:
            raise ValueError("cannot append tiles to a finished slice")
        arrays = _rows(part)
        has_norm = part.jacobian_norm is not None
        first = self._jacobian_norm is None
        if not first and has_norm != self._jacobian_norm:
            raise ValueError("every part of a slice carries jacobian_norm, or none does")
        # the first part brings offsets[0] = 0; each later one continues after the vertices so far
        arrays["offsets"] = (arrays["offsets"] if first else arrays["offsets"][1:]) + self.vertices
        for name, array in arrays.items():
            if first:
                put_growing(self.group, name, array)
            else:
                append_rows(self.group[name], array)
        self._jacobian_norm = has_norm
        self.regions += len(part.offsets) - 1
        self.vertices += len(part.vertices)

    def finish(self, meta: SliceResult) -> None:
        if self.finished:
            raise ValueError("the slice is already finished")
        if self._jacobian_norm is None:
            self.append(_no_tiles(meta))
        group = self.group
        codes = group["codes"]
        # a reader needs the layout to unpack a code into per-node neuron signs
        codes.attrs["bit_order"] = "most significant bit first (numpy.packbits), nodes in order"
        codes.attrs["node_names"] = strings(meta.node_names)
        codes.attrs["node_kinds"] = strings(meta.node_kinds)
        codes.attrs["node_code_bits"] = np.asarray(meta.node_code_bits, dtype=np.int64)
        put(group, "tiles_per_node", np.asarray(meta.tiles_per_node, dtype=np.int64))
        group.attrs["origin"] = meta.origin
        group.attrs["directions"] = meta.directions
        group.attrs["domain"] = meta.domain
        group.attrs["norm"] = meta.norm
        group.attrs["seconds"] = float(meta.seconds)
        if meta.anchors is not None:
            group.attrs["anchors"] = meta.anchors
        if meta.verify is not None:
            group.attrs["verify"] = json.dumps(meta.verify)
        self.finished = True


def write(group: h5py.Group, result: SliceResult) -> None:
    appender = SliceAppender(group)
    appender.append(result)
    appender.finish(result)


def read(group: h5py.Group) -> SliceResult:
    return read_part(group, 0, tiles(group))


def tiles(group: h5py.Group) -> int:
    return group["offsets"].shape[0] - 1


def read_part(group: h5py.Group, start: int, stop: int, boundary: slice = slice(None)) -> SliceResult:
    """Tiles start:stop of a slice group (offsets local, from 0), with the boundary segments `boundary`."""
    offsets = group["offsets"][start : stop + 1]
    first, last = int(offsets[0]), int(offsets[-1])
    arrays = {name: group[name][start:stop] for name in PER_TILE if name in group}
    arrays |= {name: group[name][first:last] for name in PER_VERTEX}
    arrays.setdefault("jacobian_norm", None)
    codes = group["codes"]
    attrs = group.attrs
    return SliceResult(
        **arrays,
        offsets=offsets - offsets.dtype.type(first),
        boundary=group["boundary"][boundary],
        origin=attrs["origin"],
        directions=attrs["directions"],
        domain=attrs["domain"],
        node_names=string_list(codes.attrs["node_names"]),
        node_kinds=string_list(codes.attrs["node_kinds"]),
        node_code_bits=[int(b) for b in codes.attrs["node_code_bits"]],
        norm=str(attrs["norm"]),
        anchors=attrs.get("anchors"),
        tiles_per_node=[int(t) for t in group["tiles_per_node"][()]],
        seconds=float(scalar(attrs["seconds"])),
        verify=json.loads(attrs["verify"]) if "verify" in attrs else None,
    )


def _rows(part: SliceResult) -> dict[str, np.ndarray]:
    """The part's arrays as the datasets hold them, after checking that they describe the same tiles."""
    offsets = np.asarray(part.offsets)
    regions, vertices = len(offsets) - 1, len(part.vertices)
    if regions < 0 or offsets[0] != 0 or offsets[-1] != vertices:
        raise ValueError(f"a part's offsets must run from 0 to its {vertices} vertices, got {offsets}")
    arrays = {
        "vertices": np.asarray(part.vertices),
        "offsets": offsets,
        "affine_A": np.asarray(part.affine_A),
        "affine_c": np.asarray(part.affine_c),
        "boundary": np.asarray(part.boundary),
        "edge_node": np.asarray(part.edge_node),
        "codes": np.asarray(part.codes, dtype=np.uint8),
    }
    if part.jacobian_norm is not None:
        arrays["jacobian_norm"] = np.asarray(part.jacobian_norm)
    for name in PER_TILE:
        if name in arrays and len(arrays[name]) != regions:
            raise ValueError(f"a part with {regions} tiles has {len(arrays[name])} rows of {name}")
    if len(arrays["edge_node"]) != vertices:
        raise ValueError(f"a part with {vertices} vertices has {len(arrays['edge_node'])} edge_node entries")
    return {name: arrays[name] for name in ARRAYS if name in arrays}


def _no_tiles(meta: SliceResult) -> SliceResult:
    """`meta` with none of its tiles: what a slice that found no tile writes."""
    empty = {
        name: None if getattr(meta, name) is None else np.asarray(getattr(meta, name))[:0]
        for name in [*PER_VERTEX, *PER_TILE, "boundary"]
    }
    return dataclasses.replace(meta, **empty, offsets=np.zeros(1, dtype=np.asarray(meta.offsets).dtype))


# A trajectory: group attrs `steps` and `checkpoints`, dataset `data_points` [N, 2]; one
# `splinetool.slice` subgroup per checkpoint named by its step, holding a `placement` subgroup
# (attrs `delta`, `bin_edges`; per target a subgroup with dataset `density` and the shares as attrs).
TRAJECTORY_ENCODING_TYPE = "splinetool.slice_trajectory"
TRAJECTORY_ENCODING_VERSION = "0.1.0"
WITHIN = {
    "tiles_within": "tiles_within_delta",
    "edges_within": "edges_within_delta",
    "area_within": "area_within_delta",
}


def write_trajectory(group: h5py.Group, result: SliceTrajectory) -> None:
    group.attrs["steps"] = np.asarray(result.steps, dtype=np.int64)
    group.attrs["checkpoints"] = strings(result.checkpoints)
    put(group, "data_points", np.asarray(result.data, dtype=np.float64).reshape(-1, 2))
    for step, one, placement in zip(result.steps, result.slices, result.placements):
        sub = group.create_group(str(step), track_order=True)
        sub.attrs["encoding-type"] = ENCODING_TYPE
        sub.attrs["encoding-version"] = ENCODING_VERSION
        write(sub, one)
        _write_placement(sub.create_group("placement", track_order=True), placement)


def read_trajectory(group: h5py.Group) -> SliceTrajectory:
    steps = [int(s) for s in group.attrs["steps"]]
    subgroups = [group[str(step)] for step in steps]
    return SliceTrajectory(
        steps,
        string_list(group.attrs["checkpoints"]),
        [read(sub) for sub in subgroups],
        [_read_placement(sub["placement"]) for sub in subgroups],
        group["data_points"][()],
    )


def _write_placement(group: h5py.Group, placement: Placement) -> None:
    group.attrs["delta"] = placement.delta
    group.attrs["bin_edges"] = placement.bin_edges
    for target in TARGETS:
        sub = group.create_group(target, track_order=True)
        put(sub, "density", np.asarray(placement.density[target], dtype=np.float64))
        for field, name in WITHIN.items():
            sub.attrs[name] = getattr(placement, field)[target]


def _read_placement(group: h5py.Group) -> Placement:
    within = {
        field: {t: float(scalar(group[t].attrs[name])) for t in TARGETS} for field, name in WITHIN.items()
    }
    density = {target: group[target]["density"][()] for target in TARGETS}
    return Placement(group.attrs["bin_edges"], float(scalar(group.attrs["delta"])), density, **within)
