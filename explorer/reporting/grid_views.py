"""Figures for tables on a patch grid (``PositionEmbedding.grid``): images laid out as the image's patches are,
row 0 at the top. Used only by the grid sections; the shared views stay in ``views.py``."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, CustomJS, CustomJSHover, HoverTool, LinearColorMapper, Range1d, Slider
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from explorer.reporting.views import DIVERGING

#: Pixels on the longer side of one grid image and of the tiled overview: with the picker beside the tiles a
#: block stays within 916 px, one column of a two-table page at 1920 px.
IMAGE_SIZE = 270
TILES_SIZE = 430

#: The picker's arithmetic: cos(patch, every patch) from the unit rows quantised to int8 (stored + 128), exactly
#: as ``explorer.analysis.grid.quantised_cosines`` computes it.
PICK_PATCH_JS = """
const codes = source.data.codes[0];
const n = rows * cols;
const p = row.value * cols + col.value;
const img = target.data.image[0];
let pp = 0;
for (let d = 0; d < dim; d++) { const a = codes[p * dim + d] - 128; pp += a * a; }
for (let i = 0; i < n; i++) {
  let dot = 0, ii = 0;
  const base = i * dim;
  for (let d = 0; d < dim; d++) {
    const b = codes[base + d] - 128;
    dot += b * (codes[p * dim + d] - 128);
    ii += b * b;
  }
  img[i] = dot / Math.sqrt(ii * pp);
}
target.change.emit();
marker.data = {x: [col.value + 0.5], y: [row.value + 0.5]};
fig.title.text = `cosine with patch (row ${row.value}, col ${col.value})`;
"""


def _image_figure(title: str, height: int, width: int, size: int, name: str,
                  x_start: float = 0.0, y_start: float = 0.0):
    """A figure showing an ``height x width`` image at ``size`` pixels on its longer side, row 0 at the top."""
    scale = size / max(height, width)
    # the frame's own size (not the figure's) keeps every patch square whatever the axes and colour bar take
    fig = figure(title=title, name=name, frame_width=max(int(width * scale), 60), frame_height=max(int(height * scale), 60),
                 x_range=Range1d(x_start, x_start + width), y_range=Range1d(y_start + height, y_start),
                 tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right")
    fig.toolbar.logo = None
    fig.grid.visible = False
    fig.title.text_font_size = "11pt"
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
    fig.image(image=[np.ascontiguousarray(values, dtype=np.float32)], x=x_start, y=y_start, dw=width, dh=height,
              color_mapper=mapper)
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, padding=2), "right")
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    # a cell spans [k, k + 1) from an integer start, [k - 0.5, k + 0.5) from a half-integer one (lags)
    cell = CustomJSHover(code="return String(Math.floor(value + START))".replace("START", repr(x_start % 1.0)))
    fig.add_tools(HoverTool(tooltips=[(y_label, "$y{custom}"), (x_label, "$x{custom}"), (value_label, "@image{0.000}")],
                            formatters={"$x": cell, "$y": cell}))
    return fig


def tiled_patches(tiles: np.ndarray, tile_rows: Sequence[int], tile_cols: Sequence[int], title: str):
    """The ViT figure: tile (i, j) is patch (tile_rows[i], tile_cols[j])'s cosine image, one blank line between."""
    count_y, count_x, height, width = tiles.shape
    mosaic = np.full((count_y * (height + 1) - 1, count_x * (width + 1) - 1), np.nan, dtype=np.float32)
    for i in range(count_y):
        for j in range(count_x):
            mosaic[i * (height + 1):i * (height + 1) + height, j * (width + 1):j * (width + 1) + width] = tiles[i, j]
    fig = grid_image(mosaic, title, "patch_tiles", size=TILES_SIZE, x_label="x", y_label="y", value_label="cosine",
                     cosine=True)
    fig.xaxis.visible = fig.yaxis.visible = False
    fig.hover.tooltips = [("cosine", "@image{0.000}")]
    # each tile's patch, as axis-free labels along the top and left edges
    fig.text(x=[j * (width + 1) + width / 2 for j in range(count_x)], y=[-0.4] * count_x,
             text=[str(int(c)) for c in tile_cols], text_align="center", text_baseline="bottom", text_font_size="8pt",
             text_color="#555")
    fig.text(x=[-0.4] * count_y, y=[i * (height + 1) + height / 2 for i in range(count_y)],
             text=[str(int(r)) for r in tile_rows], text_align="right", text_baseline="middle", text_font_size="8pt",
             text_color="#555")
    # room for the labels: a share of the mosaic, since a tile may be 2 or 37 patches wide
    fig.x_range.start, fig.y_range.end = -0.05 * mosaic.shape[1] - 1.5, -0.04 * mosaic.shape[0] - 1.5
    return fig


def patch_picker(codes: np.ndarray, grid: tuple[int, int], first: np.ndarray, start: tuple[int, int]):
    """Two sliders (row, column) and the picked patch's cosine image, recomputed in the browser from ``codes``."""
    height, width = grid
    fig = grid_image(first.reshape(height, width), f"cosine with patch (row {start[0]}, col {start[1]})",
                     "patch_picked", value_label="cosine", cosine=True)
    target = fig.renderers[0].data_source
    marker = ColumnDataSource({"x": [start[1] + 0.5], "y": [start[0] + 0.5]})
    fig.scatter(x="x", y="y", source=marker, marker="square", size=9, fill_color=None, line_color="black",
                line_width=2)
    source = ColumnDataSource({"codes": [np.ascontiguousarray(codes).reshape(-1)]}, name="patch_codes")
    row = Slider(title="patch row", start=0, end=max(height - 1, 1), value=start[0], step=1, width=260,
                 disabled=height == 1, name="patch_row")
    col = Slider(title="patch column", start=0, end=max(width - 1, 1), value=start[1], step=1, width=260,
                 disabled=width == 1, name="patch_column")
    callback = CustomJS(args={"source": source, "target": target, "marker": marker, "row": row, "col": col,
                              "fig": fig, "rows": height, "cols": width, "dim": int(codes.shape[1])},
                        code=PICK_PATCH_JS)
    row.js_on_change("value", callback)
    col.js_on_change("value", callback)
    return row, col, fig
