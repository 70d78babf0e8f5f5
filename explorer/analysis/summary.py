"""A few scalars that describe a table at a glance (``posembed info``)."""

from __future__ import annotations

import warnings

import numpy as np

from explorer.analysis.norms import row_norms
from explorer.analysis.similarity import unit_rows
from explorer.plugins.units import Analysis


def neighbour_cosines(x: np.ndarray) -> np.ndarray:
    """cos(p_i, p_{i+1}) for i = 0 .. N-2 (empty for a single position)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero rows: NaN here, reported by the similarity analysis
        unit = unit_rows(x)
    return np.einsum("ij,ij->i", unit[:-1], unit[1:], dtype=np.float64).astype(np.float32)


def summarize(x: np.ndarray) -> dict[str, float]:
    """Value range and spread, row-norm statistics and the mean neighbour cosine, as plain floats."""
    norms = row_norms(x)
    neighbours = neighbour_cosines(x)
    return {
        "value_min": float(x.min()),
        "value_max": float(x.max()),
        "value_mean": float(x.mean(dtype=np.float64)),
        "value_std": float(x.std(dtype=np.float64)),
        "row_norm_mean": float(norms.mean(dtype=np.float64)),
        "row_norm_min": float(norms.min()),
        "row_norm_max": float(norms.max()),
        "neighbour_cosine_mean": float(np.nanmean(neighbours)) if np.isfinite(neighbours).any() else float("nan"),
    }


ANALYSES = (
    Analysis("summary", "value range and spread, row-norm statistics, mean neighbour cosine",
             order=10, run=lambda ctx: summarize(ctx.matrix), scalars=lambda summary: summary, arrays=lambda summary: {}),
)
