"""The `splinetool.slice` encoding of a SliceResult."""

from __future__ import annotations

import json

import h5py
import numpy as np

from splinetool.analyses.slice import SliceResult
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.slice"
ENCODING_VERSION = "0.1.0"
ARRAYS = ["vertices", "offsets", "affine_A", "affine_c", "jacobian_norm", "boundary", "edge_node"]


def write(group: h5py.Group, result: SliceResult) -> None:
    for name in ARRAYS:
        put(group, name, getattr(result, name))
    codes = put(group, "codes", np.asarray(result.codes, dtype=np.uint8))
    # a reader needs the layout to unpack a code into per-node neuron signs
    codes.attrs["bit_order"] = "most significant bit first (numpy.packbits), nodes in order"
    codes.attrs["node_names"] = strings(result.node_names)
    codes.attrs["node_kinds"] = strings(result.node_kinds)
    codes.attrs["node_code_bits"] = np.asarray(result.node_code_bits, dtype=np.int64)
    put(group, "tiles_per_node", np.asarray(result.tiles_per_node, dtype=np.int64))
    group.attrs["origin"] = result.origin
    group.attrs["directions"] = result.directions
    group.attrs["domain"] = result.domain
    group.attrs["norm"] = result.norm
    group.attrs["seconds"] = float(result.seconds)
    if result.anchors is not None:
        group.attrs["anchors"] = result.anchors
    if result.verify is not None:
        group.attrs["verify"] = json.dumps(result.verify)


def read(group: h5py.Group) -> SliceResult:
    codes = group["codes"]
    attrs = group.attrs
    return SliceResult(
        **{name: group[name][()] for name in ARRAYS},
        codes=codes[()],
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
