"""Colour encoding: values as uint8 colour codes on a ``CodeScale``, the page's colour mappers and colour bars over the
codes, and what the browser completes on load (``Unpacker``).

Images are drawn as uint8 colour codes 0..255; a ``CodeScale`` says what value each code stands for. The
image's colour mapper and its colour bar run over the codes (the bar labelled with the values they stand for,
its ends included), and the hover decodes a code back to its value (accurate to half a code step, which it
shows). What travels in the file is smaller than the images:

- the matrix heatmap ships no colour codes: the page's document-ready callback computes them from the table's
  12-bit fine codes (``explorer.analysis.traces.FineCodes``), which the dimension traces and position vectors
  are decoded from as well, so one copy of the table serves all three;
- symmetric images (cosine matrices) ship only their lower triangle, mirrored by the same callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, CustomJS, CustomJSHover, FixedTicker, LinearColorMapper
from bokeh.palettes import RdBu11, interp_palette

from explorer.analysis import MatrixImage
from explorer.analysis.traces import FINE_LEVELS, FineCodes
from explorer.core.choices import SCALES  # the matrix heatmap's colour scales, defined once for CLI, API and page

LEVELS = 256
#: Codes kept at each end for values beyond the robust range (they show in the end colours).
TAIL_CODES = 24
#: Share of |values| inside the matrix heatmap's colour range; the rest saturates.
ROBUST_QUANTILE = 99.5
#: Robust limit / median |value| above which the matrix gets a symmetric log colour scale.
SYMLOG_RATIO = 30.0
#: Blue for negative, red for positive, white at zero (Bokeh's RdBu11 runs from blue to red).
DIVERGING = tuple(interp_palette(RdBu11, LEVELS))
#: Colour-bar labels closer than this many codes to an end label are dropped (they would overlap it).
LABEL_GAP = 14


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
        # one float32 copy, worked in place (a 1024 x 1024 cosine image's 4 MiB once, not four times)
        v = np.nan_to_num(np.array(values, dtype=np.float32), copy=False, nan=0.0)
        v -= np.float32(low)
        v *= np.float32((LEVELS - 1) / ((high - low) or 1.0))
        np.rint(v, out=v)
        return np.clip(v, 0, LEVELS - 1, out=v).astype(np.uint8)
    mids = (scale.table[1:].astype(np.float64) + scale.table[:-1]) / 2
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isfinite(v), v, 0.0)
    return np.searchsorted(mids, v).astype(np.uint8)


def decode(codes: np.ndarray, scale: CodeScale) -> np.ndarray:
    """The values the codes stand for (what the browser shows)."""
    return scale.table[codes]


def pack_lower(codes: np.ndarray) -> np.ndarray:
    """The lower triangle (with diagonal) of a square array, row by row: row i contributes i + 1 entries."""
    return codes[np.tri(*codes.shape[:2], dtype=bool)]  # a mask of n x n bytes, not two n x n / 2 index arrays


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


def decode_hover(scale: CodeScale) -> CustomJSHover:
    """A hover formatter that shows a code's value on ``scale`` with its rounding error."""
    code = """
const v = table[value];
const below = value > 0 ? table[value - 1] : v, above = value < table.length - 1 ? table[value + 1] : v;
const err = Math.max(v - below, above - v) / 2;
const tail = value < low_code ? ' (beyond the colour range)' : value > high_code ? ' (beyond the colour range)' : '';
return v.toFixed(4) + ' \\u00b1 ' + err.toPrecision(2) + tail;
"""
    return CustomJSHover(args={"table": scale.table, "low_code": scale.low_code, "high_code": scale.high_code},
                         code=code)


def colour_bar(fig, scale: CodeScale, title: str, mapper: LinearColorMapper | None = None) -> None:
    """A colour bar right of ``fig`` over ``scale``'s codes, labelled with the values they stand for; ``mapper``:
    the image's own colour mapper (``code_mapper(scale)``), so image and bar share one."""
    # the bar runs over the colour codes, labelled with the values they stand for: both ends always
    ticks = scale.ticks()
    fig.add_layout(ColorBar(color_mapper=mapper or code_mapper(scale), width=10,
                            title=title + (" (symlog)" if scale.kind == "symlog" else ""),
                            ticker=FixedTicker(ticks=list(ticks)),
                            major_label_overrides={k: v for k, v in ticks.items()}, name="colour_bar"), "right")


def code_mapper(scale: CodeScale) -> LinearColorMapper:
    """The diverging colour mapper over ``scale``'s colour range of codes."""
    return LinearColorMapper(palette=DIVERGING, low=scale.low_code, high=scale.high_code)

