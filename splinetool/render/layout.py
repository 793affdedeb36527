"""Placing what annotates a figure: colour bars as tall as their axes, legends beside the data, notes."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

BAR_PAD_INCHES = 0.1
BAR_WIDTH_INCHES = 0.15
NOTE_BOX = {"boxstyle": "round,pad=0.25", "facecolor": "white", "alpha": 0.8, "edgecolor": "none"}


class _Beside:
    """An axes locator: a strip right of `axes`, from the lowest one's bottom to the highest one's top.

    Called at draw time, after the layout has placed the axes and their aspect has shrunk them, so
    the strip follows the axes as drawn rather than the grid cells they were given.
    """

    def __init__(self, fig: Figure, axes: Sequence[Axes]):
        self.fig, self.axes = fig, list(axes)

    def __call__(self, strip: Axes, renderer) -> Bbox:
        for ax in self.axes:
            ax.apply_aspect()
        drawn = Bbox.union([ax.get_position(original=False) for ax in self.axes])
        strip.set_box_aspect(None)  # the layout gives colour bars a 20:1 box, which would shorten it
        width_inches = self.fig.get_size_inches()[0]
        left = drawn.x1 + BAR_PAD_INCHES / width_inches
        return Bbox.from_bounds(left, drawn.y0, BAR_WIDTH_INCHES / width_inches, drawn.height)


def colour_bar_beside(fig: Figure, mappable, axes: Sequence[Axes], label: str):
    """A colour bar right of `axes` (their right-most column), exactly as tall as they are drawn.

    The layout makes room for it as for any colour bar; at draw time it is moved to the height of
    the axes as their aspect has shrunk them, rather than that of the grid cells they were given.
    """
    bar = fig.colorbar(mappable, ax=list(axes), label=label)
    bar.ax.set_axes_locator(_Beside(fig, axes))
    return bar


def legend_beside(fig: Figure, handles: list, **options) -> None:
    """A figure legend outside every axes, right of them, where it can never cover data."""
    if handles:
        options = {"fontsize": 7, "frameon": False, **options}
        fig.legend(handles=handles, loc="outside right center", **options)


def legend_right_of(ax: Axes, **options):
    """The legend of `ax` just right of its frame, outside the data area; the layout makes room."""
    options = {"fontsize": 7, "frameon": False, **options}
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **options)


def note(ax: Axes, text: str, x: float = 0.01, y: float = 0.01, **options):
    """Text in axes coordinates on a semi-opaque white box: legible over any colour beneath it."""
    options = {"fontsize": 7, "color": "black", "zorder": 6, **options}
    return ax.text(x, y, text, transform=ax.transAxes, bbox=NOTE_BOX, **options)
