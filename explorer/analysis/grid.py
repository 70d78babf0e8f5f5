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

On a video grid (T x H x W, frame t, row r, column c is position (t H + r) W + c) the same hold with a third axis
first: m(dt, dy, dx) over (T - |dt|)(H - |dy|)(W - |dx|) pairs by a 3-D FFT, TI3 against T3(m), a frame term
c_t = mean over (r, c) of V(t, r, c) whose share is H W sum_t |c_t|^2 / ||V||_F^2 (the three main effects of a
balanced layout are orthogonal, so the shares still add), components as T x H x W images, and the tiles of the
middle frame against its own patches (the picker reaches every frame). ``explorer.analysis.frames`` adds the
views along time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.offset import unit_directions, fft_length
from explorer.analysis.resample import block_mean
from explorer.plugins.units import Analysis

#: At most this many patches per side are tiled in the overview (more would be unreadable).
MAX_TILES = 16
#: A video grid's views draw at most this many frames in a strip (video models have 8 to 32): the picker's strip is
#: not drawn beyond it, the components' and offsets' strips show the first ones.
MAX_FRAMES = 64
#: Principal components shown as images.
GRID_COMPONENTS = 4
#: The largest code of the picker's quantised unit rows (int8's range, stored as uint8 + 128).
QUANT = 127
_FFT_COLUMNS = 16


def grid_of(ctx: TableContext) -> tuple[int, ...] | None:
    """The table's ``(H, W)`` or ``(T, H, W)``, or None for a 1-D table or a bare array."""
    return getattr(ctx.embedding, "grid", None)


@dataclass(frozen=True)
class GridOffset:
    """m(dy, dx) as an image: row i is dy = i - ``dy0``, column j is dx = j - ``dx0``; ``pairs`` = n(dy, dx).
    On a video grid m(dt, dy, dx), with dt = k - ``dt0`` along a first axis.

    Only lags within the display resolution of 0 are kept (all of them for any grid up to R/2 per side).
    """

    mean: np.ndarray  # float32, (2 dy0 + 1) x (2 dx0 + 1), or (2 dt0 + 1) x (2 dy0 + 1) x (2 dx0 + 1)
    pairs: np.ndarray  # int32, same shape
    dy0: int
    dx0: int
    invariance: float
    dt0: int | None = None
    """The frame lags kept on each side of 0 (a video grid); None on an image's grid."""


