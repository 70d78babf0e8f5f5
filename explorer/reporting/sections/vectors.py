"""Position vectors: chosen positions' values in every dimension, with a picker."""

from __future__ import annotations

from bokeh.layouts import column

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views
from explorer.reporting.sections.matrix import fine_precision, fine_source, row_kind


def build(context: SectionContext):
    """The picker (first, middle and last position to start with), the vectors and the caption."""
    fine, n = context.results["fine_codes"], context.embedding.positions
    choice, fig = views.position_vectors(fine, fine_source(context), [0, n // 2, n - 1], context.embedding.rows)
    item = row_kind(context)
    return column(choice, fig, views.caption(
        f"{item.capitalize()} vectors: each chosen {item}'s value in every dimension (a column of the heatmap), one "
        "dot per dimension. Dots, not lines: neighbouring dimensions need not be related (a sinusoidal table "
        "interleaves sin and cos, so a line through them would zigzag into a solid band, while the dots show the "
        f"sine and cosine curves apart). Pick {item}s in the box. Decoded like the traces: {fine_precision(fine)}."
        + views.block_note(fine.position_bounds, "positions").replace("each pixel", "a choice")),
        sizing_mode="stretch_width")


SECTION = Section("vectors", "position vectors", build, order=40, needs=("fine_codes",))
