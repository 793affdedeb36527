"""The `splinetool.bn_density` encoding of a BNDensityResult.

Layout: `x`/`y` (cell centres, dimension scales), `x_edges`/`y_edges`, `data`, optional `labels` and
`off_plane` at the top; one group per initialisation, holding one group per PL node with `density`
[G, G] (rows along y, columns along x, both axes attached as scales) and `distance_to_data` /
`linearised_distance` [points]; exact-partition edges, when kept, as `<init>/segments` and
`<init>/segment_layers`.
"""

from __future__ import annotations

import h5py
import numpy as np

from splinetool.analyses.bn_density import BNDensityResult
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.bn_density"
ENCODING_VERSION = "0.1.0"
SCALARS = {"delta": float, "exact": bool, "bias_std": float, "seed": int, "dtype": str, "seconds": float}
TEXTS = ("source", "data_source")


def _group_name(name: str) -> str:
    return name.replace("/", "|")  # '/' separates HDF5 paths; the real name is kept in an attribute


def write(group: h5py.Group, result: BNDensityResult) -> None:
    centres = {
        axis: (edges[1:] + edges[:-1]) / 2 for axis, edges in (("x", result.x_edges), ("y", result.y_edges))
    }
    scales = {}
    for axis, values in centres.items():
        scales[axis] = put(group, axis, values)
        scales[axis].make_scale(f"t{1 if axis == 'x' else 2} (cell centres)")
        put(group, f"{axis}_edges", getattr(result, f"{axis}_edges"))
    put(group, "data", result.data)
    put(group, "off_plane", result.off_plane)
    if result.labels is not None:
        put(group, "labels", result.labels)
    attrs = group.attrs
    attrs["inits"] = strings(result.inits)
    attrs["node_names"] = strings(result.node_names)
    attrs["node_layers"] = np.asarray(result.node_layers, dtype=np.int64)
    attrs["node_units"] = np.asarray(result.node_units, dtype=np.int64)
    attrs["origin"] = result.origin
    attrs["directions"] = result.directions
    attrs["measure"] = result.measure
    for name, kind in SCALARS.items():
        attrs[name] = kind(getattr(result, name))
    for name in TEXTS:
        attrs[name] = getattr(result, name)
    for i, init in enumerate(result.inits):
        per_init = group.create_group(init, track_order=True)
        for k, name in enumerate(result.node_names):
            node = per_init.create_group(_group_name(name), track_order=True)
            node.attrs["node_name"] = name
            node.attrs["layer"] = int(result.node_layers[k])
            node.attrs["share_within_delta"] = float(result.share_within_delta[i, k])
            node.attrs["boundaries_in_view"] = int(result.boundaries_in_view[i, k])
            density = put(node, "density", result.density[i, k])
            density.attrs["measure"] = result.measure
            density.dims[0].label, density.dims[1].label = "y", "x"
            density.dims[0].attach_scale(scales["y"])
            density.dims[1].attach_scale(scales["x"])
            put(node, "distance_to_data", result.distance_to_data[i, k]).attrs["in"] = "plane"
            put(node, "linearised_distance", result.linearised_distance[i, k]).attrs["in"] = "input space"
        if result.segments is not None:
            put(per_init, "segments", result.segments[i])
            put(per_init, "segment_layers", np.asarray(result.segment_layers[i], dtype=np.int64))


def read(group: h5py.Group) -> BNDensityResult:
    attrs = group.attrs
    inits = string_list(attrs["inits"])
    names = string_list(attrs["node_names"])
    nodes = [[group[init][_group_name(name)] for name in names] for init in inits]

    def stacked(key: str) -> np.ndarray:
        return np.stack([np.stack([node[key][()] for node in row]) for row in nodes])

    def node_attrs(key: str, kind) -> np.ndarray:
        return np.array([[node.attrs[key] for node in row] for row in nodes], dtype=kind)

    kept = all("segments" in group[init] for init in inits)
    return BNDensityResult(
        inits=inits,
        node_names=names,
        node_layers=[int(v) for v in attrs["node_layers"]],
        node_units=[int(v) for v in attrs["node_units"]],
        density=stacked("density"),
        boundaries_in_view=node_attrs("boundaries_in_view", np.int64),
        distance_to_data=stacked("distance_to_data"),
        linearised_distance=stacked("linearised_distance"),
        share_within_delta=node_attrs("share_within_delta", np.float64),
        x_edges=group["x_edges"][()],
        y_edges=group["y_edges"][()],
        data=group["data"][()],
        labels=group["labels"][()] if "labels" in group else None,
        off_plane=group["off_plane"][()],
        origin=attrs["origin"],
        directions=attrs["directions"],
        segments=[group[init]["segments"][()] for init in inits] if kept else None,
        segment_layers=[group[init]["segment_layers"][()] for init in inits] if kept else None,
        **{name: kind(scalar(attrs[name])) for name, kind in SCALARS.items()},
        **{name: str(scalar(attrs[name])) for name in TEXTS},
    )
