"""Comparing two tables on the positions they have in common (the first n = min(N_a, N_b) rows).

- Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited", ICML):
  with A, B centred over positions, CKA = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F), equal to the
  kernel form <K, L>_F / (||K||_F ||L||_F) with K = A A^T, L = B B^T. Invariant to rotations and scaling of
  either table, so two tables of different widths compare. Computed with whichever Gram matrices are smaller
  (D x D or n x n), never more than O(n D) memory.
- Similarity correlation: Pearson's r between the two position-cosine images at display resolution
  (``cosine_image`` on the common positions, so both share the same blocks), over the cells strictly above
  the diagonal (the diagonal is trivially 1 in both and would inflate r); cells that are NaN in either
  image (zero rows) are left out.
- Offset profiles of both tables on the common positions, side by side (same lags).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.offset import offset_profile
from explorer.analysis.similarity import cosine_image
from explorer.analysis.table import as_table, check_resolution
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class Comparison:
    """Two tables compared on their ``positions`` common positions."""

    cka: float
    similarity_correlation: float
    positions: int
    lag: np.ndarray  # int32, lags of both profiles
    offset_a: np.ndarray  # float32, m_a(lag)
    offset_b: np.ndarray  # float32, m_b(lag)


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA between two tables with the same number of rows; NaN when either has no variance."""
    x = as_table(a).astype(np.float64)
    y = as_table(b).astype(np.float64)
    if len(x) != len(y):
        raise ValueError(f"linear CKA needs the same positions, got {len(x)} and {len(y)}")
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    n = len(x)
    if n <= min(x.shape[1], y.shape[1]):
        k, l = x @ x.T, y @ y.T
        cross, norm_x, norm_y = np.sum(k * l), np.linalg.norm(k), np.linalg.norm(l)
    else:
        cross = np.sum((y.T @ x) ** 2)
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if not (norm_x > 0 and norm_y > 0):
        return float("nan")
    return float(cross / (norm_x * norm_y))


def similarity_correlation(a: np.ndarray, b: np.ndarray, resolution: int = 1024) -> float:
    """Pearson's r between the strictly upper triangles of the two (block-mean) position-cosine images."""
    image_a = cosine_image(as_table(a), resolution).values
    image_b = cosine_image(as_table(b), resolution).values
    if image_a.shape != image_b.shape:
        raise ValueError(f"the images differ in shape: {image_a.shape} and {image_b.shape}")
    upper = np.triu_indices(len(image_a), k=1)
    u, v = image_a[upper].astype(np.float64), image_b[upper].astype(np.float64)
    keep = np.isfinite(u) & np.isfinite(v)
    if not keep.any():
        return float("nan")
    u, v = u[keep] - u[keep].mean(), v[keep] - v[keep].mean()
    denominator = np.sqrt(np.sum(u * u) * np.sum(v * v))
    return float(np.sum(u * v) / denominator) if denominator > 0 else float("nan")


def compare(a: np.ndarray, b: np.ndarray, resolution: int = 1024) -> Comparison:
    """CKA, similarity correlation and both offset profiles of two tables on their common positions."""
    resolution = check_resolution(resolution)
    x, y = as_table(a), as_table(b)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    profile_a, profile_b = offset_profile(x, resolution), offset_profile(y, resolution)
    return Comparison(
        cka=linear_cka(x, y),
        similarity_correlation=similarity_correlation(x, y, resolution),
        positions=n,
        lag=profile_a.lag,
        offset_a=profile_a.mean,
        offset_b=profile_b.mean,
    )


ANALYSES = (
    Analysis("comparison", "linear CKA, similarity correlation and offset profiles on the common positions",
             order=100, run=lambda a, b: compare(a.matrix, b.matrix, min(a.resolution, b.resolution)), pair=True,
             scalars=lambda c: {"cka": c.cka, "similarity_correlation": c.similarity_correlation,
                                "positions": float(c.positions)}),
)
