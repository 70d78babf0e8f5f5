"""Cosine similarity between positions, raw and centred; both images share the page's position axes."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import HoverTool, Range1d

from explorer.analysis.similarity import SimilarityImage
from explorer.core.embedding import RowAxis
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.encoding import COSINE, Unpacker, code_mapper, colour_bar, decode_hover, pack_lower, quantise
from explorer.reporting.figures import SIZE, figure, without_grid
from explorer.reporting.rows import label_rows, row_js, row_range, row_word
from explorer.reporting.sections.matrix import row_kind


def similarity_heatmap(image: SimilarityImage, unpacker: Unpacker, x_range: Range1d | None = None,
                       y_range: Range1d | None = None, size: int = SIZE, rows: RowAxis | None = None) -> Any:
    """A cosine-similarity image over positions (or the rows of ``rows``) or across dimensions, colour range
    [-1, 1]."""
    n = int(image.bounds[-1])
    over = image.axis == "positions"
    rows = rows if over else None
    item = row_word(rows) if over else "dimension"
    kind = "centred " if image.centred else ""
    fig = figure(f"{kind}cosine {'over' if over else 'across'} {image.axis if rows is None else 'rows'}",
                  f"cosine_{image.axis}{'_centred' if image.centred else ''}", size,
                  x_range=x_range or row_range(n, rows), y_range=y_range or row_range(n, rows, down=True),
                  x_axis_label=item, y_axis_label=item)
    for axis in (*fig.xaxis, *fig.yaxis):
        label_rows(axis, rows)
    codes = quantise(image.values, COSINE)
    r = codes.shape[0]
    mapper = code_mapper(COSINE)
    renderer = fig.image(image=[np.zeros_like(codes)], x=0, y=0, dw=n, dh=n, color_mapper=mapper)
    without_grid(fig)
    unpacker.add(renderer.data_source, pack_lower(codes), r)
    colour_bar(fig, COSINE, "cosine", mapper)
    fig.add_tools(HoverTool(
        renderers=[renderer],
        tooltips=[(f"{item} i", "$y{custom}"), (f"{item} j", "$x{custom}"), ("cosine", "@image{custom}")],
        formatters={"$x": row_js(rows), "$y": row_js(rows), "@image": decode_hover(COSINE)},
    ))
    return fig


def build(context: SectionContext):
    """Two images side by side, each with its caption."""
    page, raw, centred = context.page, context.results["cosine_positions"], context.results["cosine_positions_centred"]
    ranges = page.position_range(context.index), page.position_range(context.index, down=True)
    rows, item = context.embedding.rows, row_kind(context)
    return figures.side_by_side(
        figures.stack(similarity_heatmap(raw, page.unpacker, *ranges, rows=rows), figures.caption(
            f"cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of {item}s; colour range [-1, 1]."
            + figures.block_note(raw.bounds, "positions", pairs=True))),
        figures.stack(similarity_heatmap(centred, page.unpacker, *ranges, rows=rows), figures.caption(
            f"The same after subtracting the mean {item} vector from every row: the structure left once the "
            "offset all positions share is removed (it matters when |mean position vector| is large next to "
            "the row norms)." + figures.block_note(centred.bounds, "positions", pairs=True))),
    )


SECTION = Section("cosine_positions", "cosine similarity over positions", build, order=50,
                  needs=("cosine_positions", "cosine_positions_centred"))
