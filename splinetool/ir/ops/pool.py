"""Average pooling and means over feature dimensions: linear maps."""

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles

AVG_POOL = OpFamily("avg-pool")


@handles(
    AVG_POOL,
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
)
def lower_avg_pool(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "pooling")
    return ctx.add(fn, args, kwargs)


@handles(AVG_POOL, "mean", "sum")
def lower_reduction(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "a reduction")
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    rank = args[0].example.dim()
    if not dims or any(d % rank == 0 for d in ([dims] if isinstance(dims, int) else dims)):
        raise NotLowerable("reduces over the batch dimension")
    return ctx.add(fn, args, kwargs)
