"""One function per report view: analysis results in, a fresh Bokeh model out. Renders, never computes.

Images are drawn as uint8 colour codes 0..255; a ``CodeScale`` says what value each code stands for. The
image's colour mapper and its colour bar run over the codes (the bar labelled with the values they stand for,
its ends included), and the hover decodes a code back to its value (accurate to half a code step, which it
shows). What travels in the file is smaller than the images:

- the matrix heatmap ships no colour codes: the page's document-ready callback computes them from the table's
  12-bit fine codes (``explorer.analysis.traces.FineCodes``), which the dimension traces and position vectors
  are decoded from as well, so one copy of the table serves all three;
- symmetric images (cosine matrices) ship only their lower triangle, mirrored by the same callback.

Every figure stretches to the width of its column (``stretch_width``, never under ``MIN_WIDTH`` pixels), with
its toolbar on its right and its legend outside the data.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (BoxSelectTool, BoxZoomTool, ColorBar, ColumnDataSource, CustomJS, CustomJSHover,
                          CustomJSTicker, CustomJSTickFormatter, Div, FixedTicker, Grid, HoverTool, LassoSelectTool,
                          LinearColorMapper, MultiChoice, NoOverlap, PanTool, Range1d, ResetTool, SaveTool, Spacer,
                          WheelZoomTool)
from bokeh.palettes import Category10_10, RdBu11, Viridis256, interp_palette
from bokeh.plotting import figure
from bokeh.transform import linear_cmap

from explorer.analysis import MatrixImage
from explorer.analysis.similarity import SimilarityImage
from explorer.analysis.traces import FINE_LEVELS, FineCodes
from explorer.core.embedding import PositionEmbedding, RowAxis

LEVELS = 256
#: Codes kept at each end for values beyond the robust range (they show in the end colours).
TAIL_CODES = 24
#: Share of |values| inside the matrix heatmap's colour range; the rest saturates.
ROBUST_QUANTILE = 99.5
#: Robust limit / median |value| above which the matrix gets a symmetric log colour scale.
SYMLOG_RATIO = 30.0
#: Blue for negative, red for positive, white at zero (Bokeh's RdBu11 runs from blue to red).
DIVERGING = tuple(interp_palette(RdBu11, LEVELS))
SIZE = 420
#: No plot is narrower than this many pixels, however narrow its column.
MIN_WIDTH = 300
#: Where every plot's toolbar sits (the page's subtitle says so): a vertical bar beside the plot needs only
#: the plot's height, which every plot has to spare; above it, it shares the title's line and overflows on
#: narrow plots.
TOOLBAR = "right"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
#: The matrix heatmap's colour scales: ``auto`` chooses symlog for heavy-tailed tables, else linear.
SCALES = ("auto", "linear", "symlog")
#: Colour-bar labels closer than this many codes to an end label are dropped (they would overlap it).
LABEL_GAP = 14
CAPTION_STYLE = "color:#444;font-size:90%;margin:0 0 1.2em 0"


# ---------------------------------------------------------------- value codes


@dataclass(frozen=True)
class CodeScale:
    """What each uint8 code means: ``table[code]`` is its value (increasing). Colours run linearly over
    codes ``low_code .. high_code``; codes outside are tails beyond the colour range (end colours).

    ``kind`` is ``linear`` (codes evenly over -limit .. limit, plus tails out to +-extreme) or ``symlog``
    (linear within +-linthresh, logarithmic out to +-extreme; no tails)."""

    table: np.ndarray  # float32, LEVELS values, increasing
    low_code: int
    high_code: int
    limit: float
    extreme: float
    kind: str = "linear"
    linthresh: float = 0.0

    @property
    def saturates(self) -> bool:
        """True when some values lie beyond the colour range (and are coded in the tails)."""
        return self.low_code > 0

    def code_of(self, value: float) -> int:
        """The code nearest ``value``."""
        return int(quantise(np.array([value]), self)[0])

    def ticks(self) -> dict[int, str]:
        """Colour-bar ticks, code -> label: both ends of the colour range always, 0, and in between powers of ten
        (symlog) or round values (linear); an inner label too close to an end is dropped, never an end."""
        low, high = float(self.table[self.low_code]), float(self.table[self.high_code])
        if self.kind == "symlog":
            inner = [s * 10.0 ** e for e in range(-8, 5) for s in (1, -1)
                     if high * 0.999 >= 10.0 ** e >= self.linthresh]
        else:
            inner = list(_round_steps(high))
        marks = {self.low_code: f"{low:.3g}", self.high_code: f"{high:.3g}"}
        for v in [0.0, *inner]:
            code = self.code_of(v)
            if self.low_code + LABEL_GAP <= code <= self.high_code - LABEL_GAP and code not in marks:
                marks[code] = f"{v:g}"
        return dict(sorted(marks.items()))


def _round_steps(top: float) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten) strictly inside +-top, about two per sign."""
    if not top > 0:
        return []
    step = 10.0 ** np.floor(np.log10(top / 2))
    for factor in (1, 2, 5, 10):
        if top / (factor * step) <= 3:
            step *= factor
            break
    count = int(np.floor(top / step * 0.9999))
    return [float(k * step * sign) for k in range(1, count + 1) for sign in (1, -1)]


