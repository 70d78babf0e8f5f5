"""The analyses of a video grid (frames x rows x columns) against naive oracles that form the full cosine matrix."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import explorer
from explorer.analysis import analyze
from explorer.analysis.frames import frame_similarity
from explorer.analysis.grid import grid_offset, patch_similarity, separability


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def video_table(frames, height, width, dim=6, seed=0):
    return np.random.default_rng(seed).normal(size=(frames * height * width, dim)).astype(np.float32)


def naive_offset_3d(x, grid):
    cos = unit(x.astype(np.float64)) @ unit(x.astype(np.float64)).T
    coords = list(itertools.product(*(range(side) for side in grid)))
    index = {c: i for i, c in enumerate(coords)}
    sums, counts = {}, {}
    for a in coords:
        for b in coords:
            lag = tuple(q - p for p, q in zip(a, b))
            sums[lag] = sums.get(lag, 0.0) + cos[index[a], index[b]]
            counts[lag] = counts.get(lag, 0) + 1
    mean = {lag: sums[lag] / counts[lag] for lag in sums}
    fitted = np.array([[mean[tuple(q - p for p, q in zip(a, b))] for b in coords] for a in coords])
    return mean, counts, 1 - np.linalg.norm(cos - fitted) / np.linalg.norm(cos)


@pytest.mark.parametrize("grid", [(3, 2, 4), (2, 3, 3), (1, 2, 5)])
def test_3d_offset_profile_and_invariance_equal_the_naive_cosine_matrix(grid):
    x = video_table(*grid)
    result = grid_offset(x, grid)
    mean, counts, invariance = naive_offset_3d(x, grid)
    assert (result.dt0, result.dy0, result.dx0) == tuple(side - 1 for side in grid)
    assert result.mean.shape == tuple(2 * side - 1 for side in grid)
    for lag, value in mean.items():
        at = tuple(k + side - 1 for k, side in zip(lag, grid))
        assert result.mean[at] == pytest.approx(value, abs=1e-6)
        assert result.pairs[at] == counts[lag]
    assert result.invariance == pytest.approx(invariance, abs=1e-9)


def test_an_image_grid_keeps_no_frame_lag():
    assert grid_offset(video_table(1, 3, 4), (3, 4)).dt0 is None


def test_separability_on_a_video_grid_equals_the_fit_of_a_frame_plus_a_row_plus_a_column_term():
    grid = (3, 4, 5)
    x = video_table(*grid, dim=8, seed=3)
    v = unit(x.astype(np.float64))
    v -= v.mean(axis=0)
    coords = list(itertools.product(*(range(side) for side in grid)))
    shares = []
    for axis in range(3):  # one indicator per level of one axis: the main effect of that axis alone
        design = np.zeros((len(coords), grid[axis]))
        for p, c in enumerate(coords):
            design[p, c[axis]] = 1
        fitted = design @ np.linalg.lstsq(design, v, rcond=None)[0]
        shares.append(1 - np.sum((v - fitted) ** 2) / np.sum(v ** 2))
    result = separability(x, grid)
    assert (result.frames, result.rows, result.columns) == pytest.approx(tuple(shares), abs=1e-9)
    design = np.zeros((len(coords), sum(grid)))
    for p, (t, r, c) in enumerate(coords):
        design[p, t] = design[p, grid[0] + r] = design[p, grid[0] + grid[1] + c] = 1
    fitted = design @ np.linalg.lstsq(design, v, rcond=None)[0]
    assert result.total == pytest.approx(1 - np.sum((v - fitted) ** 2) / np.sum(v ** 2), abs=1e-9)


def test_frame_similarity_is_the_mean_cosine_of_each_patch_with_itself_in_other_frames():
    grid = (4, 2, 3)
    x = video_table(*grid, seed=5)
    cos = unit(x.astype(np.float64)) @ unit(x.astype(np.float64)).T
    patches = grid[1] * grid[2]
    naive = np.array([[np.mean([cos[t * patches + p, s * patches + p] for p in range(patches)])
                       for s in range(grid[0])] for t in range(grid[0])])
    result = frame_similarity(x, grid)
    np.testing.assert_allclose(result.cosine, naive, atol=1e-6)
    assert result.adjacent == pytest.approx(np.mean([naive[t, t + 1] for t in range(grid[0] - 1)]), abs=1e-6)


def test_a_frame_term_alone_is_all_frame_separability_and_frames_alike_in_space_are_frame_cosine_one():
    rng = np.random.default_rng(2)
    frames, height, width = 3, 4, 4
    time = rng.normal(size=(frames, 1, 1, 16))
    x = np.broadcast_to(time, (frames, height, width, 16)).reshape(-1, 16).astype(np.float32) + 0
    x[:, 0] += 1e-7  # nothing but the frame says which patch a row is
    result = analyze(x, embedding=explorer.PositionEmbedding(x, provider="t", source="t", grid=(frames, height, width)))
    assert result.separability.frames == pytest.approx(1.0, abs=1e-5)
    space = rng.normal(size=(1, height, width, 16))
    y = np.broadcast_to(space, (frames, height, width, 16)).reshape(-1, 16).astype(np.float32)
    same = frame_similarity(y, (frames, height, width))
    np.testing.assert_allclose(same.cosine, 1.0, atol=1e-6)


def test_the_tiles_of_a_video_grid_are_its_middle_frame_against_its_own_patches():
    grid = (3, 4, 5)
    x = video_table(*grid, seed=7)
    result = patch_similarity(x, grid)
    assert result.frame == 1 and result.codes.shape == (60, 6)
    u = unit(x.astype(np.float64))
    middle = u[20:40]
    r, c = int(result.tile_rows[2]), int(result.tile_cols[3])
    np.testing.assert_allclose(result.tiles[2, 3].ravel(), middle @ middle[r * 5 + c], atol=1e-6)


def test_video_grid_scalars_and_arrays_reach_analyze_json():
    x = video_table(2, 3, 3, dim=8)
    emb = explorer.PositionEmbedding(x, provider="t", source="t", grid=(2, 3, 3))
    results = analyze(x, embedding=emb)
    assert results.frame_similarity.cosine.shape == (2, 2)
    assert results.grid_pca.images.shape[1:] == (2, 3, 3)
    assert results.grid_offset.mean.shape == (3, 5, 5)
    for name in ("frame_cosine_adjacent", "separability_frames", "grid_translation_invariance"):
        assert np.isfinite(results.scalars()[name])
    flat = analyze(x[:9], embedding=explorer.PositionEmbedding(x[:9], provider="t", source="t", grid=(3, 3)))
    assert flat.frame_similarity is None and "separability_frames" not in flat.scalars()


def test_a_grid_of_very_many_frames_draws_a_bounded_page():
    from explorer.analysis.grid import MAX_FRAMES
    from explorer.api import document

    grid = (MAX_FRAMES + 6, 1, 2)
    emb = explorer.PositionEmbedding(video_table(*grid, dim=4, seed=1), provider="t", source="t", grid=grid)
    results = analyze(emb.matrix, embedding=emb)
    assert results.patch_similarity is None and results.frame_similarity.cosine.shape == (70, 70)
    doc = document([emb])
    texts = " ".join(m.text for m in doc.models if isinstance(getattr(m, "text", None), str))
    assert f"more than {MAX_FRAMES} frames" in texts and f"lags beyond {MAX_FRAMES - 1} are not drawn" in texts
    labels = [m for m in doc.models if getattr(m, "name", None) == "grid_pc1"]
    strip = labels[0].renderers[0].data_source.data["image"][0]
    assert strip.shape[1] < MAX_FRAMES * 3  # the first MAX_FRAMES frames only, 2 columns and a gap each
    few = analyze(emb.matrix[:24], embedding=explorer.PositionEmbedding(
        emb.matrix[:24], provider="t", source="t", grid=(12, 1, 2)), resolution=8)
    assert few.frame_similarity is None  # more frames than the display resolution: no T x T image
