"""Cosine similarity between positions, raw and centred: one figure on the page's position axes, buttons to choose."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import HoverTool, Range1d

from explorer.analysis.similarity import SimilarityImage
from explorer.core.embedding import RowAxis
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.encoding import COSINE, Unpacker, code_mapper, colour_bar, decode_hover, pack_lower, quantise
from explorer.reporting.figures import figure, without_grid
from explorer.reporting.rows import label_rows, row_js, row_range, row_word
from explorer.reporting.sections.matrix import row_kind


#: A cosine image's figure is this high and at most this wide (as wide as its column otherwise, never under
#: ``figures.MIN_WIDTH``): its frame about square where there is room, its caption beside it on a wide page.
HEIGHT, MAX_WIDTH = 520, 640


def similarity_view(raw: SimilarityImage, centred: SimilarityImage, unpacker: Unpacker,
                    x_range: Range1d | None = None, y_range: Range1d | None = None, rows: RowAxis | None = None,
                    caption: str = "") -> Any:
    """A cosine-similarity image over positions (or the rows of ``rows``) or across dimensions and its centred twin:
    one figure, buttons above it that show either (the raw one first), ``caption`` beside it (under it when
    the column is narrow); colour range [-1, 1]."""
    n = int(raw.bounds[-1])
    over = raw.axis == "positions"
    rows = rows if over else None
    item = row_word(rows) if over else "dimension"
    what = f"cosine {'over' if over else 'across'} {raw.axis if rows is None else 'rows'}"
    fig = figure(what, f"cosine_{raw.axis}", HEIGHT, max_width=MAX_WIDTH,
                  x_range=x_range or row_range(n, rows), y_range=y_range or row_range(n, rows, down=True),
                  x_axis_label=item, y_axis_label=item)
    for axis in (*fig.xaxis, *fig.yaxis):
        label_rows(axis, rows)
    mapper = code_mapper(COSINE)
    renderers = []
    for image in (raw, centred):
        codes = quantise(image.values, COSINE)
        renderer = fig.image(image=[np.zeros(codes.shape, np.uint8)], x=0, y=0, dw=n, dh=n, color_mapper=mapper,
                             name=f"cosine_{image.axis}{'_centred' if image.centred else ''}_image")
        unpacker.add(renderer.data_source, pack_lower(codes), codes.shape[0])
        renderers.append(renderer)
    without_grid(fig)
    colour_bar(fig, COSINE, "cosine", mapper)
    hover = HoverTool(
        tooltips=[(f"{item} i", "$y{custom}"), (f"{item} j", "$x{custom}"), ("cosine", "@image{custom}")],
        formatters={"$x": row_js(rows), "$y": row_js(rows), "@image": decode_hover(COSINE)},
    )
    fig.add_tools(hover)
    buttons = figures.switch(fig, {"raw": renderers[:1], "centred": renderers[1:]}, [what, f"centred {what}"],
                             hover=hover, name=f"cosine_{raw.axis}_switch")
    view = figures.stack(buttons, fig)
    view.max_width = MAX_WIDTH
    return figures.side_by_side(view, figures.caption(caption))


def build(context: SectionContext):
    """The raw and centred images in one figure, the buttons that choose above it, the caption beside it."""
    page, raw, centred = context.page, context.results["cosine_positions"], context.results["cosine_positions_centred"]
    ranges = page.position_range(context.index), page.position_range(context.index, down=True)
    rows, item = context.embedding.rows, row_kind(context)
    return similarity_view(raw, centred, page.unpacker, *ranges, rows=rows, caption=(
        f"Raw: cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of {item}s. Centred: the same after "
        f"subtracting the mean {item} vector from every row, the structure left once the offset all positions share "
        "is removed (it matters when |mean position vector| is large next to the row norms). Colour range [-1, 1]."
        + figures.block_note(raw.bounds, "positions", pairs=True)))


SECTION = Section("cosine_positions", "cosine similarity over positions", build, order=50,
                  needs=("cosine_positions", "cosine_positions_centred"))