def autocorrelation_grid(cube: np.ndarray) -> np.ndarray:
    """sum over channels of sum_{r,c} y[r, c] y[r + dy, c + dx] for every (dy, dx) (and dt first on a video grid),
    as an array indexed [dy mod Lh, dx mod Lw] (float64); ``cube`` is H x W (or T x H x W) x channels, transformed
    a few channels at a time."""
    sides = cube.shape[:-1]
    shape = tuple(fft_length(side) for side in sides)
    axes = tuple(range(len(sides)))
    power = np.zeros((*shape[:-1], shape[-1] // 2 + 1))
    for start in range(0, cube.shape[-1], _FFT_COLUMNS):
        chunk = np.asarray(cube[..., start:start + _FFT_COLUMNS], dtype=np.float64)
        spectrum = np.fft.rfftn(chunk, s=shape, axes=axes)
        power += (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=-1)
    return np.fft.irfftn(power, s=shape, axes=axes)


def _centred_lags(full: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
    """Lags -keep .. keep on each axis of a circular autocorrelation, lag 0 in the middle."""
    return full[np.ix_(*(np.arange(-k, k + 1) % n for k, n in zip(keep, full.shape)))]


def grid_offset(x: np.ndarray, grid: tuple[int, ...], resolution: int = 1024) -> GridOffset:
    """The 2-D (or 3-D) offset profile m(dy, dx) and the translation invariance (see the module docstring)."""
    unit, valid = unit_directions(x)
    sums = autocorrelation_grid(unit.reshape(*grid, -1))
    if valid.all():  # n(lag) = product over the axes of (side - |lag|)
        lags = [np.arange(-(side - 1), side) for side in grid]
        counts = functools.reduce(np.multiply.outer, [side - np.abs(lag) for side, lag in zip(grid, lags)])
        full_pairs = np.zeros(sums.shape)
        full_pairs[np.ix_(*(lag % n for lag, n in zip(lags, sums.shape)))] = counts
    else:  # zero rows have no direction: count only the defined pairs
        full_pairs = np.rint(autocorrelation_grid(valid.reshape(*grid, 1).astype(np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.clip(np.where(full_pairs > 0, sums / np.maximum(full_pairs, 1), np.nan), -1.0, 1.0)
    gram = unit.T @ unit if unit.shape[0] >= unit.shape[1] else unit @ unit.T
    total = float(np.sum(gram ** 2))
    explained = float(np.nansum(full_pairs * np.nan_to_num(mean) ** 2))
    invariance = 1.0 - float(np.sqrt(max(total - explained, 0.0) / total)) if total > 0 else float("nan")
    keep = tuple(min(side - 1, resolution // 2) for side in grid)
    return GridOffset(_centred_lags(mean, keep).astype(np.float32), _centred_lags(full_pairs, keep).astype(np.int32),
                      keep[-2], keep[-1], invariance, keep[0] if len(grid) == 3 else None)


@dataclass(frozen=True)
class Separability:
    """The shares of the centred unit rows' sum of squares explained by a row term and by a column term (and, on a
    video grid, a frame term)."""

    rows: float
    columns: float
    frames: float | None = None
    """The frame term's share on a video grid; None on an image's grid."""

    @property
    def total(self) -> float:
        """S = S_row + S_col (+ S_frame): the share the additive terms explain together."""
        return self.rows + self.columns + (self.frames or 0.0)


def separability(x: np.ndarray, grid: tuple[int, ...]) -> Separability:
    """Row and column (and frame) shares of the centred cosine structure (see the module docstring); O(N D)."""
    unit, _ = unit_directions(x)
    centred = (unit - unit.mean(axis=0)).reshape(*grid, -1)
    total = float(np.sum(centred ** 2))
    if total == 0.0:
        return Separability(float("nan"), float("nan"), float("nan") if len(grid) == 3 else None)
    axes = range(len(grid))
    # the term along an axis is the mean over the others; it is repeated N / side times in the additive fit
    shares = [math.prod(grid) // grid[a] * float(np.sum(centred.mean(axis=tuple(o for o in axes if o != a)) ** 2))
              / total for a in axes]
    return Separability(shares[-2], shares[-1], shares[0] if len(grid) == 3 else None)


@dataclass(frozen=True)
class GridComponents:
    """Each patch's score on the top principal components, as images: ``images[k]`` is component k's H x W
    image (T x H x W on a video grid; block means when a side exceeds the display resolution); ``explained[k]``
    its variance share."""

    images: np.ndarray  # float32, k x H' x W' (k x T x H' x W')
    explained: np.ndarray  # float32, k


def grid_components(ctx: TableContext, grid: tuple[int, ...], count: int = GRID_COMPONENTS) -> GridComponents:
    """The top ``count`` principal components of the centred table as grid images (from ``ctx.eigen``)."""
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
    frames = scores.T.reshape(top, -1, *grid[-2:])  # one image per frame (a single one on an image's grid)
    images = [[block_mean(image, ctx.resolution, ctx.resolution)[0] for image in component] for component in frames]
    images = np.asarray(images, dtype=np.float32).reshape(top, *grid[:-2], *np.shape(images)[-2:])
    return GridComponents(images, explained.astype(np.float32))


@dataclass(frozen=True)
class PatchSimilarity:
    """ViT's Fig. 7 view: ``tiles[i, j]`` is the H x W image of cos(patch (tile_rows[i], tile_cols[j]), every
    patch); ``codes`` (N x D, uint8 = int8 + 128) are the unit rows quantised for the browser's picker, which
    computes cos from them as ``quantised_cosines`` does. On a video grid the tiles are those of one frame,
    ``frame``, against the patches of that frame."""

    tiles: np.ndarray  # float32, len(tile_rows) x len(tile_cols) x H x W
    tile_rows: np.ndarray  # int32
    tile_cols: np.ndarray  # int32
    codes: np.ndarray  # uint8, N x D
    frame: int | None = None
    """The frame the tiles show on a video grid (the middle one); None on an image's grid."""


def _evenly(n: int, count: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int32))


def patch_similarity(x: np.ndarray, grid: tuple[int, ...], resolution: int = 1024) -> PatchSimilarity | None:
    """The tiled patch-similarity images and the picker's codes; None when a side exceeds the resolution."""
    height, width = grid[-2:]
    if max(grid) > resolution or (len(grid) == 3 and grid[0] > MAX_FRAMES):
        return None
    unit, _ = unit_directions(x)
    unit = np.nan_to_num(unit)
    frame = grid[0] // 2 if len(grid) == 3 else None
    patches = unit[(frame or 0) * height * width:][:height * width]  # the tiles' frame (the whole image's grid)
    rows, cols = _evenly(height, min(MAX_TILES, max(1, resolution // height))), \
        _evenly(width, min(MAX_TILES, max(1, resolution // width)))
    picked = (rows[:, None] * width + cols[None, :]).ravel()
    cosines = patches[picked] @ patches.T  # at most 256 x H W: never N x N
    tiles = cosines.reshape(len(rows), len(cols), height, width).astype(np.float32)
    peak = np.abs(unit).max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(peak > 0, unit / np.where(peak > 0, peak, 1.0), 0.0)
    codes = (np.rint(scaled * QUANT) + 128).astype(np.uint8)
    return PatchSimilarity(tiles, rows, cols, codes, frame)


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
    Analysis("grid_offset", "the offset profile m(dy, dx) of a patch grid (m(dt, dy, dx) on a video grid) and its translation invariance",
             order=130, run=_when_grid(lambda ctx, g: grid_offset(ctx.matrix, g, ctx.resolution)),
             scalars=lambda r: {"grid_translation_invariance": r.invariance}),
    Analysis("separability", "the share of a patch grid's centred cosine structure a row plus a column term (plus "
             "a frame term on a video grid) explain",
             order=131, run=_when_grid(lambda ctx, g: separability(ctx.matrix, g)),
             scalars=lambda r: {"separability": r.total, "separability_rows": r.rows,
                                "separability_columns": r.columns,
                                **({"separability_frames": r.frames} if r.frames is not None else {})},
             arrays=lambda r: {}),
    Analysis("grid_pca", "the top principal components of a patch grid as H x W images (T x H x W on a video grid)",
             order=132, run=_when_grid(grid_components)),
    Analysis("patch_similarity", "each patch's cosine with every patch, as H x W images (ViT's Fig. 7)",
             order=133, run=_when_grid(lambda ctx, g: patch_similarity(ctx.matrix, g, ctx.resolution)),
             arrays=lambda r: {"tiles": r.tiles, "tile_rows": r.tile_rows, "tile_cols": r.tile_cols}),
)
