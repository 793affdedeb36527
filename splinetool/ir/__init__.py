"""The piecewise-linear intermediate representation: lower a model, then ask it for its geometry."""

from splinetool.ir.lower import lower
from splinetool.ir.plnet import PLNet, PLNode

__all__ = ["PLNet", "PLNode", "lower"]
