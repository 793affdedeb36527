"""Fully connected layers: linear, addmm, mm, matmul with a constant weight."""

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles, tensor_arguments

LINEAR = OpFamily("linear", trained_parameters=tensor_arguments)


@handles(LINEAR, "linear", "mm", "matmul")
def lower_linear(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "a product")
    if args[0].example.dim() < 2:
        raise NotLowerable("needs a batch of vectors")
    return ctx.add(fn, args, kwargs)


@handles(LINEAR, "addmm")
def lower_addmm(ctx: LoweringContext, fn, args, kwargs):
    # addmm(bias, x, weight.T): the network value must be the left matrix so rows stay samples
    require_dynamic_only_at(args, {1}, "a product")
    return ctx.add(fn, args, kwargs)
