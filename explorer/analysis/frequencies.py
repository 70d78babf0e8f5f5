"""Per-dimension spectrum: the dominant frequency of each dimension across positions.

For column d, y = x[:, d] - mean(x[:, d]) and Y = rfft(y) (length N, bins k = 0 .. floor(N/2), bin k is
k / N cycles per position). The dominant bin k* maximises the one-sided power w_k |Y_k|^2 over k >= 1
(w_k = 2, except w = 1 for the Nyquist bin of an even N), so that the powers add up to N * variance
(Parseval). The frequency is refined between bins with Candan's bias-corrected Jacobsen estimator
(Candan 2011, IEEE Signal Processing Letters 18(6); Jacobsen & Kootsookos 2007):

    delta = tan(pi/N) / (pi/N) * Re[(Y_{k*-1} - Y_{k*+1}) / (2 Y_{k*} - Y_{k*-1} - Y_{k*+1})],
    frequency = (k* + delta) / N cycles per position,  wavelength = 1 / frequency positions,

which recovers a pure tone's frequency almost exactly even between bins (the sinusoidal table's column
2i gives 1 / (2 pi base^(2i/d))). The refinement needs both neighbours inside 1 .. floor(N/2) - 1 and is
skipped at the edges. ``power`` is the share of the column's variance in the dominant bin, between 0 and 1.

A wavelength longer than the table cannot be resolved: it shows up in bin 1 as wavelength ~ N. A column with
no variation (or N = 1) has no dominant frequency: frequency, wavelength and power are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.table import as_table
from explorer.plugins.units import Analysis

#: Columns transformed at once (bounds the FFT's working memory).
_COLUMNS = 16


@dataclass(frozen=True)
class DimensionFrequencies:
    """For every dimension: dominant ``frequency`` (cycles/position), ``wavelength`` (positions), ``power`` share."""

    frequency: np.ndarray  # float32, length D
    wavelength: np.ndarray  # float32
    power: np.ndarray  # float32


def dimension_frequencies(x: np.ndarray) -> DimensionFrequencies:
    """The dominant frequency, wavelength and power share of each dimension across positions."""
    table = as_table(x)
    n, d = table.shape
    frequency = np.full(d, np.nan)
    power = np.full(d, np.nan)
    half = n // 2
    if half >= 1:
        weights = np.full(half + 1, 2.0)
        weights[0] = 0.0  # the mean was removed; bin 0 is not a frequency
        if n % 2 == 0:
            weights[half] = 1.0
        correction = np.tan(np.pi / n) / (np.pi / n) if n > 2 else 1.0
        for start in range(0, d, _COLUMNS):
            chunk = np.ascontiguousarray(table[:, start:start + _COLUMNS].T, dtype=np.float64)
            chunk -= chunk.mean(axis=1, keepdims=True)
            spectrum = np.fft.rfft(chunk, axis=1)
            bins = weights * (spectrum.real ** 2 + spectrum.imag ** 2)
            total = bins.sum(axis=1)
            peak = bins.argmax(axis=1)
            rows = np.arange(len(peak))
            delta = np.zeros(len(peak))
            inner = (peak >= 2) & (peak <= half - 1)
            if inner.any():
                r, k = rows[inner], peak[inner]
                left, centre, right = spectrum[r, k - 1], spectrum[r, k], spectrum[r, k + 1]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = ((left - right) / (2 * centre - left - right)).real
                delta[inner] = np.clip(np.nan_to_num(correction * ratio), -0.5, 0.5)
            has = total > 0
            cols = slice(start, start + len(peak))
            frequency[cols] = np.where(has, (peak + delta) / n, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                power[cols] = np.where(has, bins[rows, peak] / np.where(has, total, 1.0), np.nan)
    with np.errstate(divide="ignore"):
        wavelength = 1.0 / frequency
    return DimensionFrequencies(frequency.astype(np.float32), wavelength.astype(np.float32), power.astype(np.float32))


ANALYSES = (
    Analysis("frequencies", "each dimension's dominant frequency, wavelength and power share",
             order=80, run=lambda ctx: ctx.memo("dimension_frequencies", lambda: dimension_frequencies(ctx.matrix))),
)
