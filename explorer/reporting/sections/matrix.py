"""The table as a heatmap: positions across, dimensions up, one colour per value."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from bokeh.layouts import column

from bokeh.models import ColumnDataSource, HoverTool, Range1d

from explorer.analysis import MatrixImage
from explorer.analysis.traces import FINE_LEVELS, FineCodes, fine_codes
from explorer.core.embedding import RowAxis
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import encoding, figures
from explorer.reporting.encoding import CodeScale, Unpacker, code_mapper, colour_bar, decode_hover
from explorer.reporting.figures import SIZE, figure, without_grid
from explorer.reporting.rows import floor_js, label_rows, row_js, row_range, row_word


class Heatmap(NamedTuple):
    """The matrix heatmap of one table and the fine codes it is coloured from (which the pickers decode too)."""

    figure: Any
    source: Any  # the fine codes' ColumnDataSource: one copy per table, shared by heatmap, traces and vectors
    fine: FineCodes
    scale: CodeScale


def matrix_heatmap(image: MatrixImage, scale: CodeScale, fine: ColumnDataSource, unpacker: Unpacker,
                   x_range: Range1d | None = None, rows: RowAxis | None = None) -> Any:
    """The table as an image: positions (or the rows of ``rows``) on x, dimensions on y, coloured on ``scale``.

    Its colour codes are not in the file: ``unpacker``'s document-ready callback computes them from ``fine``
    (the table's fine codes, ``fine_source``), which the traces and position vectors read too.
    """
    n, d = int(image.position_bounds[-1]), int(image.dimension_bounds[-1])
    fig = figure("position embedding matrix", "matrix", SIZE, x_range=x_range or row_range(n, rows),
                  y_range=Range1d(0, d), x_axis_label=row_word(rows), y_axis_label="dimension")
    label_rows(fig.xaxis[0], rows)
    blank = np.zeros(image.values.shape, dtype=np.uint8)  # filled on load; zeros cost a few bytes gzipped
    mapper = code_mapper(scale)
    renderer = fig.image(image=[blank], x=0, y=0, dw=n, dh=d, color_mapper=mapper)
    unpacker.add_coded(renderer.data_source, fine, scale)
    without_grid(fig)
    colour_bar(fig, scale, "value", mapper)
    fig.add_tools(HoverTool(
        renderers=[renderer],
        tooltips=[(row_word(rows), "$x{custom}"), ("dimension", "$y{custom}"), ("value", "@image{custom}")],
        formatters={"$x": row_js(rows), "$y": floor_js(), "@image": decode_hover(scale)},
    ))
    return fig


def fine_codes_of(context: SectionContext) -> FineCodes:
    """The table's fine codes (an encoding of its ``matrix`` result, ``explorer.analysis.fine_codes``), computed
    once per table for the heatmap, the traces and the position vectors."""
    return context.memo("fine_codes", lambda: fine_codes(context.results["matrix"]))


def fine_source(context: SectionContext) -> Any:
    """The table's fine codes in the document, made once per table for every section that reads them."""
    return context.memo("fine_source", lambda: encoding.fine_source(fine_codes_of(context)))


def heatmap(context: SectionContext) -> Heatmap:
    """The table's heatmap, built once per table for every section that reads it."""
    def make() -> Heatmap:
        img, scale = context.results["matrix"], context.page.matrix_scale_of(context.index)
        source = fine_source(context)
        fig = matrix_heatmap(img, scale, source, context.page.unpacker,
                             context.page.position_range(context.index), context.embedding.rows)
        return Heatmap(fig, source, fine_codes_of(context), scale)
    return context.memo("heatmap", make)


def row_kind(context: SectionContext) -> str:
    """What one row of the table is, in a caption: ``position``, or ``row`` when the rows are not positions."""
    return "position" if context.embedding.rows is None else "row"


def rows_note(context: SectionContext) -> str:
    """A caption sentence naming what the rows stand for, when they are not positions (empty otherwise)."""
    rows = context.embedding.rows
    if rows is None:
        return ""
    order = " Row 0 is at the right, so the labels read ascending." if rows.reverse else ""
    spans = any(".." in label for label in rows.labels)
    uneven = (" Some rows serve a range of distances (A..B, DeBERTa's logarithmic buckets), so the axis is even in "
              "rows, not in distance: equal steps along it are not equal distances." if spans else "")
    return (f"The rows are not positions: the axis along them is labelled by {rows.name}, from "
            f"{rows.labels[0]} (row 0) to {rows.labels[-1]} (row {len(rows.labels) - 1}).{order}{uneven} ")


def fine_precision(fine: FineCodes) -> str:
    """The caption's account of how exact values decoded from the fine codes are."""
    levels = FINE_LEVELS
    return (f"each value is decoded from {levels.bit_length()}-bit codes scaled to its own dimension's range, so it "
            f"is within 1/{2 * levels} of that range ({100 / (2 * levels):.2g}%) of the table's value")


def scale_text(context: SectionContext, scale: CodeScale, values: np.ndarray) -> str:
    """The caption's account of the colour scale in force: its kind, its range and whose it is."""
    page = context.page
    whose = ""
    if page.tables > 1:
        whose = ("This colour scale is shared by every table on the page (--shared-scale), so colours compare "
                 "magnitudes across tables. " if page.shared_scale else
                 "This table has its own colour scale, so it looks as it does alone; --shared-scale puts every "
                 "table on one. ")
    chosen = page.vmax is not None
    over = " over all tables shown" if page.shared_scale and page.tables > 1 else ""
    if scale.kind == "symlog":
        why = ""
        if page.scale == "symlog":
            why = " (asked for with --scale symlog)."
        elif encoding.heavy_tailed(values) is not None:
            why = (f". This table's magnitudes span orders (a few large-magnitude outlier dimensions reach "
                   f"{float(np.nanmax(np.abs(values))):.2g}, while most cells are tiny), so a linear range would leave "
                   "most dimensions white; read colours as orders of magnitude and hover for values.")
        else:
            why = (", because another table's magnitudes span orders; this table's own values are not heavy-tailed, "
                   "so most of its cells sit at the strong ends of the scale.")
        text = (f"Colour follows a symmetric log scale: linear within \u00b1{scale.linthresh:.2g} (the median "
                f"|value|{over}), logarithmic beyond, out to \u00b1{scale.limit:.3g}"
                f"{' (--vmax)' if chosen else ' (the largest magnitude)'}{why}")
    elif chosen:
        text = (f"The colour range is linear and symmetric, \u00b1{scale.limit:.3g}, as asked for with --vmax"
                f"{' and --scale linear' if page.scale == 'linear' else ''}.")
    elif scale.saturates or page.scale == "linear":
        text = (f"The colour range is linear and symmetric, \u00b1{scale.limit:.3g}: the {encoding.ROBUST_QUANTILE:g}th "
                f"percentile of |value|{over}, so a few large-magnitude outliers cannot wash out the rest.")
    else:
        text = f"The colour range is linear and symmetric, \u00b1{scale.limit:.3g} (the largest magnitude{over})."
    if scale.saturates:
        beyond = float(np.mean(np.abs(values) > scale.limit)) * 100
        tail_step = float(np.max(np.diff(scale.table[:scale.low_code + 1])))
        text += (f" {beyond:.2g}% of the cells here lie beyond \u00b1{scale.limit:.3g} and show in the end colours; "
                 f"their hover still gives the value (to \u00b1{tail_step / 2:.2g}).")
    return whose + text


def build(context: SectionContext):
    """The heatmap with its caption."""
    img = context.results["matrix"]
    shown = heatmap(context)
    note = figures.block_note(img.position_bounds, "positions") + figures.block_note(img.dimension_bounds, "dimensions")
    return column(shown.figure, figures.caption(
        f"Each column is one {row_kind(context)}'s vector p_i, each row one dimension; colour is the value, blue "
        "negative, red positive. " + rows_note(context) + scale_text(context, shown.scale, img.values) + " The colour bar is labelled at both "
        "ends of the colour range." + note), sizing_mode="stretch_width")


SECTION = Section("matrix", "the matrix", build, order=20, needs=("matrix",))
