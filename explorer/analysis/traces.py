"""Dimension traces: which dimensions to show first, their values across positions, and the fine codes the
report's pickers decode.

- ``fine_codes``: an encoding for the page, not a registered analysis (the page computes it once per table
  from the ``matrix`` result, ``reporting/sections/matrix.fine_codes_of``; it is in neither ``analyze --json``
  nor ``--npz``): the display-resolution matrix (``matrix_image``) as 12-bit codes (stored as uint16) with each
  dimension's own minimum and maximum, value = low_d + code * (high_d - low_d) / 4095. One code step is 1/4095 of that
  dimension's range, so a decoded value is within 1/8190 (0.012 %) of its dimension's range of the table, eight
  times inside the report's promise of 0.1 %: the traces and position vectors of the report are drawn from these,
  not from the heatmap's 8-bit colours. Why 12 bits and not 16: the low four bits are noise
  that gzip cannot shrink; all 16 cost 0.36 MB more per 1024 x 768 table (GPT-2's report 5.19 MB instead of
  4.83 MB, GPT-2 against the sinusoid 7.90 MB instead of 6.74 MB, against budgets of 6 and 8 MB) for
  precision no plot can show.
- ``trace_dims``: the dimensions shown first, chosen to be readable (the rule is in ``TRACE_RULES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.frequencies import DimensionFrequencies, dimension_frequencies
from explorer.analysis.matrix import MatrixImage
from explorer.analysis.resample import envelope
from explorer.plugins.units import Analysis

#: The fine codes' largest code: 12 bits of precision (see the module's docstring), stored as uint16.
FINE_LEVELS = 4095
#: Dimensions whose dominant wavelength is shorter than this many positions are not shown first: at any width
#: a few hundred pixels wide they fill their band solid.
MIN_PERIOD = 16.0
#: A dimension spread this many times the median spread makes the table "a few dominant dimensions" (GPT-2).
DOMINANT_SPREAD = 4.0

TRACE_RULES = {
    "spread": "the four dimensions with the largest spread (standard deviation over positions), because a few "
              "dimensions carry far more spread than the typical one ({ratio:.0f}x the median) and the rest would "
              "look flat next to them",
    "frequencies": "four dimensions spread over frequencies: those whose dominant wavelength is nearest to four "
                   "targets evenly spaced on a log scale from {low:.0f} positions to the table's length, skipping "
                   "dimensions with periods under {min_period:.0f} positions (they would fill the plot solid)",
    "evenly": "four dimensions spread evenly over the width (no dimension has a dominant period of at least "
              "{min_period:.0f} positions)",
}


@dataclass(frozen=True)
class Traces:
    """The dimensions shown first (``dims``, chosen by ``rule``), min/max-decimated across positions."""

    dims: np.ndarray
    index: np.ndarray  # first position of each block
    low: np.ndarray  # dims x blocks
    high: np.ndarray
    rule: str = ""  # why these dimensions, for the caption


@dataclass(frozen=True)
class FineCodes:
    """The display-resolution matrix (dims x positions) as 12-bit codes (uint16), scaled per dimension."""

    codes: np.ndarray  # uint16, dims x positions
    low: np.ndarray  # float32 per dimension: the value of code 0
    high: np.ndarray  # float32 per dimension: the value of code 65535
    position_bounds: np.ndarray
    dimension_bounds: np.ndarray

    def decoded(self) -> np.ndarray:
        """The values the codes stand for (what the browser draws), float32, dims x positions."""
        return decode_fine(self.codes, self.low, self.high)


def fine_codes(image: MatrixImage) -> FineCodes:
    """``image``'s values as codes 0 .. ``FINE_LEVELS`` over each dimension's own [min, max]."""
    values = image.values.astype(np.float64)
    low = values.min(axis=1, keepdims=True) if values.size else np.zeros((len(values), 1))
    high = values.max(axis=1, keepdims=True) if values.size else np.zeros((len(values), 1))
    # round the ends to float32 first: the browser decodes with the float32 ends it receives
    low32, high32 = low.astype(np.float32), high.astype(np.float32)
    span = high32.astype(np.float64) - low32
    # in place, step for step as (values - low) / span clipped to 0..1 and rounded: one float64 copy of the table at
    # a time instead of four (the peak of a page's memory, docs/performance.md)
    scaled = values
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled -= low32
        scaled /= np.where(span > 0, span, 1.0)
    scaled[~(span > 0).ravel()] = 0.0  # a constant (or non-finite) dimension is all code 0
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= FINE_LEVELS
    codes = np.rint(scaled, out=scaled).astype(np.uint16)
    return FineCodes(codes, low32.ravel(), high32.ravel(), image.position_bounds, image.dimension_bounds)


def decode_fine(codes: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The values fine ``codes`` stand for, row d scaled by ``low[d]`` .. ``high[d]`` (as the browser does)."""
    # in float64, as the browser's JavaScript numbers: high - low of a table near float32's maximum overflows float32
    low, high = np.asarray(low, np.float64)[:, None], np.asarray(high, np.float64)[:, None]
    values = np.clip(low + codes * ((high - low) / FINE_LEVELS), low, high)
    return values.astype(np.float32)


