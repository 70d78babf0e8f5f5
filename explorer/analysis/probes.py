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

**The published protocol** (``protocol="wang-chen"``, ``wang_chen_probes``) is the one of the paper's code
(MiuLab/PE-Study, ``absolute.py`` and ``relative.py``), step for step: the table cut to its first 512 rows; the
absolute probe is plain least squares with an intercept (scikit-learn's ``LinearRegression``: the minimum-norm
solution when the table is wider than the training rows) on the rows in a random order, scored by 5 contiguous
folds of that order (``KFold(5)``) as the mean over folds of mean |round(prediction) - i|; the relative probe
draws n = min(N, 512) cells (i, j) of the n x n grid without replacement (pairs with i = j included, labelled
false), and fits scikit-learn's default ``LogisticRegression`` (L2 penalty with C = 1 on the weights, none on
the intercept) on [p_i ; p_j] predicting j > i, scored as the mean over ``StratifiedKFold(5)`` folds of the
error rate. No interpolation probe (NaN). ``numpy.random.RandomState(seed)`` draws the permutations, so with
``seed`` s the rows are those of the paper's scripts run after ``numpy.random.seed(s)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from explorer.core.choices import PROBE_PROTOCOL, PROBE_PROTOCOLS

from explorer.analysis.decomposition import CentredEigen, centred_eigen
from explorer.analysis.table import as_table
from explorer.plugins.units import Analysis

MIN_POSITIONS = 10
FOLDS = 5
RIDGE = 1e-3
TRAIN_PAIRS = 8192
TEST_PAIRS = 4096
STEPS = 300
L2 = 1e-4
#: The published protocol cuts every table to this many rows.
WANG_CHEN_ROWS = 512


@dataclass(frozen=True)
class Probes:
    """Held-out errors of the three linear probes (see the module docstring for each definition)."""

    absolute_mae: float  # positions
    order_error: float  # fraction of held-out pairs misordered
    interpolation_mae: float  # positions
    absolute_baseline: float  # MAE of always predicting the mean position: what "no information" scores
    order_pairs: int  # held-out pairs the order error is measured on
    ridge: float  # 0 for the published protocol's plain least squares
    protocol: str = PROBE_PROTOCOL  # which protocol measured these (``explorer.core.choices.PROBE_PROTOCOLS``)
    rows: int = 0  # the rows the probes used (the published protocol cuts tables to 512)

    def numbers(self) -> dict[str, float]:
        """The numeric fields, for ``analyze --json``."""
        return {f"probe_{f.name}": float(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "protocol"}


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


def _least_squares_fold_errors(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> float:
    """Mean |round(prediction) - y| on ``test`` of least squares with an intercept fitted on the other rows."""
    train = np.setdiff1d(np.arange(len(x)), test, assume_unique=True)
    mean, y_mean = x[train].mean(axis=0), y[train].mean()
    # minimum-norm solution, as scikit-learn's LinearRegression (scipy's lstsq) gives when D > training rows
    w = np.linalg.lstsq(x[train] - mean, y[train] - y_mean, rcond=None)[0]
    return float(np.abs(np.round((x[test] - mean) @ w + y_mean) - y[test]).mean())


def wang_chen_absolute(x: np.ndarray, seed: int = 0, folds: int = FOLDS) -> float:
    """The paper's absolute probe: rows shuffled, plain least squares, ``KFold(5)``, mean over folds of the MAE."""
    table = as_table(x)[:WANG_CHEN_ROWS].astype(np.float64)
    target = np.random.RandomState(seed).permutation(len(table))
    rows = table[target]  # row k is position target[k]
    return float(np.mean([_least_squares_fold_errors(rows, target.astype(np.float64), test)
                          for test in np.array_split(np.arange(len(rows)), folds)]))


def stratified_folds(labels: np.ndarray, folds: int = FOLDS) -> list[np.ndarray]:
    """The test rows of scikit-learn's ``StratifiedKFold(folds)`` without shuffling (its allocation, step for step):
    each class's rows, in order, go to the folds in blocks sized so that every fold has the class's share."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    _, by_appearance = np.unique(first, return_inverse=True)
    encoded = by_appearance[inverse.ravel()]
    allocation = np.asarray([np.bincount(np.sort(encoded)[k::folds], minlength=len(first)) for k in range(folds)])
    test_fold = np.empty(len(labels), dtype=np.int64)
    for c in range(len(first)):
        test_fold[encoded == c] = np.arange(folds).repeat(allocation[:, c])
    return [np.flatnonzero(test_fold == k) for k in range(folds)]


def logistic_l2(features: np.ndarray, labels: np.ndarray, c: float = 1.0, steps: int = 100) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising C sum log(1 + exp(-s_i f_i)) + |w|^2 / 2 (s = +-1, the intercept free):
    scikit-learn's default ``LogisticRegression`` objective, solved to convergence by damped Newton steps.

    The optimum's weights lie in the span of the rows (the gradient of the loss is a combination of them), so
    Newton runs on the rows' coordinates in their SVD basis: (rank + 1) unknowns instead of D + 1."""
    _, s, vt = np.linalg.svd(features, full_matrices=False)
    keep = s > s.max() * max(features.shape) * np.finfo(np.float64).eps if s.size and s.max() > 0 else s > np.inf
    basis = vt[keep].T  # D x r, orthonormal
    z = np.concatenate([features @ basis, np.ones((len(features), 1))], axis=1)
    sign = np.where(labels, 1.0, -1.0)
    penalty = np.ones(z.shape[1])
    penalty[-1] = 0.0

    def objective(theta: np.ndarray) -> float:
        return float(c * np.logaddexp(0.0, -sign * (z @ theta)).sum() + 0.5 * np.sum(penalty * theta * theta))

    theta = np.zeros(z.shape[1])
    value = objective(theta)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -500, 500)))
        gradient = c * z.T @ (p - labels) + penalty * theta
        hessian = c * (z.T * (p * (1 - p))) @ z + np.diag(penalty)
        step = _solve_or_fit(hessian, gradient)
        size = 1.0
        while size > 1e-10:  # halve until the objective decreases: Newton from zero may overshoot
            candidate = theta - size * step
            if (new := objective(candidate)) <= value:
                break
            size /= 2
        else:
            break
        converged = value - new <= 1e-12 * max(1.0, abs(value))
        theta, value = candidate, new
        if converged:
            break
    return basis @ theta[:-1], float(theta[-1])


