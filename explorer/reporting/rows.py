"""Row axes: what ticks, tick labels and hovers show along a table's rows (position numbers, or the labels of a
``RowAxis`` when the rows are not positions, such as DeBERTa's distance buckets)."""

from __future__ import annotations

import re

import numpy as np
from bokeh.models import CustomJSHover, CustomJSTicker, CustomJSTickFormatter, NoOverlap, Range1d

from explorer.core.embedding import RowAxis


def floor_js() -> CustomJSHover:
    """A hover formatter that shows the whole number below a coordinate (an image's cell)."""
    return CustomJSHover(code="return Math.floor(value).toString();")  # fresh per figure: a model belongs to one document


#: A row's label at coordinate ``value``: what ticks and hovers show along a row axis. Images draw row i over
#: [i, i + 1) (``shift`` 0); lines and dots draw it at i (``shift`` 0.5: the nearest row).
ROW_LABEL_JS = "const i = Math.floor(value + shift); return i >= 0 && i < labels.length ? labels[i] : '';"
#: Where rows are drawn: ``cells`` of an image (row i over [i, i + 1)) or ``points`` of a line (row i at i).
CELLS, POINTS = "cells", "points"
#: The most characters of a row label a tick shows, and of a picker's choice its legend shows (hovers and the
#: pickers themselves show all): a 48-character label at every tick would squeeze the plot beside it to a sliver.
MAX_TICK, MAX_LEGEND = 16, 32


def row_js(rows: RowAxis | None, drawn: str = CELLS) -> CustomJSHover:
    """The hover text of a coordinate along the rows: the row's label, or the position number."""
    if rows is None:
        return floor_js() if drawn == CELLS else CustomJSHover(code="return value.toFixed(0);")
    return CustomJSHover(args={"labels": list(rows.labels), "shift": 0.0 if drawn == CELLS else 0.5},
                         code=ROW_LABEL_JS)


def row_range(n: int, rows: RowAxis | None, down: bool = False) -> Range1d:
    """A fresh range over ``n`` rows: left to right (top to bottom with ``down``), or the other way round when the
    row axis asks for it (``RowAxis.reverse``: its labels then read ascending)."""
    flip = (rows is not None and rows.reverse) != down
    return Range1d(n, 0) if flip else Range1d(0, n)


#: Ticks along rows, as dense and as even as a normal axis's: the visible rows are cut into about ``TARGET`` equal
#: windows (at multiples of the window's length, so panning keeps them), and each window is ticked at its row whose
#: numbers (``low[r] .. high[r]``) hold the roundest number (a multiple of the largest of 1, 2 or 5 times a power of
#: ten), the nearer the window's middle the better, at the middle of that row (``r + centre``). An axis of DeBERTa's
#: distance buckets, linear near 0 and logarithmic beyond, so reads -100, -50, 0, 50, 100 where its rows are dense as
#: well as 200 and 400 near the ends (rounding the numbers alone left its middle half with one tick, at 0). Rows
#: labelled by text are given their row numbers: whole rows, each once.
ROW_TICKS_JS = """
const a = Math.min(cb_data.start, cb_data.end), b = Math.max(cb_data.start, cb_data.end);
const lo = Math.max(0, Math.ceil(a - centre)), hi = Math.min(low.length, Math.floor(b - centre) + 1);
if (hi <= lo) return [];
const steps = [];
for (let e = 12; e >= 0; e--) { for (const f of [5, 2, 1]) steps.push(f * Math.pow(10, e)); }
const roundness = (r) => {  // how round the roundest number in row r is: -1 for a row without numbers
  if (!(Number.isFinite(low[r]) && Number.isFinite(high[r]))) return -1;
  const k = steps.findIndex((s) => Math.floor(high[r] / s) * s >= low[r]);
  return k < 0 ? 0 : steps.length - k;
};
const gap = Math.max(1, Math.floor((hi - lo) / TARGET));
const ticks = [];
for (let start = Math.floor(lo / gap) * gap; start < hi; start += gap) {
  const middle = start + (gap - 1) / 2;
  let best = -1, score = -1;
  for (let r = Math.max(lo, start); r < Math.min(hi, start + gap); r++) {
    const s = roundness(r);
    if (s > score || (s === score && s >= 0 && Math.abs(r - middle) < Math.abs(best - middle))) { best = r; score = s; }
  }
  const last = ticks.length ? ticks[ticks.length - 1] - centre : -Infinity;
  if (score >= 0 && best - last >= gap / 2) ticks.push(best + centre);  // never two ticks in a row's reach
}
return ticks;
""".replace("TARGET", "7")
#: A label that is a number, a range ``A..B`` or an open end ``>= A`` / ``<= B``: what ``ROW_TICKS_JS`` reads.
_NUMBER = r"(-?\d+)"
_ROW_NUMBERS = [(re.compile(rf"^{_NUMBER}$"), lambda m: (int(m[1]), int(m[1]))),
                (re.compile(rf"^{_NUMBER}\s*\.\.\s*{_NUMBER}$"), lambda m: (int(m[1]), int(m[2]))),
                (re.compile(rf"^>=\s*{_NUMBER}$"), lambda m: (int(m[1]), int(m[1]))),
                (re.compile(rf"^<=\s*{_NUMBER}$"), lambda m: (int(m[1]), int(m[1])))]


