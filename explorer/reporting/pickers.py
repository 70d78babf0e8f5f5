"""Pickers: a searchable choice of a table's dimensions or positions (rows) and the lines or dots it draws,
redrawn in the browser from the table's fine codes (``encoding.fine_source``)."""

from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
from bokeh.models import ColumnDataSource, CustomJS, HoverTool, MultiChoice
from bokeh.palettes import Category10_10

from explorer.analysis.traces import FINE_LEVELS, FineCodes
from explorer.core.embedding import RowAxis
from explorer.reporting.figures import legend_outside
from explorer.reporting.rows import MAX_LEGEND, POINTS, row_js, shortened

#: Redraws a picker's lines from the table's fine codes: a row (dimension) or a column (position) of the
#: display-resolution matrix, each value decoded with its own dimension's low and high.
PICK_JS = """
const codes = fine.data.codes[0], low = fine.data.low[0], high = fine.data.high[0];
const cols = fine.data.cols[0], rows = low.length;
const names = new Map(texts);  // each choice's legend entry, plain text (choice.options holds them escaped)
const decoded = (d, t) => low[d] + codes[d * cols + t] * ((high[d] - low[d]) / LEVELS);
if (along_rows) {  // one line per chosen dimension
  const xs = [], ys = [], label = [], colour = [];
  choice.value.forEach((v, k) => {
    const d = parseInt(v), y = new Float32Array(cols);
    for (let t = 0; t < cols; t++) y[t] = decoded(d, t);
    xs.push(starts); ys.push(y); label.push(names.get(v)); colour.push(palette[k % palette.length]);
  });
  lines.data = {xs, ys, label, colour};
} else {  // one dot per dimension for each chosen position
  const x = [], y = [], label = [], colour = [];
  choice.value.forEach((v, k) => {
    const t = parseInt(v);
    for (let d = 0; d < rows; d++) {
      x.push(starts[d]); y.push(decoded(d, t)); label.push(names.get(v)); colour.push(palette[k % palette.length]);
    }
  });
  lines.data = {x: new Int32Array(x), y: new Float32Array(y), label, colour};
}
""".replace("LEVELS", str(FINE_LEVELS))


def _block_labels(bounds: np.ndarray, item: str, rows: RowAxis | None = None) -> list[tuple[str, str]]:
    """A picker's options, one per block of rows: ``position 5``, ``positions 5-9``, or with ``rows`` the rows'
    labels (``key - query distance -3``, ``key - query distance 4 to 8``)."""
    spans = list(enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())))
    if rows is not None:
        text = rows.labels
        return [(str(b), f"{rows.name} {text[lo]}" if hi - lo == 1 else f"{rows.name} {text[lo]} to {text[hi - 1]}")
                for b, (lo, hi) in spans]
    return [(str(b), f"{item} {lo}" if hi - lo == 1 else f"{item}s {lo}-{hi - 1}") for b, (lo, hi) in spans]


def _block_of(bounds: np.ndarray, index: int) -> int:
    return int(np.clip(np.searchsorted(bounds, index, side="right") - 1, 0, len(bounds) - 2))


def picker(fine: FineCodes, source: ColumnDataSource, *, along_rows: bool, initial: Sequence[int], fig: Any,
            title: str, name: str, rows: RowAxis | None = None) -> MultiChoice:
    """A searchable choice of ``fine``'s dimensions (``along_rows``: one line each in ``fig``) or positions (one
    dot per dimension each), ``initial`` chosen first; the browser redraws ``fig`` from ``source`` on a change."""
    rows_bounds, cols_bounds = fine.dimension_bounds, fine.position_bounds
    picked_bounds = rows_bounds if along_rows else cols_bounds
    other_bounds = cols_bounds if along_rows else rows_bounds
    options = (_block_labels(picked_bounds, "dimension") if along_rows else
               _block_labels(picked_bounds, "position", rows))
    value = list(dict.fromkeys(str(_block_of(picked_bounds, i)) for i in initial))
    starts = other_bounds[:-1].astype(np.int32)
    values = fine.decoded()  # the first lines, exactly as the browser will redraw them
    # each line's legend entry: its choice without the row axis's name (the picker's), cut short
    texts = [(v, shortened(text[len(rows.name) + 1:] if rows is not None and not along_rows else text, MAX_LEGEND))
             for v, text in options]
    names = dict(texts)
    if along_rows:
        data: dict[str, list] = {"xs": [], "ys": [], "label": [], "colour": []}
        for k, v in enumerate(value):
            data["xs"].append(starts)
            data["ys"].append(values[int(v)].copy())  # a copy: a view would keep every dimension's values alive
            data["label"].append(names[v])
            data["colour"].append(Category10_10[k % 10])
        lines = ColumnDataSource(data)
        fig.multi_line(xs="xs", ys="ys", line_color="colour", legend_field="label", line_width=1.6, source=lines)
    else:
        picked = [int(v) for v in value]
        lines = ColumnDataSource({
            "x": np.tile(starts, len(picked)).astype(np.int32),
            "y": np.concatenate([values[:, t] for t in picked]) if picked else np.zeros(0, np.float32),
            "label": [names[v] for v in value for _ in starts],
            "colour": [Category10_10[k % 10] for k in range(len(value)) for _ in starts]})
        fig.scatter(x="x", y="y", color="colour", legend_field="label", size=3.5, line_color=None, source=lines)
    # the widget shows its options as HTML (Choices.js, allowHTML): row labels come from files, so escape them
    choice = MultiChoice(title=title, options=[(v, html.escape(text)) for v, text in options], value=value, name=name,
                         sizing_mode="stretch_width", search_option_limit=60)
    choice.js_on_change("value", CustomJS(
        args={"fine": source, "lines": lines, "choice": choice, "texts": texts, "starts": starts,
              "along_rows": along_rows, "palette": list(Category10_10)},
        code=PICK_JS))
    at = row_js(rows if along_rows else None, POINTS)
    fig.add_tools(HoverTool(tooltips=[("", "@label"), ("at", "$x{custom}"), ("value", "$y{0.0000}")],
                            formatters={"$x": at}))
    legend_outside(fig, "right")  # dense lines and dots stay visible
    return choice

