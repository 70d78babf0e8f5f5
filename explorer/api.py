"""The Python API: the same path the command line takes, callable from a notebook.

spec -> provider -> ``PositionEmbedding`` -> ``analyze`` -> ``report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from explorer.errors import EmbeddingError, ProviderError
from explorer.plugins import ProviderRegistry, get_registry
from explorer.spec import Spec, parse_spec

if TYPE_CHECKING:
    from explorer.analysis import Analysis, Comparison
    from explorer.embedding import PositionEmbedding

#: What ``posembed report`` shows when given no spec: needs no network.
DEFAULT_SPEC = "sinusoidal"


def load(spec: str | Spec = DEFAULT_SPEC, registry: ProviderRegistry | None = None, **params: Any) -> PositionEmbedding:
    """Load the table a spec names, e.g. ``load("sinusoidal,dim=512")`` or ``load("hf", model="gpt2")``.

    Keyword arguments are provider parameters and override those in the spec.
    """
    from explorer.embedding import PositionEmbedding

    parsed = spec if isinstance(spec, Spec) else parse_spec(spec)
    provider = (registry or get_registry()).get(parsed.name)
    kwargs = provider.resolve(parsed.target, {**parsed.options, **params})
    result = provider.load(**kwargs)
    if not isinstance(result, PositionEmbedding):
        raise ProviderError(
            f"provider {provider.name!r} returned {type(result).__name__}, not a PositionEmbedding"
        )
    return result


def analyze(embedding: PositionEmbedding, resolution: int | None = None) -> Analysis:
    """Every analysis the report shows, for one table (see ``explorer.analysis``)."""
    from explorer import analysis

    if resolution is not None and resolution < 1:
        raise EmbeddingError(f"resolution must be >= 1, got {resolution}")
    return analysis.analyze(embedding.matrix, resolution or analysis.RESOLUTION)


def compare(a: PositionEmbedding, b: PositionEmbedding, resolution: int | None = None) -> Comparison:
    """Two tables side by side on their common positions: linear CKA, similarity correlation, offset profiles."""
    from explorer import analysis

    if resolution is not None and resolution < 1:
        raise EmbeddingError(f"resolution must be >= 1, got {resolution}")
    return analysis.compare(a.matrix, b.matrix, resolution or analysis.RESOLUTION)


def report(
    embeddings: PositionEmbedding | Sequence[PositionEmbedding],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    resources: str = "inline",
    resolution: int | None = None,
) -> str:
    """Build the standalone HTML report for one table (or several side by side).

    Returns the HTML; with ``path`` it is also written there atomically.
    """
    from explorer.embedding import PositionEmbedding
    from explorer.reporting.page import build_page
    from explorer.output import write_atomic

    items = [embeddings] if isinstance(embeddings, PositionEmbedding) else list(embeddings)
    if not items:
        raise EmbeddingError("report needs at least one table")
    results = [analyze(e, resolution) for e in items]
    comparisons = [(i, j, compare(items[i], items[j], resolution))
                   for i in range(len(items)) for j in range(i + 1, len(items))]
    html = build_page(items, results, comparisons=comparisons, title=title, resources=resources)
    if path is not None:
        write_atomic(path, html)
    return html