def wang_chen_order(x: np.ndarray, seed: int = 0, folds: int = FOLDS) -> tuple[float, int]:
    """The paper's relative probe: n cells (i, j) of the n x n grid, logistic regression on [p_i ; p_j] predicting
    j > i, ``StratifiedKFold(5)``; the mean over folds of the error rate, and the pairs used."""
    table = as_table(x)[:WANG_CHEN_ROWS].astype(np.float64)
    n = len(table)
    cells = np.random.RandomState(seed).permutation(n * n)[:n]
    i, j = cells // n, cells % n
    features, labels = np.hstack([table[i], table[j]]), (j > i)
    if labels.all() or not labels.any():  # one class: nothing to separate
        return float("nan"), int(n)
    errors = []
    for test in stratified_folds(labels, folds):
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        w, b = logistic_l2(features[train], labels[train].astype(np.float64))
        errors.append(np.mean(((features[test] @ w + b) > 0) != labels[test]))
    return float(np.mean(errors)), int(n)


def wang_chen_probes(x: np.ndarray, seed: int = 0) -> Probes | None:
    """Both probes by the published protocol (module docstring), or None below ``MIN_POSITIONS`` positions."""
    table = as_table(x)
    if len(table) < MIN_POSITIONS:
        return None
    rows = min(len(table), WANG_CHEN_ROWS)
    order_error, pairs = wang_chen_order(table, seed)
    positions = np.arange(rows)
    return Probes(absolute_mae=wang_chen_absolute(table, seed), order_error=order_error,
                  interpolation_mae=float("nan"),
                  absolute_baseline=float(np.abs(np.round(positions.mean()) - positions).mean()),
                  order_pairs=pairs, ridge=0.0, protocol="wang-chen", rows=rows)


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of ``PROBE_PROTOCOLS``; else an ``OutputError`` naming them."""
    if protocol not in PROBE_PROTOCOLS:
        from explorer.errors import OutputError

        raise OutputError(f"probe protocol must be one of {', '.join(PROBE_PROTOCOLS)}, got {protocol!r}")
    return protocol


def probes(x: np.ndarray, ridge: float = RIDGE, seed: int = 0, eigen: CentredEigen | None = None,
           protocol: str = PROBE_PROTOCOL) -> Probes | None:
    """All three probes, or None for tables with fewer than ``MIN_POSITIONS`` positions.

    ``eigen`` is ``decomposition.centred_eigen(x)`` when the caller already has it (``analyze`` shares it).
    ``protocol="wang-chen"`` runs the published protocol instead (``wang_chen_probes``).
    """
    if check_protocol(protocol) == "wang-chen":
        return wang_chen_probes(x, seed)
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
        rows=n,
    )


ANALYSES = (
    Analysis("probes", "how much position linear read-outs recover (absolute, order, interpolation)",
             order=90, run=lambda ctx: probes(ctx.matrix, seed=ctx.seed, eigen=ctx.eigen,
                                    protocol=ctx.options.get("probe_protocol", PROBE_PROTOCOL)),
             scalars=Probes.numbers),
)
