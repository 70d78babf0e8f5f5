"""Figures for tables on a patch grid (``PositionEmbedding.grid``): images laid out as the image's patches are,
row 0 at the top: ``grid_image``, shared by the grid sections."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


#: A strip of frames wraps onto another line beyond this many patch columns (about 7 px a patch at 900 px).
STRIP_CELLS = 128
#: Pixels on the longer side of a strip of frames at most: one column of a two-table page at 1920 px.
STRIP_SIZE = 860
#: Pixels above each line of a strip for its frames' labels.
LABEL_PX = 14


@dataclass(frozen=True)
class Strip:
    """How a strip lays T frames of H x W out: ``per_line`` frames a line, one blank cell between neighbours and
    ``gap`` blank rows between lines (room for the labels), ``cell`` pixels a patch."""

    frames: int
    height: int
    width: int
    lines: int
    per_line: int
    gap: int
    cell: float

    @classmethod
    def of(cls, frames: int, height: int, width: int, frame_size: int = IMAGE_SIZE) -> "Strip":
        """The layout of ``frames`` images of ``height x width``, each ``frame_size`` pixels on its longer side
        (less when the strip would pass ``STRIP_SIZE``), wrapping past ``STRIP_CELLS`` patch columns."""
        per_line = -(-frames // max(1, -(-frames * (width + 1) // STRIP_CELLS)))
        lines = -(-frames // per_line)
        across, down = per_line * (width + 1) - 1, lines * (height + 1)
        cell = min(frame_size / max(height, width), STRIP_SIZE / max(across, down))
        return cls(frames, height, width, lines, per_line, max(1, math.ceil(LABEL_PX / cell)), cell)

    @property
    def shape(self) -> tuple[int, int]:
        """The mosaic's (rows, columns)."""
        return (self.lines * (self.height + self.gap) - self.gap, self.per_line * (self.width + 1) - 1)

    def corner(self, frame: int) -> tuple[int, int]:
        """The mosaic's (row, column) of frame ``frame``'s patch (0, 0)."""
        return (frame // self.per_line) * (self.height + self.gap), (frame % self.per_line) * (self.width + 1)

    def mosaic(self, values: np.ndarray) -> np.ndarray:
        """``values`` (T x H x W) as one image, NaN between the frames."""
        mosaic = np.full(self.shape, np.nan, dtype=np.float32)
        for t in range(self.frames):
            y, x = self.corner(t)
            mosaic[y:y + self.height, x:x + self.width] = values[t]
        return mosaic

    def js_args(self) -> dict[str, int]:
        """What the browser needs to place a patch in the mosaic (``STRIP_INDEX_JS``)."""
        return {"rows": self.height, "cols": self.width, "per_line": self.per_line, "gap": self.gap}


#: Where frame ``t``, row ``r``, column ``c`` falls in a strip's mosaic (``Strip.corner`` in the browser).
STRIP_INDEX_JS = """
const strip_y = (t, r) => Math.floor(t / per_line) * (rows + gap) + r;
const strip_x = (t, c) => (t % per_line) * (cols + 1) + c;
"""

#: The strip's hover: which frame, row and column (plus each axis's start: lags run from -k) the pointer is on.
_STRIP_HOVER = """
const x = Math.floor(special_vars.x), y = Math.floor(special_vars.y);
const c = x % (cols + 1), r = y % (rows + gap);
if (x < 0 || y < 0 || c >= cols || r >= rows) return "-";
const t = Math.floor(y / (rows + gap)) * per_line + Math.floor(x / (cols + 1));
return `${t + t0}, ${r + r0}, ${c + c0}`;
"""


def frame_strip(values: np.ndarray, title: str, name: str, limit: float | None = None, *,
                starts: tuple[int, int, int] = (0, 0, 0), labels: tuple[str, str, str] = ("frame", "row", "column"),
                value_label: str = "value", cosine: bool = False, frame_size: int = IMAGE_SIZE):
    """A T x H x W array as a strip of its T frames (``grid_image``'s colours, each frame ``frame_size`` pixels on
    its longer side at most), each labelled above with its ``labels[0]`` (``starts`` added to each index: lag images
    run from -k), the hover naming frame, row and column."""
    strip = Strip.of(*values.shape, frame_size=frame_size)
    mosaic = strip.mosaic(values)
    fig = grid_image(mosaic, title, name, limit, size=max(60, int(strip.cell * max(mosaic.shape))),
                     value_label=value_label, cosine=cosine)
    fig.xaxis.visible = fig.yaxis.visible = False
    hover = CustomJSHover(args={**strip.js_args(), "t0": starts[0], "r0": starts[1], "c0": starts[2]},
                          code=_STRIP_HOVER)
    fig.hover.tooltips = [(", ".join(labels), "$x{custom}"), (value_label, "@image{0.000}")]
    fig.hover.formatters = {"$x": hover}
    corners = [strip.corner(t) for t in range(strip.frames)]
    fig.text(x=[x + strip.width / 2 for _, x in corners], y=[y - 0.1 for y, _ in corners],
             text=[f"{labels[0]} {t + starts[0]}" for t in range(strip.frames)], text_align="center",
             text_baseline="bottom", text_font_size="8pt", text_color="#555")
    fig.y_range.end = -LABEL_PX / strip.cell - 0.2  # room for the first line's labels
    # the frame's size keeps every patch square: grow it by the labels' room
    fig.frame_height = int(fig.frame_height + LABEL_PX + 0.2 * strip.cell)
    return fig
