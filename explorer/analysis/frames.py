"""Along time on a video grid (``PositionEmbedding.grid`` = (T, H, W)): how alike the same patch is in two frames.
For an image's grid, a 1-D table or a bare array it returns ``None`` at once and costs nothing.

With unit rows u(t, r, c) = p(t, r, c) / |p(t, r, c)|, the frame similarity is the T x T matrix
F[t, t'] = mean over the H W patches (r, c) of u(t, r, c) . u(t', r, c): the cosine of a patch with itself in
another frame, averaged over the patches (1 on the diagonal unless a row is zero). Its mean next to the diagonal,
``frame_cosine_adjacent`` = mean over t of F[t, t + 1], says how much one frame step changes a position vector.
O(T N D) time, O(N D + T^2) memory; not computed for more frames than the display resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.offset import unit_directions
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class FrameSimilarity:
    """``cosine[t, t']``: the mean cosine of a patch in frame t with the same patch in frame t'."""

    cosine: np.ndarray  # float32, T x T
    adjacent: float  # mean of cosine[t, t + 1]; NaN for one frame


def frame_similarity(x: np.ndarray, grid: tuple[int, int, int]) -> FrameSimilarity:
    """F[t, t'] (see the module docstring), from the unit rows; zero rows count as cosine 0."""
    frames = grid[0]
    unit, _ = unit_directions(x)
    cube = np.nan_to_num(unit).reshape(frames, -1, unit.shape[1])
    # sum over patches and dimensions of u(t, p) u(t', p): T^2 dot products of two H W x D blocks
    cosine = np.einsum("tpd,spd->ts", cube, cube, optimize=True) / cube.shape[1]
    adjacent = float(np.mean(np.diagonal(cosine, 1))) if frames > 1 else float("nan")
    return FrameSimilarity(cosine.astype(np.float32), adjacent)


def _run(ctx: TableContext) -> FrameSimilarity | None:
    grid = getattr(ctx.embedding, "grid", None)
    if grid is None or len(grid) != 3 or grid[0] > ctx.resolution:  # T x T stays within the display resolution
        return None
    return frame_similarity(ctx.matrix, grid)


ANALYSES = (
    Analysis("frame_similarity", "on a video grid, the mean cosine of a patch with the same patch in every other "
             "frame (T x T)", order=134, run=_run, scalars=lambda r: {"frame_cosine_adjacent": r.adjacent}),
)
