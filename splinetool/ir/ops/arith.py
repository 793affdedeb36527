"""Sums, differences and scalings: affine as long as no two network values are multiplied."""

from splinetool.ir.context import LoweringContext, NotLowerable, dyn_positions
from splinetool.ir.registry import OpFamily, handles

ADD = OpFamily("add")
SCALE = OpFamily("scale")


@handles(ADD, "add", "sub", "rsub", "neg")
def lower_sum(ctx: LoweringContext, fn, args, kwargs):
    return ctx.add(fn, args, kwargs)


@handles(SCALE, "mul")
def lower_scale(ctx: LoweringContext, fn, args, kwargs):
    if len(dyn_positions(args)) > 1:
        raise NotLowerable("a product of two network values is not piecewise-linear")
    return ctx.add(fn, args, kwargs)


@handles(SCALE, "div")
def lower_divide(ctx: LoweringContext, fn, args, kwargs):
    if dyn_positions(args) != [0] or kwargs.get("rounding_mode") is not None:
        raise NotLowerable("only division of a network value by a constant is affine")
    return ctx.add(fn, args, kwargs)