def row_numbers(rows: RowAxis) -> tuple[np.ndarray, np.ndarray]:
    """Each row's label as the numbers it spans (``low``, ``high``; NaN for a label that is no number, or holds one
    past float32, in which the ticker gets them): a number, ``A..B``, or an open end ``>= A`` / ``<= B`` (its bound
    alone)."""
    low, high = np.full(len(rows.labels), np.nan), np.full(len(rows.labels), np.nan)
    largest = float(np.finfo(np.float32).max)
    for r, label in enumerate(rows.labels):
        for pattern, bounds in _ROW_NUMBERS:
            match = pattern.match(label)
            if match:
                if all(abs(b) < largest for b in bounds(match)):
                    low[r], high[r] = sorted(bounds(match))
                break
    return low, high


def label_rows(axis, rows: RowAxis | None, drawn: str = CELLS) -> None:
    """Ticks and tick labels of a Bokeh axis (or colour bar) along the rows: the rows' labels when they are not
    position numbers, ticked at round numbers when the labels are numbers, else at round row numbers
    (``ROW_TICKS_JS``), at the middle of each row's cell or at its point (``drawn``)."""
    if rows is None:
        return
    if hasattr(axis, "axis_label"):
        axis.axis_label = rows.name
    shift = 0.0 if drawn == CELLS else 0.5
    axis.formatter = CustomJSTickFormatter(args={"labels": [shortened(label, MAX_TICK) for label in rows.labels],
                                                 "shift": shift}, code=ROW_LABEL_JS.replace("value", "tick"))
    axis.major_label_policy = NoOverlap()  # long labels side by side: those that would overlap are left out
    low, high = row_numbers(rows)
    if np.isfinite(low).sum() < 2:  # text: ticked at round row numbers (Bokeh's own ticker would tick 0.2, 0.4)
        low = high = np.arange(len(rows.labels), dtype=np.float64)
    axis.ticker = CustomJSTicker(args={"low": low.astype(np.float32), "high": high.astype(np.float32),
                                       "centre": 0.5 - shift}, major_code=ROW_TICKS_JS)


def shortened(text: str, most: int) -> str:
    """``text`` cut to at most ``most`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= most else text[:most - 1] + "\u2026"


def row_word(rows: RowAxis | None) -> str:
    """What one row is called on axes and in hovers: ``position``, or the row axis's name."""
    return "position" if rows is None else rows.name


def row_text(rows: RowAxis | None, index: np.ndarray) -> list[str]:
    """The labels of rows ``index`` (position numbers when the rows are positions)."""
    return [str(i) if rows is None else rows.labels[i] for i in np.asarray(index).tolist()]

