"""Comparing two tables on the positions they have in common (the first n = min(N_a, N_b) rows).

- Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited", ICML):
  with A, B centred over positions, CKA = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F), equal to the
  kernel form <K, L>_F / (||K||_F ||L||_F) with K = A A^T, L = B B^T. Invariant to rotations and scaling of
  either table, so two tables of different widths compare. Computed with whichever Gram matrices are smaller
  (D x D or n x n), never more than O(n D) memory. Each table's part (``cka_term``) is computed once and
  shared by all its pairs.
- Similarity correlation: Pearson's r between the two position-cosine images at display resolution
  (``cosine_image`` on the common positions, so both share the same blocks), over the cells strictly above
  the diagonal (the diagonal is trivially 1 in both and would inflate r); cells that are NaN in either
  image (zero rows) are left out.
- Offset profiles of both tables on the common positions, side by side (same lags).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.offset import offset_of
from explorer.analysis.similarity import cosine_image, position_cosines
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


@dataclass(frozen=True)
class CkaTerm:
    """What linear CKA needs of one table (its rows A, centred over positions), computed once for every pair.

    ``gram``: the n x n Gram matrix K = A A^T as its upper triangle, the entries off the diagonal times sqrt(2),
    so that ``gram_a @ gram_b`` is <K_a, K_b>_F and a pair costs n (n + 1) / 2 products. It is kept only while
    it is no larger than a float64 copy of the table (n <= 2 D); a longer table keeps ``None`` and its pairs
    form B^T A. ``norm`` is ||K||_F = ||A^T A||_F.
    """

    gram: np.ndarray | None
    norm: float


def _centred(x: np.ndarray) -> np.ndarray:
    centred = np.asarray(x, dtype=np.float64).copy()
    centred -= centred.mean(axis=0)
    return centred


def cka_term(x: np.ndarray) -> CkaTerm:
    """The per-table part of linear CKA (``CkaTerm``) of the table ``x``."""
    centred = _centred(as_table(x))
    n, d = centred.shape
    if n > 2 * d:
        return CkaTerm(None, float(np.linalg.norm(centred.T @ centred)))
    gram = centred @ centred.T
    gram *= np.sqrt(2.0)
    gram[np.diag_indices(n)] /= np.sqrt(2.0)
    upper = gram[np.triu_indices(n)]
    return CkaTerm(upper, float(np.linalg.norm(upper)))


def cka_from(x: np.ndarray, y: np.ndarray, term_x: CkaTerm, term_y: CkaTerm) -> float:
    """Linear CKA of ``x`` and ``y`` (same rows) from their ``cka_term``s; NaN when either has no variance."""
    if not (term_x.norm > 0 and term_y.norm > 0):
        return float("nan")
    if term_x.gram is not None and term_y.gram is not None:
        cross = float(term_x.gram @ term_y.gram)
    else:
        cross = float(np.sum((_centred(y).T @ _centred(x)) ** 2))
    return cross / (term_x.norm * term_y.norm)


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA between two tables with the same number of rows; NaN when either has no variance."""
    x, y = as_table(a), as_table(b)
    if len(x) != len(y):
        raise ValueError(f"linear CKA needs the same positions, got {len(x)} and {len(y)}")
    return cka_from(x, y, cka_term(x), cka_term(y))


@lru_cache(maxsize=4)
def _upper(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The cells strictly above the diagonal of a size x size image (shared by every pair at one resolution)."""
    return np.triu_indices(size, k=1)


def image_correlation(image_a: np.ndarray, image_b: np.ndarray) -> float:
    """Pearson's r between the strictly upper triangles of two cosine images, cells NaN in either left out."""
    if image_a.shape != image_b.shape:
        raise ValueError(f"the images differ in shape: {image_a.shape} and {image_b.shape}")
    upper = _upper(len(image_a))
    u, v = image_a[upper].astype(np.float64), image_b[upper].astype(np.float64)
    keep = np.isfinite(u) & np.isfinite(v)
    if not keep.any():
        return float("nan")
    if not keep.all():
        u, v = u[keep], v[keep]
    u -= u.mean()
    v -= v.mean()
    denominator = np.sqrt(np.sum(u * u) * np.sum(v * v))
    return float(np.sum(u * v) / denominator) if denominator > 0 else float("nan")


def similarity_correlation(a: np.ndarray, b: np.ndarray, resolution: int = 1024) -> float:
    """Pearson's r between the strictly upper triangles of the two (block-mean) position-cosine images."""
    return image_correlation(cosine_image(as_table(a), resolution).values,
                             cosine_image(as_table(b), resolution).values)


def compare_contexts(a: TableContext, b: TableContext) -> Comparison:
    """``compare`` of two tables' contexts, reading each table's shared work (computed once per table and rows).

    On the first n = min(N_a, N_b) rows at the lower of the two resolutions: the offset profile and the cosine
    image are those the table's own analyses computed (its ``offset`` and ``cosine_positions``), and CKA reads
    each table's ``cka_term``, so a pair adds only its cross terms.
    """
    n = min(len(a.matrix), len(b.matrix))
    resolution = min(a.resolution, b.resolution)
    a, b = a.head(n, resolution), b.head(n, resolution)
    profile_a, profile_b = offset_of(a)[0], offset_of(b)[0]
    return Comparison(
        cka=cka_from(a.matrix, b.matrix, a.memo("cka_term", lambda: cka_term(a.matrix)),
                     b.memo("cka_term", lambda: cka_term(b.matrix))),
        similarity_correlation=image_correlation(position_cosines(a).values, position_cosines(b).values),
        positions=n,
        lag=profile_a.lag,
        offset_a=profile_a.mean,
        offset_b=profile_b.mean,
    )


def compare(a: np.ndarray, b: np.ndarray, resolution: int = 1024) -> Comparison:
    """CKA, similarity correlation and both offset profiles of two tables on their common positions."""
    resolution = check_resolution(resolution)
    return compare_contexts(TableContext(as_table(a), resolution), TableContext(as_table(b), resolution))


ANALYSES = (
    Analysis("comparison", "linear CKA, similarity correlation and offset profiles on the common positions",
             order=100, run=compare_contexts, pair=True,
             scalars=lambda c: {"cka": c.cka, "similarity_correlation": c.similarity_correlation,
                                "positions": float(c.positions)}),
)
