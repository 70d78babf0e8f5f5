"""ViT's figure (Dosovitskiy et al. 2021, Fig. 7, centre): each patch's cosine with every patch, tiled as the grid,
and a picker for any patch's image. Only for tables on a patch grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, Slider

from explorer.analysis.grid import MAX_FRAMES
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.grid_views import STRIP_INDEX_JS, TILES_SIZE, Strip, frame_strip, grid_image

#: The picker's arithmetic: cos(patch, every patch) from the unit rows quantised to int8 (stored + 128), exactly
#: as ``explorer.analysis.grid.quantised_cosines`` computes it.
PICK_PATCH_JS = STRIP_INDEX_JS + """
const codes = source.data.codes[0];
const t = frame === null ? 0 : frame.value;
const n = frames * rows * cols;
const p = (t * rows + row.value) * cols + col.value;
const img = target.data.image[0];
const across = width;
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
  const f = Math.floor(i / (rows * cols)), rc = i % (rows * cols);
  img[strip_y(f, Math.floor(rc / cols)) * across + strip_x(f, rc % cols)] = dot / Math.sqrt(ii * pp);
}
target.change.emit();
marker.data = {x: [strip_x(t, col.value) + 0.5], y: [strip_y(t, row.value) + 0.5]};
fig.title.text = frame === null ? `cosine with patch (row ${row.value}, col ${col.value})`
  : `cosine with patch (frame ${t}, row ${row.value}, col ${col.value})`;
"""


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


def patch_picker(codes: np.ndarray, grid: tuple[int, ...], first: np.ndarray, start: tuple[int, ...]):
    """Sliders (frame on a video grid, row, column) and the picked patch's cosine image (a strip of every frame on a
    video grid), recomputed in the browser from ``codes``; the sliders and the figure."""
    *frames, height, width = grid
    strip = Strip.of(frames[0] if frames else 1, height, width)
    picked = start if frames else (0, *start)
    title = (f"cosine with patch (frame {picked[0]}, row {picked[1]}, col {picked[2]})" if frames
             else f"cosine with patch (row {start[0]}, col {start[1]})")
    if frames:
        fig = frame_strip(first.reshape(grid), title, "patch_picked", value_label="cosine", cosine=True)
    else:
        fig = grid_image(first.reshape(height, width), title, "patch_picked", value_label="cosine", cosine=True)
    target = fig.renderers[0].data_source
    y, x = strip.corner(picked[0])
    marker = ColumnDataSource({"x": [x + picked[2] + 0.5], "y": [y + picked[1] + 0.5]}, name="patch_marker")
    fig.scatter(x="x", y="y", source=marker, marker="square", size=9, fill_color=None, line_color="black",
                line_width=2)
    source = ColumnDataSource({"codes": [np.ascontiguousarray(codes).reshape(-1)]}, name="patch_codes")
    frame = Slider(title="frame", start=0, end=max(frames[0] - 1, 1), value=picked[0], step=1, width=260,
                   disabled=frames[0] == 1, name="patch_frame") if frames else None
    row = Slider(title="patch row", start=0, end=max(height - 1, 1), value=picked[1], step=1, width=260,
                 disabled=height == 1, name="patch_row")
    col = Slider(title="patch column", start=0, end=max(width - 1, 1), value=picked[2], step=1, width=260,
                 disabled=width == 1, name="patch_column")
    callback = CustomJS(args={"source": source, "target": target, "marker": marker, "frame": frame, "row": row,
                              "col": col, "fig": fig, "frames": strip.frames, "width": strip.shape[1],
                              "dim": int(codes.shape[1]), **strip.js_args()}, code=PICK_PATCH_JS)
    sliders = [frame, row, col] if frames else [row, col]
    for slider in sliders:
        slider.js_on_change("value", callback)
    return sliders, fig


def build(context: SectionContext):
    """The tiled overview, the picker with its image, and the captions; None for a 1-D table."""
    result, grid = context.results["patch_similarity"], context.embedding.grid
    if result is None:
        return None if grid is None else figures.caption(
            "Patch similarity: not shown, the grid is wider than the display resolution"
            + (f" or has more than {MAX_FRAMES} frames." if len(grid) == 3 else "."))
    from explorer.analysis.grid import quantised_cosines  # only for a grid table: a 1-D page pays nothing

    *frames, height, width = grid
    every = len(result.tile_rows) == height and len(result.tile_cols) == width
    which = ("every patch" if every else f"{len(result.tile_rows)} x {len(result.tile_cols)} evenly spaced patches "
             "(rows and columns labelled)")
    short = "every patch" if every else f"{len(result.tile_rows)} x {len(result.tile_cols)} of {height} x {width} patches"
    in_frame = f"frame {result.frame}: " if frames else ""
    tiles = tiled_patches(result.tiles, result.tile_rows, result.tile_cols, f"{in_frame}cosine, {short}")
    start = (*((result.frame,) if frames else ()), height // 2, width // 2)
    first = quantised_cosines(result.codes, (start[0] * height + start[1]) * width + start[2] if frames
                              else start[0] * width + start[1])
    sliders, picked = patch_picker(result.codes, grid, first, start)
    video = (f" On this {frames[0]} x {height} x {width} video grid the tiles are those of frame {result.frame} (the "
             "middle one) against its own patches; the sliders pick a frame too, and the picked patch's image is a "
             "strip of every frame (frame 0 first, left to right), so the same patch's cosine across frames reads "
             "along the strip.") if frames else ""
    return column(
        row(tiles, column(*sliders, picked), spacing=24, styles={"flex-wrap": "wrap", "row-gap": "12px"}),
        figures.caption(
            f"Position embedding similarity as in the ViT paper (Dosovitskiy et al. 2021, Fig. 7, centre): tile (r, c) "
            f"is the {height} x {width} image of cos(p_(r,c), p_(r',c')) over every patch (r', c'), coloured on [-1, 1] as in the paper; "
            f"tiles show {which}. A learned ViT table shows a bright spot at the patch itself fading with "
            "distance, often with its row and column. The sliders pick any patch: its image is computed in the "
            "browser from the unit vectors quantised to 8 bits per value (each row scaled to its largest "
            "|value|), so it agrees with the exact cosines of the tiles to about 0.01." + video),
        sizing_mode="stretch_width")


SECTION = Section("patch_similarity", "patch similarity (grid)", build, order=25, needs=("patch_similarity",))
