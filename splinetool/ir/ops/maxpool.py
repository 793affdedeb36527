"""Max-pooling: an arg-max node whose code is the winning position of each window."""

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.pl import ArgmaxKind
from splinetool.ir.registry import OpFamily, handles

MAX_POOL = OpFamily("max-pool", piecewise=True)

_NDIM = {"max_pool1d": 1, "max_pool2d": 2, "max_pool3d": 3}


@handles(
    MAX_POOL,
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool1d_with_indices",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
)
def lower_max_pool(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "pooling")
    base = ctx.op.removesuffix("_with_indices")
    ndim = _NDIM[base]
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    defaults = (None, (), 0, 1, False)
    values = [
        args[i + 1] if len(args) > i + 1 else kwargs.get(n, d)
        for i, (n, d) in enumerate(zip(names, defaults))
    ]
    kernel = _tuple(values[0], ndim)
    stride = _tuple(values[1], ndim) if values[1] not in ((), [], None) else kernel
    kind = ArgmaxKind(
        "maxpool", ndim, kernel, stride, _tuple(values[2], ndim), _tuple(values[3], ndim), bool(values[4])
    )
    pick = 0 if ctx.op.endswith("_with_indices") else None
    return ctx.add(fn, args, kwargs, pl=kind, pick=pick)


def _tuple(value, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * ndim
    if len(value) != ndim:
        raise NotLowerable(f"expects {ndim} pooling sizes, got {len(value)}")
    return value
