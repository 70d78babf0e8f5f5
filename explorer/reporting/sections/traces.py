"""Dimension traces: chosen dimensions' values across positions, with a picker."""

from __future__ import annotations

from typing import Any, Sequence

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Range1d

from explorer.analysis.traces import FineCodes
from explorer.core.embedding import RowAxis
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import SIZE, figure
from explorer.reporting.pickers import picker
from explorer.reporting.rows import POINTS, label_rows, row_range, row_word
from explorer.reporting.sections.matrix import fine_codes_of, fine_precision, fine_source, row_kind


def dimension_traces(fine: FineCodes, source: ColumnDataSource, initial: Sequence[int],
                     x_range: Range1d | None = None, rows: RowAxis | None = None) -> tuple[Any, Any]:
    """Chosen dimensions' values across positions (or the rows of ``rows``), with a picker; lines are decoded
    from the fine codes."""
    n = int(fine.position_bounds[-1])
    across = "positions" if rows is None else "rows"
    fig = figure(f"dimension traces: a dimension's value across {across}", "dimension_traces", SIZE - 100,
                  x_range=x_range or row_range(n, rows), x_axis_label=row_word(rows), y_axis_label="value")
    label_rows(fig.xaxis[0], rows, POINTS)
    choice = picker(fine, source, along_rows=True, initial=initial, fig=fig,
                    title="dimensions to show (type to search)", name="dimension_picker", rows=rows)
    return choice, fig


def build(context: SectionContext):
    """The picker, the traces and the caption."""
    codes, traces = fine_codes_of(context), context.results["traces"]
    choice, fig = dimension_traces(codes, fine_source(context), [int(d) for d in traces.dims],
                                         context.page.position_range(context.index), context.embedding.rows)
    shown = f" Shown first: {traces.rule}." if traces.rule else ""
    return column(choice, fig, figures.caption(
        f"Dimension traces: each chosen dimension's value across {row_kind(context)}s. Pick dimensions in the box (type a "
        "number to search; click x to remove)." + shown + " The lines are drawn in the browser from the table's "
        f"fine codes, which also colour the heatmap: {fine_precision(codes)}."
        + figures.block_note(codes.position_bounds, "positions").replace("each pixel", "each point")),
        sizing_mode="stretch_width")


SECTION = Section("traces", "dimension traces", build, order=30, needs=("matrix", "traces"))
