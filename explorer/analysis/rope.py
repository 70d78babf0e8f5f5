"""RoPE's relative view of a rotary table (kind ``rotary``): the kernel and each frequency's wavelength.

Row p of a rotary table is s * [cos(p theta_i) ..., sin(p theta_i) ...]; the query-key product of positions p and
p + k then depends on k through cos(theta_i k) alone. The kernel K(k) = (1/F) sum_i cos(theta_i k) over the F
frequency pairs is RoFormer's long-term decay; it is read off the table as K(k) = <row k, row 0> / <row 0, row 0>
(row 0 is s on the cosines and 0 on the sines). The wavelength of pair i is 2 pi / theta_i, theta_i read from row 1
as atan2(sin, cos). Any other table gives no result, nor does a rotary table on a grid (an image's tokens under
M-RoPE), whose rows are not the positions of a line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.plugins.units import Analysis


@dataclass(frozen=True)
class RopeKernel:
    """K(k) at no more than 2R offsets (``lag`` int32, ``kernel`` float32), the wavelength 2 pi / theta_i of every
    frequency pair (float32, Inf for theta 0) and the context (the table's positions)."""

    lag: np.ndarray
    kernel: np.ndarray
    wavelength: np.ndarray
    context: int


def rope_kernel(x: np.ndarray, resolution: int = 1024) -> RopeKernel | None:
    """The kernel and wavelengths of a rotary table [cos | sin] (None when it has fewer than 2 rows or an odd width)."""
    n, d = x.shape
    if n < 2 or d % 2:
        return None
    table = np.asarray(x, dtype=np.float64)
    first = table[0]
    norm = float(first @ first)
    if norm <= 0:
        return None
    kernel = table @ first / norm
    half = d // 2
    theta = np.arctan2(table[1, half:], table[1, :half])
    with np.errstate(divide="ignore"):
        wavelength = np.where(theta > 0, 2 * np.pi / np.where(theta > 0, theta, 1.0), np.inf)
    lag = np.arange(n)
    if n > 2 * resolution:
        lag = np.unique(np.linspace(0, n - 1, 2 * resolution).round().astype(np.int64))
    return RopeKernel(lag.astype(np.int32), kernel[lag].astype(np.float32), wavelength.astype(np.float32), n)


def _run(ctx: TableContext) -> RopeKernel | None:
    if ctx.embedding is None or getattr(ctx.embedding, "kind", None) != "rotary":
        return None  # only a rotary table's rows are cos/sin of p * theta
    if getattr(ctx.embedding, "grid", None) is not None:
        return None  # an image's tokens (M-RoPE): its rows are patches, not the positions 0, 1, 2, ... of a line
    return rope_kernel(ctx.matrix, ctx.resolution)


def _scalars(result: RopeKernel) -> dict[str, float]:
    return {"rope_pairs": float(len(result.wavelength)),
            "rope_pairs_longer_than_context": float((result.wavelength > result.context).sum()),
            "rope_kernel_min": float(result.kernel.min())}


ANALYSES = (
    Analysis("rope_kernel", "a rotary table's kernel mean_i cos(theta_i k) and its frequencies' wavelengths",
             order=120, run=_run, scalars=_scalars),
)
