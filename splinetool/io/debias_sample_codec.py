"""The `splinetool.debias_sample` encoding of a DebiasResult, and `splinetool.debias_sample_share` of a
PoolShare (one share of the pool, in the shard files of `debias-sample --shard i/n`).

Several ρ share one pool: the per-ρ datasets (`rho`, `weights`, `selected_index`, `latents`,
`samples`, `ess`) carry a leading ρ axis, one row per ρ in the order given (also for a single ρ).
"""

from __future__ import annotations

import h5py
import numpy as np

from splinetool.analyses.debias_sample import DebiasResult, LatentMeasures, Plan, PoolShare
from splinetool.io.storage import put, scalar, string_list, strings

ENCODING_TYPE = "splinetool.debias_sample"
ENCODING_VERSION = "0.1.0"
SHARE_ENCODING_TYPE = "splinetool.debias_sample_share"
SHARE_ENCODING_VERSION = "0.1.0"
# datasets stored as they are, with what their axes mean
ARRAYS = {
    "pool_latents": ["pool", "latent"],
    "log_volume": ["pool"],
    "singular_values": ["pool", "singular value (largest first)"],
    "tile_index": ["pool"],
    "rho": ["rho"],
    "weights": ["rho", "pool"],
    "selected_index": ["rho", "sample"],
    "ess": ["rho"],
    "baseline_index": ["sample"],
}


def write(group: h5py.Group, result: DebiasResult) -> None:
    for name, dims in ARRAYS.items():
        put(group, name, getattr(result, name)).attrs["dims"] = strings(dims)
    group["log_volume"].attrs["volume"] = result.volume_label()
    group["weights"].attrs["rule"] = "w ∝ exp(ρ · log_volume), normalised to sum 1 over the pool"
    put(group, "latents", result.latents).attrs["dims"] = strings(["rho", "sample", "latent"])
    shape = tuple(result.output_shape)
    samples = put(group, "samples", result.samples.reshape(*result.samples.shape[:2], *shape))
    samples.attrs["dims"] = strings(["rho", "sample", *["output"] * len(shape)])
    put(group, "baseline_samples", result.baseline_samples.reshape(-1, *shape)).attrs["dims"] = strings(
        ["sample", *["output"] * len(shape)]
    )
    codes = put(group, "tile_codes", np.asarray(result.tile_codes, dtype=np.uint8))
    codes.attrs["bit_order"] = "most significant bit first (numpy.packbits), nodes in order"
    codes.attrs["node_names"] = strings(result.node_names)
    codes.attrs["node_code_bits"] = np.asarray(result.node_code_bits, dtype=np.int64)
    if result.projection is not None:
        put(group, "projection", result.projection).attrs["dims"] = strings(["projected", "output"])
    attrs = group.attrs
    attrs["prior"] = result.prior
    attrs["replace"] = bool(result.replace)
    attrs["top_k"] = -1 if result.top_k is None else int(result.top_k)  # -1: every singular value
    attrs["proj_dim"] = -1 if result.proj_dim is None else int(result.proj_dim)  # -1: exact
    attrs["output_shape"] = np.asarray(shape, dtype=np.int64)
    attrs["jacobian_mode"] = result.jacobian_mode
    attrs["seed"] = int(result.seed)
    attrs["dtype"] = result.dtype
    attrs["warnings"] = strings(result.warnings)
    attrs["seconds"] = float(result.seconds)