def linear_scale(low: float, high: float) -> CodeScale:
    """256 codes evenly over [low, high]."""
    table = np.linspace(low, high, LEVELS).astype(np.float32)
    return CodeScale(table, 0, LEVELS - 1, max(abs(low), abs(high)), max(abs(low), abs(high)))


def symmetric_scale(limit: float, extreme: float) -> CodeScale:
    """Codes linear over [-limit, limit]; if ``extreme`` > ``limit``, ``TAIL_CODES`` codes at each end
    cover the values out to +-extreme, so outliers keep their values while the colours saturate."""
    limit = float(limit) if limit > 0 else 1.0
    extreme = max(float(extreme), limit)
    if extreme <= limit * 1.0001:
        return linear_scale(-limit, limit)
    inner = np.linspace(-limit, limit, LEVELS - 2 * TAIL_CODES)
    tail = np.linspace(limit, extreme, TAIL_CODES + 1)[1:]
    table = np.concatenate([-tail[::-1], inner, tail]).astype(np.float32)
    return CodeScale(table, TAIL_CODES, LEVELS - 1 - TAIL_CODES, limit, extreme)


def symlog_scale(linthresh: float, limit: float, linear_codes: int = 16, extreme: float | None = None) -> CodeScale:
    """128 magnitudes per sign: ``linear_codes`` evenly up to ``linthresh``, then geometric out to ``limit``;
    relative precision is constant beyond the threshold, so tiny and huge values both keep their shape.

    With ``extreme`` beyond ``limit`` (``--vmax``), ``TAIL_CODES`` codes at each end cover the values out to
    +-extreme: they keep their values while their colours saturate."""
    linthresh = max(float(linthresh), 1e-12)
    limit = max(float(limit), linthresh * 2)
    extreme = limit if extreme is None or extreme <= limit * 1.0001 else float(extreme)
    tails = TAIL_CODES if extreme > limit else 0
    half = LEVELS // 2 - tails
    k = np.arange(1, half + 1, dtype=np.float64)
    mags = np.where(k <= linear_codes, linthresh * k / linear_codes,
                    linthresh * np.exp((k - linear_codes) * np.log(limit / linthresh) / (half - linear_codes)))
    if tails:
        mags = np.concatenate([mags, np.linspace(limit, extreme, tails + 1)[1:]])
    table = np.concatenate([-mags[::-1], mags]).astype(np.float32)
    return CodeScale(table, tails, LEVELS - 1 - tails, limit, extreme, "symlog", linthresh)


def robust_limit(values: np.ndarray) -> float:
    """The ``ROBUST_QUANTILE`` percentile of |values| (never 0), a colour range that outliers cannot wash out."""
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size:
        return 1.0
    return _never_zero(float(np.percentile(finite, ROBUST_QUANTILE)), finite)


def _never_zero(limit: float, finite: np.ndarray) -> float:
    """``limit``, or when it is 0 (most cells exactly 0) the largest |value|, or 1 for an all-zero table."""
    return limit if limit > 0 else (float(finite.max()) or 1.0)


def heavy_tailed(values: np.ndarray) -> float | None:
    """The median |value| when the table's magnitudes span more than ``SYMLOG_RATIO`` between the median and the
    robust limit (most cells tiny next to a few large dimensions, as in GPT-2), else None."""
    finite = np.abs(values[np.isfinite(values)])
    if not finite.size:
        return None
    median, limit = (float(q) for q in np.percentile(finite, [50, ROBUST_QUANTILE]))  # one partition for both
    return median if median > 0 and _never_zero(limit, finite) > SYMLOG_RATIO * median else None


def matrix_scale(images: Sequence[MatrixImage], kind: str = "auto", vmax: float | None = None) -> CodeScale:
    """One code scale for the matrix heatmaps of ``images`` (one table's, or every table's for a shared scale).

    ``auto``: heavy-tailed tables get a symmetric log scale; others a linear range of +-(robust limit), with the
    few cells beyond it kept in tail codes. ``linear`` and ``symlog`` force the kind. ``vmax`` sets the end of
    the colour range (values beyond it keep their values in tail codes and show in the end colours)."""
    if kind not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {kind!r}")
    if vmax is not None and not (np.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive number, got {vmax!r}")
    extreme = max(float(np.nanmax(np.abs(img.values))) if img.values.size else 0.0 for img in images)
    medians = [m for m in (heavy_tailed(img.values) for img in images) if m is not None]
    if kind == "auto":
        kind = "symlog" if medians else "linear"
    if kind == "symlog":
        if not medians:  # asked for: the threshold is still the median |value|, where one exists
            finite = [np.abs(img.values[np.isfinite(img.values)]) for img in images]
            medians = [m for m in (float(np.median(f)) if f.size else 0.0 for f in finite) if m > 0]
        limit = float(vmax) if vmax is not None else extreme
        linthresh = min(medians) if medians else limit / 100
        if linthresh >= limit / 2:
            linthresh = limit / 100
        return symlog_scale(linthresh, limit, extreme=extreme)
    limit = float(vmax) if vmax is not None else max(robust_limit(img.values) for img in images)
    return symmetric_scale(limit, extreme)


#: Cosines: 256 codes over [-1, 1].
COSINE = linear_scale(-1.0, 1.0)


def quantise(values: np.ndarray, scale: CodeScale) -> np.ndarray:
    """The nearest code of every value (NaN maps to the code nearest 0)."""
    if scale.kind == "linear" and not scale.saturates:  # evenly spaced codes: no search needed
        low, high = float(scale.table[0]), float(scale.table[-1])
        v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
        codes = np.rint((v - np.float32(low)) * np.float32((LEVELS - 1) / ((high - low) or 1.0)))
        return np.clip(codes, 0, LEVELS - 1).astype(np.uint8)
    mids = (scale.table[1:].astype(np.float64) + scale.table[:-1]) / 2
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isfinite(v), v, 0.0)
    return np.searchsorted(mids, v).astype(np.uint8)


