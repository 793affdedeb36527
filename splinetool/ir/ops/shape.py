"""Reshapes, views, selections, concatenation, padding and no-ops: linear maps that move entries.

Exported graphs bake the example batch size into reshape targets, so reshapes are rebuilt from the
per-sample shape they produced and work for any batch size.
"""

from splinetool.ir.context import Dyn, LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles

RESHAPE = OpFamily("reshape")
IDENTITY = OpFamily("identity")
DROPOUT = OpFamily("dropout")
SELECT = OpFamily("select")
PERMUTE = OpFamily("permute")
CONCAT = OpFamily("concat")
PAD = OpFamily("pad")


def reshape_batch(x, per_sample_shape):
    return x.reshape(x.shape[0], *per_sample_shape)


@handles(RESHAPE, "view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze")
def lower_reshape(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "a reshape")
    source = args[0]
    out = fn(source.example, *args[1:], **kwargs)
    if out.dim() == 0 or out.shape[0] != ctx.batch or out[0].numel() != source.example[0].numel():
        raise NotLowerable("mixes samples of the batch (reshape must keep the first dimension)")
    return ctx.add(reshape_batch, (source, tuple(out.shape[1:])))


@handles(IDENTITY, "clone", "contiguous", "detach", "alias", "lift_fresh_copy")
def lower_identity(ctx: LoweringContext, fn, args, kwargs) -> Dyn:
    require_dynamic_only_at(args, {0}, "a copy")
    return args[0]


@handles(DROPOUT, "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout")
def lower_dropout(ctx: LoweringContext, fn, args, kwargs) -> Dyn:
    training = args[2] if len(args) > 2 else kwargs.get("train", False)
    if training:
        raise NotLowerable("dropout in training mode is random; save the model after model.eval()")
    return args[0]


def _keeps_batch(dim: int, rank: int) -> bool:
    return dim % rank != 0


@handles(SELECT, "select", "slice", "narrow")
def lower_select(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "an index")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not _keeps_batch(dim, args[0].example.dim()):
        if ctx.op == "slice" and _whole_range(args, ctx.batch):
            return args[0]  # x[:, ...] recorded as a slice of the batch dimension that keeps it all
        raise NotLowerable("indexes the batch dimension")
    return ctx.add(fn, args, kwargs)


def _whole_range(args: tuple, batch: int) -> bool:
    start = args[2] if len(args) > 2 else None
    end = args[3] if len(args) > 3 else None
    step = args[4] if len(args) > 4 else 1
    return start in (None, 0) and (end is None or end >= batch) and step == 1


@handles(PERMUTE, "permute", "transpose")
def lower_permute(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "a permutation")
    rank = args[0].example.dim()
    dims = list(args[1]) if ctx.op == "permute" else [args[1], args[2]]
    if ctx.op == "permute" and dims[0] % rank != 0 or ctx.op == "transpose" and 0 in [d % rank for d in dims]:
        raise NotLowerable("moves the batch dimension")
    return ctx.add(fn, args, kwargs)


@handles(CONCAT, "cat", "concat", "stack")
def lower_cat(ctx: LoweringContext, fn, args, kwargs):
    tensors = args[0]
    rank = next(t.example.dim() for t in tensors if isinstance(t, Dyn))
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    rank += 1 if ctx.op == "stack" else 0
    if not _keeps_batch(dim, rank):
        raise NotLowerable("concatenates along the batch dimension")
    if not all(isinstance(t, Dyn) for t in tensors):
        raise NotLowerable("concatenates network values with constants")
    return ctx.add(fn, args, kwargs)


# every padding mode copies entries (or adds a constant): an affine map
@handles(
    PAD,
    "constant_pad_nd",
    "pad",
    "reflection_pad1d",
    "reflection_pad2d",
    "replication_pad1d",
    "replication_pad2d",
    "_pad_circular",
)
def lower_pad(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "padding")
    pads = list(args[1])
    rank = args[0].example.dim()
    if len(pads) >= 2 * rank:
        raise NotLowerable("pads the batch dimension")
    return ctx.add(fn, args, kwargs)
