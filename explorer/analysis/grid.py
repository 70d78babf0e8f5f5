"""Analyses of a table laid out on an H x W grid of image patches (``PositionEmbedding.grid``); for a 1-D table
(or a bare array) every one of them returns ``None`` at once and costs nothing.

With unit rows u(r, c) = p(r, c) / |p(r, c)| of patch (r, c) (position r * W + c):

- 2-D offset profile m(dy, dx) = mean over patches (r, c) with (r + dy, c + dx) on the grid of
  u(r, c) . u(r + dy, c + dx), for dy = -(H-1) .. H-1 and dx = -(W-1) .. W-1, over its n = (H - |dy|)(W - |dx|)
  pairs. The sums are the 2-D autocorrelations of the D channels of U, by FFT of length >= 2H - 1 by >= 2W - 1
  (no wrap-around): O(N D log N) time, O(N D) memory.
- 2-D translation invariance TI2 = 1 - ||C - T2(m)||_F / ||C||_F with T2(m)[(r,c),(r',c')] = m(r'-r, c'-c):
  as in 1-D, ||C - T2(m)||_F^2 = ||C||_F^2 - sum over (dy, dx) of n m^2, and ||C||_F^2 = ||U^T U||_F^2.
- Separability: centre the unit rows over all patches (V = U - mean), then a_r = mean over c of V(r, c) (the
  row term) and b_c = mean over r of V(r, c) (the column term). The additive fit a_r + b_c is orthogonal to its
  residual, so the shares S_row = W sum_r |a_r|^2 / ||V||_F^2 and S_col = H sum_c |b_c|^2 / ||V||_F^2 add up to
  the share of the centred cosine structure (trace of V V^T, the centred cosine matrix) that a row term plus a
  column term explain: 1 for MAE's 2-D sin-cos table, about (H + W - 2) / (H W - 1) for noise.
- Principal components as images: each patch's score on the top components of the centred table, H x W each.
- Patch similarity (Dosovitskiy et al. 2021, Fig. 7, centre): for a patch, the H x W image of its cosine with
  every patch; tiled for up to 16 x 16 evenly spaced patches, and, for a picker of any patch, the unit rows
  quantised to 8 bits per value (each row scaled to its largest |value|), from which the browser computes
  any patch's image: nothing N x N is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.offset import unit_directions, fft_length
from explorer.analysis.resample import block_mean
from explorer.plugins.units import Analysis

#: At most this many patches per side are tiled in the overview (more would be unreadable).
MAX_TILES = 16
#: Principal components shown as images.
GRID_COMPONENTS = 4
#: The largest code of the picker's quantised unit rows (int8's range, stored as uint8 + 128).
QUANT = 127
_FFT_COLUMNS = 16


def grid_of(ctx: TableContext) -> tuple[int, int] | None:
    """The table's ``(H, W)``, or None for a 1-D table or a bare array."""
    return getattr(ctx.embedding, "grid", None)


@dataclass(frozen=True)
class GridOffset:
    """m(dy, dx) as an image: row i is dy = i - ``dy0``, column j is dx = j - ``dx0``; ``pairs`` = n(dy, dx).

    Only lags within the display resolution of 0 are kept (all of them for any grid up to R/2 per side).
    """

    mean: np.ndarray  # float32, (2 dy0 + 1) x (2 dx0 + 1)
    pairs: np.ndarray  # int32, same shape
    dy0: int
    dx0: int
    invariance: float


