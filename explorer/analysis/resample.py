"""Reducing long axes to display resolution without forming anything larger than the input.

Block means: an axis of length n shown at resolution r < n is cut into r contiguous
blocks whose sizes differ by at most one (block b covers ``bounds[b]:bounds[b+1]``),
and each displayed cell is the mean of the cells its blocks cover.
"""

from __future__ import annotations

import numpy as np


def block_bounds(n: int, resolution: int) -> np.ndarray:
    """Edges of ``min(n, resolution)`` near-equal contiguous blocks covering ``range(n)``."""
    r = max(1, min(int(n), int(resolution)))
    return np.linspace(0, n, r + 1).round().astype(np.int64)


def block_sums(x: np.ndarray, bounds: np.ndarray, axis: int = 0) -> np.ndarray:
    """Sums of ``x`` over the blocks ``bounds`` along ``axis`` (float64 accumulation)."""
    return np.add.reduceat(x.astype(np.float64, copy=False), bounds[:-1], axis=axis)


def block_mean(x: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` reduced to at most ``rows x cols`` block means, with the row and column block edges."""
    rb, cb = block_bounds(x.shape[0], rows), block_bounds(x.shape[1], cols)
    if x.dtype.kind == "f" and (len(rb), len(cb)) == (x.shape[0] + 1, x.shape[1] + 1):
        # blocks of one cell: each mean is its cell, exactly, without three float64 copies of the table
        return np.array(x, dtype=np.float32, order="C"), rb, cb
    sums = block_sums(block_sums(x, rb, axis=0), cb, axis=1)
    counts = np.outer(np.diff(rb), np.diff(cb))
    return (sums / counts).astype(np.float32), rb, cb


def envelope(y: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max decimation of a long series: per block, its first index, minimum and maximum.

    A line drawn through (index, min) and (index, max) of each block shows every peak
    of the full series, unlike plain subsampling. Short series come back unchanged.
    """
    bounds = block_bounds(len(y), resolution)
    lo = np.minimum.reduceat(y, bounds[:-1])
    hi = np.maximum.reduceat(y, bounds[:-1])
    return bounds[:-1], lo.astype(np.float32), hi.astype(np.float32)