def decode(codes: np.ndarray, scale: CodeScale) -> np.ndarray:
    """The values the codes stand for (what the browser shows)."""
    return scale.table[codes]


def pack_lower(codes: np.ndarray) -> np.ndarray:
    """The lower triangle (with diagonal) of a square array, row by row: row i contributes i + 1 entries."""
    rows, cols = np.tril_indices(codes.shape[0])
    return np.ascontiguousarray(codes[rows, cols])


def unpack_lower(packed: np.ndarray, n: int) -> np.ndarray:
    """The symmetric n x n array ``pack_lower`` came from (the same mirror the browser applies)."""
    out = np.zeros((n, n), dtype=packed.dtype)
    rows, cols = np.tril_indices(n)
    out[rows, cols] = packed
    out[cols, rows] = packed
    return out


#: Once the document is ready: colours each matrix heatmap from its table's fine codes (the nearest
#: colour code, as ``quantise`` does: ``mids`` are the midpoints between the scale's values), and mirrors packed
#: lower triangles into their images.
UNPACK_JS = """
for (const [source, fine, mids] of coded) {
  const image = source.data.image[0];
  const codes = fine.data.codes[0], low = fine.data.low[0], high = fine.data.high[0];
  const cols = fine.data.cols[0], rows = low.length, top = mids.length;
  for (let d = 0; d < rows; d++) {
    const step = (high[d] - low[d]) / LEVELS;
    for (let t = 0; t < cols; t++) {
      const v = low[d] + codes[d * cols + t] * step;
      let lo = 0, hi = top;
      while (lo < hi) { const m = (lo + hi) >> 1; if (mids[m] < v) lo = m + 1; else hi = m; }
      image[d * cols + t] = lo;
    }
  }
  source.change.emit();
}
for (const [source, packed, n] of items) {
  const image = source.data.image[0];
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++, k++) {
      const v = packed[k];
      image[i * n + j] = v;
      image[j * n + i] = v;
    }
  }
  source.change.emit();
}
document.documentElement.dataset.posembedReady = "1";  // lets a headless browser know the page is whole
""".replace("LEVELS", str(FINE_LEVELS))


class Unpacker:
    """Collects the images a page completes in the browser; ``callback()`` is the one document-ready CustomJS
    for them all (packed lower triangles, and heatmaps coloured from fine codes)."""

    def __init__(self) -> None:
        self.items: list[list] = []
        self.coded: list[list] = []

    def add(self, source: ColumnDataSource, packed: np.ndarray, n: int) -> None:
        """Mirror ``packed`` (a lower triangle of an n x n image) into ``source``'s image on load."""
        self.items.append([source, packed, n])

    def add_coded(self, source: ColumnDataSource, fine: ColumnDataSource, scale: CodeScale) -> None:
        """Fill ``source``'s image on load with the colour codes of ``fine``'s values (``fine_source``) on
        ``scale``."""
        mids = ((scale.table[1:].astype(np.float64) + scale.table[:-1]) / 2).astype(np.float32)
        self.coded.append([source, fine, mids])

    def callback(self) -> CustomJS:
        """The one document-ready callback that completes every image added."""
        return CustomJS(args={"items": self.items, "coded": self.coded}, code=UNPACK_JS)


def fine_source(fine: FineCodes) -> ColumnDataSource:
    """The one copy of a table's fine codes in the document, read by its heatmap, traces and position vectors."""
    rows, cols = fine.codes.shape
    return ColumnDataSource({"codes": [np.ascontiguousarray(fine.codes).reshape(-1)], "low": [fine.low],
                             "high": [fine.high], "cols": [cols]}, name="fine_codes")


def fine_colour_codes(fine: FineCodes, scale: CodeScale) -> np.ndarray:
    """The colour codes the browser computes for a heatmap from ``fine``, with its arithmetic (float64 decoding,
    float32 midpoints), so a test can check what the page shows."""
    mids = ((scale.table[1:].astype(np.float64) + scale.table[:-1]) / 2).astype(np.float32).astype(np.float64)
    low, high = fine.low.astype(np.float64)[:, None], fine.high.astype(np.float64)[:, None]
    values = low + fine.codes.astype(np.float64) * ((high - low) / FINE_LEVELS)
    return np.searchsorted(mids, values).astype(np.uint8)


