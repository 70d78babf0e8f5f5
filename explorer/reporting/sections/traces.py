"""Dimension traces: chosen dimensions' values across positions, with a picker."""

from __future__ import annotations

from bokeh.layouts import column

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views
from explorer.reporting.sections.matrix import fine_precision, fine_source, row_kind


def build(context: SectionContext):
    """The picker, the traces and the caption."""
    fine, traces = context.results["fine_codes"], context.results["traces"]
    choice, fig = views.dimension_traces(fine, fine_source(context), [int(d) for d in traces.dims],
                                         context.page.position_range(context.index), context.embedding.rows)
    shown = f" Shown first: {traces.rule}." if traces.rule else ""
    return column(choice, fig, views.caption(
        f"Dimension traces: each chosen dimension's value across {row_kind(context)}s. Pick dimensions in the box (type a "
        "number to search; click x to remove)." + shown + " The lines are drawn in the browser from the table's "
        f"fine codes, which also colour the heatmap: {fine_precision(fine)}."
        + views.block_note(fine.position_bounds, "positions").replace("each pixel", "each point")),
        sizing_mode="stretch_width")


SECTION = Section("traces", "dimension traces", build, order=30, needs=("fine_codes", "traces"))
