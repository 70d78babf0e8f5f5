"""Comparing two tables: linear CKA and similarity correlation against naive N x N computations."""

import numpy as np
import pytest

from explorer.analysis import compare
from explorer.analysis.compare import linear_cka, similarity_correlation
from explorer.analysis.offset import offset_mean
from explorer.analysis.similarity import cosine_image


def naive_cka(a, b):
    h = np.eye(len(a)) - 1.0 / len(a)
    k, l = h @ (a @ a.T) @ h, h @ (b @ b.T) @ h
    return np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l))


@pytest.mark.parametrize("shape_a, shape_b", [((50, 6), (50, 4)), ((8, 20), (8, 30))])  # feature and kernel forms
def test_linear_cka_matches_the_kernel_definition(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a = rng.normal(size=shape_a)
    b = a[:, :1] * rng.normal(size=(1, shape_b[1])) + rng.normal(size=shape_b)
    assert linear_cka(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(
        naive_cka(a.astype(np.float32).astype(float), b.astype(np.float32).astype(float)), rel=1e-6)


def test_cka_ignores_rotation_scale_and_offset():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 5)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert linear_cka(a, (3 * a @ q + 7).astype(np.float32)) == pytest.approx(1.0, abs=1e-5)


def test_similarity_correlation_uses_the_upper_triangle_of_the_images():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(90, 4)).astype(np.float32)
    b = (a + rng.normal(size=(90, 4))).astype(np.float32)
    for resolution in (1024, 16):
        ia, ib = cosine_image(a, resolution).values, cosine_image(b, resolution).values
        upper = np.triu_indices(len(ia), k=1)
        expected = np.corrcoef(ia[upper], ib[upper])[0, 1]
        assert similarity_correlation(a, b, resolution) == pytest.approx(expected, abs=1e-6)
    assert similarity_correlation(a, a) == pytest.approx(1.0)


def test_compare_uses_the_common_positions():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(70, 6)).astype(np.float32)
    b = rng.normal(size=(40, 3)).astype(np.float32)
    result = compare(a, b, resolution=8)
    assert result.positions == 40 and len(result.lag) == 8 and result.lag.dtype == np.int32
    np.testing.assert_allclose(result.offset_a, offset_mean(a[:40])[result.lag], atol=1e-6)
    np.testing.assert_allclose(result.offset_b, offset_mean(b)[result.lag], atol=1e-6)
    assert result.cka == pytest.approx(linear_cka(a[:40], b))
    assert result.offset_a.dtype == result.offset_b.dtype == np.float32
