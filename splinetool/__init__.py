"""splinetool: the geometry of deep networks as affine splines, measured on saved checkpoints."""

from splinetool.frontends.loading import LoadedModel, load_model
from splinetool.ir import PLNet, lower

__all__ = ["LoadedModel", "PLNet", "load_model", "lower"]
