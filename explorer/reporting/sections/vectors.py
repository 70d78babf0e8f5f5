"""Position vectors: chosen positions' values in every dimension, with a picker."""

from __future__ import annotations

from bokeh.layouts import column

from explorer.reporting import views
from explorer.reporting.sections.matrix import heatmap
from explorer.units import Section, SectionContext


def build(context: SectionContext):
    """The picker (first, middle and last position to start with), the vectors and the caption."""
    img, shown, n = context.results["matrix"], heatmap(context), context.embedding.positions
    choice, fig = views.position_vectors(img, shown.source, shown.scale, [0, n // 2, n - 1], width=context.page.wide)
    return column(choice, fig, views.caption(
        "Position vectors: each chosen position's value in every dimension (a column of the heatmap). Pick "
        f"positions in the box. Decoded from the heatmap's codes like the traces: {shown.precision}."
        + views.block_note(img.position_bounds, "positions").replace("each pixel", "a choice"),
        width=context.page.wide))


SECTION = Section("vectors", "position vectors", build, order=40, needs=("matrix",))
