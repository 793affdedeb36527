"""Elementwise piecewise-linear activations with fixed breakpoints: sign nodes (splinetool/ir/pl.py)."""

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.pl import SignKind
from splinetool.ir.registry import OpFamily, handles, tensor_arguments

RELU = OpFamily("relu", piecewise=True)
LEAKY_RELU = OpFamily("leaky-relu", piecewise=True)
PRELU = OpFamily("prelu", trained_parameters=tensor_arguments, piecewise=True)  # the slopes
ABS = OpFamily("abs", piecewise=True)
HARDTANH = OpFamily("hardtanh", piecewise=True)
SOFTSHRINK = OpFamily("softshrink", piecewise=True)


def _sign_node(ctx: LoweringContext, fn, args, kwargs, kind: str, thresholds: tuple[float, ...]):
    require_dynamic_only_at(args, {0}, "an activation")
    return ctx.add(fn, args, kwargs, pl=SignKind(kind, thresholds))


@handles(RELU, "relu")
def lower_relu(ctx, fn, args, kwargs):
    return _sign_node(ctx, fn, args, kwargs, "relu", (0.0,))


@handles(LEAKY_RELU, "leaky_relu")
def lower_leaky_relu(ctx, fn, args, kwargs):
    return _sign_node(ctx, fn, args, kwargs, "leaky_relu", (0.0,))


@handles(PRELU, "prelu", "_prelu_kernel")
def lower_prelu(ctx, fn, args, kwargs):
    return _sign_node(ctx, fn, args, kwargs, "prelu", (0.0,))


@handles(ABS, "abs")
def lower_abs(ctx, fn, args, kwargs):
    return _sign_node(ctx, fn, args, kwargs, "abs", (0.0,))


@handles(HARDTANH, "hardtanh")
def lower_hardtanh(ctx, fn, args, kwargs):
    low = float(args[1]) if len(args) > 1 else float(kwargs.get("min_val", -1.0))
    high = float(args[2]) if len(args) > 2 else float(kwargs.get("max_val", 1.0))
    return _sign_node(ctx, fn, args, kwargs, "hardtanh", _ordered(low, high))


@handles(HARDTANH, "relu6")
def lower_relu6(ctx, fn, args, kwargs):
    return _sign_node(ctx, fn, args, kwargs, "hardtanh", (0.0, 6.0))


@handles(HARDTANH, "clamp", "clip", "clamp_min", "clamp_max")
def lower_clamp(ctx, fn, args, kwargs):
    if ctx.op in ("clamp_min", "clamp_max"):
        bounds = [args[1] if len(args) > 1 else None]
    else:
        bounds = [
            args[1] if len(args) > 1 else kwargs.get("min"),
            args[2] if len(args) > 2 else kwargs.get("max"),
        ]
    if any(b is not None and not isinstance(b, (int, float)) for b in bounds):
        raise NotLowerable("clamps to tensor bounds; only number bounds are supported")
    thresholds = tuple(float(b) for b in bounds if b is not None)
    return _sign_node(ctx, fn, args, kwargs, "hardtanh", _ordered(*thresholds))


@handles(SOFTSHRINK, "softshrink")
def lower_softshrink(ctx, fn, args, kwargs):
    # x + lambd below -lambd, 0 between, x - lambd above: two breakpoints per neuron, like hardtanh
    lambd = float(args[1]) if len(args) > 1 else float(kwargs.get("lambd", 0.5))
    return _sign_node(ctx, fn, args, kwargs, "softshrink", _ordered(-lambd, lambd))


def _ordered(*thresholds: float) -> tuple[float, ...]:
    if not thresholds:
        raise NotLowerable("clamps to no bound")
    return tuple(sorted(set(thresholds)))
