"""Linear probes: how much position information a linear read-out can recover from the table.

After Wang & Chen 2020, "What Do Position Embeddings Learn? An Empirical Study of Pre-Trained Language
Model Positional Encoding" (EMNLP), section 3. Every probe is deterministic (fixed ``seed``), pure numpy.

- **Absolute position**: ridge regression from p_i to i with an intercept; 5-fold cross-validation over
  the shuffled rows; ``absolute_mae`` = mean over all rows of |round(prediction) - i| when the row is in
  the held-out fold.
- **Relative order**: logistic regression on the concatenation [p_i ; p_j] (with an intercept) predicting
  j > i, trained on sampled ordered pairs i != j and scored on other sampled pairs; ``order_error`` is the
  held-out error rate (chance is 0.5). Rows are expressed first in the table's principal axes scaled to unit
  variance (whitening over all positions, no labels involved; axes with variance below 1e-12 of the largest
  are dropped), which leaves an unpenalised logistic model unchanged but makes gradient descent converge:
  Nesterov-accelerated gradient descent, ``steps`` steps of size 1/L (L the loss's smoothness, from power
  iteration), with an L2 penalty 1e-4 |w|^2 / 2 that keeps separable data finite.
- **Interpolation**: the absolute ridge regression fitted on even positions and scored on odd ones;
  ``interpolation_mae`` is the mean |round(prediction) - i| over odd i.

Ridge penalty: lambda = ``ridge`` * trace(X_c^T X_c) / D (X_c the training rows centred), i.e. relative to the
mean feature energy, so that the result does not depend on the table's scale; it makes wide tables
(D >= training rows) well posed. Solved in the primal (D x D) or the dual (n x n), whichever is smaller.

Tables with fewer than ``MIN_POSITIONS`` positions get no probes (``None``): five folds need enough rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from explorer.analysis.decomposition import CentredEigen, centred_eigen
from explorer.analysis.table import as_table
from explorer.units import Analysis

MIN_POSITIONS = 10
FOLDS = 5
RIDGE = 1e-3
TRAIN_PAIRS = 8192
TEST_PAIRS = 4096
STEPS = 300
L2 = 1e-4


@dataclass(frozen=True)
class Probes:
    """Held-out errors of the three linear probes (see the module docstring for each definition)."""

    absolute_mae: float  # positions
    order_error: float  # fraction of held-out pairs misordered
    interpolation_mae: float  # positions
    absolute_baseline: float  # MAE of always predicting the mean position: what "no information" scores
    order_pairs: int  # held-out pairs the order error is measured on
    ridge: float


def _ridge_from_moments(n: int, sx: np.ndarray, sy: float, sxx: np.ndarray, sxy: np.ndarray,
                        ridge: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Ridge weights, intercept and feature means from the sums over n rows of x, y, x x^T and x y (primal)."""
    mean, y_mean = sx / n, sy / n
    gram = sxx - n * np.outer(mean, mean)
    w = _solve(gram, sxy - n * mean * y_mean, ridge * np.trace(gram) / len(gram))
    return w, y_mean, mean


