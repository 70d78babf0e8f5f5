"""Row norms |p_i|: how long each position vector is, as an envelope across positions plus three scalars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.resample import block_bounds
from explorer.analysis.table import as_table, stored
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class RowNorms:
    """|p_i| across positions as a min/max envelope of at most ``resolution`` blocks (``index`` = first
    position of each block; short tables come back whole), and the mean, minimum and maximum over all rows."""

    index: np.ndarray  # int32
    low: np.ndarray  # float32 (float64 past float32's range: ``table.stored``)
    high: np.ndarray  # float32 (likewise)
    mean: float
    min: float
    max: float


def row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of every position vector, ``|p_i|``, in float64 (no overflow for huge values)."""
    x64 = np.asarray(x, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->i", x64, x64))


def norm_profile(x: np.ndarray, resolution: int = 1024) -> RowNorms:
    """The row norms at display resolution, with their mean, minimum and maximum."""
    norms = row_norms(as_table(x))
    bounds = block_bounds(len(norms), resolution)  # the envelope, kept exact: float64 past float32's range
    low, high = np.minimum.reduceat(norms, bounds[:-1]), np.maximum.reduceat(norms, bounds[:-1])
    return RowNorms(bounds[:-1].astype(np.int32), stored(low), stored(high), float(norms.mean()), float(norms.min()),
                    float(norms.max()))


ANALYSES = (
    Analysis("norms", "|p_i| across positions (min-max bands for long tables)",
             order=60, run=lambda ctx: norm_profile(ctx.matrix, ctx.resolution)),
)
