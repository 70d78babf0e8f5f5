"""How similarity depends on the distance between positions: the offset profile and translation invariance.

With unit rows u_i = p_i / |p_i| and c_i(k) = cos(p_i, p_{i+k}) = u_i . u_{i+k}:

- offset profile  m(k) = mean over i of c_i(k),  k = 0 .. N-1, each lag averaged over its n_k = N - k pairs;
- its spread      s(k) = standard deviation over i of c_i(k) (population, ddof = 0);
- translation invariance  TI = 1 - ||C - T(m)||_F / ||C||_F, with C the N x N cosine matrix and
  T(m)_ij = m(|i - j|).

The sums over i of c_i(k) for all lags at once are the autocorrelations of the columns of U, summed over
columns: sum_d sum_i U_id U_{i+k,d}. Each column's autocorrelation is irfft(|rfft(column, L)|^2) with
L >= 2N - 1 (no wrap-around), so m costs O(N D log N) time and O(N D) memory; C is never formed.

TI needs no N x N matrix either. Because m(k) is the mean of the k-th diagonal of C (and of the -k-th,
C being symmetric), ||C - T(m)||_F^2 = ||C||_F^2 - sum_k n_k m(k)^2 over k = -(N-1) .. N-1, and
||C||_F^2 = ||U^T U||_F^2 (= ||U U^T||_F^2, whichever Gram matrix is smaller). Everything is float64.

A zero row has no direction: its pairs are left out of every mean (n_k counts defined pairs only) and a
``PosembedWarning`` says so; a lag with no defined pair has m = s = NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.resample import block_bounds
from explorer.analysis.similarity import unit_rows
from explorer.analysis.table import as_table, check_resolution
from explorer.plugins.units import Analysis

#: Starting positions used per lag for the spread of long tables (see ``offset_spread``).
SPREAD_SAMPLES = 2048

#: Columns transformed at once: bounds the FFT's working memory to about 16 * L complex numbers.
_FFT_COLUMNS = 16


@dataclass(frozen=True)
class OffsetProfile:
    """m(k) and s(k) at display resolution.

    Lags 0 .. N-1 are cut into at most ``resolution`` contiguous blocks (``resample.block_bounds``);
    ``lag`` is the first lag of each block and ``mean``/``std``/``pairs`` are the exact values at that lag
    (a profile no longer than the resolution comes back whole). Because sampling a fast-oscillating profile
    can hide its peaks, ``low``/``high`` hold the minimum and maximum of m over each block, as the dimension
    traces do. ``sampled`` is True when some ``std`` used a sample of starting positions rather than all of
    them (``offset_spread``). The full-resolution m is ``offset_mean(x)``.
    """

    lag: np.ndarray  # int32
    mean: np.ndarray  # float32, m(lag)
    std: np.ndarray  # float32, s(lag)
    low: np.ndarray  # float32, min of m over the block starting at lag
    high: np.ndarray  # float32, max of m over the block
    pairs: np.ndarray  # int32, n_k: defined pairs (i, i + k) at lag
    sampled: bool


def fft_length(n: int) -> int:
    """The smallest power of two >= 2n - 1: long enough that a circular correlation of length-n series does not wrap."""
    return 1 << max(0, 2 * int(n) - 2).bit_length()


def autocorrelation_sum(columns: np.ndarray) -> np.ndarray:
    """sum over columns d of sum_i y[i, d] y[i + k, d], for k = 0 .. n-1, by FFT (float64).

    ``columns`` is n x c; they are transformed a few at a time so the working memory stays O(n).
    """
    n, count = columns.shape
    length = fft_length(n)
    power = np.zeros(length // 2 + 1)
    for start in range(0, count, _FFT_COLUMNS):
        chunk = np.ascontiguousarray(columns[:, start:start + _FFT_COLUMNS].T, dtype=np.float64)
        spectrum = np.fft.rfft(chunk, n=length, axis=1)
        power += (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=0)
    return np.fft.irfft(power, n=length)[:n]


def unit_directions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows in float64 with zero rows set to 0 (so they add nothing), and the mask of rows with a direction."""
    unit = unit_rows(x, "position", dtype=np.float64)
    valid = ~np.isnan(unit[:, 0])
    if not valid.all():
        unit[~valid] = 0.0
    return unit, valid


def _pair_counts(valid: np.ndarray) -> np.ndarray:
    """n_k: how many pairs (i, i + k) have both rows defined, for every lag k."""
    n = len(valid)
    if valid.all():
        return np.arange(n, 0, -1, dtype=np.int64)
    return np.rint(autocorrelation_sum(valid[:, None].astype(np.float64))).astype(np.int64)


