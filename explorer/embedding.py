"""``PositionEmbedding``: the one matrix every provider hands over, with where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explorer import validate
from explorer.errors import EmbeddingError
from explorer.messages import utf8_text

#: Kinds a provider may declare; free text is allowed, these are the common ones.
KINDS = ("learned", "formula", "rotary", "other")


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
    grid: tuple[int, int] | None = None
    """``(H, W)`` when the positions are patches of an image laid out row by row (row r, column c is position
    r * W + c); ``H * W`` must equal the number of positions. ``None``: a 1-D sequence."""

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
        """A short human name for legends and titles, e.g. ``gpt2 (openai-community/gpt2)``."""
        return self.provider if self.source in ("", self.provider) else f"{self.provider}: {self.source}"

    def inputs(self) -> list[Any]:
        """The values the table was read from (source and parameters): those naming files are what writing
        an output must not overwrite (``explorer.output.check_writable``)."""
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
            "params": {k: _plain(v) for k, v in self.params.items()},
            "description": self.description,
            "grid": list(self.grid) if self.grid is not None else None,
        }

    def __repr__(self) -> str:
        return f"PositionEmbedding({self.label!r}, shape={self.shape}, kind={self.kind!r})"


def check_grid(grid: Any, positions: int, where: str) -> tuple[int, int]:
    """``grid`` as ``(H, W)`` of ints >= 1 whose product is ``positions``, or one ``EmbeddingError`` saying why."""
    try:
        height, width = (int(v) for v in grid)
        exact = all(int(v) == v and not isinstance(v, bool) for v in grid)
    except (TypeError, ValueError):
        raise EmbeddingError(f"{where}: grid must be a pair (H, W) of integers, got {grid!r}") from None
    if not exact or height < 1 or width < 1:
        raise EmbeddingError(f"{where}: grid must be a pair (H, W) of integers >= 1, got {grid!r}")
    if height * width != positions:
        raise EmbeddingError(f"{where}: a {height} x {width} grid has {height * width} patches, but the table has "
                             f"{positions} positions")
    return height, width


def parse_grid(text: str, where: str) -> tuple[int, int]:
    """``"14x14"`` (or ``14X14``, ``14*14``) as ``(14, 14)``, or one ``SpecError`` naming ``where``."""
    from explorer.errors import SpecError

    parts = re.split(r"[xX*]", str(text).strip())
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or min(int(p) for p in parts) < 1:
        raise SpecError(f"{where}: grid must be HxW with whole numbers >= 1, e.g. grid=14x14; got {text!r}")
    return int(parts[0]), int(parts[1])


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