def _ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Weights, intercept and feature means of ridge regression y ~ x w + b (float64)."""
    n, d = x.shape
    if d <= n:
        return _ridge_from_moments(n, x.sum(axis=0), float(y.sum()), x.T @ x, x.T @ y, ridge)
    mean = x.mean(axis=0)
    centred = x - mean
    gram = centred @ centred.T
    w = centred.T @ _solve(gram, y - y.mean(), ridge * np.trace(gram) / d)
    return w, float(y.mean()), mean


def _solve(gram: np.ndarray, rhs: np.ndarray, penalty: float) -> np.ndarray:
    if not penalty > 0:  # no variance at all: every prediction is the mean
        return np.zeros_like(rhs)
    gram = gram + penalty * np.eye(len(gram))
    return np.linalg.solve(gram, rhs)


def _mae(w: np.ndarray, b: float, mean: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(np.round((x - mean) @ w + b) - y)


def absolute_probe(x: np.ndarray, folds: int = FOLDS, ridge: float = RIDGE, seed: int = 0,
                   eigen: CentredEigen | None = None) -> float:
    """Cross-validated MAE (positions) of the rounded ridge prediction of i from p_i.

    ``eigen`` is ``decomposition.centred_eigen(x)`` when the caller already has it (``analyze`` shares it).
    """
    table = as_table(x)
    n, d = table.shape
    y = np.arange(n, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(n)
    errors = np.empty(n)
    smallest_training_set = n - -(-n // folds)
    if d <= smallest_training_set:
        eigen = eigen if eigen is not None else centred_eigen(table)  # d < n: its D x D form
        scores = (table - eigen.mean) @ eigen.vectors  # the centred rows in the principal axes, float64
        totals = (scores.T @ y, float(y.sum()), float(eigen.values.sum()))
        for held in np.array_split(order, folds):
            errors[held] = _held_out_errors(scores[held], y[held], n, totals, eigen.values, ridge)
    else:  # wider than the training rows: the dual (n x n) form
        table = table.astype(np.float64)
        for held in np.array_split(order, folds):
            train = np.setdiff1d(order, held, assume_unique=True)
            errors[held] = _mae(*_ridge_fit(table[train], y[train], ridge), table[held], y[held])
    return float(errors.mean())


def _held_out_errors(part: np.ndarray, target: np.ndarray, n: int, totals: tuple, values: np.ndarray,
                     ridge: float) -> np.ndarray:
    """|round(prediction) - i| on one held-out fold, the ridge fitted on all other rows.

    Everything is in the principal axes of the whole table, where its centred Gram matrix is diag(values):
    ``part`` holds the fold's centred rows there. The training rows' Gram matrix about their own mean is
    diag(values) - U U^T, with U = [part^T, sqrt(m) delta] (delta: the training mean's offset from the
    whole mean, m training rows), so the ridge system diag(values + lambda) - U U^T is solved by the
    Woodbury identity through an (h+1) x (h+1) system when the fold has fewer rows h than dimensions,
    else directly. The same weights as fitting the training rows alone, without a D x D factorisation
    per fold.
    """
    h, d = part.shape
    m = n - h
    cross, y_total, trace = totals
    folded = part.sum(axis=0)
    delta = -folded / m
    y_mean = (y_total - float(target.sum())) / m
    rhs = cross - part.T @ target + y_mean * folded  # sum over training rows of (x - their mean) (y - theirs)
    penalty = ridge * (trace - float(np.sum(part * part)) - m * float(delta @ delta)) / d
    if not penalty > 0:  # no variance at all: every prediction is the mean
        return np.abs(np.round(np.full(h, y_mean)) - target)
    diagonal = values + penalty
    low_rank = np.concatenate([part.T, np.sqrt(m) * delta[:, None]], axis=1)  # U, d x (h+1)
    if h + 1 < d:
        scaled = low_rank / diagonal[:, None]
        first = rhs / diagonal
        inner = np.eye(h + 1) - low_rank.T @ scaled
        w = first + scaled @ _solve_or_fit(inner, low_rank.T @ first)
    else:
        w = _solve_or_fit(np.diag(diagonal) - low_rank @ low_rank.T, rhs)
    return np.abs(np.round((part - delta) @ w + y_mean) - target)


def _solve_or_fit(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``solve``, or least squares when rounding made the system exactly singular (a fold whose training rows
    are equal up to rounding, in a table of huge values: its Gram matrix is all cancellation)."""
    try:
        return np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(matrix, rhs, rcond=None)[0]


def interpolation_probe(x: np.ndarray, ridge: float = RIDGE) -> float:
    """MAE (positions) on odd positions of the ridge regression fitted on even positions."""
    table = as_table(x).astype(np.float64)
    positions = np.arange(len(table), dtype=np.float64)
    return float(_mae(*_ridge_fit(table[0::2], positions[0::2], ridge), table[1::2], positions[1::2]).mean())


def _whitened_rows(table: np.ndarray, rows: np.ndarray, eigen: CentredEigen | None = None) -> np.ndarray:
    """Rows ``rows`` of the table in its principal axes scaled to unit variance (statistics from every row).

    The principal axes are ``decomposition.centred_eigen(table)``, passed in as ``eigen`` when already computed.
    """
    n, d = table.shape
    if eigen is None:
        eigen = centred_eigen(table)
    mean, values, vectors = eigen.mean, eigen.values, eigen.vectors
    keep = values > 1e-12 * values.max() if values.max() > 0 else np.zeros(len(values), dtype=bool)
    if n >= d:
        return (table[rows] - mean) @ (vectors[:, keep] / np.sqrt(values[keep])) * np.sqrt(n)
    return vectors[rows][:, keep] * np.sqrt(n)  # left singular vectors: already uncorrelated, unit norm