def autocorrelation_2d(cube: np.ndarray) -> np.ndarray:
    """sum over channels of sum_{r,c} y[r, c] y[r + dy, c + dx] for every (dy, dx), as an array indexed
    [dy mod Lh, dx mod Lw] (float64); ``cube`` is H x W x channels, transformed a few channels at a time."""
    height, width, count = cube.shape
    shape = (fft_length(height), fft_length(width))
    power = np.zeros((shape[0], shape[1] // 2 + 1))
    for start in range(0, count, _FFT_COLUMNS):
        chunk = np.asarray(cube[:, :, start:start + _FFT_COLUMNS], dtype=np.float64)
        spectrum = np.fft.rfftn(chunk, s=shape, axes=(0, 1))
        power += (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=2)
    return np.fft.irfftn(power, s=shape, axes=(0, 1))


def _centred_lags(full: np.ndarray, keep_y: int, keep_x: int) -> np.ndarray:
    """Lags -keep .. keep on each axis of a circular autocorrelation, lag 0 in the middle."""
    rows = np.arange(-keep_y, keep_y + 1) % full.shape[0]
    cols = np.arange(-keep_x, keep_x + 1) % full.shape[1]
    return full[np.ix_(rows, cols)]


def grid_offset(x: np.ndarray, grid: tuple[int, int], resolution: int = 1024) -> GridOffset:
    """The 2-D offset profile m(dy, dx) and the 2-D translation invariance (see the module docstring)."""
    height, width = grid
    unit, valid = unit_directions(x)
    sums = autocorrelation_2d(unit.reshape(height, width, -1))
    if valid.all():
        counts = np.outer(height - np.abs(np.arange(-(height - 1), height)), width - np.abs(np.arange(-(width - 1), width)))
        full_pairs = np.zeros(sums.shape)
        full_pairs[np.ix_(np.arange(-(height - 1), height) % sums.shape[0],
                          np.arange(-(width - 1), width) % sums.shape[1])] = counts
    else:  # zero rows have no direction: count only the defined pairs
        full_pairs = np.rint(autocorrelation_2d(valid.reshape(height, width, 1).astype(np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.clip(np.where(full_pairs > 0, sums / np.maximum(full_pairs, 1), np.nan), -1.0, 1.0)
    gram = unit.T @ unit if unit.shape[0] >= unit.shape[1] else unit @ unit.T
    total = float(np.sum(gram ** 2))
    explained = float(np.nansum(full_pairs * np.nan_to_num(mean) ** 2))
    invariance = 1.0 - float(np.sqrt(max(total - explained, 0.0) / total)) if total > 0 else float("nan")
    keep_y, keep_x = min(height - 1, resolution // 2), min(width - 1, resolution // 2)
    return GridOffset(_centred_lags(mean, keep_y, keep_x).astype(np.float32),
                      _centred_lags(full_pairs, keep_y, keep_x).astype(np.int32),
                      keep_y, keep_x, invariance)


@dataclass(frozen=True)
class Separability:
    """The shares of the centred unit rows' sum of squares explained by a row term and by a column term."""

    rows: float
    columns: float

    @property
    def total(self) -> float:
        """S = S_row + S_col: the share a row term plus a column term explain."""
        return self.rows + self.columns


def separability(x: np.ndarray, grid: tuple[int, int]) -> Separability:
    """Row and column shares of the centred cosine structure (see the module docstring); O(N D)."""
    height, width = grid
    unit, _ = unit_directions(x)
    centred = (unit - unit.mean(axis=0)).reshape(height, width, -1)
    total = float(np.sum(centred ** 2))
    if total == 0.0:
        return Separability(float("nan"), float("nan"))
    row_term, column_term = centred.mean(axis=1), centred.mean(axis=0)
    return Separability(width * float(np.sum(row_term ** 2)) / total, height * float(np.sum(column_term ** 2)) / total)


@dataclass(frozen=True)
class GridComponents:
    """Each patch's score on the top principal components, as images: ``images[k]`` is component k's H x W
    image (block means when a side exceeds the display resolution); ``explained[k]`` its variance share."""

    images: np.ndarray  # float32, k x H' x W'
    explained: np.ndarray  # float32, k


def grid_components(ctx: TableContext, grid: tuple[int, int], count: int = GRID_COMPONENTS) -> GridComponents:
    """The top ``count`` principal components of the centred table as H x W images (from ``ctx.eigen``)."""
    eigen, table = ctx.eigen, ctx.matrix
    top = min(count, len(eigen.values))
    if eigen.features:
        scores = (table - eigen.mean) @ eigen.vectors[:, :top]
    else:  # left singular vectors times singular values are the scores
        scores = eigen.vectors[:, :top] * np.sqrt(eigen.values[:top])
    scores[:, eigen.values[:top] == 0] = 0.0
    if len(scores):  # the pca analysis's convention: each component's largest |score| is positive
        signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(top)])
        scores = scores * np.where(signs == 0, 1.0, signs)
    total = float(np.sum(eigen.values))
    explained = eigen.values[:top] / total if total > 0 else np.full(top, np.nan)
    height, width = grid
    images = [block_mean(scores[:, k].reshape(height, width), ctx.resolution, ctx.resolution)[0] for k in range(top)]
    return GridComponents(np.asarray(images, dtype=np.float32), explained.astype(np.float32))


@dataclass(frozen=True)
class PatchSimilarity:
    """ViT's Fig. 7 view: ``tiles[i, j]`` is the H x W image of cos(patch (tile_rows[i], tile_cols[j]), every
    patch); ``codes`` (N x D, uint8 = int8 + 128) are the unit rows quantised for the browser's picker, which
    computes cos from them as ``quantised_cosines`` does."""

    tiles: np.ndarray  # float32, len(tile_rows) x len(tile_cols) x H x W
    tile_rows: np.ndarray  # int32
    tile_cols: np.ndarray  # int32
    codes: np.ndarray  # uint8, N x D


def _evenly(n: int, count: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int32))


def patch_similarity(x: np.ndarray, grid: tuple[int, int], resolution: int = 1024) -> PatchSimilarity | None:
    """The tiled patch-similarity images and the picker's codes; None when a side exceeds the resolution."""
    height, width = grid
    if height > resolution or width > resolution:
        return None
    unit, _ = unit_directions(x)
    unit = np.nan_to_num(unit)
    rows, cols = _evenly(height, min(MAX_TILES, max(1, resolution // height))), \
        _evenly(width, min(MAX_TILES, max(1, resolution // width)))
    picked = (rows[:, None] * width + cols[None, :]).ravel()
    cosines = unit[picked] @ unit.T  # at most 256 x N: never N x N
    tiles = cosines.reshape(len(rows), len(cols), height, width).astype(np.float32)
    peak = np.abs(unit).max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(peak > 0, unit / np.where(peak > 0, peak, 1.0), 0.0)
    codes = (np.rint(scaled * QUANT) + 128).astype(np.uint8)
    return PatchSimilarity(tiles, rows, cols, codes)


def quantised_cosines(codes: np.ndarray, patch: int) -> np.ndarray:
    """cos(patch, every patch) from the picker's codes, with the browser's arithmetic (what the picker shows)."""
    q = codes.astype(np.float64) - 128
    norms = np.sqrt(np.einsum("ij,ij->i", q, q))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (q @ q[patch]) / (norms * norms[patch])


def _when_grid(compute):
    def run(ctx: TableContext):
        grid = grid_of(ctx)
        return None if grid is None else compute(ctx, grid)
    return run


ANALYSES = (
    Analysis("grid_offset", "the 2-D offset profile m(dy, dx) of a patch grid and its translation invariance",
             order=130, run=_when_grid(lambda ctx, g: grid_offset(ctx.matrix, g, ctx.resolution)),
             scalars=lambda r: {"grid_translation_invariance": r.invariance}),
    Analysis("separability", "the share of a patch grid's centred cosine structure a row plus a column term explain",
             order=131, run=_when_grid(lambda ctx, g: separability(ctx.matrix, g)),
             scalars=lambda r: {"separability": r.total, "separability_rows": r.rows,
                                "separability_columns": r.columns},
             arrays=lambda r: {}),
    Analysis("grid_pca", "the top principal components of a patch grid as H x W images",
             order=132, run=_when_grid(grid_components)),
    Analysis("patch_similarity", "each patch's cosine with every patch, as H x W images (ViT's Fig. 7)",
             order=133, run=_when_grid(lambda ctx, g: patch_similarity(ctx.matrix, g, ctx.resolution)),
             arrays=lambda r: {"tiles": r.tiles, "tile_rows": r.tile_rows, "tile_cols": r.tile_cols}),
)
