"""Cosine similarity between dimension columns, raw and centred (the Pearson correlation)."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.sections.cosine_positions import similarity_heatmap


def build(context: SectionContext):
    """Two images side by side, each with its caption."""
    unpacker = context.page.unpacker
    raw, centred = context.results["cosine_dimensions"], context.results["cosine_dimensions_centred"]
    return figures.side_by_side(
        figures.stack(similarity_heatmap(raw, unpacker), figures.caption(
            "Cosine between dimension columns (each a vector over all positions): which dimensions move together."
            + figures.block_note(raw.bounds, "dimensions", pairs=True))),
        figures.stack(similarity_heatmap(centred, unpacker), figures.caption(
            "The same with each column centred over positions first, i.e. the Pearson correlation between "
            "dimensions." + figures.block_note(centred.bounds, "dimensions", pairs=True))),
    )


SECTION = Section("cosine_dimensions", "cosine similarity across dimensions", build, order=70,
                  needs=("cosine_dimensions", "cosine_dimensions_centred"))
