"""The sinusoidal table of "Attention Is All You Need" (Vaswani et al., 2017, section 3.5).

PE(pos, 2i)   = sin(pos / base^(2i/d))
PE(pos, 2i+1) = cos(pos / base^(2i/d))

``interleaved`` puts these at even and odd dimensions as the formula reads; ``split``
puts all sines first and all cosines after (tensor2tensor, fairseq and several
Hugging Face model files). With an odd ``dim`` the last dimension is the sine of
one more frequency, i = (d - 1) / 2, and has no cosine partner.
"""

from __future__ import annotations

import numpy as np

from explorer.core.embedding import PositionEmbedding
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider
from explorer.runtime.limits import check_shape

LAYOUTS = ("interleaved", "split")


def sinusoidal_table(positions: int, dim: int, base: float = 10000.0, layout: str = "interleaved") -> np.ndarray:
    """The ``positions x dim`` float32 sinusoidal table, computed in float64 then rounded once."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    check_shape((positions, dim), "sinusoidal")  # the float64 angles take as many bytes as the float32 table
    n_sin = (dim + 1) // 2  # number of sine columns; cosines are dim // 2
    pair = np.arange(n_sin, dtype=np.float64)
    inv_freq = base ** (-2.0 * pair / dim)  # 1 / base^(2i/d)
    angles = np.arange(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    table = np.empty((positions, dim), dtype=np.float32)
    n_cos = dim // 2
    if layout == "interleaved":
        table[:, 0::2] = np.sin(angles)
        table[:, 1::2] = np.cos(angles[:, :n_cos])
    else:
        table[:, :n_sin] = np.sin(angles)
        table[:, n_sin:] = np.cos(angles[:, :n_cos])
    return table


def load(positions: int, dim: int, base: float, layout: str) -> PositionEmbedding:
    """The sinusoidal provider's ``load``."""
    return PositionEmbedding(
        sinusoidal_table(positions, dim, base, layout),
        provider="sinusoidal",
        source=f"formula, base {base:g}, {layout}",
        kind="formula",
        dtype="float32",
        params={"positions": positions, "dim": dim, "base": base, "layout": layout},
        description='Vaswani et al. 2017, "Attention Is All You Need", section 3.5',
    )


def expected_shape(positions: int, dim: int, **_: object) -> tuple[int, int]:
    """The table's shape, from the parameters alone (``Provider.expected_shape``)."""
    return positions, dim


PROVIDER = Provider(
    name="sinusoidal",
    description='Fixed sin/cos table of "Attention Is All You Need" (the built-in default)',
    load=load,
    params=(
        Param("positions", int, 1024, "number of positions (rows)", minimum=1),
        Param("dim", int, 768, "embedding width (columns); odd widths end with a lone sine", minimum=1),
        Param("base", float, 10000.0, "wavelength base: frequency i is base^(-2i/dim)", minimum=1e-12),
        Param("layout", str, "interleaved", "interleaved: sin at even, cos at odd dims; split: all sines then all cosines",
              choices=LAYOUTS),
    ),
    expected_shape=expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the sinusoidal provider."""
    register(PROVIDER)
