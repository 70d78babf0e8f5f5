"""What an analysis receives: ``TableContext``, the validated table and its settings plus work shared between
the analyses of one table. It lives beside the analyses so that they, and the shared work they memoise, import
it without looking up into the plugin contract."""

from __future__ import annotations

from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import numpy as np

    from explorer.core.embedding import PositionEmbedding


class TableContext:
    """What an analysis receives: the validated table and settings, plus work shared between analyses.

    ``matrix`` is the C-contiguous float32 table (positions x dimensions). ``memo(key, compute)`` computes a
    value once per table for every analysis that asks (the centred eigen-decomposition behind PCA, the spectrum
    and the probes is ``eigen``). ``options`` holds the run's settings by name, read-only; an analysis reads
    its own with a default (the probes: ``options.get("probe_protocol", "ridge")``, ``explorer.core.choices``).
    """

    def __init__(self, matrix: "np.ndarray", resolution: int, seed: int = 0,
                 embedding: "PositionEmbedding | None" = None, options: Mapping[str, Any] | None = None) -> None:
        self.matrix, self.resolution, self.seed, self.embedding = matrix, resolution, seed, embedding
        self.options: Mapping[str, Any] = MappingProxyType(dict(options or {}))
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same value afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @cached_property
    def eigen(self):
        """The centred eigen-decomposition of the table (``explorer.analysis.decomposition.centred_eigen``)."""
        from explorer.analysis.decomposition import centred_eigen

        return centred_eigen(self.matrix)
