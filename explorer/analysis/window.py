"""Analyses of a window bias b_h(dy, dx): a value per head h and 2-D key-minus-query offset (``explorer.WindowBias``).

``window_heads``, per head over the offsets (the extras, BEiT's class-token entries, are left out):
- b_h(0, 0), the bias of a patch on itself, and the range max b_h - min b_h;
- symmetry: Pearson r of b_h(dy, dx) and b_h(-dy, -dx) (1: a key above-left is biased as one below-right);
- decay: Spearman's rho of b_h against the distance sqrt(dy^2 + dx^2) (-1: falls steadily with distance);
- anisotropy: (mean |b_h(dy, 0) - b_h(0, 0)| - mean |b_h(0, dx) - b_h(0, 0)|) over their sums, along the axes
  through the centre (> 0: the bias changes more from row to row than from column to column; NaN when flat);
- ``mean``: the mean image over heads.

It declares ``terms=("window",)``: the analysis loop never runs it on a table or a 1-D relative term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.relative import pearson, per_head_scalars, ranks
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class WindowHeads:
    """Per head (float32 arrays, one value per head) and the mean image over heads ((2Wh-1) x (2Ww-1), float32)."""

    value_at_0: np.ndarray
    value_range: np.ndarray
    symmetry: np.ndarray
    decay: np.ndarray
    anisotropy: np.ndarray
    mean: np.ndarray


def images_of(ctx: TableContext) -> np.ndarray:
    """heads x (2Wh-1) x (2Ww-1) from the context's ``WindowBias`` (its offsets; the extras left out)."""
    return np.asarray(ctx.embedding.images, dtype=np.float64)


def window_heads(images: np.ndarray) -> WindowHeads:
    """The per-head numbers above from heads x (2Wh-1) x (2Ww-1) images centred on offset (0, 0)."""
    heads, rows, columns = images.shape
    cy, cx = rows // 2, columns // 2
    at_0 = images[:, cy, cx]
    flat = images.reshape(heads, -1)
    flipped = images[:, ::-1, ::-1].reshape(heads, -1)
    dy, dx = np.meshgrid(np.arange(rows) - cy, np.arange(columns) - cx, indexing="ij")
    distance_ranks = ranks(np.sqrt(dy * dy + dx * dx).ravel())
    along_y = np.abs(images[:, :, cx] - at_0[:, None]).mean(axis=1) if rows > 1 else np.zeros(heads)
    along_x = np.abs(images[:, cy, :] - at_0[:, None]).mean(axis=1) if columns > 1 else np.zeros(heads)
    total = along_y + along_x
    with np.errstate(invalid="ignore", divide="ignore"):
        anisotropy = np.where(total > 0, (along_y - along_x) / np.where(total > 0, total, 1), np.nan)
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return WindowHeads(
        as32(at_0), as32(flat.max(axis=1) - flat.min(axis=1)),
        as32([pearson(a, b) for a, b in zip(flat, flipped)]),
        as32([pearson(ranks(row), distance_ranks) for row in flat]), as32(anisotropy),
        as32(images.mean(axis=0)))


def _scalars(stats: WindowHeads) -> dict[str, float]:
    return {"window_heads": float(len(stats.value_at_0)), **per_head_scalars(
        stats, ("value_at_0", "value_range", "symmetry", "decay", "anisotropy"), prefix="window_")}


ANALYSES = (
    Analysis("window_heads", "per head of a 2-D relative bias: value at offset (0, 0), range, symmetry, decay with "
             "distance and anisotropy; the mean over heads", order=115, run=lambda ctx: window_heads(images_of(ctx)),
             terms=("window",), scalars=_scalars),
)
