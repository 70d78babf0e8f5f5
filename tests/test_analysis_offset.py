"""Offset profile, its spread and translation invariance against naive O(N^2) computations."""

import numpy as np
import pytest

from explorer.analysis.offset import (fft_length, offset_mean, offset_moments, offset_profile, offset_spread,
                                      translation_invariance)
from explorer.providers.sinusoidal import sinusoidal_table


def naive_cosines(x):
    x = x.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T


def naive_profile(x):
    c = naive_cosines(x)
    n = len(c)
    return np.array([np.diag(c, k).mean() for k in range(n)]), np.array([np.diag(c, k).std() for k in range(n)])


def naive_invariance(x):
    c = naive_cosines(x)
    m, _ = naive_profile(x)
    n = len(c)
    t = m[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]
    return 1 - np.linalg.norm(c - t) / np.linalg.norm(c)


@pytest.fixture
def table():
    return (np.random.default_rng(0).normal(size=(67, 7)) + 0.4).astype(np.float32)


def test_fft_length_never_wraps():
    assert [fft_length(n) for n in (1, 2, 3, 4, 5, 1024)] == [1, 4, 8, 8, 16, 2048]


def test_offset_mean_is_the_mean_of_each_diagonal(table):
    np.testing.assert_allclose(offset_mean(table), naive_profile(table)[0], atol=1e-12)


def test_offset_moments_give_the_exact_spread_at_every_lag(table):
    mean, std = offset_moments(table)
    expected_mean, expected_std = naive_profile(table)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-12)
    np.testing.assert_allclose(std, expected_std, atol=1e-6)


def test_spread_is_exact_when_every_pair_fits_the_sample(table):
    lags = np.array([0, 1, 5, 66])
    np.testing.assert_allclose(offset_spread(table, lags), naive_profile(table)[1][lags], atol=1e-6)


def test_sampled_spread_estimates_the_exact_one():
    x = np.random.default_rng(1).normal(size=(3000, 5)).astype(np.float32)
    lags = np.array([1, 700])
    exact = offset_moments(x)[1][lags]
    estimate = offset_spread(x, lags, samples=400, seed=3)
    np.testing.assert_allclose(estimate, exact, rtol=0.1)
    np.testing.assert_array_equal(estimate, offset_spread(x, lags, samples=400, seed=3))  # fixed seed


def test_translation_invariance_matches_the_frobenius_definition(table):
    assert translation_invariance(table) == pytest.approx(naive_invariance(table), abs=1e-9)


@pytest.mark.parametrize("layout", ["interleaved", "split"])
def test_sinusoid_is_translation_invariant(layout):
    x = sinusoidal_table(8192, 64, layout=layout)
    assert translation_invariance(x) == pytest.approx(1.0, abs=1e-5)
    profile = offset_profile(x, resolution=256)
    assert np.nanmax(profile.std) < 1e-5  # cos(p_i, p_{i+k}) does not depend on i


def test_sinusoid_offset_profile_follows_the_formula():
    n, d = 500, 32
    inv_freq = 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    expected = np.cos(np.outer(np.arange(n), inv_freq)).mean(axis=1)  # (2/d) sum_i cos(k w_i)
    np.testing.assert_allclose(offset_mean(sinusoidal_table(n, d)), expected, atol=1e-6)


def test_long_profiles_are_sampled_at_block_starts_with_an_envelope(table):
    full = offset_mean(table)
    profile = offset_profile(table, resolution=10)
    assert len(profile.lag) == 10 and profile.lag[0] == 0 and profile.lag.dtype == np.int32
    np.testing.assert_allclose(profile.mean, full[profile.lag], atol=1e-6)
    edges = list(profile.lag) + [len(full)]
    for b in range(10):
        block = full[edges[b]:edges[b + 1]]
        assert profile.low[b] == pytest.approx(block.min(), abs=1e-6)
        assert profile.high[b] == pytest.approx(block.max(), abs=1e-6)
    np.testing.assert_array_equal(profile.pairs, len(full) - profile.lag)
    assert all(a.dtype == np.float32 for a in (profile.mean, profile.std, profile.low, profile.high))


def test_short_profiles_come_back_whole(table):
    profile = offset_profile(table, resolution=1024)
    np.testing.assert_array_equal(profile.lag, np.arange(67))
    assert not profile.sampled
