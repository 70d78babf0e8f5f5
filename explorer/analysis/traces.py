"""Chosen dimensions' values across positions, min/max-decimated for long tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.resample import envelope
from explorer.units import Analysis


@dataclass(frozen=True)
class Traces:
    """Chosen dimensions' values across positions, min/max-decimated for long tables."""

    dims: np.ndarray
    index: np.ndarray  # first position of each block
    low: np.ndarray  # dims x blocks
    high: np.ndarray


def default_trace_dims(dim: int, count: int = 4) -> np.ndarray:
    """``count`` dimensions spread evenly over ``range(dim)``, starting at 0."""
    return np.unique(np.linspace(0, dim, min(count, dim), endpoint=False).astype(np.int64))


def dimension_traces(x: np.ndarray, dims: np.ndarray, resolution: int = 1024) -> Traces:
    """Values of dimensions ``dims`` across positions, as min/max envelopes of at most ``resolution`` blocks."""
    dims = np.asarray(dims, dtype=np.int64)
    index, low, high = zip(*(envelope(x[:, d], resolution) for d in dims)) if len(dims) else ((), (), ())
    start = index[0] if index else np.zeros(0, np.int64)
    return Traces(dims, start, np.array(low, dtype=np.float32), np.array(high, dtype=np.float32))


ANALYSES = (
    Analysis("traces", "four evenly spread dimensions across positions (min/max envelopes)",
             run=lambda ctx: dimension_traces(ctx.matrix, default_trace_dims(ctx.matrix.shape[1]), ctx.resolution)),
)
