"""The one check on a position table, shared by ``PositionEmbedding`` and the analyses: pure numpy."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from explorer.errors import EmbeddingError


def table(values: Any, where: str = "", at: Callable[[int, int, int], str] | None = None) -> np.ndarray:
    """``values`` as a C-contiguous float32 positions x dimensions array, or one ``EmbeddingError`` saying why not.

    The table must be numeric, 2-D, with at least one row and one column, and finite once in float32.
    ``where`` (a provider's name, say) starts every message; ``at(row, column, columns)`` names the first NaN's
    place (default ``position ROW, dimension COLUMN``). The result may be ``values`` itself when it already is
    such an array: a caller that freezes it must copy first.
    """
    prefix = f"{where}: " if where else ""
    try:
        raw = np.asarray(values)
    except Exception as exc:  # ragged nested lists, objects without __array__
        raise EmbeddingError(f"{prefix}the table is not an array ({exc})") from None
    if raw.dtype.kind not in "fiub":
        raise EmbeddingError(f"{prefix}the table has dtype {raw.dtype}, expected numbers")
    if raw.ndim != 2:
        raise EmbeddingError(f"{prefix}the table must be 2-D (positions x dimensions), got shape {raw.shape}")
    if raw.shape[0] < 1 or raw.shape[1] < 1:
        raise EmbeddingError(f"{prefix}the table is empty (shape {raw.shape})")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, refused just below
        matrix = np.ascontiguousarray(raw, dtype=np.float32)
    finite = np.isfinite(matrix)
    if not finite.all():
        bad = np.argwhere(~finite)
        row, col = (int(v) for v in bad[0])
        place = at(row, col, matrix.shape[1]) if at is not None else f"position {row}, dimension {col}"
        raise EmbeddingError(f"{prefix}the table holds {len(bad)} NaN or Inf value(s) (in float32), "
                             f"the first at {place}")
    return matrix
