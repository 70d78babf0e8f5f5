"""The fixed 2-D sin-cos table of MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners") and
many vision transformers since, for an H x W grid of patches.

Patch (r, c) is position r * W + c. Its D-dimensional vector is two 1-D sinusoids of D/2 dimensions each, laid out
as MAE's ``get_2d_sincos_pos_embed`` does: the first half encodes the column c, the second half the row r, and
each half is [sin(x * w_0), ..., sin(x * w_{D/4-1}), cos(x * w_0), ..., cos(x * w_{D/4-1})] with
w_k = base^(-k / (D/4)). (MAE's code calls the first half ``emb_h`` but fills it from the meshgrid's first
output, the column index; this table follows the code, which is what MAE's checkpoints store.)
"""

from __future__ import annotations

import numpy as np

from explorer.core.embedding import PositionEmbedding, parse_grid
from explorer.errors import SpecError
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider
from explorer.runtime.limits import check_shape


def _half(coordinate: np.ndarray, dim: int, base: float) -> np.ndarray:
    """One coordinate's ``dim`` dimensions: sines then cosines of ``dim / 2`` frequencies (float64)."""
    omega = base ** (-np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = coordinate[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d_table(height: int, width: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """The ``(height * width) x dim`` float32 2-D sin-cos table, row-major patches, computed in float64 and
    rounded once."""
    if dim % 4:
        raise SpecError(f"sinusoidal2d: dim must be a multiple of 4 (a sine and a cosine per axis), got {dim}")
    check_shape((height * width, dim), "sinusoidal2d")
    rows, cols = np.divmod(np.arange(height * width, dtype=np.int64), width)
    table = np.concatenate([_half(cols.astype(np.float64), dim // 2, base),
                            _half(rows.astype(np.float64), dim // 2, base)], axis=1)
    return table.astype(np.float32)


def load(grid: str, dim: int, base: float) -> PositionEmbedding:
    """The ``sinusoidal2d`` provider's ``load``."""
    height, width = parse_grid(grid, "sinusoidal2d", video=False)
    return PositionEmbedding(
        sincos_2d_table(height, width, dim, base), provider="sinusoidal2d",
        source=f"formula, {height} x {width} grid, base {base:g}", kind="formula", dtype="float32",
        params={"grid": f"{height}x{width}", "dim": dim, "base": base}, grid=(height, width),
        description="He et al. 2022 (MAE), get_2d_sincos_pos_embed: first half the column, second half the row",
    )


def expected_shape(grid: str, dim: int, **_: object) -> tuple[int, int]:
    """The table's shape, from the parameters alone (``Provider.expected_shape``)."""
    height, width = parse_grid(grid, "sinusoidal2d")
    return height * width, dim


PROVIDER = Provider(
    name="sinusoidal2d",
    description="Fixed 2-D sin-cos table of MAE and many ViTs for an HxW patch grid",
    load=load,
    params=(
        Param("grid", str, "14x14", "HxW patches (row r, column c is position r*W + c)"),
        Param("dim", int, 768, "embedding width, a multiple of 4: half for the column, half for the row", minimum=4),
        Param("base", float, 10000.0, "wavelength base: frequency k of each half is base^(-k/(dim/4))",
              minimum=1e-12),
    ),
    expected_shape=expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the 2-D sinusoidal provider."""
    register(PROVIDER)
