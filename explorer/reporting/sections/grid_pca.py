"""The top principal components as images of the patch grid. Only for tables on a patch grid."""

from __future__ import annotations

from functools import partial

from bokeh.layouts import column, row

from explorer.analysis.grid import MAX_FRAMES
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.grid_views import frame_strip, grid_image


def build(context: SectionContext):
    """One image per component and the caption; None for a 1-D table."""
    components = context.results["grid_pca"]
    if components is None:
        return None
    *frames, height, width = context.embedding.grid
    draw = partial(frame_strip, frame_size=140) if frames else partial(grid_image, size=200)
    images = [draw(image[:MAX_FRAMES], f"PC{k + 1}: {100 * float(share):.1f}% of variance", f"grid_pc{k + 1}",
                   value_label="score") for k, (image, share) in enumerate(zip(components.images, components.explained))]
    shown = ("" if components.images.shape[-2:] == (height, width)
             else " (block means: the grid exceeds the resolution)")
    where = (f"{frames[0]} x {height} x {width} video grid, a strip of its frames (frame 0 first"
             + (f"; the first {MAX_FRAMES}" if frames[0] > MAX_FRAMES else "") + ") per component"
             if frames else f"{height} x {width} grid")
    # a row that wraps: as many images a line as the column holds (two tables at 1280 px: one a line)
    grid = row(*images, spacing=12, styles={"flex-wrap": "wrap", "row-gap": "12px"})
    return column(grid, figures.caption(
        "Each patch's score X_c v_k on the top principal components of the centred table, laid out on the "
        f"{where}{shown}; each image on its own symmetric colour range. Learned ViT tables often show "
        "smooth gradients along the rows and columns; the 2-D sin-cos table shows its lowest frequencies."),
        sizing_mode="stretch_width")


SECTION = Section("grid_pca", "principal components on the grid", build, order=85, needs=("grid_pca",))
