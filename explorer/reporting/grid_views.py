"""Figures for tables on a patch grid (``PositionEmbedding.grid``): images laid out as the image's patches are,
row 0 at the top: ``grid_image``, shared by the grid sections."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColorBar, CustomJSHover, HoverTool, LinearColorMapper, Range1d
from bokeh.palettes import Viridis256

from explorer.reporting import figures
from explorer.reporting.encoding import DIVERGING

#: Pixels on the longer side of one grid image and of the tiled overview: with the picker beside the tiles a
#: block stays within 916 px, one column of a two-table page at 1920 px.
IMAGE_SIZE = 270
TILES_SIZE = 430


def _image_figure(title: str, height: int, width: int, size: int, name: str,
                  x_start: float = 0.0, y_start: float = 0.0):
    """A figure showing an ``height x width`` image at ``size`` pixels on its longer side, row 0 at the top."""
    scale = size / max(height, width)
    # the frame's own size (not the figure's) keeps every patch square whatever the axes and colour bar take
    fig = figures.figure(title, name, frame_width=max(int(width * scale), 60), frame_height=max(int(height * scale), 60),
                         x_range=Range1d(x_start, x_start + width), y_range=Range1d(y_start + height, y_start),
                         title_size="11pt")
    fig.grid.visible = False
    return fig


def grid_image(values: np.ndarray, title: str, name: str, limit: float | None = None, *, size: int = IMAGE_SIZE,
               x_start: float = 0.0, y_start: float = 0.0, x_label: str = "column", y_label: str = "row",
               value_label: str = "value", cosine: bool = False):
    """One image of grid values: cosines (``cosine``) on Viridis over [-1, 1] as in the ViT paper's figure, anything
    else on a symmetric diverging scale (±``limit``, default the largest |value|)."""
    height, width = values.shape
    finite = values[np.isfinite(values)]
    top = limit if limit is not None else (float(np.abs(finite).max()) if finite.size else 1.0) or 1.0
    fig = _image_figure(title, height, width, size, name, x_start, y_start)
    palette = Viridis256 if cosine else DIVERGING
    mapper = LinearColorMapper(palette=palette, low=-1.0 if cosine else -top, high=1.0 if cosine else top,
                               nan_color="white")
    # the y axis runs downwards (_image_figure), so the array's row 0, drawn at y_start, is at the top
    image = fig.image(image=[np.ascontiguousarray(values, dtype=np.float32)], x=x_start, y=y_start, dw=width,
                      dh=height, color_mapper=mapper)
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, padding=2), "right")
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    # a cell spans [k, k + 1) from an integer start, [k - 0.5, k + 0.5) from a half-integer one (lags)
    cell = CustomJSHover(code="return String(Math.floor(value + START))".replace("START", repr(x_start % 1.0)))
    # the hover reads the image alone (not the picker's marker drawn over it)
    fig.add_tools(HoverTool(renderers=[image], tooltips=[(y_label, "$y{custom}"), (x_label, "$x{custom}"),
                                                         (value_label, "@image{0.000}")],
                            formatters={"$x": cell, "$y": cell}))
    return fig
