"""Cosine similarity between dimension columns, raw and centred (the Pearson correlation): one figure, buttons to
choose."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.sections.cosine_positions import similarity_view


def build(context: SectionContext):
    """The raw and centred images in one figure, the buttons that choose above it, the caption beside it."""
    raw, centred = context.results["cosine_dimensions"], context.results["cosine_dimensions_centred"]
    return similarity_view(raw, centred, context.page.unpacker, caption=(
        "Raw: cosine between dimension columns (each a vector over all positions), which dimensions move together. "
        "Centred: the same with each column centred over positions first, i.e. the Pearson correlation between "
        "dimensions." + figures.block_note(raw.bounds, "dimensions", pairs=True)))


SECTION = Section("cosine_dimensions", "cosine similarity across dimensions", build, order=70,
                  needs=("cosine_dimensions", "cosine_dimensions_centred"))
