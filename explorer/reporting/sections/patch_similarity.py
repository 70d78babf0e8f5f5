"""ViT's figure (Dosovitskiy et al. 2021, Fig. 7, centre): each patch's cosine with every patch, tiled as the grid,
and a picker for any patch's image. Only for tables on a patch grid."""

from __future__ import annotations

from bokeh.layouts import column, row

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views


def build(context: SectionContext):
    """The tiled overview, the picker with its image, and the captions; None for a 1-D table."""
    result, grid = context.results["patch_similarity"], context.embedding.grid
    if result is None:
        return None if grid is None else views.caption(
            "Patch similarity: not shown, the grid is wider than the display resolution.")
    # imported only for a grid table: a 1-D page must not pay for the grid figures
    from explorer.analysis.grid import quantised_cosines
    from explorer.reporting.grid_views import patch_picker, tiled_patches

    height, width = grid
    every = len(result.tile_rows) == height and len(result.tile_cols) == width
    which = ("every patch" if every else f"{len(result.tile_rows)} x {len(result.tile_cols)} evenly spaced patches "
             "(rows and columns labelled)")
    short = "every patch" if every else f"{len(result.tile_rows)} x {len(result.tile_cols)} of {height} x {width} patches"
    tiles = tiled_patches(result.tiles, result.tile_rows, result.tile_cols, f"cosine, {short}")
    start = (height // 2, width // 2)
    first = quantised_cosines(result.codes, start[0] * width + start[1])
    row_slider, col_slider, picked = patch_picker(result.codes, grid, first, start)
    return column(
        row(tiles, column(row_slider, col_slider, picked), spacing=24),
        views.caption(
            f"Position embedding similarity as in the ViT paper (Dosovitskiy et al. 2021, Fig. 7, centre): tile (r, c) "
            f"is the {height} x {width} image of cos(p_(r,c), p_(r',c')) over every patch (r', c'), coloured on [-1, 1] as in the paper; "
            f"tiles show {which}. A learned ViT table shows a bright spot at the patch itself fading with "
            "distance, often with its row and column. The sliders pick any patch: its image is computed in the "
            "browser from the unit vectors quantised to 8 bits per value (each row scaled to its largest "
            "|value|), so it agrees with the exact cosines of the tiles to about 0.01."),
        sizing_mode="stretch_width")


SECTION = Section("patch_similarity", "patch similarity (grid)", build, order=25, needs=("patch_similarity",))