def _decode_hover(scale: CodeScale) -> CustomJSHover:
    code = """
const v = table[value];
const below = value > 0 ? table[value - 1] : v, above = value < table.length - 1 ? table[value + 1] : v;
const err = Math.max(v - below, above - v) / 2;
const tail = value < low_code ? ' (beyond the colour range)' : value > high_code ? ' (beyond the colour range)' : '';
return v.toFixed(4) + ' \\u00b1 ' + err.toPrecision(2) + tail;
"""
    return CustomJSHover(args={"table": scale.table, "low_code": scale.low_code, "high_code": scale.high_code},
                         code=code)


def _floor_js() -> CustomJSHover:
    return CustomJSHover(code="return Math.floor(value).toString();")  # fresh per figure: a model belongs to one document


#: A row's label at coordinate ``value``: what ticks and hovers show along a row axis. Images draw row i over
#: [i, i + 1) (``shift`` 0); lines and dots draw it at i (``shift`` 0.5: the nearest row).
ROW_LABEL_JS = "const i = Math.floor(value + shift); return i >= 0 && i < labels.length ? labels[i] : '';"
#: Where rows are drawn: ``cells`` of an image (row i over [i, i + 1)) or ``points`` of a line (row i at i).
CELLS, POINTS = "cells", "points"
#: The most characters of a row label a tick shows, and of a picker's choice its legend shows (hovers and the
#: pickers themselves show all): a 48-character label at every tick would squeeze the plot beside it to a sliver.
MAX_TICK, MAX_LEGEND = 16, 32


def _row_js(rows: RowAxis | None, drawn: str = CELLS) -> CustomJSHover:
    """The hover text of a coordinate along the rows: the row's label, or the position number."""
    if rows is None:
        return _floor_js() if drawn == CELLS else CustomJSHover(code="return value.toFixed(0);")
    return CustomJSHover(args={"labels": list(rows.labels), "shift": 0.0 if drawn == CELLS else 0.5},
                         code=ROW_LABEL_JS)


def row_range(n: int, rows: RowAxis | None, down: bool = False) -> Range1d:
    """A fresh range over ``n`` rows: left to right (top to bottom with ``down``), or the other way round when the
    row axis asks for it (``RowAxis.reverse``: its labels then read ascending)."""
    flip = (rows is not None and rows.reverse) != down
    return Range1d(n, 0) if flip else Range1d(0, n)


#: Ticks along rows labelled by numbers: at the middle of each visible row (its tick, ``r + centre``, within the
#: range) whose numbers (``low[r] .. high[r]``) hold a multiple of a round step (1, 2 or 5 times a power of ten)
#: chosen for about ``TARGET`` ticks over what is visible, so an axis of distance buckets reads 0, 20, 40 rather than
#: whatever distances rows 0, 20, 40 hold; at most ``2 * TARGET`` of them (every k-th) when the numbers repeat. Rows
#: labelled by text are given their row numbers: whole rows, each once.
ROW_TICKS_JS = """
const a = Math.min(cb_data.start, cb_data.end), b = Math.max(cb_data.start, cb_data.end);
const lo = Math.max(0, Math.ceil(a - centre)), hi = Math.min(low.length, Math.floor(b - centre) + 1);
let vmin = Infinity, vmax = -Infinity;
for (let r = lo; r < hi; r++) {
  if (Number.isFinite(low[r])) { vmin = Math.min(vmin, low[r], high[r]); vmax = Math.max(vmax, low[r], high[r]); }
}
if (!(vmax >= vmin)) return [];
const rough = Math.max((vmax - vmin) / TARGET, 1);
const power = Math.pow(10, Math.floor(Math.log10(rough)));
const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= rough);
const ticks = [];
for (let r = lo; r < hi; r++) {
  if (Number.isFinite(low[r]) && Math.floor(high[r] / step) * step >= low[r]) ticks.push(r + centre);
}
const every = Math.ceil(ticks.length / (2 * TARGET));  // numbers that repeat (out of order) tick many rows
return every > 1 ? ticks.filter((t, k) => k % every === 0) : ticks;
""".replace("TARGET", "6")
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


def _colour_bar(fig, scale: CodeScale, title: str) -> None:
    # the bar runs over the colour codes, labelled with the values they stand for: both ends always
    ticks = scale.ticks()
    fig.add_layout(ColorBar(color_mapper=_code_mapper(scale), width=10,
                            title=title + (" (symlog)" if scale.kind == "symlog" else ""),
                            ticker=FixedTicker(ticks=list(ticks)),
                            major_label_overrides={k: v for k, v in ticks.items()}, name="colour_bar"), "right")


def _without_grid(fig) -> None:
    """Drop the grid of a plot an opaque image fills: its lines are drawn under the image, never seen."""
    fig.center = [r for r in fig.center if not isinstance(r, Grid)]


