"""The `splinetool.count` and `splinetool.count_sweep` encodings of count-regions results."""

from __future__ import annotations

import h5py
import numpy as np

from splinetool.analyses.count_regions import PlaneCount, RegionCount, SampledCount, SegmentCount
from splinetool.analyses.count_regions_sweep import SweepResult
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.count"
ENCODING_VERSION = "0.1.0"
SWEEP_ENCODING_TYPE = "splinetool.count_sweep"
SWEEP_ENCODING_VERSION = "0.1.0"

# one encoding for every method: the `method` attribute says which result type a group holds
TYPES = {kind.method: kind for kind in (SegmentCount, PlaneCount, SampledCount)}
# each type's scalar fields, stored as attributes after the common ones
SCALARS = {
    SegmentCount: ("distinct_regions",),
    PlaneCount: (),
    SampledCount: ("samples", "estimate", "singletons", "doubletons", "sampling"),
}


def write(group: h5py.Group, result: RegionCount) -> None:
    put(group, "per_layer", np.asarray(result.per_layer, dtype=np.int64))
    for name in result.PER_ITEM:
        if name == "piece_codes":  # the codes go with their bit order
            codes = put(group, name, np.asarray(result.piece_codes, dtype=np.uint8))
            codes.attrs["bit_order"] = "most significant bit first (numpy.packbits), nodes in order"
        else:
            put(group, name, getattr(result, name))
    attrs = group.attrs
    attrs["method"] = result.method
    attrs["regions"] = int(result.regions)
    attrs["node_names"] = strings(result.node_names)
    attrs["node_kinds"] = strings(result.node_kinds)
    attrs["node_code_bits"] = np.asarray(result.node_code_bits, dtype=np.int64)
    attrs["dtype"] = result.dtype
    attrs["seconds"] = float(result.seconds)
    for name in SCALARS[type(result)]:
        attrs[name] = getattr(result, name)
    if isinstance(result, SegmentCount):
        put(group, "distinct_per_layer", np.asarray(result.distinct_per_layer, dtype=np.int64))
    if isinstance(result, PlaneCount) and result.region_keys is not None:
        # several planes: the keys of the regions they met, so that shards merge by their union
        attrs["distinct_regions"] = int(result.distinct_regions)
        keys = put(group, "region_keys", np.asarray(result.region_keys, dtype=np.uint8))
        keys.attrs["key"] = "packed activation code, zero-padded, up to 16 bytes; else its BLAKE2b-128 digest"


def read(group: h5py.Group) -> RegionCount:
    attrs = group.attrs
    kind = TYPES[str(scalar(attrs["method"]))]
    extra = {}
    if kind is SegmentCount:
        extra["distinct_per_layer"] = [int(v) for v in group["distinct_per_layer"][()]]
    if kind is PlaneCount and "region_keys" in group:  # files written before it have no keys
        extra["region_keys"] = group["region_keys"][()]
        extra["distinct_regions"] = int(scalar(attrs["distinct_regions"]))
    return kind(
        regions=int(scalar(attrs["regions"])),
        per_layer=[int(v) for v in group["per_layer"][()]],
        node_names=string_list(attrs["node_names"]),
        node_kinds=string_list(attrs["node_kinds"]),
        node_code_bits=[int(v) for v in attrs["node_code_bits"]],
        dtype=str(scalar(attrs["dtype"])),
        seconds=float(scalar(attrs["seconds"])),
        **{name: group[name][()] for name in kind.PER_ITEM},
        **{name: scalar(attrs[name]) for name in SCALARS[kind]},
        **extra,
    )


def write_sweep(group: h5py.Group, result: SweepResult) -> None:
    table = group.create_group("table", track_order=True)
    for name in ("depth", "width", "seed"):
        put(table, name, np.asarray(getattr(result, name), dtype=np.int64))
    put(table, "regions", np.asarray(result.regions, dtype=np.float64))
    # prefix counts are ragged (one per layer): flattened in row order
    put(table, "per_layer", np.asarray([c for row in result.per_layer for c in row], dtype=np.int64))
    attrs = group.attrs
    for name in ("family", "method", "measure", "init", "config"):
        attrs[name] = getattr(result, name)
    attrs["neurons"] = int(result.neurons)
    attrs["seconds"] = float(result.seconds)


def read_sweep(group: h5py.Group) -> SweepResult:
    table, attrs = group["table"], group.attrs
    depth = table["depth"][()]
    flat = table["per_layer"][()].tolist()
    ends = np.cumsum(depth)
    per_layer = [flat[e - d : e] for d, e in zip(depth.tolist(), ends.tolist())]
    return SweepResult(
        family=str(scalar(attrs["family"])),
        neurons=int(scalar(attrs["neurons"])),
        depth=depth,
        width=table["width"][()],
        seed=table["seed"][()],
        regions=table["regions"][()],
        method=str(scalar(attrs["method"])),
        measure=str(scalar(attrs["measure"])),
        init=str(scalar(attrs["init"])),
        config=str(scalar(attrs["config"])),
        seconds=float(scalar(attrs["seconds"])),
        per_layer=per_layer,
    )
