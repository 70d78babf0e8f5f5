"""Cosine similarity between positions (rows) and between dimensions (columns).

cos(p_i, p_j) = p_i . p_j / (|p_i| |p_j|). For a table longer than the display
resolution R, the image holds block means of the full N x N cosine matrix:
with s_a = sum of unit rows in block a, mean_{i in a, j in b} cos(p_i, p_j) = s_a . s_b / (|a| |b|),
which costs O(N D + R^2 D) time and O(N D + R^2) memory; the N x N matrix is never formed.
A zero row has no direction: its cosines are NaN and a warning says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from explorer.analysis.resample import block_bounds, block_sums
from explorer.errors import PosembedWarning
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class SimilarityImage:
    """A (block-mean) cosine similarity matrix at display resolution.

    ``values[a, b]`` is the mean cosine between items of block ``a`` and block ``b``;
    block ``a`` covers items ``bounds[a]:bounds[a+1]``. ``exact`` is True when every block
    holds one item, i.e. ``values`` is the full matrix.
    """

    values: np.ndarray
    bounds: np.ndarray
    centred: bool
    axis: str  # "positions" or "dimensions"

    @property
    def exact(self) -> bool:
        """True when no block averaging happened."""
        return bool(np.all(np.diff(self.bounds) == 1))


def unit_rows(x: np.ndarray, what: str = "row", dtype: type = np.float32) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (``dtype``, computed in float64); zero rows become NaN with a warning.

    The division happens in float64 so that rows whose norm exceeds float32's range still come out right.
    """
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    zero = norms == 0
    if zero.any():
        warnings.warn(
            PosembedWarning(f"{int(zero.sum())} zero {what}(s) have no direction: their cosine similarities are NaN"),
            stacklevel=3,
        )
        norms = np.where(zero, np.nan, norms)
    return (x64 / norms[:, None]).astype(dtype, copy=False)


def cosine_image(x: np.ndarray, resolution: int = 1024, *, centred: bool = False,
                 axis: str = "positions") -> SimilarityImage:
    """Cosine similarity between the rows of ``x`` (``axis='positions'``) or its columns (``'dimensions'``).

    ``centred`` subtracts the mean position vector first (for positions) or each dimension's mean
    over positions (for dimensions), i.e. the image shows correlations-like structure without the
    common offset.
    """
    if axis not in ("positions", "dimensions"):
        raise ValueError("axis must be 'positions' or 'dimensions'")
    data = np.asarray(x, dtype=np.float32)
    if centred:  # centre over positions in both cases; in float64 so huge values cannot overflow
        data = data - data.mean(axis=0, keepdims=True, dtype=np.float64)
    items = data if axis == "positions" else data.T
    unit = unit_rows(items, "position" if axis == "positions" else "dimension")
    bounds = block_bounds(unit.shape[0], resolution)
    if len(bounds) - 1 == unit.shape[0]:
        values = unit @ unit.T
    else:
        sums = block_sums(unit, bounds, axis=0)
        sizes = np.diff(bounds).astype(np.float64)
        values = (sums @ sums.T) / np.outer(sizes, sizes)
    values = np.clip(values, -1.0, 1.0).astype(np.float32)  # rounding can step just outside [-1, 1]
    return SimilarityImage(values, bounds, centred, axis)


def _cosine(axis: str, centred: bool, order: int) -> Analysis:
    kind = "centred " if centred else ""
    return Analysis(f"cosine_{axis}{'_centred' if centred else ''}",
                    f"{kind}cosine similarity {'between positions' if axis == 'positions' else 'between dimensions'}"
                    ", block means at display resolution",
                    order=order, run=lambda ctx: cosine_image(ctx.matrix, ctx.resolution, centred=centred, axis=axis))


ANALYSES = (_cosine("positions", False, 40), _cosine("positions", True, 41), _cosine("dimensions", False, 42),
            _cosine("dimensions", True, 43))