def _code_mapper(scale: CodeScale) -> LinearColorMapper:
    return LinearColorMapper(palette=DIVERGING, low=scale.low_code, high=scale.high_code)


def _figure(title: str, name: str, height: int, **kw) -> figure:
    """A figure as wide as its column (at least ``MIN_WIDTH``), ``height`` pixels high, toolbar on the right."""
    # the TOOLS string's tools, made directly: resolving tool names costs more than the tools themselves
    tools = [PanTool(), WheelZoomTool(), BoxZoomTool(), ResetTool(), SaveTool()]
    fig = figure(title=title, name=name, height=height, tools=tools, sizing_mode="stretch_width",
                 min_width=MIN_WIDTH, toolbar_location=TOOLBAR, **kw)
    fig.toolbar.logo = None
    fig.title.text_font_size = "12pt"
    return fig


def _legend_outside(fig, place: str = "below") -> None:
    """Move the figure's legend out of the data: below in one row (few entries), or right in a column."""
    legend = fig.legend[0]
    fig.add_layout(legend, place)
    legend.orientation = "horizontal" if place in ("above", "below") else "vertical"
    legend.label_text_font_size = "9pt"
    legend.spacing = 0 if place == "right" else 12
    legend.padding = 4


def stack(*children, name: str | None = None):
    """Children one under another, as wide as the column they are in."""
    return column(*children, sizing_mode="stretch_width", **({"name": name} if name else {}))


def side_by_side(*children, spacing: int = 24, wrap: bool = True):
    """Children next to each other, sharing the width evenly; with ``wrap`` (the default), those that would be
    narrower than ``MIN_WIDTH`` wrap under each other instead (a narrow column: a comparison's at 1280 px).

    Bokeh's Row is a CSS flex box, and a stretching child is ``flex: 1 0 0px`` with its ``min_width`` as CSS
    ``min-width``: the box wraps a line once its children's min widths and the spacing overflow it, and the
    children of a line share its width evenly. A stretching child without a min width (a plot's stack with its
    caption) gets ``MIN_WIDTH``, that of the plot in it; fixed-width children keep their widths."""
    if wrap:
        for child in children:
            if child.min_width is None and child.sizing_mode in ("stretch_width", "stretch_both"):
                child.min_width = MIN_WIDTH
    return row(*children, sizing_mode="stretch_width", spacing=spacing,
               **({"styles": {"flex-wrap": "wrap"}} if wrap else {}))


def spacer() -> Spacer:
    """An empty stretch of the column (where a table has no block)."""
    return Spacer(sizing_mode="stretch_width", height=1)


# ---------------------------------------------------------------- text


def fmt(value: float | None, digits: str = ".3g") -> str:
    """A number for a caption, ``n/a`` when missing or not finite."""
    return "n/a" if value is None or not np.isfinite(value) else format(value, digits)


def block_note(bounds: np.ndarray, what: str, pairs: bool = False) -> str:
    """A caption sentence for block-averaged views (empty when every block holds one item)."""
    sizes = np.diff(bounds)
    if sizes.max(initial=1) <= 1:
        return ""
    size = int(round(sizes.mean()))
    block = f"{size} x {size} pairs of {what}" if pairs else f"{size} {what}"
    return f" There are more {what} than the display resolution, so each pixel is a mean over a block of about {block}."


def provenance_header(embedding: PositionEmbedding, summary: dict[str, float], extra: dict[str, str] | None = None,
                      width: int | None = None) -> Div:
    """A table of where the matrix came from and a few summary numbers; every string is escaped."""
    info = embedding.provenance()
    rows = [
        ("provider", info["provider"]),
        ("source", info["source"]),
        ("kind", info["kind"]),
        ("shape", f"{embedding.positions} {'positions' if embedding.rows is None else 'rows'} \u00d7 "
                  f"{embedding.dim} dimensions"),
        ("rows", None if embedding.rows is None else
         f"{embedding.rows.name}, {embedding.rows.labels[0]} (row 0) to {embedding.rows.labels[-1]}"),
        ("stored dtype", info["dtype"]),
        ("offset rows dropped", info["offset"]),
        ("tensor", info["tensor"]),
        ("revision", info["revision"]),
        ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())),
        ("note", info["description"]),
        ("values", f"{summary['value_min']:.4g} .. {summary['value_max']:.4g} "
                   f"(mean {summary['value_mean']:.3g}, std {summary['value_std']:.3g})"),
        ("row norm |p_i|", f"mean {summary['row_norm_mean']:.4g}, min {summary['row_norm_min']:.4g}, "
                           f"max {summary['row_norm_max']:.4g}"),
        ("mean cos(p_i, p_i+1)", f"{summary['neighbour_cosine_mean']:.4f}"),
        *(extra or {}).items(),
    ]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em;font-weight:600'>{html.escape(str(k))}</th>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
        if v not in (None, "")
    )
    return div(
        f"<h2 style='margin-bottom:0.3em'>{html.escape(embedding.label)}</h2><table>{cells}</table>",
        name="provenance",
        **_width(width),
    )