def _mean_from(unit: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    sums = autocorrelation_sum(unit)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(pairs > 0, sums / np.maximum(pairs, 1), np.nan)
    return np.clip(mean, -1.0, 1.0)


def offset_mean(x: np.ndarray) -> np.ndarray:
    """m(k) = mean_i cos(p_i, p_{i+k}) for every lag k = 0 .. N-1, float64, by FFT in O(N D log N)."""
    unit, valid = unit_directions(as_table(x))
    return _mean_from(unit, _pair_counts(valid))


def _spread_from(unit: np.ndarray, valid: np.ndarray, lags: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, bool]:
    n = unit.shape[0]
    rng = np.random.default_rng(seed)
    unit32 = unit.astype(np.float32)  # the dot products read half the memory; errors ~1e-7, far below any spread shown
    out = np.full(len(lags), np.nan)
    sampled = False
    for slot, lag in enumerate(np.asarray(lags, dtype=np.int64)):
        if not 0 <= lag < n:
            raise ValueError(f"lag {lag} outside 0 .. {n - 1}")
        if valid.all():
            candidates = n - lag
            starts = None
        else:
            starts = np.flatnonzero(valid[: n - lag] & valid[lag:])
            candidates = len(starts)
        if candidates == 0:
            continue
        if candidates > samples:
            # one start drawn uniformly inside each of `samples` equal strata: unbiased, and no aliasing with
            # periodic structure the way an evenly spaced grid could have
            pick = np.floor((np.arange(samples) + rng.random(samples)) * (candidates / samples)).astype(np.int64)
            sampled = True
        elif starts is None:  # every pair: two overlapping views of the table, nothing copied
            cosines = np.einsum("ij,ij->i", unit32[: n - lag], unit32[lag:], dtype=np.float64)
            out[slot] = cosines.std()
            continue
        else:
            pick = np.arange(candidates)
        i = pick if starts is None else starts[pick]
        cosines = np.einsum("ij,ij->i", unit32[i], unit32[i + lag], dtype=np.float64)
        out[slot] = cosines.std()
    return out, sampled


def offset_spread(x: np.ndarray, lags: np.ndarray, samples: int = SPREAD_SAMPLES, seed: int = 0) -> np.ndarray:
    """s(k), the standard deviation over i of cos(p_i, p_{i+k}), at each lag in ``lags`` (float64).

    Exact where a lag has at most ``samples`` defined pairs; otherwise estimated from ``samples`` pairs, one
    drawn uniformly (fixed ``seed``) from each of ``samples`` equal strata of starting positions. Cost
    O(len(lags) * min(N, samples) * D). ``offset_moments`` gives the exact value at every lag.
    """
    unit, valid = unit_directions(as_table(x))
    return _spread_from(unit, valid, np.asarray(lags), int(samples), seed)[0]


def offset_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact m(k) and s(k) at every lag, float64; O(N D^2 log N) time, so meant for narrow tables.

    s(k)^2 = E_i[c_i(k)^2] - m(k)^2 and c_i(k)^2 = (u_i u_i^T) . (u_{i+k} u_{i+k}^T): the second moment is the
    autocorrelation sum of the D(D+1)/2 outer-product features u_a u_b (weight 2 when a != b).
    """
    unit, valid = unit_directions(as_table(x))
    pairs = _pair_counts(valid)
    mean = _mean_from(unit, pairs)
    n, d = unit.shape
    second = np.zeros(n)
    for a in range(d):
        features = unit[:, a:a + 1] * unit[:, a:]
        features[:, 1:] *= np.sqrt(2.0)
        second += autocorrelation_sum(features)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = np.where(pairs > 0, second / np.maximum(pairs, 1), np.nan)
    return mean, np.sqrt(np.maximum(second - mean ** 2, 0.0))


def _invariance_from(unit: np.ndarray, mean: np.ndarray, pairs: np.ndarray, gram: np.ndarray | None = None) -> float:
    if gram is None:
        gram = unit.T @ unit if unit.shape[0] >= unit.shape[1] else unit @ unit.T
    total = float(np.vdot(gram, gram))  # ||C||_F^2 over the defined entries (no N x N temporary)
    if total == 0.0:
        return float("nan")
    fitted = np.nan_to_num(pairs * mean ** 2)
    explained = fitted[0] + 2.0 * fitted[1:].sum()
    return 1.0 - float(np.sqrt(max(total - explained, 0.0) / total))


def translation_invariance(x: np.ndarray) -> float:
    """1 - ||C - T(m)||_F / ||C||_F: 1 when cos(p_i, p_j) depends on j - i alone (the sinusoid), lower otherwise.

    Computed from the offset profile and ||U^T U||_F, never forming C (see the module docstring).
    """
    unit, valid = unit_directions(as_table(x))
    pairs = _pair_counts(valid)
    return _invariance_from(unit, _mean_from(unit, pairs), pairs)


def _spread_from_gram(gram: np.ndarray) -> np.ndarray:
    """Exact s(k) at every lag from the Gram matrix U U^T of unit rows (every row defined): two-pass standard
    deviation of each upper diagonal, read as a view (``np.diagonal``), so beyond the product it needs O(N)
    memory (a padded copy of all diagonals at once took 3 N^2 floats: 25 MB at N = 1024, the report's peak)."""
    n = len(gram)
    squares = np.empty(n)
    for k in range(n):
        diagonal = np.diagonal(gram, k)
        deviations = diagonal - diagonal.mean()
        squares[k] = deviations @ deviations
    return np.sqrt(squares / np.arange(n, 0, -1, dtype=np.float64))


def _decimate(mean: np.ndarray, pairs: np.ndarray, unit: np.ndarray, valid: np.ndarray, resolution: int,
              samples: int, seed: int, gram: np.ndarray | None = None) -> OffsetProfile:
    bounds = block_bounds(len(mean), resolution)
    lags = bounds[:-1]
    if gram is not None:  # every lag shown and every pair defined: exact from the diagonals of U U^T
        std, sampled = _spread_from_gram(gram)[lags], False
    else:
        std, sampled = _spread_from(unit, valid, lags, samples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (no defined pair) stay NaN
        low = np.fmin.reduceat(mean, lags)
        high = np.fmax.reduceat(mean, lags)
    return OffsetProfile(
        lag=lags.astype(np.int32),
        mean=mean[lags].astype(np.float32),
        std=std.astype(np.float32),
        low=low.astype(np.float32),
        high=high.astype(np.float32),
        pairs=pairs[lags].astype(np.int32),
        sampled=sampled,
    )


def offset_profile(x: np.ndarray, resolution: int = 1024, samples: int = SPREAD_SAMPLES, seed: int = 0) -> OffsetProfile:
    """The offset profile m(k) with its spread s(k) at display resolution (see ``OffsetProfile``)."""
    return offset_analysis(x, resolution, samples, seed)[0]


def offset_analysis(x: np.ndarray, resolution: int = 1024, samples: int = SPREAD_SAMPLES,
                    seed: int = 0) -> tuple[OffsetProfile, float]:
    """``offset_profile`` and ``translation_invariance`` together, sharing the unit rows and the FFT."""
    resolution = check_resolution(resolution)
    unit, valid = unit_directions(as_table(x))
    pairs = _pair_counts(valid)
    mean = _mean_from(unit, pairs)
    n = len(unit)
    # A table no longer than the resolution (and than ``samples``) shows every lag with every pair: its spread
    # comes exactly, and much faster than lag by lag, from the diagonals of the N x N (<= R x R) Gram matrix,
    # which also gives ||C||_F for the invariance.
    gram = unit @ unit.T if n <= min(resolution, int(samples)) and valid.all() else None
    profile = _decimate(mean, pairs, unit, valid, resolution, int(samples), seed, gram)
    return profile, _invariance_from(unit, mean, pairs, gram)


def offset_of(ctx: TableContext) -> tuple[OffsetProfile, float]:
    """``offset_analysis`` of a context's table, computed once for its analyses and every pair it is in."""
    return ctx.memo("offset_analysis", lambda: offset_analysis(ctx.matrix, ctx.resolution, seed=ctx.seed))


def _spread_max(profile: OffsetProfile) -> dict[str, float]:
    finite = np.isfinite(profile.std)
    return {"offset_spread_max": float(np.max(profile.std[finite])) if finite.any() else float("nan")}


ANALYSES = (
    Analysis("offset", "the offset profile m(k) with its spread s(k)", order=50, run=lambda ctx: offset_of(ctx)[0],
             scalars=_spread_max),
    Analysis("translation_invariance", "how far cosine similarity depends on the offset alone",
             order=51, run=lambda ctx: offset_of(ctx)[1], scalars=lambda ti: {"translation_invariance": ti},
             arrays=lambda ti: {}),
)
