"""``PositionEmbedding``: the one matrix every provider hands over, with where it came from."""

from __future__ import annotations

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
        }

    def __repr__(self) -> str:
        return f"PositionEmbedding({self.label!r}, shape={self.shape}, kind={self.kind!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