def div(text: str, **kw) -> Div:
    """A Div of ``text`` (HTML whose every string is escaped) with Bokeh's TeX typesetting off: MathJax would read
    ``$$...$$`` in a file's or a model's strings as math, and its ``\\href`` as a link to any URL (javascript: too)."""
    return Div(text=text, disable_math=True, **kw)


def _width(width: int | None) -> dict:
    """A fixed width when given, else as wide as the column."""
    return {"width": width} if width else {"sizing_mode": "stretch_width"}


def caption(text: str, width: int | None = None) -> Div:
    """A short explanation under a view (plain text, escaped); as wide as its column unless ``width`` is given."""
    return div(f"<p style='{CAPTION_STYLE}'>{html.escape(text)}</p>", **_width(width))


def heading(text: str, width: int | None = None) -> Div:
    """A section heading (plain text, escaped)."""
    return div(f"<h3 style='margin:1em 0 0 0'>{html.escape(text)}</h3>", **_width(width))


def number_grid(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], name: str,
                 width: int | None = None) -> Div:
    """A small grid of numbers and labels with a header row, as HTML (every cell escaped)."""
    def cell(tag: str, value: object) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"<{tag} style='text-align:left;padding:2px 1em 2px 0'>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return div(f"<b>{html.escape(title)}</b><table><tr>{head}</tr>{body}</table>", name=name, **_width(width))


# ---------------------------------------------------------------- images


def matrix_heatmap(image: MatrixImage, scale: CodeScale, fine: ColumnDataSource, unpacker: Unpacker,
                   x_range: Range1d | None = None, rows: RowAxis | None = None) -> figure:
    """The table as an image: positions (or the rows of ``rows``) on x, dimensions on y, coloured on ``scale``.

    Its colour codes are not in the file: ``unpacker``'s document-ready callback computes them from ``fine``
    (the table's fine codes, ``fine_source``), which the traces and position vectors read too.
    """
    n, d = int(image.position_bounds[-1]), int(image.dimension_bounds[-1])
    fig = _figure("position embedding matrix", "matrix", SIZE, x_range=x_range or row_range(n, rows),
                  y_range=Range1d(0, d), x_axis_label=row_word(rows), y_axis_label="dimension")
    label_rows(fig.xaxis[0], rows)
    blank = np.zeros(image.values.shape, dtype=np.uint8)  # filled on load; zeros cost a few bytes gzipped
    renderer = fig.image(image=[blank], x=0, y=0, dw=n, dh=d, color_mapper=_code_mapper(scale))
    unpacker.add_coded(renderer.data_source, fine, scale)
    _without_grid(fig)
    _colour_bar(fig, scale, "value")
    fig.add_tools(HoverTool(
        renderers=[renderer],
        tooltips=[(row_word(rows), "$x{custom}"), ("dimension", "$y{custom}"), ("value", "@image{custom}")],
        formatters={"$x": _row_js(rows), "$y": _floor_js(), "@image": _decode_hover(scale)},
    ))
    return fig


def similarity_heatmap(image: SimilarityImage, unpacker: Unpacker, x_range: Range1d | None = None,
                       y_range: Range1d | None = None, size: int = SIZE, rows: RowAxis | None = None) -> figure:
    """A cosine-similarity image over positions (or the rows of ``rows``) or across dimensions, colour range
    [-1, 1]."""
    n = int(image.bounds[-1])
    over = image.axis == "positions"
    rows = rows if over else None
    item = row_word(rows) if over else "dimension"
    kind = "centred " if image.centred else ""
    fig = _figure(f"{kind}cosine {'over' if over else 'across'} {image.axis if rows is None else 'rows'}",
                  f"cosine_{image.axis}{'_centred' if image.centred else ''}", size,
                  x_range=x_range or row_range(n, rows), y_range=y_range or row_range(n, rows, down=True),
                  x_axis_label=item, y_axis_label=item)
    for axis in (*fig.xaxis, *fig.yaxis):
        label_rows(axis, rows)
    codes = quantise(image.values, COSINE)
    r = codes.shape[0]
    renderer = fig.image(image=[np.zeros_like(codes)], x=0, y=0, dw=n, dh=n, color_mapper=_code_mapper(COSINE))
    _without_grid(fig)
    unpacker.add(renderer.data_source, pack_lower(codes), r)
    _colour_bar(fig, COSINE, "cosine")
    fig.add_tools(HoverTool(
        renderers=[renderer],
        tooltips=[(f"{item} i", "$y{custom}"), (f"{item} j", "$x{custom}"), ("cosine", "@image{custom}")],
        formatters={"$x": _row_js(rows), "$y": _row_js(rows), "@image": _decode_hover(COSINE)},
    ))
    return fig


# ---------------------------------------------------------------- pickers

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


def _picker(fine: FineCodes, source: ColumnDataSource, *, along_rows: bool, initial: Sequence[int], fig: figure,
            title: str, name: str, rows: RowAxis | None = None) -> MultiChoice:
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
            data["ys"].append(values[int(v)])
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
    at = _row_js(rows if along_rows else None, POINTS)
    fig.add_tools(HoverTool(tooltips=[("", "@label"), ("at", "$x{custom}"), ("value", "$y{0.0000}")],
                            formatters={"$x": at}))
    _legend_outside(fig, "right")  # dense lines and dots stay visible
    return choice


