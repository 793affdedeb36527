"""splinetool: the geometry of deep networks as affine splines, measured on saved checkpoints."""

import importlib
import pkgutil

# what `import splinetool` offers, each loaded on first use: torch takes seconds to import, and the
# command line imports this package before it knows whether a command will run at all
LAZY_NAMES = {
    "LoadedModel": "splinetool.frontends.loading",
    "load_model": "splinetool.frontends.loading",
    "PLNet": "splinetool.ir",
    "lower": "splinetool.ir",
}
# every module and package here (but __main__, which runs the command line), found on disk unimported
SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str) -> object:
    if name in LAZY_NAMES:
        value = getattr(importlib.import_module(LAZY_NAMES[name]), name)
    elif name in SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # found once: later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY_NAMES, *SUBMODULES})


def slice(model, plane, **options):  # noqa: A001 - the command's name
    """Exact tiles of a planar slice; `options` are those of splinetool.analyses.slice.SliceOptions.

    `model` is a PLNet or anything `lower` accepts (a LoadedModel, nn.Module, ...); `plane` is a
    splinetool.analyses.plane.Plane.
    """
    import torch

    from splinetool.analyses.slice import SliceOptions, run
    from splinetool.ir import PLNet, lower

    net = model if isinstance(model, PLNet) else lower(model).to(dtype=torch.float64)
    return run(net, plane, SliceOptions(**options))


__all__ = ["LoadedModel", "PLNet", "load_model", "lower", "slice"]
