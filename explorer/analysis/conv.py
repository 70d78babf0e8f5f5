"""Analyses of a convolutional position embedding: a grouped 1-D kernel w[c, i, k] over taps k
(``explorer.ConvKernel``), output channel c of group g reading input channel i of that group at frame offset
t_k = k - K // 2.

``conv_kernel``, per group g and output channel c of it:
- ``strength[g, c, k]``: sqrt(mean_i w[c, i, k]^2), the root mean square over the group's input channels at tap k
  (how strongly channel c reads the frame t_k away, whatever the input channel);
- ``response[g, c, f]``: sqrt(mean_i |W[c, i, f]|^2), W the DFT of the K taps (``numpy.fft.rfft``, no padding), at
  ``frequencies`` f / K cycles per frame, 0 to 1/2 (the gain of the filter from input channel i to channel c at
  that frequency, root mean square over i);
and per group: the Frobenius ``norm`` of its weights, the energy-weighted mean frame offset (``centroid``, < 0: it
reads mostly earlier frames) and its spread (standard deviation, in frames), the frequency of largest mean power
(``peak_frequency``) and the share of power below 1/8 cycles per frame (``low_share``: 1 for a smoothing filter).

It declares ``terms=("conv",)``: the analysis loop never runs it on any other term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.plugins.units import Analysis

#: Below this frequency (cycles per frame), power counts as low in ``low_share``.
LOW = 1 / 8


@dataclass(frozen=True)
class ConvResponse:
    """Per group and output channel, over taps and over frequencies; per group, five numbers (float32)."""

    offsets: np.ndarray
    strength: np.ndarray
    frequencies: np.ndarray
    response: np.ndarray
    norm: np.ndarray
    centroid: np.ndarray
    spread: np.ndarray
    peak_frequency: np.ndarray
    low_share: np.ndarray


def conv_kernel(per_group: np.ndarray) -> ConvResponse:
    """The numbers above from a groups x C/G (output) x C/G (input) x K kernel."""
    weights = np.asarray(per_group, dtype=np.float64)
    taps = weights.shape[3]
    offsets = np.arange(taps) - taps // 2
    energy = (weights * weights).mean(axis=2)  # groups x C/G x K
    power = (np.abs(np.fft.rfft(weights, axis=3)) ** 2).mean(axis=2)  # groups x C/G x F
    frequencies = np.arange(power.shape[2]) / taps
    tap_energy = energy.sum(axis=1)  # groups x K
    total = tap_energy.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = (tap_energy * offsets).sum(axis=1) / total
        spread = np.sqrt(np.maximum((tap_energy * (offsets[None, :] - centroid[:, None]) ** 2).sum(axis=1) / total, 0))
        mean_power = power.sum(axis=1)
        low_share = mean_power[:, frequencies < LOW].sum(axis=1) / mean_power.sum(axis=1)
    peak = np.where(total > 0, frequencies[np.argmax(mean_power, axis=1)], np.nan)
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return ConvResponse(offsets.astype(np.int64), as32(np.sqrt(energy)), as32(frequencies), as32(np.sqrt(power)),
                        as32(np.sqrt(total * weights.shape[2])), as32(centroid), as32(spread), as32(peak),
                        as32(low_share))


def _scalars(result: ConvResponse) -> dict[str, float]:
    out: dict[str, float] = {"conv_groups": float(len(result.norm)), "conv_taps": float(len(result.offsets))}
    for name in ("norm", "centroid", "spread", "peak_frequency", "low_share"):
        array = getattr(result, name)
        finite = array[np.isfinite(array)]
        out[f"conv_{name}_mean"] = float(finite.mean()) if finite.size else float("nan")
        out.update({f"conv_{name}_group{g}": float(v) for g, v in enumerate(array)})
    return out


ANALYSES = (
    Analysis("conv_kernel", "per group of a convolution kernel over time: strength per output channel and tap, "
             "frequency response in cycles per frame; per group its norm, centre and spread in frames, peak "
             "frequency and low-frequency share", order=117, run=lambda ctx: conv_kernel(ctx.embedding.per_group),
             terms=("conv",), scalars=_scalars),
)