def dimension_traces(fine: FineCodes, source: ColumnDataSource, initial: Sequence[int],
                     x_range: Range1d | None = None, rows: RowAxis | None = None) -> tuple[MultiChoice, figure]:
    """Chosen dimensions' values across positions (or the rows of ``rows``), with a picker; lines are decoded
    from the fine codes."""
    n = int(fine.position_bounds[-1])
    across = "positions" if rows is None else "rows"
    fig = _figure(f"dimension traces: a dimension's value across {across}", "dimension_traces", SIZE - 100,
                  x_range=x_range or row_range(n, rows), x_axis_label=row_word(rows), y_axis_label="value")
    label_rows(fig.xaxis[0], rows, POINTS)
    choice = _picker(fine, source, along_rows=True, initial=initial, fig=fig,
                     title="dimensions to show (type to search)", name="dimension_picker", rows=rows)
    return choice, fig


def position_vectors(fine: FineCodes, source: ColumnDataSource, initial: Sequence[int],
                     rows: RowAxis | None = None) -> tuple[MultiChoice, figure]:
    """Chosen positions' (or rows') vectors (value against dimension, one dot per dimension), with a picker."""
    d = int(fine.dimension_bounds[-1])
    title = ("position vectors: one position's value in every dimension" if rows is None else
             "row vectors: one row's value in every dimension")
    fig = _figure(title, "position_vectors", SIZE - 100,
                  x_range=Range1d(0, d), x_axis_label="dimension", y_axis_label="value")
    choice = _picker(fine, source, along_rows=False, initial=initial, fig=fig, rows=rows,
                     title=f"{'positions' if rows is None else 'rows'} to show (type to search)",
                     name="position_picker")
    return choice, fig


# ---------------------------------------------------------------- curves


def offset_profile(offset, x_range: Range1d | None = None, rows: RowAxis | None = None) -> figure:
    """m(k), the mean cosine between positions (or the rows of ``rows``) k apart, with a +-1 std band s(k)."""
    lag = offset.lag.astype(np.int32)
    source = ColumnDataSource({"lag": lag, "mean": offset.mean, "std": offset.std,
                               "lo": (offset.mean - offset.std).astype(np.float32),
                               "hi": (offset.mean + offset.std).astype(np.float32)})
    n = int(lag[-1]) + 1 if len(lag) else 1
    fig = _figure("offset profile m(k)", "offset_profile", SIZE - 80, x_range=x_range or Range1d(0, n),
                  x_axis_label=f"offset k ({'positions' if rows is None else 'rows'} apart)", y_axis_label="cosine")
    fig.varea(x="lag", y1="lo", y2="hi", source=source, color="#9ecae1", alpha=0.5, legend_label="m(k) \u00b1 s(k)")
    fig.line(x="lag", y="mean", source=source, color="#08519c", line_width=1.6, legend_label="m(k)")
    fig.add_tools(HoverTool(tooltips=[("k", "@lag"), ("m(k)", "@mean{0.0000}"), ("s(k)", "@std{0.0000}")], mode="vline"))
    _legend_outside(fig)
    return fig


def offset_overlay(labels: Sequence[str], offsets: Sequence) -> figure:
    """The offset profiles m(k) of several tables on one plot."""
    n = max((int(o.lag[-1]) + 1 for o in offsets if len(o.lag)), default=1)
    fig = _figure("offset profiles overlaid", "offset_overlay", SIZE - 60, x_range=Range1d(0, n),
                  x_axis_label="offset k (positions apart)", y_axis_label="mean cosine m(k)")
    for k, (label, o) in enumerate(zip(labels, offsets)):
        source = ColumnDataSource({"lag": o.lag.astype(np.int32), "mean": o.mean})
        fig.line(x="lag", y="mean", source=source, color=Category10_10[k % 10], line_width=1.8, legend_label=label)
    fig.add_tools(HoverTool(tooltips=[("k", "@lag"), ("m(k)", "@mean{0.0000}")]))
    _legend_outside(fig, "right" if len(labels) > 3 else "below")
    return fig


def row_norms(norms, x_range: Range1d | None = None, rows: RowAxis | None = None) -> figure:
    """|p_i| across positions or the rows of ``rows`` (a min-max band per block when the table is longer than the
    resolution)."""
    index = norms.index.astype(np.int32)
    n = int(index[-1]) + 1 if len(index) else 1
    fig = _figure("row norms |p_i|", "row_norms", SIZE - 80, x_range=x_range or row_range(n, rows),
                  x_axis_label=row_word(rows), y_axis_label="norm")
    label_rows(fig.xaxis[0], rows, POINTS)
    source = ColumnDataSource({"position": index, "low": norms.low, "high": norms.high,
                               **({"label": row_text(rows, index)} if rows is not None else {})})
    if np.array_equal(norms.low, norms.high):
        fig.line(x="position", y="low", source=source, color="#31a354", line_width=1.6)
    else:
        fig.varea(x="position", y1="low", y2="high", source=source, color="#31a354", alpha=0.7)
    at = "@position" if rows is None else "@label"
    fig.add_tools(HoverTool(tooltips=[(row_word(rows), at), ("|p|", "@low{0.000} .. @high{0.000}")], mode="vline"))
    return fig


