"""Principal components and the singular-value spectrum of a table.

Both come from the eigen-decomposition of the smaller Gram matrix (D x D when N >= D, else N x N), in
float64: O(N D min(N, D)) time and O(N D) memory. Singular values below about 1e-8 of the largest are
therefore not resolved (their squares vanish next to the largest square); that is far below anything the
report shows or the effective rank can feel.

- PCA centres the table over positions (X_c = X - mean position) and reports, for the top components,
  the explained-variance ratio lambda_k / sum_j lambda_j (lambda = eigenvalues of X_c^T X_c) and the
  scores X_c v_k of a subset of positions on the top three components (GPT-2's helix).
- The spectrum is that of the raw table X (not centred): its singular values s_1 >= s_2 >= ... and the
  effective rank of Roy & Vetterli (2007, "The effective rank: a measure of effective dimensionality",
  EUSIPCO): erank = exp(H(p)), H(p) = -sum_k p_k log p_k, p_k = s_k / sum_j s_j. It is 1 for a rank-one
  table and min(N, D) when all singular values are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.table import as_table, stored
from explorer.plugins.units import Analysis

#: Explained-variance ratios reported.
COMPONENTS = 10

#: At most this many positions get PCA scores (evenly spaced, first and last included).
SCORE_POINTS = 4096


@dataclass(frozen=True)
class PCA:
    """Principal components of the position vectors (centred over positions).

    ``explained[k]`` is the share of the total variance on component k (at most ``COMPONENTS`` of them, and at
    most min(N, D)); NaN when the table has no variance at all. ``scores`` is len(index) x 3: positions
    ``index`` projected on the top three components (zero columns where the table has fewer components).
    Each component's sign is chosen so that its largest score (in absolute value) is positive.
    """

    explained: np.ndarray  # float32
    index: np.ndarray  # int32
    scores: np.ndarray  # float32 (float64 past float32's range: ``table.stored``), len(index) x 3
    mean_norm: float  # |mean position vector|: how far the table sits from the origin


#: Singular values below this share of the largest are not resolved: the float32 table's own rounding (relative
#: 6e-8 per entry) and the float64 Gram matrix's eigen-solver (absolute error ~1e-16 of s_1^2, i.e. ~1e-8 s_1 on
#: a singular value) leave them indistinguishable from 0.
UNRESOLVED = 1e-7


@dataclass(frozen=True)
class Spectrum:
    """All min(N, D) singular values of the raw table, descending, and the Roy & Vetterli effective rank.

    ``zeros`` counts singular values that came out exactly 0; ``unresolved`` those above 0 but below
    ``UNRESOLVED`` times the largest (neither can be drawn faithfully on a log axis).
    """

    singular_values: np.ndarray  # float32 (float64 past float32's range: ``table.stored``)
    effective_rank: float
    zeros: int = 0
    unresolved: int = 0


def even_index(n: int, count: int) -> np.ndarray:
    """At most ``count`` positions spread evenly over ``range(n)``, first and last included, as int32."""
    if n <= count:
        return np.arange(n, dtype=np.int32)
    return np.unique(np.linspace(0, n - 1, count).round().astype(np.int64)).astype(np.int32)


@dataclass(frozen=True)
class CentredEigen:
    """The eigen-decomposition of the centred table's smaller Gram matrix, computed once by ``centred_eigen``
    and shared by ``pca``, ``spectrum`` and the probes' whitening (``probes.order_probe``).

    ``gram`` is X_c^T X_c (``features`` True, N >= D) or X_c X_c^T; ``values`` descending and >= 0, ``vectors``
    the matching eigenvectors (right singular vectors of X_c when ``features``, else left ones).
    """

    mean: np.ndarray  # float64, the mean position vector
    gram: np.ndarray
    values: np.ndarray
    vectors: np.ndarray
    features: bool


def centred_eigen(x: np.ndarray) -> CentredEigen:
    """Centre the table over positions and eigen-decompose its smaller Gram matrix (float64), once."""
    table = as_table(x)
    n, d = table.shape
    mean = table.mean(axis=0, dtype=np.float64)
    features = n >= d
    if features:
        gram = np.zeros((d, d))
        for start in range(0, n, 65536):  # row blocks: no float64 copy of a long table
            block = table[start:start + 65536] - mean
            gram += block.T @ block
            del block  # not alive beside the eigen-solver's work space, the analyses' peak of memory
    else:
        centred = table - mean
        gram = centred @ centred.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    return CentredEigen(mean, gram, np.maximum(values[order], 0.0), vectors[:, order], features)


def effective_rank(singular_values: np.ndarray) -> float:
    """exp of the Shannon entropy of s / sum(s) (Roy & Vetterli 2007); NaN for a zero table."""
    s = np.asarray(singular_values, dtype=np.float64)
    total = s.sum()
    if not total > 0:
        return float("nan")
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def spectrum(x: np.ndarray, eigen: CentredEigen | None = None) -> Spectrum:
    """The singular values of the raw table and its effective rank.

    With ``eigen`` (``centred_eigen`` of the same table) the raw D x D Gram matrix is rebuilt from the centred
    one, X^T X = X_c^T X_c + N mu mu^T (a sum of positive semi-definite terms: no cancellation), and only its
    eigenvalues are computed.
    """
    table = as_table(x)
    if eigen is not None and eigen.features:
        raw = eigen.gram + len(table) * np.outer(eigen.mean, eigen.mean)
        values = np.maximum(np.linalg.eigvalsh(raw)[::-1], 0.0)
    else:
        table64 = table.astype(np.float64)
        gram = table64.T @ table64 if table64.shape[0] >= table64.shape[1] else table64 @ table64.T
        values = np.maximum(np.linalg.eigvalsh(gram)[::-1], 0.0)
    singular = np.sqrt(values)
    limit = UNRESOLVED * float(singular[0]) if len(singular) else 0.0
    zeros = int(np.count_nonzero(singular == 0))
    return Spectrum(stored(singular), effective_rank(singular), zeros, int(np.count_nonzero(singular < limit)) - zeros)


def pca(x: np.ndarray, points: int = SCORE_POINTS, eigen: CentredEigen | None = None) -> PCA:
    """Explained-variance ratios of the top components and the scores of up to ``points`` positions on the top three.

    ``eigen`` is ``centred_eigen(x)`` when the caller already has it (``analyze`` shares it).
    """
    table = as_table(x)
    if eigen is None:
        eigen = centred_eigen(table)
    mean, values, vectors, features = eigen.mean, eigen.values, eigen.vectors, eigen.features
    n, d = table.shape
    total = float(np.trace(eigen.gram))  # = ||X_c||_F^2
    top = min(3, len(values))
    if features:
        scores = np.zeros((n, top))
        for start in range(0, n, 65536):  # row blocks: no float64 copy of a long table
            scores[start:start + 65536] = (table[start:start + 65536] - mean) @ vectors[:, :top]
    else:  # left singular vectors times singular values are the scores
        scores = vectors[:, :top] * np.sqrt(values[:top])
    scores[:, values[:top] == 0] = 0.0  # no variance: the direction is arbitrary, its scores are 0
    if len(scores):
        signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(top)])
        scores *= np.where(signs == 0, 1.0, signs)
    with np.errstate(invalid="ignore", divide="ignore"):
        explained = values[:COMPONENTS] / total if total > 0 else np.full(min(COMPONENTS, len(values)), np.nan)
    index = even_index(n, points)
    padded = np.zeros((len(index), 3))
    padded[:, :top] = scores[index]
    return PCA(explained.astype(np.float32), index, stored(padded), float(np.linalg.norm(mean)))


def _pca_scalars(result: PCA) -> dict[str, float]:
    explained = result.explained.astype(np.float64)
    out = {f"pca_explained_{k}": float(share) for k, share in enumerate(explained, start=1)}
    out["pca_explained_top3"] = float(explained[:3].sum()) if len(explained) else float("nan")
    out["pca_mean_norm"] = result.mean_norm
    return out


def _spectrum_scalars(result: Spectrum) -> dict[str, float]:
    singular = result.singular_values
    return {"singular_value_max": float(singular[0]) if len(singular) else float("nan"),
            "effective_rank": float(result.effective_rank), "singular_values_zero": result.zeros,
            "singular_values_unresolved": result.unresolved}


ANALYSES = (
    Analysis("pca", "principal components of the centred positions: explained variance and scores",
             order=70, run=lambda ctx: pca(ctx.matrix, eigen=ctx.eigen), scalars=_pca_scalars),
    Analysis("spectrum", "singular values of the raw table and its effective rank",
             order=71, run=lambda ctx: spectrum(ctx.matrix, ctx.eigen), scalars=_spectrum_scalars),
)
