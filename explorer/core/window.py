"""``WindowBias``: the third kind of position term, a bias per head over the 2-D offsets of a window of patches.

Swin, Swin v2, BEiT and Data2Vec-vision add to the attention score of the query patch at (y, x) and the key patch at
(y', x') of one window (Wh x Ww patches) a value per head that depends only on the key-minus-query offset
(dy, dx) = (y' - y, x' - x), |dy| < Wh, |dx| < Ww. BEiT (and Data2Vec-vision) add three more values per head for
the class token (``extras``): a class query to any patch key, a patch query to the class key, class to class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explorer.core import validate
from explorer.core.embedding import MAX_ROW_LABEL
from explorer.core.relative import HeadValues
from explorer.errors import EmbeddingError
from explorer.runtime.console import one_line, utf8_text

#: BEiT's class-token entries, in the order its table stores them after the offsets.
CLASS_TOKEN_ENTRIES = ("class query to patch keys", "patch queries to class key", "class query to class key")
#: The largest window side taken: real models use 7 to 48 patches (BEiT's whole 14 x 14 to 64 x 64 grid).
MAX_WINDOW = 512


@dataclass(frozen=True, eq=False)
class WindowBias(HeadValues):
    """Per head, a bias over the 2-D key-minus-query offsets of a ``window`` (Wh, Ww) of patches, plus provenance.

    ``values`` is heads x columns, read-only C-contiguous float32: the first (2Wh-1) * (2Ww-1) columns are the
    offsets row by row (dy = -(Wh-1) .. Wh-1, then dx = -(Ww-1) .. Ww-1 within each), the rest one per name in
    ``extras`` (BEiT's ``CLASS_TOKEN_ENTRIES``).
    """

    values: np.ndarray
    provider: str
    source: str
    window: tuple[int, int] = (1, 1)
    extras: tuple[str, ...] = ()
    kind: str = "window"
    dtype: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tensor: str | None = None
    revision: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        window = _window(self.window, self.provider)
        extras = tuple(one_line(utf8_text(str(name)).strip()) for name in self.extras)
        if any(not name or len(name) > MAX_ROW_LABEL for name in extras) or len(set(extras)) != len(extras):
            raise EmbeddingError(f"{self.provider}: extra entries need distinct names of 1 to {MAX_ROW_LABEL} "
                                 f"characters, got {list(self.extras)!r}")
        offsets = (2 * window[0] - 1) * (2 * window[1] - 1)
        values = validate.table(self.values, self.provider, at=lambda head, column, columns: (
            f"head {head}, " + (_offset_name(column, window) if column < offsets else extras[column - offsets])))
        if values.shape[1] != offsets + len(extras):
            raise EmbeddingError(f"{self.provider}: a {window[0]} x {window[1]} window has {offsets} offsets"
                                 f"{f' and {len(extras)} extra entries' if extras else ''}, but the values have "
                                 f"{values.shape[1]} columns")
        self._settle(values)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "extras", extras)

    @property
    def term(self) -> str:
        """``"window"``: analyses and sections declaring this term take it."""
        return "window"

    @property
    def positions(self) -> int:
        """Patches in a window, Wh * Ww (the queries and keys one window's attention sees)."""
        return self.window[0] * self.window[1]

    @property
    def span(self) -> tuple[int, int]:
        """``(2Wh - 1, 2Ww - 1)``: the offsets along dy and dx."""
        return 2 * self.window[0] - 1, 2 * self.window[1] - 1

    @property
    def images(self) -> np.ndarray:
        """heads x (2Wh-1) x (2Ww-1): image[h, dy + Wh - 1, dx + Ww - 1] is head h's bias at offset (dy, dx)."""
        rows, columns = self.span
        return self.values[:, :rows * columns].reshape(self.heads, rows, columns)

    @property
    def extra_values(self) -> np.ndarray:
        """heads x len(extras): the entries that are no offset (BEiT's class token)."""
        rows, columns = self.span
        return self.values[:, rows * columns:]

    def attention_bias(self, head: int) -> np.ndarray:
        """What head ``head`` adds to the query x key scores of one window: patches row by row (patch r * Ww + c),
        after the class token at index 0 when there are class-token extras."""
        height, width = self.window
        y, x = np.divmod(np.arange(height * width), width)
        image = self.images[head]
        patches = image[y[None, :] - y[:, None] + height - 1, x[None, :] - x[:, None] + width - 1]
        if tuple(self.extras) != CLASS_TOKEN_ENTRIES:
            return patches
        to_patch, to_class, to_itself = self.extra_values[head]
        out = np.empty((height * width + 1,) * 2, dtype=np.float32)
        out[1:, 1:], out[0, 1:], out[1:, 0], out[0, 0] = patches, to_patch, to_class, to_itself
        return out

    def layout(self) -> dict[str, Any]:
        """Heads, the window and the extra entries' names, for ``provenance``."""
        return {"heads": self.heads, "window": list(self.window), "extras": list(self.extras)}

    def __repr__(self) -> str:
        return (f"WindowBias({self.label!r}, heads={self.heads}, window={self.window[0]}x{self.window[1]}, "
                f"extras={len(self.extras)})")


def _window(window: Any, where: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in window)
        exact = all(int(v) == v and not isinstance(v, bool) for v in window)
    except (TypeError, ValueError):
        raise EmbeddingError(f"{where}: window must be a pair (Wh, Ww) of integers, got {window!r}") from None
    if not exact or not (1 <= height <= MAX_WINDOW and 1 <= width <= MAX_WINDOW):
        raise EmbeddingError(f"{where}: window must be a pair (Wh, Ww) of integers from 1 to {MAX_WINDOW}, "
                             f"got {window!r}")
    return height, width


def _offset_name(column: int, window: tuple[int, int]) -> str:
    row, col = divmod(column, 2 * window[1] - 1)
    return f"offset (dy {row - window[0] + 1}, dx {col - window[1] + 1})"


def offsets_from_table(table: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """heads x offsets in ``WindowBias`` column order from a transformers table of (2Wh-1)(2Ww-1) rows x heads.

    transformers indexes its table with ``relative_position_index``: row (qy - ky + Wh - 1) * (2Ww - 1) + (qx - kx
    + Ww - 1) for the query-minus-key offset, so the key-minus-query offset (dy, dx) is that row flipped in both."""
    rows, columns = 2 * window[0] - 1, 2 * window[1] - 1
    grid = np.asarray(table)[:rows * columns].reshape(rows, columns, -1)[::-1, ::-1]
    return np.ascontiguousarray(grid.transpose(2, 0, 1).reshape(grid.shape[2], rows * columns), dtype=np.float32)
