"""Analyses of a relative position term b_h(k): a value per head h and signed distance k = key - query.

- ``relative_profile``: b_h(k) per head and the mean over heads, at most 2R distances (k = 0 always kept);
- ``relative_heads``: per head, b_h(0); the decay distance (the least |k| at which b_h(k) <= b_h(0) - range_h / 2,
  range_h = max_k b_h - min_k b_h; NaN when it never falls that far); the symmetry (Pearson r of b_h(k) and
  b_h(-k) over k = 1..L-1; NaN for causal terms); the monotonicity (Spearman's rho of b_h(k) against |k|).

They declare ``terms=("relative",)``: the analysis loop never runs them on an absolute table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from explorer.analysis.context import TableContext
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class RelativeProfile:
    """b_h(k) at display resolution: ``distance`` (int32, ascending), ``values`` (heads x distances, float32) and
    ``mean`` (over heads); ``causal`` when there are no positive distances."""

    distance: np.ndarray
    values: np.ndarray
    mean: np.ndarray
    causal: bool


@dataclass(frozen=True)
class HeadStats:
    """Per head (float32 arrays, one value per head): b_h(0), the decay distance, symmetry and monotonicity."""

    value_at_0: np.ndarray
    decay_distance: np.ndarray
    symmetry: np.ndarray
    monotonicity: np.ndarray


def geometry(ctx: TableContext) -> tuple[np.ndarray, bool]:
    """The signed distances of the columns of ``ctx.matrix`` and whether the term is causal."""
    embedding = ctx.embedding
    if embedding is not None and getattr(embedding, "term", None) == "relative":
        return np.asarray(embedding.distances), bool(embedding.causal)
    columns = ctx.matrix.shape[1]  # an array alone: 2L-1 columns are bidirectional, an even count causal
    if columns % 2:
        half = (columns - 1) // 2
        return np.arange(-half, half + 1, dtype=np.int64), False
    return np.arange(-(columns - 1), 1, dtype=np.int64), True


def relative_profile(values: np.ndarray, distances: np.ndarray, causal: bool, resolution: int = 1024) -> RelativeProfile:
    """The term's values at no more than ``2 * resolution`` evenly spaced distances, distance 0 included."""
    columns = values.shape[1]
    limit = 2 * resolution
    if columns > limit:
        keep = np.unique(np.concatenate([np.linspace(0, columns - 1, limit - 1).round().astype(np.int64),
                                         np.flatnonzero(distances == 0)]))
    else:
        keep = np.arange(columns)
    chosen = np.ascontiguousarray(values[:, keep], dtype=np.float32)
    return RelativeProfile(distances[keep].astype(np.int32), chosen, chosen.mean(axis=0, dtype=np.float64)
                           .astype(np.float32), causal)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2.0))[inverse]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of ``a`` and ``b``; NaN when either is constant."""
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def head_stats(values: np.ndarray, distances: np.ndarray, causal: bool) -> HeadStats:
    """Value at distance 0, decay distance, symmetry and monotonicity of every head (formulas above)."""
    b = np.asarray(values, dtype=np.float64)
    zero = int(np.flatnonzero(distances == 0)[0])
    at_0 = b[:, zero]
    span = b.max(axis=1) - b.min(axis=1)
    fallen = b <= (at_0 - span / 2)[:, None]
    fallen &= (span > 0)[:, None]
    far = np.abs(distances).astype(np.float64)
    decay = np.where(fallen.any(axis=1), np.where(fallen, far[None, :], np.inf).min(axis=1), np.nan)
    if causal or zero + 1 >= b.shape[1]:
        symmetry = np.full(b.shape[0], np.nan)
    else:
        after, before = b[:, zero + 1:], b[:, :zero][:, ::-1]  # b(k) and b(-k) for k = 1 .. L-1
        symmetry = np.array([pearson(x, y) for x, y in zip(after, before)])
    distance_ranks = ranks(far)
    monotonicity = np.array([pearson(ranks(row), distance_ranks) for row in b])
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return HeadStats(as32(at_0), as32(decay), as32(symmetry), as32(monotonicity))


def _profile(ctx: TableContext) -> RelativeProfile:
    distances, causal = geometry(ctx)
    return relative_profile(ctx.matrix, distances, causal, ctx.resolution)


def _stats(ctx: TableContext) -> HeadStats:
    distances, causal = geometry(ctx)
    return head_stats(ctx.matrix, distances, causal)


def per_head_scalars(stats: Any, names: Sequence[str], prefix: str = "") -> dict[str, float]:
    """The per-head arrays ``names`` of ``stats`` as scalars: each one's mean over its finite heads
    (``PREFIXname_mean``, NaN when none is finite), then one scalar per head (``PREFIXname_headH``)."""
    out: dict[str, float] = {}
    for name in names:
        array = getattr(stats, name)
        finite = array[np.isfinite(array)]
        out[f"{prefix}{name}_mean"] = float(finite.mean()) if finite.size else float("nan")
        out.update({f"{prefix}{name}_head{h}": float(v) for h, v in enumerate(array)})
    return out


def _head_scalars(stats: HeadStats) -> dict[str, float]:
    return {"heads": float(len(stats.value_at_0)),
            **per_head_scalars(stats, ("value_at_0", "decay_distance", "symmetry", "monotonicity"))}


ANALYSES = (
    Analysis("relative_profile", "a relative term's value against distance, per head and averaged over heads",
             order=110, run=_profile, terms=("relative",),
             scalars=lambda p: {"relative_distances": float(len(p.distance))}),
    Analysis("relative_heads", "per head: value at distance 0, decay distance, symmetry and monotonicity",
             order=111, run=_stats, terms=("relative",), scalars=_head_scalars),
)
