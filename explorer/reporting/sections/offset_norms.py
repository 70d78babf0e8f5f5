"""The offset profile m(k) with its spread, and the row norms |p_i|."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, Range1d

from explorer.core.embedding import RowAxis
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import SIZE, figure, legend_outside
from explorer.reporting.rows import POINTS, label_rows, row_range, row_text, row_word
from explorer.reporting.sections.matrix import row_kind


def offset_profile(offset, x_range: Range1d | None = None, rows: RowAxis | None = None) -> Any:
    """m(k), the mean cosine between positions (or the rows of ``rows``) k apart, with a +-1 std band s(k)."""
    lag = offset.lag.astype(np.int32)
    source = ColumnDataSource({"lag": lag, "mean": offset.mean, "std": offset.std,
                               "lo": (offset.mean - offset.std).astype(np.float32),
                               "hi": (offset.mean + offset.std).astype(np.float32)})
    n = int(lag[-1]) + 1 if len(lag) else 1
    fig = figure("offset profile m(k)", "offset_profile", SIZE - 80, x_range=x_range or Range1d(0, n),
                  x_axis_label=f"offset k ({'positions' if rows is None else 'rows'} apart)", y_axis_label="cosine")
    fig.varea(x="lag", y1="lo", y2="hi", source=source, color="#9ecae1", alpha=0.5, legend_label="m(k) \u00b1 s(k)")
    fig.line(x="lag", y="mean", source=source, color="#08519c", line_width=1.6, legend_label="m(k)")
    fig.add_tools(HoverTool(tooltips=[("k", "@lag"), ("m(k)", "@mean{0.0000}"), ("s(k)", "@std{0.0000}")], mode="vline"))
    legend_outside(fig)
    return fig


def row_norms(norms, x_range: Range1d | None = None, rows: RowAxis | None = None) -> Any:
    """|p_i| across positions or the rows of ``rows`` (a min-max band per block when the table is longer than the
    resolution)."""
    index = norms.index.astype(np.int32)
    n = int(index[-1]) + 1 if len(index) else 1
    fig = figure("row norms |p_i|", "row_norms", SIZE - 80, x_range=x_range or row_range(n, rows),
                  x_axis_label=row_word(rows), y_axis_label="norm")
    label_rows(fig.xaxis[0], rows, POINTS)
    source = ColumnDataSource({"position": index, "low": norms.low, "high": norms.high,
                               **({"label": row_text(rows, index)} if rows is not None else {})})
    if np.array_equal(norms.low, norms.high):
        hovered = fig.line(x="position", y="low", source=source, color="#31a354", line_width=1.6)
    else:  # the band's edges drawn too: a block whose norms differ by less than a pixel still shows
        fig.varea(x="position", y1="low", y2="high", source=source, color="#31a354", alpha=0.4)
        fig.line(x="position", y="low", source=source, color="#31a354", line_width=1)
        hovered = fig.line(x="position", y="high", source=source, color="#31a354", line_width=1)
    at = "@position" if rows is None else "@label"
    fig.add_tools(HoverTool(renderers=[hovered], tooltips=[(row_word(rows), at), ("|p|", "@low{0.000} .. @high{0.000}")],
                            mode="vline"))
    return fig


def build(context: SectionContext):
    """The two plots side by side, each with its caption."""
    results, page, n = context.results, context.page, context.embedding.positions
    off, norms, rows = results["offset"], results["norms"], context.embedding.rows
    invariance = figures.fmt(results.get("translation_invariance"), ".3f")
    lag_note = "" if len(off.lag) >= n else f" Shown at {len(off.lag)} lags, the first lag of each block."
    return figures.side_by_side(
        figures.stack(offset_profile(off, page.lags, rows), figures.caption(
            "m(k) = mean over i of cos(p_i, p_i+k), with a band of \u00b1 s(k), the standard deviation over i. A "
            "narrow band means similarity depends on the distance alone. Translation invariance "
            f"TI = 1 - ||C - T(m)||_F / ||C||_F = {invariance} (1: the cosine matrix C is fully described by m)."
            + lag_note + (" s(k) uses a sample of starting positions." if off.sampled else "")
            + ("" if rows is None else f" Here k counts rows, not positions: the rows are labelled by {rows.name}."))),
        figures.stack(row_norms(norms, page.position_range(context.index), rows), figures.caption(
            f"|p_i|, the Euclidean length of each {row_kind(context)} vector: mean {norms.mean:.4g}, min {norms.min:.4g}, "
            f"max {norms.max:.4g}." + ("" if len(norms.index) >= n else " Long tables show the min-max band of each "
                                       "block."))),
    )


SECTION = Section("offset_norms", "offset profile and row norms", build, order=60, needs=("offset", "norms"))
