"""Batch normalisation in evaluation mode: a fixed per-channel affine map."""

import torch

from splinetool.ir.context import LoweringContext, NotLowerable, require_dynamic_only_at
from splinetool.ir.registry import OpFamily, handles


def _affine_parameters(args: tuple) -> tuple[int, ...]:
    # (input, weight, bias, running_mean, running_var, ...): the running statistics are not trained
    return tuple(i for i in (1, 2) if isinstance(args[i], torch.Tensor))


BATCH_NORM = OpFamily("batch-norm", trained_parameters=_affine_parameters)
_TRAINING_MODE = "batch-norm in training mode depends on the whole batch; save the model after model.eval()"


@handles(BATCH_NORM, "batch_norm", "native_batch_norm")
def lower_batch_norm(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "batch-norm statistics")
    training = args[5] if len(args) > 5 else kwargs.get("training", False)
    if training:
        raise NotLowerable(_TRAINING_MODE)
    pick = 0 if ctx.op == "native_batch_norm" else None
    return ctx.add(fn, args, kwargs, pick=pick)


@handles(BATCH_NORM, "_native_batch_norm_legit_no_training")
def lower_batch_norm_eval(ctx: LoweringContext, fn, args, kwargs):
    require_dynamic_only_at(args, {0}, "batch-norm statistics")
    return ctx.add(fn, args, kwargs, pick=0)


@handles(BATCH_NORM, "_native_batch_norm_legit", "_native_batch_norm_legit_functional")
def refuse_batch_norm_training(ctx: LoweringContext, fn, args, kwargs):
    raise NotLowerable(_TRAINING_MODE)
