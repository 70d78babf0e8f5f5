"""Pure analyses: numpy arrays in, small result objects out; no I/O, no plotting.

``analyze(matrix)`` runs the whole set that the report shows; each piece is also a
function of its own (see ``docs/analyses.md`` for the formulas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.resample import block_mean, envelope
from explorer.analysis.similarity import SimilarityImage, cosine_image
from explorer.analysis.summary import summarize

#: Default display resolution R: images are at most R x R, series at most 2R points.
RESOLUTION = 1024


@dataclass(frozen=True)
class MatrixImage:
    """The table reduced to display resolution by block means (positions on axis 1)."""

    values: np.ndarray  # dims x positions, float32
    position_bounds: np.ndarray
    dimension_bounds: np.ndarray


@dataclass(frozen=True)
class Traces:
    """Chosen dimensions' values across positions, min/max-decimated for long tables."""

    dims: np.ndarray
    index: np.ndarray  # first position of each block
    low: np.ndarray  # dims x blocks
    high: np.ndarray


@dataclass(frozen=True)
class Analysis:
    """Every result the report draws for one table."""

    summary: dict[str, float]
    matrix: MatrixImage
    positions: SimilarityImage
    dimensions: SimilarityImage
    traces: Traces


def matrix_image(x: np.ndarray, resolution: int = RESOLUTION) -> MatrixImage:
    """``x`` transposed to dims x positions and block-averaged to at most ``resolution`` on each axis."""
    values, dimension_bounds, position_bounds = block_mean(x.T, resolution, resolution)
    return MatrixImage(values, position_bounds, dimension_bounds)


def default_trace_dims(dim: int, count: int = 4) -> np.ndarray:
    """``count`` dimensions spread evenly over ``range(dim)``, starting at 0."""
    return np.unique(np.linspace(0, dim, min(count, dim), endpoint=False).astype(np.int64))


def dimension_traces(x: np.ndarray, dims: np.ndarray, resolution: int = RESOLUTION) -> Traces:
    """Values of dimensions ``dims`` across positions, as min/max envelopes of at most ``resolution`` blocks."""
    dims = np.asarray(dims, dtype=np.int64)
    index, low, high = zip(*(envelope(x[:, d], resolution) for d in dims)) if len(dims) else ((), (), ())
    start = index[0] if index else np.zeros(0, np.int64)
    return Traces(dims, start, np.array(low, dtype=np.float32), np.array(high, dtype=np.float32))


def analyze(x: np.ndarray, resolution: int = RESOLUTION) -> Analysis:
    """Run every analysis the report shows on the table ``x`` (positions x dims)."""
    return Analysis(
        summary=summarize(x),
        matrix=matrix_image(x, resolution),
        positions=cosine_image(x, resolution, axis="positions"),
        dimensions=cosine_image(x, resolution, axis="dimensions"),
        traces=dimension_traces(x, default_trace_dims(x.shape[1]), resolution),
    )
