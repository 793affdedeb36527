"""Output transforms: geometry is measured on the logits, so these may only close the network."""

from splinetool.ir.context import LoweringContext, require_dynamic_only_at
from splinetool.ir.registry import handles


@handles("output", "softmax", "_softmax", "log_softmax", "_log_softmax", "sigmoid")
def lower_output_transform(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "an output transform")
    return ctx.add(fn, args, kwargs, output_only=True)
