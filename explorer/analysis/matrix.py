"""The table itself at display resolution: block means, dimensions on rows and positions on columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.resample import block_mean
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class MatrixImage:
    """The table reduced to display resolution by block means (positions on axis 1)."""

    values: np.ndarray  # dims x positions, float32
    position_bounds: np.ndarray
    dimension_bounds: np.ndarray


def matrix_image(x: np.ndarray, resolution: int = 1024) -> MatrixImage:
    """``x`` transposed to dims x positions and block-averaged to at most ``resolution`` on each axis."""
    values, dimension_bounds, position_bounds = block_mean(x.T, resolution, resolution)
    return MatrixImage(values, position_bounds, dimension_bounds)


ANALYSES = (
    Analysis("matrix", "the table as an image at display resolution (block means)",
             order=20, run=lambda ctx: ctx.memo("matrix_image", lambda: matrix_image(ctx.matrix, ctx.resolution))),
)