def default_trace_dims(dim: int, count: int = 4) -> np.ndarray:
    """``count`` dimensions spread evenly over ``range(dim)``, starting at 0."""
    return np.unique(np.linspace(0, dim, min(count, dim), endpoint=False).astype(np.int64))


def trace_dims(x: np.ndarray, frequencies: DimensionFrequencies, count: int = 4) -> tuple[np.ndarray, str]:
    """The dimensions to show first and the caption's sentence saying why (see ``TRACE_RULES``)."""
    n, d = x.shape
    spread = x.std(axis=0, dtype=np.float64)
    median = float(np.median(spread)) if d else 0.0
    if d > count and median > 0 and spread.max() > DOMINANT_SPREAD * median:
        dims = np.sort(np.argsort(spread, kind="stable")[-count:])
        return dims, TRACE_RULES["spread"].format(ratio=float(spread.max()) / median)
    wavelength = np.asarray(frequencies.wavelength, dtype=np.float64)
    readable = np.flatnonzero(np.isfinite(wavelength) & (wavelength >= MIN_PERIOD))
    if len(readable) == 0:
        return default_trace_dims(d, count), TRACE_RULES["evenly"].format(min_period=MIN_PERIOD)
    logs = np.log(np.minimum(wavelength[readable], n))  # slower than the table: all alike, a slow ramp
    low = max(MIN_PERIOD, float(np.exp(logs.min())))
    targets = np.linspace(np.log(low), np.log(max(low, n)), count)
    dims: list[int] = []
    for target in targets:  # nearest unused dimension to each target, so the four differ
        for k in np.argsort(np.abs(logs - target), kind="stable"):
            if int(readable[k]) not in dims:
                dims.append(int(readable[k]))
                break
    return np.array(sorted(dims), dtype=np.int64), TRACE_RULES["frequencies"].format(low=low, min_period=MIN_PERIOD)


def dimension_traces(x: np.ndarray, dims: np.ndarray, resolution: int = 1024, rule: str = "") -> Traces:
    """Values of dimensions ``dims`` across positions, as min/max envelopes of at most ``resolution`` blocks."""
    dims = np.asarray(dims, dtype=np.int64)
    index, low, high = zip(*(envelope(x[:, d], resolution) for d in dims)) if len(dims) else ((), (), ())
    start = index[0] if index else np.zeros(0, np.int64)
    return Traces(dims, start, np.array(low, dtype=np.float32), np.array(high, dtype=np.float32), rule)


def _traces(ctx) -> Traces:
    frequencies = ctx.memo("dimension_frequencies", lambda: dimension_frequencies(ctx.matrix))
    dims, rule = trace_dims(ctx.matrix, frequencies)
    return dimension_traces(ctx.matrix, dims, ctx.resolution, rule)


ANALYSES = (
    Analysis("traces", "four readable dimensions across positions (min/max envelopes) and why they were chosen",
             order=30, run=_traces),
)
