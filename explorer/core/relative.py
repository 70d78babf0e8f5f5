"""``RelativePositionTerm``: the second kind of position term, a value per head as a function of distance.

Where an absolute table gives one vector per position, a relative scheme adds to the attention score of query
i and key j a value that depends only on the signed distance k = j - i (T5's bucketed biases, ALiBi's slopes).
For ``positions`` L the distances are -(L-1) .. L-1, or -(L-1) .. 0 for a causal term (a decoder sees no key
after its query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from explorer.core import validate
from explorer.core.embedding import plain_value, term_label
from explorer.errors import EmbeddingError
from explorer.runtime.console import utf8_text

#: Kinds of relative term posembed's providers give; free text is allowed.
RELATIVE_KINDS = ("bucketed", "alibi", "other")
#: The most heads a term may have: no model comes near (BLOOM has 112). Every head is a line, a row of numbers and
#: a choice in the report's head picker, so a term of a million one-distance heads would take hours and gigabytes.
MAX_HEADS = 1024


def check_heads(heads: int, where: str) -> None:
    """EmbeddingError when a term would have more than ``MAX_HEADS`` heads (call it before computing one)."""
    if heads > MAX_HEADS:
        raise EmbeddingError(f"{where}: a relative term of {heads} heads; posembed takes at most {MAX_HEADS}")


def _positions(columns: int, causal: bool) -> int:
    """L of a term of ``columns`` distances: -(L-1) .. 0 when causal, -(L-1) .. L-1 (2L-1 columns) otherwise."""
    return columns if causal else (columns + 1) // 2


class HeadValues:
    """What every per-head term (a ``RelativePositionTerm``, an ``explorer.WindowBias``) says about its
    heads x columns ``values`` and its provenance alike."""

    values: np.ndarray
    params: Mapping[str, Any]
    source: str

    @property
    def matrix(self) -> np.ndarray:
        """The heads x columns values: the 2-D array the analysis loop hands over as ``context.matrix``."""
        return self.values

    @property
    def heads(self) -> int:
        """Number of attention heads (rows of ``values``)."""
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        """Number of columns of ``values`` (distances, or offsets and extras)."""
        return int(self.values.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(heads, columns)``."""
        return (self.heads, self.dim)

    @property
    def offset(self) -> int:
        """No rows are dropped from a per-head term (kept for code that reads any term's provenance)."""
        return 0

    @property
    def label(self) -> str:
        """A short human name for legends and titles (``explorer.core.embedding.term_label``)."""
        return term_label(self)

    def inputs(self) -> list[Any]:
        """The values the term was read from (what writing an output must not overwrite)."""
        return [self.source, *self.params.values()]

    def layout(self) -> dict[str, Any]:
        """What the term's kind says about its columns (heads, distances, a window, taps), for ``provenance``."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Everything known about where the term came from, as plain JSON-able values."""
        return {
            "provider": self.provider,  # type: ignore[attr-defined]
            "source": self.source,
            "term": self.term,  # type: ignore[attr-defined]
            "kind": self.kind,  # type: ignore[attr-defined]
            "shape": list(self.shape),
            **self.layout(),
            "dtype": self.dtype,  # type: ignore[attr-defined]
            "tensor": self.tensor,  # type: ignore[attr-defined]
            "revision": self.revision,  # type: ignore[attr-defined]
            "params": {k: plain_value(v) for k, v in self.params.items()},
            "description": self.description,  # type: ignore[attr-defined]
        }

    def _settle(self, values: np.ndarray) -> None:
        """Keep the checked ``values`` as a read-only copy the caller does not own, the stored dtype, a plain dict
        of params and every text field as UTF-8 (call it from ``__post_init__`` once the values are checked)."""
        check_heads(values.shape[0], self.provider)  # type: ignore[attr-defined]
        if values is self.values or not values.flags.owndata:
            values = values.copy()  # never freeze memory the caller still owns
        values.setflags(write=False)
        object.__setattr__(self, "dtype", self.dtype or str(np.asarray(self.values).dtype))  # type: ignore
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "params", dict(self.params))
        for name in ("provider", "source", "kind", "dtype", "tensor", "revision", "description"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, utf8_text(value))


@dataclass(frozen=True, eq=False)
class RelativePositionTerm(HeadValues):
    """Per head, a value as a function of the signed key-minus-query distance, plus its provenance.

    ``values`` is heads x distances, read-only C-contiguous float32: column c holds distance
    ``distances[c]`` = c - (L-1), over 2L-1 columns (``causal=False``) or L columns (``causal=True``).
    """

    values: np.ndarray
    provider: str
    source: str
    causal: bool = False
    kind: str = "other"
    dtype: str | None = None
    """The dtype the values were stored in (a learned bias) or computed in."""
    params: Mapping[str, Any] = field(default_factory=dict)
    tensor: str | None = None
    revision: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        causal = bool(self.causal)
        values = validate.table(self.values, self.provider, at=lambda head, column, columns: (
            f"head {head}, distance {column - _positions(columns, causal) + 1}"))
        columns = values.shape[1]
        if not causal and columns % 2 == 0:
            raise EmbeddingError(f"{self.provider}: a bidirectional relative term has 2L-1 distances (an odd "
                                 f"number of columns), got {columns}")
        self._settle(values)
        object.__setattr__(self, "_positions", _positions(columns, causal))

    @property
    def term(self) -> str:
        """``"relative"``: analyses and sections declaring this term take it."""
        return "relative"

    @property
    def positions(self) -> int:
        """L: the longest sequence the term covers."""
        return int(self._positions)  # type: ignore[attr-defined]

    @property
    def distances(self) -> np.ndarray:
        """The signed distance k = key - query of each column, int64, ascending."""
        last = 0 if self.causal else self.positions - 1
        return np.arange(-(self.positions - 1), last + 1, dtype=np.int64)

    def value_at(self, k: int) -> np.ndarray:
        """The value of every head at distance ``k`` (IndexError outside the term's distances)."""
        column = int(k) + self.positions - 1
        if not 0 <= column < self.dim:
            raise IndexError(f"distance {k} is outside {int(self.distances[0])} .. {int(self.distances[-1])}")
        return self.values[:, column]

    def query_key(self, head: int, positions: np.ndarray | None = None) -> np.ndarray:
        """The query x key bias b(j - i) of ``head`` at the given positions (default: all); NaN where a causal
        term has no value (key after query)."""
        p = np.arange(self.positions) if positions is None else np.asarray(positions, dtype=np.int64)
        k = p[None, :] - p[:, None]
        column = np.clip(k + self.positions - 1, 0, self.dim - 1)
        out = self.values[head][column]
        if self.causal:
            out = np.where(k > 0, np.float32(np.nan), out)
        return out

    def layout(self) -> dict[str, Any]:
        """Heads, positions, direction and the distances covered, for ``provenance``."""
        return {"heads": self.heads, "positions": self.positions, "causal": self.causal,
                "distances": [int(self.distances[0]), int(self.distances[-1])]}

    def __repr__(self) -> str:
        return (f"RelativePositionTerm({self.label!r}, heads={self.heads}, positions={self.positions}, "
                f"causal={self.causal}, kind={self.kind!r})")