def _sample_pairs(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct ordered pairs (i, j), i != j, drawn uniformly without replacement."""
    population = n * (n - 1)
    codes = rng.permutation(population)[:count] if population <= 4 * count else rng.choice(population, count, replace=False)
    i, rest = np.divmod(codes, n - 1)
    return i, rest + (rest >= i)


def order_probe(x: np.ndarray, train_pairs: int = TRAIN_PAIRS, test_pairs: int = TEST_PAIRS, steps: int = STEPS,
                seed: int = 0, eigen: CentredEigen | None = None) -> tuple[float, int]:
    """Held-out error rate of logistic regression on [p_i ; p_j] predicting j > i, and the held-out pair count."""
    table = as_table(x)
    n = len(table)
    rng = np.random.default_rng(seed)
    population = n * (n - 1)
    if population < 2:
        return float("nan"), 0
    if population <= train_pairs + test_pairs:  # few positions: every pair, 80 % to train
        test_pairs = max(1, population // 5)
        train_pairs = population - test_pairs
    i, j = _sample_pairs(n, train_pairs + test_pairs, rng)
    used, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    z = _whitened_rows(table, used, eigen).astype(np.float32)  # float32 halves the memory traffic of the 2 x 300 products
    i, j = inverse[: len(i)], inverse[len(i):]
    label = (j > i).astype(np.float64)  # `used` is sorted, so the order of indices is the order of positions
    tr, te = slice(0, train_pairs), slice(train_pairs, None)
    w = _fit_logistic(z, i[tr], j[tr], label[tr], steps, len(used))
    scores = _pair_scores(z, w, i[te], j[te])
    return float(np.mean((scores > 0) != (label[te] > 0))), int(len(label[te]))


def _pair_scores(z: np.ndarray, w: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    r = z.shape[1]
    both = z @ np.stack([w[:r], w[r:2 * r]], axis=1).astype(z.dtype)  # features [z_i ; z_j] never materialised
    return both[i, 0] + both[j, 1] + w[-1]


def _gradient(z, i, j, residual, rows):
    """(1/M) F^T residual for the pair features F = [z_i ; z_j ; 1], without forming F."""
    weights = np.stack([np.bincount(i, residual, rows), np.bincount(j, residual, rows)], axis=1)
    g = z.T @ weights.astype(z.dtype)
    return np.concatenate([g[:, 0], g[:, 1], [residual.sum()]]) / len(residual)


def _fit_logistic(z, i, j, label, steps, rows) -> np.ndarray:
    r = z.shape[1]
    size = 2 * r + 1
    # smoothness of the mean logistic loss: L = |F^T F| / (4 M) + l2, by power iteration on F^T F / M
    v = np.random.default_rng(1).normal(size=size)
    top = 1.0
    for _ in range(30):
        v /= np.linalg.norm(v)
        fv = _pair_scores(z, v, i, j)
        v_next = _gradient(z, i, j, fv, rows)
        top = float(np.linalg.norm(v_next))
        v = v_next
    step = 1.0 / (1.05 * top / 4.0 + L2)  # 5 % margin on the power-iteration estimate
    w = np.zeros(size)
    previous = w
    for t in range(1, steps + 1):
        look = w + (t - 1) / (t + 2) * (w - previous)
        p = 1.0 / (1.0 + np.exp(-np.clip(_pair_scores(z, look, i, j), -500, 500)))
        grad = _gradient(z, i, j, p - label, rows)
        grad[:-1] += L2 * look[:-1]
        previous, w = w, look - step * grad
    return w


def probes(x: np.ndarray, ridge: float = RIDGE, seed: int = 0, eigen: CentredEigen | None = None) -> Probes | None:
    """All three probes, or None for tables with fewer than ``MIN_POSITIONS`` positions.

    ``eigen`` is ``decomposition.centred_eigen(x)`` when the caller already has it (``analyze`` shares it).
    """
    table = as_table(x)
    n = len(table)
    if n < MIN_POSITIONS:
        return None
    order_error, pairs = order_probe(table, seed=seed, eigen=eigen)
    positions = np.arange(n)
    return Probes(
        absolute_mae=absolute_probe(table, ridge=ridge, seed=seed, eigen=eigen),
        order_error=order_error,
        interpolation_mae=interpolation_probe(table, ridge=ridge),
        absolute_baseline=float(np.abs(np.round(positions.mean()) - positions).mean()),
        order_pairs=pairs,
        ridge=ridge,
    )


ANALYSES = (
    Analysis("probes", "how much position linear read-outs recover (absolute, order, interpolation)",
             run=lambda ctx: probes(ctx.matrix, seed=ctx.seed, eigen=ctx.eigen),
             scalars=lambda result: {f"probe_{f.name}": float(getattr(result, f.name))
                                     for f in dataclasses.fields(result)}),
)