def read(group: h5py.Group) -> DebiasResult:
    attrs = group.attrs
    samples = group["samples"][()]
    codes = group["tile_codes"]
    top_k, proj_dim = int(scalar(attrs["top_k"])), int(scalar(attrs["proj_dim"]))
    return DebiasResult(
        **{name: group[name][()] for name in ARRAYS},
        tile_codes=codes[()],
        node_names=string_list(codes.attrs["node_names"]),
        node_code_bits=[int(b) for b in codes.attrs["node_code_bits"]],
        samples=samples.reshape(*samples.shape[:2], -1),
        baseline_samples=group["baseline_samples"][()].reshape(samples.shape[1], -1),
        prior=str(scalar(attrs["prior"])),
        replace=bool(scalar(attrs["replace"])),
        top_k=None if top_k < 0 else top_k,
        proj_dim=None if proj_dim < 0 else proj_dim,
        projection=group["projection"][()] if "projection" in group else None,
        output_shape=tuple(int(s) for s in attrs["output_shape"]),
        jacobian_mode=str(scalar(attrs["jacobian_mode"])),
        seed=int(scalar(attrs["seed"])),
        dtype=str(scalar(attrs["dtype"])),
        warnings=string_list(attrs["warnings"]),
        seconds=float(scalar(attrs["seconds"])),
    )


# a share's datasets (PoolShare attributes and LatentMeasures fields) with what their axes mean
SHARE_ARRAYS = {
    "latents": ["row", "latent"],
    "singular_values": ["row", "singular value (largest first)"],
    "log_volume": ["row"],
    "codes": ["row", "code byte"],
    "candidates": ["candidate"],
    "outputs": ["candidate", "output"],
}


def write_share(group: h5py.Group, share: PoolShare) -> None:
    plan = share.plan
    arrays = vars(share.measures) | {
        name: getattr(share, name) for name in ("latents", "candidates", "outputs")
    }
    for name, dims in SHARE_ARRAYS.items():
        put(group, name, arrays[name]).attrs["dims"] = strings(dims)
    group["candidates"].attrs["meaning"] = "pool rows a draw can pick; outputs holds G of each"
    put(group, "rho", np.asarray(plan.rho, dtype=np.float64))
    if plan.projection is not None:
        put(group, "projection", plan.projection).attrs["dims"] = strings(["projected", "output"])
    attrs = group.attrs
    attrs["start"] = int(share.start)
    attrs["pool"] = int(plan.pool)
    attrs["n"] = int(plan.n)
    attrs["prior"] = plan.prior
    attrs["replace"] = bool(plan.replace)
    attrs["seed"] = int(plan.seed)
    attrs["top_k"] = -1 if plan.top_k is None else int(plan.top_k)
    attrs["proj_dim"] = -1 if plan.proj_dim is None else int(plan.proj_dim)
    attrs["output_shape"] = np.asarray(plan.output_shape, dtype=np.int64)
    attrs["jacobian_mode"] = plan.jacobian_mode
    attrs["dtype"] = plan.dtype
    attrs["node_names"] = strings(plan.node_names)
    attrs["node_code_bits"] = np.asarray(plan.node_code_bits, dtype=np.int64)
    attrs["seconds"] = float(share.seconds)


def read_share(group: h5py.Group) -> PoolShare:
    attrs = group.attrs
    top_k, proj_dim = int(scalar(attrs["top_k"])), int(scalar(attrs["proj_dim"]))
    plan = Plan(
        n=int(scalar(attrs["n"])),
        pool=int(scalar(attrs["pool"])),
        rho=tuple(float(r) for r in group["rho"][()]),
        prior=str(scalar(attrs["prior"])),
        replace=bool(scalar(attrs["replace"])),
        seed=int(scalar(attrs["seed"])),
        top_k=None if top_k < 0 else top_k,
        proj_dim=None if proj_dim < 0 else proj_dim,
        projection=group["projection"][()] if "projection" in group else None,
        output_shape=tuple(int(s) for s in attrs["output_shape"]),
        jacobian_mode=str(scalar(attrs["jacobian_mode"])),
        dtype=str(scalar(attrs["dtype"])),
        node_names=string_list(attrs["node_names"]),
        node_code_bits=[int(b) for b in attrs["node_code_bits"]],
    )
    measures = LatentMeasures(*(group[name][()] for name in ("singular_values", "log_volume", "codes")))
    return PoolShare(
        plan=plan,
        start=int(scalar(attrs["start"])),
        latents=group["latents"][()],
        measures=measures,
        candidates=group["candidates"][()],
        outputs=group["outputs"][()],
        seconds=float(scalar(attrs["seconds"])),
    )
