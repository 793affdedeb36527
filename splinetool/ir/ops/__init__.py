"""Op handlers, one module per family; importing this package registers them all."""

from splinetool.ir.ops import activation, arith, conv, linear, maxpool, norm, output, pool, shape

__all__ = ["activation", "arith", "conv", "linear", "maxpool", "norm", "output", "pool", "shape"]
