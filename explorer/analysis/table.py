"""The one check every analysis makes on its input: a finite, non-empty, numeric 2-D table."""

from __future__ import annotations

import numpy as np

from explorer.errors import EmbeddingError


def as_table(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 positions x dims array, or ``EmbeddingError`` if it is not a usable table.

    Providers already refuse NaN, Inf and empty tables (``PositionEmbedding``); the analyses check again
    because they are also called directly on arrays from a notebook.
    """
    try:
        raw = np.asarray(x)
    except Exception as exc:  # ragged nested lists, objects without __array__
        raise EmbeddingError(f"the table is not an array ({exc})") from None
    if raw.dtype.kind not in "fiub":
        raise EmbeddingError(f"the table has dtype {raw.dtype}, expected numbers")
    if raw.ndim != 2:
        raise EmbeddingError(f"the table must be 2-D (positions x dimensions), got shape {raw.shape}")
    if raw.shape[0] < 1 or raw.shape[1] < 1:
        raise EmbeddingError(f"the table is empty (shape {raw.shape})")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, refused just below
        table = np.ascontiguousarray(raw, dtype=np.float32)
    if not np.isfinite(table).all():
        raise EmbeddingError("the table holds NaN or Inf values (or values beyond float32's range)")
    return table


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int >= 1, or ``EmbeddingError``."""
    if int(resolution) != resolution or resolution < 1:
        raise EmbeddingError(f"resolution must be an integer >= 1, got {resolution!r}")
    return int(resolution)
