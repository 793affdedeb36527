"""splinetool: the geometry of deep networks as affine splines, measured on saved checkpoints."""

from splinetool.frontends.loading import LoadedModel, load_model
from splinetool.ir import PLNet, lower


def slice(model, plane, **options):  # noqa: A001 - the command's name
    """Exact tiles of a planar slice; `options` are those of splinetool.analyses.slice.SliceOptions.

    `model` is a PLNet or anything `lower` accepts (a LoadedModel, nn.Module, ...); `plane` is a
    splinetool.analyses.plane.Plane.
    """
    from splinetool.analyses.slice import SliceOptions, run

    net = model if isinstance(model, PLNet) else lower(model).to(dtype=__import__("torch").float64)
    return run(net, plane, SliceOptions(**options))


__all__ = ["LoadedModel", "PLNet", "load_model", "lower", "slice"]
