"""``PositionEmbedding``: the one matrix every provider hands over, with where it came from."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from explorer.core import validate
from explorer.errors import EmbeddingError
from explorer.runtime.console import one_line, utf8_text

if TYPE_CHECKING:
    from explorer.core.attention import AttentionInputs

#: Kinds a provider may declare; free text is allowed, these are the common ones.
KINDS = ("learned", "formula", "rotary", "other")
#: The longest row label a table may carry (an axis tick and a hover line, not a paragraph).
MAX_ROW_LABEL = 48


@dataclass(frozen=True)
class RowAxis:
    """What each row of a table stands for when row i is not position i: DeBERTa's ``rel_embeddings`` rows are
    key-minus-query distance buckets, so its axes read distances, not positions.

    ``name`` titles every axis along the rows (``"key - query distance"``); ``labels`` hold one short text per
    row (``"-3"``, ``"140..143"``, ``">= 512"``), shown as tick labels, in hovers and in pickers; ``reverse``
    draws row 0 at the right-hand end (when the labels run from high to low, so they read ascending)."""

    name: str
    labels: tuple[str, ...]
    reverse: bool = False

    def __post_init__(self) -> None:
        # one line each: a label is a tick and a hover line (line breaks and control characters shown escaped)
        name = one_line(utf8_text(str(self.name)).strip())
        labels = tuple(one_line(utf8_text(str(label)).strip()) for label in self.labels)
        if not name or len(name) > MAX_ROW_LABEL:
            raise EmbeddingError(f"a row axis needs a name of 1 to {MAX_ROW_LABEL} characters, got {self.name!r}")
        long = next((label for label in labels if len(label) > MAX_ROW_LABEL), None)
        if long is not None:
            raise EmbeddingError(f"row labels are at most {MAX_ROW_LABEL} characters, got {long[:60]!r}...")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "reverse", bool(self.reverse))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: ``{"name", "labels", "reverse"}``."""
        return {"name": self.name, "labels": list(self.labels), "reverse": self.reverse}


