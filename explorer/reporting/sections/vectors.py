"""Position vectors: chosen positions' values in every dimension, with a picker."""

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
from explorer.reporting.sections.matrix import fine_codes_of, fine_precision, fine_source, row_kind


def position_vectors(fine: FineCodes, source: ColumnDataSource, initial: Sequence[int],
                     rows: RowAxis | None = None) -> tuple[Any, Any]:
    """Chosen positions' (or rows') vectors (value against dimension, one dot per dimension), with a picker."""
    d = int(fine.dimension_bounds[-1])
    title = ("position vectors: one position's value in every dimension" if rows is None else
             "row vectors: one row's value in every dimension")
    fig = figure(title, "position_vectors", SIZE - 100,
                  x_range=Range1d(0, d), x_axis_label="dimension", y_axis_label="value")
    choice = picker(fine, source, along_rows=False, initial=initial, fig=fig, rows=rows,
                     title=f"{'positions' if rows is None else 'rows'} to show (type to search)",
                   name="position_picker")
    return choice, fig


def build(context: SectionContext):
    """The picker (first, middle and last position to start with), the vectors and the caption."""
    codes, n = fine_codes_of(context), context.embedding.positions
    choice, fig = position_vectors(codes, fine_source(context), [0, n // 2, n - 1], context.embedding.rows)
    item = row_kind(context)
    return column(choice, fig, figures.caption(
        f"{item.capitalize()} vectors: each chosen {item}'s value in every dimension (a column of the heatmap), one "
        "dot per dimension. Dots, not lines: neighbouring dimensions need not be related (a sinusoidal table "
        "interleaves sin and cos, so a line through them would zigzag into a solid band, while the dots show the "
        f"sine and cosine curves apart). Pick {item}s in the box. Decoded like the traces: {fine_precision(codes)}."
        + figures.block_note(codes.position_bounds, "positions").replace("each pixel", "a choice")),
        sizing_mode="stretch_width")


SECTION = Section("vectors", "position vectors", build, order=40, needs=("matrix",))
