"""Output transforms: geometry is measured on the logits, so these may only close the network."""

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles

OUTPUT = OpFamily("output")


@handles(OUTPUT, "softmax", "_softmax", "log_softmax", "_log_softmax", "sigmoid")
def lower_output_transform(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "an output transform")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 1)
    if ctx.op != "sigmoid" and dim % args[0].example.dim() == 0:
        raise NotLowerable("normalises over the batch dimension")
    return ctx.add(fn, args, kwargs, output_only=True)