@dataclass(frozen=True, eq=False)
class PositionEmbedding:
    """A position table (rows = positions, columns = dimensions) plus its provenance.

    The matrix is stored as read-only, C-contiguous float32. Construction refuses
    anything that is not a finite 2-D table with at least one row and one column.
    """

    matrix: np.ndarray
    provider: str
    source: str
    kind: str = "other"
    offset: int = 0
    """Rows dropped from the start of the stored table (OPT's 2, RoBERTa's padding_idx + 1)."""
    dtype: str | None = None
    """The dtype the table was stored in before decoding to float32 (defaults to the input's)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The provider parameters that produced this table, after validation."""
    tensor: str | None = None
    """Name of the tensor inside a checkpoint or file, where there is one."""
    revision: str | None = None
    """Revision (commit, branch, tag) of a hub repository, where there is one."""
    description: str = ""
    """A short free-text note from the provider (model family, layout, ...)."""
    grid: tuple[int, ...] | None = None
    """``(H, W)`` when the positions are patches of an image laid out row by row (row r, column c is position
    r * W + c); ``(T, H, W)`` when they are a video's patches laid out frame by frame, then row by row (frame t,
    row r, column c is position (t * H + r) * W + c). The product must equal the number of positions.
    ``None``: a 1-D sequence."""
    rows: RowAxis | None = None
    """What the rows stand for when row i is not position i (DeBERTa's distance buckets), with one label per row;
    ``None``: row i is position i."""
    attention: "AttentionInputs | None" = None
    """What the provider read to compute a layer's attention from these positions (``attention=L`` on a model
    provider; ``explorer.core.attention``); ``None``: not asked for."""

    def __post_init__(self) -> None:
        matrix = validate.table(self.matrix, self.provider)
        if matrix is self.matrix or not matrix.flags.owndata:
            matrix = matrix.copy()  # never alias (and freeze) memory the caller still owns: its array, a view, a tensor
        matrix.setflags(write=False)
        object.__setattr__(self, "dtype", self.dtype or str(np.asarray(self.matrix).dtype))
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "params", dict(self.params))
        for name in ("provider", "source", "kind", "dtype", "tensor", "revision", "description"):
            value = getattr(self, name)
            if isinstance(value, str):  # names from files may hold lone surrogates, which no output can encode
                object.__setattr__(self, name, utf8_text(value))
        if self.offset < 0:
            raise EmbeddingError(f"{self.provider}: offset must be >= 0, got {self.offset}")
        if self.grid is not None:
            object.__setattr__(self, "grid", check_grid(self.grid, matrix.shape[0], self.provider))
        if self.rows is not None:
            if not isinstance(self.rows, RowAxis):
                raise EmbeddingError(f"{self.provider}: rows must be an explorer.RowAxis, got {type(self.rows).__name__}")
            if len(self.rows.labels) != matrix.shape[0]:
                raise EmbeddingError(f"{self.provider}: {len(self.rows.labels)} row labels for a table of "
                                     f"{matrix.shape[0]} rows")
            if self.grid is not None:
                raise EmbeddingError(f"{self.provider}: a table is a patch grid or has row labels, not both")
        if self.attention is not None:
            from explorer.core.attention import AttentionInputs

            if not isinstance(self.attention, AttentionInputs):
                raise EmbeddingError(f"{self.provider}: attention must be an AttentionInputs, got "
                                     f"{type(self.attention).__name__}")
            hidden = self.attention.hidden
            if self.attention.rotary is None and self.attention.width != self.dim and hidden is None:
                raise EmbeddingError(f"{self.provider}: layer {self.attention.layer}'s projections take "
                                     f"{self.attention.width} dimensions, the table has {self.dim}")
            if self.attention.rotary is not None and (self.kind != "rotary" or self.dim % 2):
                raise EmbeddingError(f"{self.provider}: rotary attention inputs go with a rotary cos/sin table")
            if hidden is not None and hidden.shape != (self.positions, self.attention.width):
                raise EmbeddingError(f"{self.provider}: the stream entering layer {self.attention.layer} has shape "
                                     f"{list(hidden.shape)}, not {self.positions} x {self.attention.width}")

    @property
    def positions(self) -> int:
        """Number of positions (rows)."""
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        """Number of dimensions (columns)."""
        return int(self.matrix.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(positions, dim)``."""
        return (self.positions, self.dim)

    @property
    def term(self) -> str:
        """The kind of position term: ``"absolute"``, a table of one vector per position (analyses and report
        sections declare the terms they take)."""
        return "absolute"

    @property
    def label(self) -> str:
        """A short human name for legends and titles, e.g. ``gpt2: openai-community/gpt2`` (``term_label``)."""
        return term_label(self)

    def inputs(self) -> list[Any]:
        """The values the table was read from (source and parameters): those naming files are what writing
        an output must not overwrite (``explorer.runtime.output.check_writable``)."""
        return [self.source, *self.params.values()]

    def provenance(self) -> dict[str, Any]:
        """Everything known about where the table came from, as plain JSON-able values."""
        return {
            "provider": self.provider,
            "source": self.source,
            "kind": self.kind,
            "shape": list(self.shape),
            "offset": self.offset,
            "dtype": self.dtype,
            "tensor": self.tensor,
            "revision": self.revision,
            "params": {k: plain_value(v) for k, v in self.params.items()},
            "description": self.description,
            "grid": list(self.grid) if self.grid is not None else None,
            "rows": self.rows.as_dict() if self.rows is not None else None,
            **({"attention": self.attention.summary()} if self.attention is not None else {}),
        }

    def __repr__(self) -> str:
        return f"PositionEmbedding({self.label!r}, shape={self.shape}, kind={self.kind!r})"


def term_label(term: Any) -> str:
    """The ``label`` of a table or relative term: ``provider: source``, plus the table or tower chosen when it is
    not ``auto`` (``t5: ./t5 (decoder)``, ``hf: ./clip (text tower)``), so that a model's tables can be told apart."""
    label = term.provider if term.source in ("", term.provider) else f"{term.provider}: {term.source}"
    chosen = [f"{value} tower" if name == "tower" else str(value) for name in ("table", "tower")
              if (value := term.params.get(name)) not in (None, "auto")]
    return f"{label} ({', '.join(chosen)})" if chosen else label


def check_grid(grid: Any, positions: int, where: str) -> tuple[int, ...]:
    """``grid`` as ``(H, W)`` or ``(T, H, W)`` of ints >= 1 whose product is ``positions``, or one
    ``EmbeddingError`` saying why."""
    try:
        sides = tuple(int(v) for v in grid)
        exact = all(int(v) == v and not isinstance(v, bool) for v in grid)
    except (TypeError, ValueError, OverflowError):
        raise EmbeddingError(f"{where}: grid must be (H, W) or (T, H, W) integers, got {grid!r}") from None
    if len(sides) not in (2, 3) or not exact or min(sides) < 1:
        raise EmbeddingError(f"{where}: grid must be (H, W) or (T, H, W) integers >= 1, got {grid!r}")
    if math.prod(sides) != positions:
        raise EmbeddingError(f"{where}: a {' x '.join(map(str, sides))} grid has {math.prod(sides)} patches, but "
                             f"the table has {positions} positions")
    return sides


def grid_text(grid: tuple[int, ...]) -> str:
    """``"14 x 14"`` or ``"8 x 14 x 14"``: a grid as the pages and messages name it."""
    return " x ".join(str(side) for side in grid)


def parse_grid(text: str, where: str, video: bool = True) -> tuple[int, ...]:
    """``"14x14"`` (or ``14X14``, ``14*14``) as ``(14, 14)``, ``"8x14x14"`` as ``(8, 14, 14)`` (frames first; only
    with ``video``), or one ``SpecError`` naming ``where``."""
    from explorer.errors import SpecError

    parts = re.split(r"[xX*]", str(text).strip())
    if (len(parts) not in ((2, 3) if video else (2,)) or not all(p.strip().isdigit() and len(p.strip()) <= 9
                                                                   for p in parts) or min(int(p) for p in parts) < 1):
        shapes = "HxW or TxHxW (frames first)" if video else "HxW"
        raise SpecError(f"{where}: grid must be {shapes} with whole numbers >= 1, e.g. grid=14x14"
                        f"{' or grid=8x14x14' if video else ''}; got {text!r}")
    return tuple(int(p) for p in parts)


def plain_value(value: Any) -> Any:
    """``value`` as JSON takes it: a str, number, bool or None as it is, anything else as its text."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
