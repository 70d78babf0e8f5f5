"""What an analysis receives: ``TableContext``, the validated table and its settings plus work shared between
the analyses of one table. It lives beside the analyses so that they, and the shared work they memoise, import
it without looking up into the plugin contract."""

from __future__ import annotations

from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping

if TYPE_CHECKING:
    import numpy as np

    from explorer.core.embedding import PositionEmbedding


class TableContext:
    """What an analysis receives: the validated table and settings, plus work shared between analyses.

    ``matrix`` is the C-contiguous float32 table (positions x dimensions). ``memo(key, compute)`` computes a
    value once per table for every analysis that asks (the centred eigen-decomposition behind PCA, the spectrum
    and the probes is ``eigen``). ``options`` holds the run's settings by name, read-only; an analysis reads
    its own with a default (the probes: ``options.get("probe_protocol", PROBE_PROTOCOL)``, ``explorer.core.choices``).
    Pair analyses receive the contexts the tables' analyses filled, so what a pair needs of one table (its offset
    profile, its cosine image, what CKA needs) is computed once for every pair. ``memo`` starts the shared work
    from what another process computed (``memos``).
    """

    def __init__(self, matrix: "np.ndarray", resolution: int, seed: int = 0,
                 embedding: "PositionEmbedding | None" = None, options: Mapping[str, Any] | None = None,
                 memo: dict[Hashable, Any] | None = None) -> None:
        self.matrix, self.resolution, self.seed, self.embedding = matrix, resolution, seed, embedding
        self.options: Mapping[str, Any] = MappingProxyType(dict(options or {}))
        self._memo: dict[Hashable, Any] = dict(memo or {})
        self._head: tuple[tuple[int, int], TableContext] | None = None

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same value afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def memos(self) -> dict[Hashable, Any]:
        """The shared work computed so far, by key (to start another process's context of the same table)."""
        return dict(self._memo)

    def head(self, rows: int, resolution: int | None = None) -> TableContext:
        """The context of the first ``rows`` rows at ``resolution`` (default: this one's): this context when that
        is the whole table at its resolution. A pair of tables of different lengths compares on the shorter
        one's rows: the last head asked for is kept, so pairs taken in order of their common rows share its
        work, and a table holds at most one head whatever the lengths of the others."""
        key = (int(rows), self.resolution if resolution is None else int(resolution))
        if key == (len(self.matrix), self.resolution):
            return self
        if self._head is None or self._head[0] != key:
            self._head = (key, TableContext(self.matrix[:key[0]], key[1], self.seed, self.embedding, self.options))
        return self._head[1]

    @cached_property
    def eigen(self):
        """The centred eigen-decomposition of the table (``explorer.analysis.decomposition.centred_eigen``)."""
        from explorer.analysis.decomposition import centred_eigen

        return centred_eigen(self.matrix)
