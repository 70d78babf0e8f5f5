"""Cosine similarity between positions, raw and centred; both images share the page's position axes."""

from __future__ import annotations

from explorer.reporting import views
from explorer.units import Section, SectionContext


def build(context: SectionContext):
    """Two images side by side, each with its caption."""
    page, raw, centred = context.page, context.results["cosine_positions"], context.results["cosine_positions_centred"]
    return views.side_by_side(
        views.stack(views.similarity_heatmap(raw, page.unpacker, page.positions, page.positions_down), views.caption(
            "cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of positions; colour range [-1, 1]."
            + views.block_note(raw.bounds, "positions", pairs=True))),
        views.stack(views.similarity_heatmap(centred, page.unpacker, page.positions, page.positions_down), views.caption(
            "The same after subtracting the mean position vector from every row: the structure left once the "
            "offset all positions share is removed (it matters when |mean position vector| is large next to "
            "the row norms)." + views.block_note(centred.bounds, "positions", pairs=True))),
    )


SECTION = Section("cosine_positions", "cosine similarity over positions", build, order=50,
                  needs=("cosine_positions", "cosine_positions_centred"))
