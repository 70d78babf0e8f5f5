"""The grid analyses against naive oracles that form the full cosine matrix of a small grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explorer
from explorer.analysis import analyze
from explorer.analysis.grid import (MAX_TILES, grid_offset, patch_similarity, quantised_cosines, separability)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_offset(x, height, width):
    cos = unit(x.astype(np.float64)) @ unit(x.astype(np.float64)).T
    m = np.zeros((2 * height - 1, 2 * width - 1))
    for dy in range(-(height - 1), height):
        for dx in range(-(width - 1), width):
            values = [cos[r * width + c, (r + dy) * width + c + dx] for r in range(height) for c in range(width)
                      if 0 <= r + dy < height and 0 <= c + dx < width]
            m[dy + height - 1, dx + width - 1] = np.mean(values)
    lag = {(dy, dx): m[dy + height - 1, dx + width - 1] for dy in range(-(height - 1), height)
           for dx in range(-(width - 1), width)}
    fitted = np.array([[lag[(j // width - i // width, j % width - i % width)] for j in range(len(x))]
                       for i in range(len(x))])
    return m, 1 - np.linalg.norm(cos - fitted) / np.linalg.norm(cos)


def grid_table(height, width, dim=6, seed=0):
    return np.random.default_rng(seed).normal(size=(height * width, dim)).astype(np.float32)


@pytest.mark.parametrize("height, width", [(3, 5), (4, 4), (1, 6)])
def test_2d_offset_profile_and_invariance_equal_the_naive_cosine_matrix(height, width):
    x = grid_table(height, width)
    result = grid_offset(x, (height, width))
    m, invariance = naive_offset(x, height, width)
    np.testing.assert_allclose(result.mean, m, atol=1e-6)
    assert result.dy0 == height - 1 and result.dx0 == width - 1
    assert result.pairs[height - 1, width - 1] == height * width and result.pairs[0, 0] == 1
    assert result.invariance == pytest.approx(invariance, abs=1e-9)


def test_2d_sinusoid_is_fully_translation_invariant_and_separable():
    emb = explorer.load("sinusoidal2d,grid=9x7,dim=32")
    results = analyze(emb.matrix, embedding=emb)
    assert results.grid_offset.invariance == pytest.approx(1.0, abs=1e-6)
    assert results.separability.total == pytest.approx(1.0, abs=1e-6)
    assert results.separability.rows > 0.2 and results.separability.columns > 0.2


def test_separability_equals_the_least_squares_fit_of_a_row_plus_a_column_term():
    height, width = 4, 5
    x = grid_table(height, width, dim=8, seed=3)
    v = unit(x.astype(np.float64))
    v -= v.mean(axis=0)
    # the design matrix of a two-way additive model: one indicator per row and per column
    design = np.zeros((height * width, height + width))
    for p in range(height * width):
        design[p, p // width] = design[p, height + p % width] = 1
    fitted = design @ np.linalg.lstsq(design, v, rcond=None)[0]
    share = 1 - np.sum((v - fitted) ** 2) / np.sum(v ** 2)
    assert separability(x, (height, width)).total == pytest.approx(share, abs=1e-9)


def test_grid_components_are_the_pca_scores_laid_out_on_the_grid():
    emb = explorer.PositionEmbedding(grid_table(6, 5, dim=12), provider="t", source="s", grid=(6, 5))
    results = analyze(emb.matrix, embedding=emb)
    for k in range(3):
        np.testing.assert_allclose(results.grid_pca.images[k], results.pca.scores[:, k].reshape(6, 5), atol=1e-5)
    np.testing.assert_allclose(results.grid_pca.explained[:3], results.pca.explained[:3], atol=1e-6)


def test_patch_tiles_are_the_exact_cosines_and_the_picker_codes_are_close():
    x = grid_table(5, 4, dim=16)
    result = patch_similarity(x, (5, 4))
    cos = unit(x.astype(np.float64)) @ unit(x.astype(np.float64)).T
    assert list(result.tile_rows) == [0, 1, 2, 3, 4] and list(result.tile_cols) == [0, 1, 2, 3]
    np.testing.assert_allclose(result.tiles[2, 3], cos[2 * 4 + 3].reshape(5, 4), atol=1e-6)
    for patch in (0, 7, 19):
        assert np.abs(quantised_cosines(result.codes, patch) - cos[patch]).max() < 0.03


def test_a_large_grid_tiles_a_readable_subsample_of_at_most_16_by_16_patches():
    result = patch_similarity(grid_table(37, 37, dim=8), (37, 37))
    assert result.tiles.shape == (MAX_TILES, MAX_TILES, 37, 37)
    assert result.tile_rows[0] == 0 and result.tile_rows[-1] == 36 and result.codes.shape == (37 * 37, 8)


def test_grid_analyses_do_not_apply_to_a_one_dimensional_table():
    emb = explorer.load("sinusoidal,positions=196,dim=16")
    results = analyze(emb.matrix, embedding=emb)
    for name in ("grid_offset", "separability", "grid_pca", "patch_similarity"):
        assert results[name] is None
    assert not any(key.startswith(("grid_", "separability")) for key in results.scalars())


def test_analyze_json_and_npz_carry_the_grid_results(run, tmp_path):
    spec = "sinusoidal2d,grid=6x5,dim=16"
    data = json.loads(run("analyze", spec, "--json").stdout)["tables"][0]["scalars"]
    assert data["separability"] == pytest.approx(1.0, abs=1e-6)
    assert data["grid_translation_invariance"] == pytest.approx(1.0, abs=1e-6)
    assert {"separability_rows", "separability_columns"} <= set(data)
    target = tmp_path / "grid.npz"
    assert run("analyze", spec, "--npz", str(target)).exit_code == 0
    saved = np.load(target)
    assert saved["0.grid_offset.mean"].shape == (11, 9) and saved["0.grid_pca.images"].shape[1:] == (6, 5)
    assert saved["0.patch_similarity.tiles"].shape == (6, 5, 6, 5) and saved["0.grid_offset.mean"].dtype == np.float32
