"""Linear probes (Wang & Chen 2020): regressions checked against direct solutions and clear-cut tables."""

import numpy as np
import pytest

from explorer.analysis.probes import MIN_POSITIONS, _sample_pairs, absolute_probe, interpolation_probe, order_probe, probes


def naive_ridge_mae(train_x, train_y, test_x, test_y, ridge):
    """Ridge with intercept by the normal equations on explicitly centred data."""
    mean, y_mean = train_x.mean(axis=0), train_y.mean()
    xc = train_x - mean
    penalty = ridge * np.sum(xc ** 2) / train_x.shape[1]
    w = np.linalg.lstsq(np.vstack([xc, np.sqrt(penalty) * np.eye(xc.shape[1])]),
                        np.concatenate([train_y - y_mean, np.zeros(xc.shape[1])]), rcond=None)[0]
    return np.abs(np.round((test_x - mean) @ w + y_mean) - test_y)


def naive_absolute(x, ridge, seed=0, folds=5):
    x = x.astype(np.float64)
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    errors = np.empty(n)
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        errors[held] = naive_ridge_mae(x[train], train.astype(float), x[held], held.astype(float), ridge)
    return errors.mean()


# primal with folds of more rows than D, primal with folds of fewer rows than D (the Woodbury step), dual (D > n)
@pytest.mark.parametrize("shape", [(80, 6), (100, 40), (30, 50)])
def test_absolute_probe_matches_a_direct_ridge_fit(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    x[:, 0] += np.arange(shape[0]) / 10  # some position signal, so errors are not all alike
    assert absolute_probe(x, ridge=1e-2) == pytest.approx(naive_absolute(x, 1e-2), abs=1e-9)


def test_interpolation_probe_matches_a_direct_ridge_fit():
    x = np.random.default_rng(1).normal(size=(41, 5)).astype(np.float32) + np.arange(41)[:, None] / 20
    x64, y = x.astype(np.float64), np.arange(41.0)
    expected = naive_ridge_mae(x64[0::2], y[0::2], x64[1::2], y[1::2], 1e-3).mean()
    assert interpolation_probe(x, ridge=1e-3) == pytest.approx(expected, abs=1e-9)


def test_a_table_that_encodes_position_linearly_is_read_perfectly():
    n = 200
    rng = np.random.default_rng(2)
    x = np.column_stack([np.arange(n) / n, rng.normal(size=(n, 3)) * 0.01]).astype(np.float32)
    result = probes(x)
    assert result.absolute_mae < 0.5 and result.interpolation_mae < 0.5
    assert result.order_error < 0.02
    assert result.absolute_baseline == pytest.approx(50.0)


def test_noise_carries_no_position():
    x = np.random.default_rng(3).normal(size=(400, 8)).astype(np.float32)
    result = probes(x)
    assert result.absolute_mae > 0.8 * result.absolute_baseline
    assert 0.4 < result.order_error < 0.6


def test_order_probe_uses_every_pair_of_a_short_table_and_is_deterministic():
    x = np.random.default_rng(4).normal(size=(12, 3)).astype(np.float32) + np.arange(12)[:, None]
    error, held_out = order_probe(x)
    assert held_out == 12 * 11 // 5 and error < 0.1
    assert order_probe(x) == (error, held_out)


def test_sampled_pairs_are_distinct_ordered_pairs():
    i, j = _sample_pairs(1000, 5000, np.random.default_rng(0))
    assert (i != j).all() and len(set(zip(i.tolist(), j.tolist()))) == 5000
    assert i.min() >= 0 and j.max() <= 999


def test_too_short_tables_get_no_probes():
    assert probes(np.eye(MIN_POSITIONS - 1, dtype=np.float32)) is None
    assert probes(np.eye(MIN_POSITIONS, dtype=np.float32)) is not None


def test_absolute_probe_survives_a_fold_whose_training_rows_cancel_out():
    # Found by hypothesis: huge equal rows and one odd cell. A fold's training Gram matrix is pure rounding
    # there and came out exactly singular; the probe falls back to least squares instead of raising.
    x = np.full((11, 3), 1.5015776e13, dtype=np.float32)
    x[8, 0] = 1.0
    assert np.isfinite(absolute_probe(x))
    assert probes(x) is not None
