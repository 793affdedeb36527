"""Convolutions of any dimension, stride, padding, dilation and groups, transposed or not."""

from splinetool.ir.context import LoweringContext, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles, tensor_arguments

CONV = OpFamily("conv", trained_parameters=tensor_arguments)


@handles(
    CONV,
    "conv1d",
    "conv2d",
    "conv3d",
    "convolution",
    "_convolution",
    "conv_transpose1d",
    "conv_transpose2d",
)
def lower_conv(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "a convolution with weights")
    return ctx.add(fn, args, kwargs)
