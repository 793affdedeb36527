"""Figures drawn with matplotlib's Figure/Axes API: no pyplot, no global state, headless."""

from splinetool.render.slice import COLOURINGS, draw_slice, draw_slice_file, save_figure

__all__ = ["COLOURINGS", "draw_slice", "draw_slice_file", "save_figure"]
