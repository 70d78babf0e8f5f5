"""PCA, singular-value spectrum, effective rank and per-dimension frequencies."""

import numpy as np
import pytest

from explorer.analysis.decomposition import effective_rank, even_index, pca, spectrum
from explorer.analysis.frequencies import dimension_frequencies
from explorer.providers.sinusoidal import sinusoidal_table


@pytest.mark.parametrize("shape", [(60, 9), (9, 60)])  # both Gram branches: D x D and N x N
def test_pca_matches_numpy_svd(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32) * np.linspace(3, 0.1, shape[1])
    result = pca(x)
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(result.explained, (s ** 2 / (s ** 2).sum())[:10], atol=1e-6)
    expected = u[:, :3] * s[:3]
    signs = np.sign(expected[np.abs(expected).argmax(axis=0), range(3)])
    np.testing.assert_allclose(result.scores, expected * signs, atol=1e-4)
    assert result.scores.dtype == np.float32 and result.explained.dtype == np.float32


def test_pca_scores_at_most_the_requested_points_evenly_spaced():
    x = np.random.default_rng(1).normal(size=(10000, 4)).astype(np.float32)
    result = pca(x, points=100)
    assert len(result.index) == 100 and result.index[0] == 0 and result.index[-1] == 9999
    assert result.index.dtype == np.int32 and result.scores.shape == (100, 3)
    np.testing.assert_array_equal(even_index(5, 100), np.arange(5))


def test_spectrum_matches_numpy_singular_values():
    x = np.random.default_rng(2).normal(size=(40, 12)).astype(np.float32)
    expected = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    result = spectrum(x)
    np.testing.assert_allclose(result.singular_values, expected, rtol=1e-5)
    p = expected / expected.sum()
    assert result.effective_rank == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)


def test_effective_rank_of_rank_one_and_flat_spectra():
    assert effective_rank(np.array([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(np.full(7, 2.0)) == pytest.approx(7.0)
    rank_one = np.outer(np.arange(1, 6), np.arange(1, 4)).astype(np.float32)
    assert spectrum(rank_one).effective_rank == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("layout", ["interleaved", "split"])
def test_dimension_spectrum_recovers_the_sinusoid_frequencies(layout):
    n, d, base = 2048, 64, 10000.0
    result = dimension_frequencies(sinusoidal_table(n, d, base, layout))
    formula = 1.0 / (2 * np.pi * base ** (2 * np.arange(d // 2) / d))
    found_sin, found_cos = (result.frequency[0::2], result.frequency[1::2]) if layout == "interleaved" \
        else (result.frequency[: d // 2], result.frequency[d // 2:])
    resolvable = 1 / formula <= n / 4  # at least four cycles inside the table
    assert resolvable.sum() >= 16
    np.testing.assert_allclose(found_sin[resolvable], formula[resolvable], rtol=2e-3)
    np.testing.assert_allclose(found_cos[resolvable], formula[resolvable], rtol=2e-3)
    np.testing.assert_allclose(result.wavelength, 1 / result.frequency, rtol=1e-6)
    assert ((result.power > 0) & (result.power <= 1)).all()


def test_a_whole_number_of_cycles_puts_all_power_in_one_bin():
    n = 256
    x = np.stack([np.sin(2 * np.pi * 8 * np.arange(n) / n), np.cos(2 * np.pi * 3 * np.arange(n) / n)], axis=1)
    result = dimension_frequencies(x.astype(np.float32))
    np.testing.assert_allclose(result.frequency, [8 / n, 3 / n], rtol=1e-6)
    np.testing.assert_allclose(result.power, [1.0, 1.0], atol=1e-6)
