"""``ConvKernel``: the fourth kind of position term, a grouped convolution over time (speech models' positions).

Wav2Vec2, HuBERT and WavLM add to each frame's features a grouped 1-D convolution of its neighbourhood
(``pos_conv_embed``): C channels split into G groups, each output channel of a group reading the C/G input channels
of that group over K taps. Output frame t reads input frame t + (k - K // 2) at tap k (padding K // 2; an even
kernel's last output frame is dropped), so a tap is an offset in frames. The kernel is the weight the conv uses
(after weight normalisation); the values are kept per group, so a group plays the part a head plays elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explorer.core import validate
from explorer.core.relative import MAX_HEADS, HeadValues
from explorer.errors import EmbeddingError

#: The longest kernel taken: real models use 128 taps (wav2vec 2.0, HuBERT, WavLM) and fewer.
MAX_TAPS = 4096


def check_layout(groups: Any, channels: Any, taps: Any, where: str) -> tuple[int, int, int]:
    """``(groups, channels, taps)`` as whole numbers with ``channels`` divisible by ``groups`` and at most
    ``MAX_TAPS`` taps, or one ``EmbeddingError`` saying why (call it before building a kernel)."""
    values = (groups, channels, taps)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values):
        raise EmbeddingError(f"{where}: groups, channels and taps must be whole numbers >= 1, got {values!r}")
    groups, channels, taps = (int(v) for v in values)
    if channels % groups:
        raise EmbeddingError(f"{where}: {channels} channels do not split into {groups} groups")
    if taps > MAX_TAPS:
        raise EmbeddingError(f"{where}: a kernel of {taps} taps; posembed takes at most {MAX_TAPS}")
    if groups > MAX_HEADS:  # each group is a block of the page, as a head is
        raise EmbeddingError(f"{where}: a convolution of {groups} groups; posembed takes at most {MAX_HEADS}")
    return groups, channels, taps


@dataclass(frozen=True, eq=False)
class ConvKernel(HeadValues):
    """A grouped 1-D convolution's kernel over time, per group, plus provenance.

    ``values`` is groups x (C/G * C/G * K), read-only C-contiguous float32: row g is group g's output channels
    (C/G), each its input channels (C/G), each its K taps, flattened in that order; ``kernel`` gives them back as
    the conv's own C x C/G x K weight.
    """

    values: np.ndarray
    provider: str
    source: str
    taps: int = 1
    kind: str = "convolutional"
    dtype: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tensor: str | None = None
    revision: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        raw = np.asarray(self.values)
        if raw.ndim != 2 or not isinstance(self.taps, (int, np.integer)) or isinstance(self.taps, bool) or \
                self.taps < 1 or raw.shape[1] % self.taps:
            raise EmbeddingError(f"{self.provider}: a convolution kernel's values are groups x (channels x channels x "
                                 f"taps), got shape {list(raw.shape)} for {self.taps!r} taps")
        per_group = raw.shape[1] // self.taps
        side = int(round(per_group ** 0.5))
        if side * side != per_group:
            raise EmbeddingError(f"{self.provider}: a group's {per_group} kernel rows are not its output x input "
                                 f"channels (a square number)")
        check_layout(raw.shape[0], raw.shape[0] * side, int(self.taps), self.provider)
        taps = int(self.taps)
        values = validate.table(raw, self.provider, at=lambda group, column, columns: (
            "group {}, output channel {}, input channel {}, tap {}".format(
                group, column // (side * taps), column // taps % side, column % taps)))
        self._settle(values)
        object.__setattr__(self, "taps", taps)

    @property
    def term(self) -> str:
        """``"conv"``: analyses and sections declaring this term take it."""
        return "conv"

    @property
    def groups(self) -> int:
        """G, the number of groups (rows of ``values``)."""
        return self.heads

    @property
    def group_channels(self) -> int:
        """C/G: the output (and input) channels of one group."""
        return int(round((self.dim // self.taps) ** 0.5))

    @property
    def channels(self) -> int:
        """C, the channels the convolution maps to themselves."""
        return self.groups * self.group_channels

    @property
    def positions(self) -> int:
        """K, the frames one output frame reads."""
        return self.taps

    @property
    def offsets(self) -> np.ndarray:
        """The frame offset (input frame - output frame) each tap reads: k - K // 2, int64."""
        return np.arange(self.taps, dtype=np.int64) - self.taps // 2

    @property
    def per_group(self) -> np.ndarray:
        """groups x C/G (output) x C/G (input) x K, a read-only view of ``values``."""
        side = self.group_channels
        return self.values.reshape(self.groups, side, side, self.taps)

    @property
    def kernel(self) -> np.ndarray:
        """The conv's own weight, C x C/G x K (output channel c belongs to group c // (C/G))."""
        return self.values.reshape(self.channels, self.group_channels, self.taps)

    def layout(self) -> dict[str, Any]:
        """Groups, channels, taps and the frame offsets they read, for ``provenance``."""
        return {"groups": self.groups, "channels": self.channels, "taps": self.taps,
                "offsets": [int(self.offsets[0]), int(self.offsets[-1])]}

    def __repr__(self) -> str:
        return (f"ConvKernel({self.label!r}, groups={self.groups}, channels={self.channels}, taps={self.taps})")


def grouped(kernel: Any, groups: int, where: str) -> np.ndarray:
    """``ConvKernel`` values (groups x (C/G * C/G * K)) from a conv weight of C x C/G x K and its ``groups``."""
    weight = np.asarray(kernel)
    if weight.ndim != 3:
        raise EmbeddingError(f"{where}: a 1-D convolution's weight is channels x channels per group x taps, got "
                             f"shape {list(weight.shape)}")
    channels, side, taps = weight.shape
    check_layout(groups, channels, taps, where)
    if channels // groups != side:
        raise EmbeddingError(f"{where}: a weight of shape {list(weight.shape)} is not {groups} groups of "
                             f"{channels // groups} input channels")
    return np.ascontiguousarray(weight.reshape(groups, side * side * taps))
