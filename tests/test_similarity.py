"""Cosine-similarity images against naive O(N^2) computations."""

import numpy as np
import pytest

from explorer.analysis.similarity import cosine_image
from explorer.errors import PosembedWarning


def naive_cos(x):
    x = x.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T


def test_exact_when_table_fits_the_resolution():
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    img = cosine_image(x, resolution=64)
    assert img.exact and img.values.shape == (50, 50)
    np.testing.assert_allclose(img.values, naive_cos(x), atol=1e-5)


def test_long_table_gives_block_means_of_the_full_matrix():
    x = np.random.default_rng(1).normal(size=(103, 5)).astype(np.float32)
    img = cosine_image(x, resolution=10)
    full = naive_cos(x)
    b = img.bounds
    assert not img.exact and img.values.shape == (10, 10) and b[0] == 0 and b[-1] == 103
    expected = np.array([[full[b[i]:b[i + 1], b[j]:b[j + 1]].mean() for j in range(10)] for i in range(10)])
    np.testing.assert_allclose(img.values, expected, atol=1e-5)


def test_dimensions_axis_is_cosine_between_columns():
    x = np.random.default_rng(2).normal(size=(40, 6)).astype(np.float32)
    np.testing.assert_allclose(cosine_image(x, axis="dimensions").values, naive_cos(x.T), atol=1e-5)


def test_centred_removes_the_mean_position():
    x = np.random.default_rng(3).normal(size=(30, 4)).astype(np.float32) + 10
    centred = cosine_image(x, centred=True).values
    np.testing.assert_allclose(centred, naive_cos(x - x.mean(axis=0)), atol=1e-5)
    assert cosine_image(x).values.min() > 0.9  # the offset dominates without centring


def test_zero_row_gives_nan_and_a_warning():
    x = np.ones((4, 3), dtype=np.float32)
    x[1] = 0
    with pytest.warns(PosembedWarning, match="zero position"):
        values = cosine_image(x).values
    assert np.isnan(values[1]).all() and np.isnan(values[:, 1]).all()
    assert values[0, 2] == pytest.approx(1.0)
