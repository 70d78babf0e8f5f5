"""Cosine similarity between positions, raw and centred; both images share the page's position axes."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views
from explorer.reporting.sections.matrix import row_kind


def build(context: SectionContext):
    """Two images side by side, each with its caption."""
    page, raw, centred = context.page, context.results["cosine_positions"], context.results["cosine_positions_centred"]
    ranges = page.position_range(context.index), page.position_range(context.index, down=True)
    rows, item = context.embedding.rows, row_kind(context)
    return views.side_by_side(
        views.stack(views.similarity_heatmap(raw, page.unpacker, *ranges, rows=rows), views.caption(
            f"cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of {item}s; colour range [-1, 1]."
            + views.block_note(raw.bounds, "positions", pairs=True))),
        views.stack(views.similarity_heatmap(centred, page.unpacker, *ranges, rows=rows), views.caption(
            f"The same after subtracting the mean {item} vector from every row: the structure left once the "
            "offset all positions share is removed (it matters when |mean position vector| is large next to "
            "the row norms)." + views.block_note(centred.bounds, "positions", pairs=True))),
    )


SECTION = Section("cosine_positions", "cosine similarity over positions", build, order=50,
                  needs=("cosine_positions", "cosine_positions_centred"))