# ---------------------------------------------------------------- PCA, spectra


def pca_explained(pca) -> figure:
    """The share of variance on each of the top principal components."""
    k = np.arange(1, len(pca.explained) + 1, dtype=np.int32)
    source = ColumnDataSource({"component": k, "share": pca.explained,
                               "cumulative": np.cumsum(pca.explained, dtype=np.float32)})
    fig = _figure("PCA: explained variance", "pca_explained", SIZE - 60, x_axis_label="component",
                  y_axis_label="share of variance", y_range=Range1d(0, 1.02))
    fig.vbar(x="component", top="share", width=0.8, source=source, color="#6baed6", legend_label="share")
    fig.line(x="component", y="cumulative", source=source, color="#08519c", legend_label="cumulative")
    fig.scatter(x="component", y="cumulative", source=source, color="#08519c", size=4, legend_label="cumulative")
    fig.add_tools(HoverTool(tooltips=[("PC", "@component"), ("share", "@share{0.0000}"),
                                      ("cumulative", "@cumulative{0.0000}")]))
    _legend_outside(fig)
    fig.xaxis.ticker.desired_num_ticks = len(k) or 1
    return fig


def pca_scatters(pca, positions: int, mapper_high: int | None = None,
                 rows: RowAxis | None = None) -> tuple[figure, figure]:
    """PC1/PC2 and PC2/PC3 scores of the positions (or the rows of ``rows``), coloured by row; selection is
    shared (one source)."""
    source = ColumnDataSource({"position": pca.index.astype(np.int32), "pc1": pca.scores[:, 0],
                               "pc2": pca.scores[:, 1], "pc3": pca.scores[:, 2],
                               **({"label": row_text(rows, pca.index)} if rows is not None else {})})
    colour = linear_cmap("position", Viridis256, 0, max(1, mapper_high or positions) - 1)
    figs = []
    for a, b in (("pc1", "pc2"), ("pc2", "pc3")):
        fig = _figure(f"{a.upper()} / {b.upper()}", f"pca_{a}_{b}", SIZE - 60,
                      x_axis_label=a.upper(), y_axis_label=b.upper())
        renderer = fig.scatter(x=a, y=b, source=source, color=colour, size=4, line_color=None,
                               selection_line_color="black", nonselection_alpha=0.08)
        fig.add_tools(HoverTool(renderers=[renderer], tooltips=[(row_word(rows), "@position" if rows is None else "@label"),
                                                                 (a.upper(), f"@{a}{{0.000}}"),
                                                                 (b.upper(), f"@{b}{{0.000}}")]))
        fig.add_tools(BoxSelectTool(), LassoSelectTool())
        figs.append(fig)
    bar = ColorBar(color_mapper=colour.transform, width=10, title=row_word(rows))
    label_rows(bar, rows, POINTS)
    figs[1].add_layout(bar, "right")
    return figs[0], figs[1]


def singular_values(spectrum) -> figure:
    """The raw table's resolved singular values, descending, on a log axis (zeros and unresolved ones left out:
    the caption counts them)."""
    from explorer.analysis.decomposition import UNRESOLVED

    s = spectrum.singular_values
    keep = s >= UNRESOLVED * float(s[0]) if len(s) else np.zeros(0, bool)
    keep &= s > 0
    k = (np.arange(1, len(s) + 1, dtype=np.int32))[keep]
    fig = _figure(f"singular values (effective rank {spectrum.effective_rank:.1f})", "singular_values",
                  SIZE - 80, x_axis_label="k", y_axis_label="singular value s_k", y_axis_type="log")
    source = ColumnDataSource({"k": k, "s": s[keep]})
    fig.line(x="k", y="s", source=source, color="#756bb1", line_width=1.6)
    fig.add_tools(HoverTool(tooltips=[("k", "@k"), ("s_k", "@s{0.0000}")], mode="vline"))
    return fig


def dimension_frequencies(freq) -> figure:
    """Each dimension's dominant wavelength (positions per cycle), coloured by the share of power it holds."""
    d = np.arange(len(freq.wavelength), dtype=np.int32)
    source = ColumnDataSource({"dimension": d, "wavelength": freq.wavelength, "frequency": freq.frequency,
                               "power": freq.power})
    fig = _figure("per-dimension spectrum: dominant wavelength", "dimension_frequencies", SIZE - 80,
                  x_axis_label="dimension", y_axis_label="wavelength (positions)", y_axis_type="log")
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
    fig.scatter(x="dimension", y="wavelength", source=source, size=4, line_color=None,
                color={"field": "power", "transform": mapper})
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title="power share"), "right")
    fig.add_tools(HoverTool(tooltips=[("dimension", "@dimension"), ("wavelength", "@wavelength{0.0}"),
                                      ("frequency", "@frequency{0.00000}"), ("power share", "@power{0.000}")]))
    return fig
