"""The one check every analysis makes on its input: a finite, non-empty, numeric 2-D table."""

from __future__ import annotations

import numpy as np

from explorer.core import validate
from explorer.errors import EmbeddingError
from explorer.runtime.limits import check_shape


def as_table(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 positions x dims array, or ``EmbeddingError`` if it is not a usable table.

    Providers already refuse NaN, Inf and empty tables (``PositionEmbedding``); the analyses check again
    because they are also called directly on arrays from a notebook.
    """
    return validate.table(x)


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int >= 1 whose R x R float32 image fits the memory limit, or a ``PosembedError``."""
    if int(resolution) != resolution or resolution < 1:
        raise EmbeddingError(f"resolution must be an integer >= 1, got {resolution!r}")
    check_shape((int(resolution), int(resolution)), f"resolution {int(resolution)}", what="an image")
    return int(resolution)


#: The largest float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def stored(values: np.ndarray) -> np.ndarray:
    """Computed values as an analysis keeps them: float32, unless one lies beyond float32's range (row norms, scores
    and singular values of a table near float32's maximum), then float64, so that nothing overflows to Inf."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    if finite.size and float(np.abs(finite).max()) > FLOAT32_MAX:
        return values.astype(np.float64, copy=False)
    return values.astype(np.float32)
