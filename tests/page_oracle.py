"""What the page's browser code computes, written in numpy for the tests to compare with (the product ships only
the JavaScript: ``explorer.reporting.encoding.UNPACK_JS``)."""

from __future__ import annotations

import numpy as np

from explorer.analysis.traces import FINE_LEVELS, FineCodes
from explorer.reporting.encoding import CodeScale


def unpack_lower(packed: np.ndarray, n: int) -> np.ndarray:
    """The symmetric n x n array ``encoding.pack_lower`` came from (the same mirror the browser applies)."""
    out = np.zeros((n, n), dtype=packed.dtype)
    rows, cols = np.tril_indices(n)
    out[rows, cols] = packed
    out[cols, rows] = packed
    return out


def fine_colour_codes(fine: FineCodes, scale: CodeScale) -> np.ndarray:
    """The colour codes the browser computes for a heatmap from ``fine``, with its arithmetic (float64 decoding,
    float32 midpoints)."""
    mids = ((scale.table[1:].astype(np.float64) + scale.table[:-1]) / 2).astype(np.float32).astype(np.float64)
    low, high = fine.low.astype(np.float64)[:, None], fine.high.astype(np.float64)[:, None]
    values = low + fine.codes.astype(np.float64) * ((high - low) / FINE_LEVELS)
    return np.searchsorted(mids, values).astype(np.uint8)
