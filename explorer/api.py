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


def _check_resolution(resolution: int | None) -> None:
    if resolution is not None and resolution < 1:
        raise EmbeddingError(f"resolution must be >= 1, got {resolution}")


def analyze(embedding: PositionEmbedding, resolution: int | None = None) -> Analysis:
    """Every analysis the report shows, for one table (see ``explorer.analysis``)."""
    from explorer import analysis

    _check_resolution(resolution)
    return analysis.analyze(embedding.matrix, resolution or analysis.RESOLUTION)


def compare(a: PositionEmbedding, b: PositionEmbedding, resolution: int | None = None) -> Comparison:
    """Two tables side by side on their common positions: linear CKA, similarity correlation, offset profiles."""
    from explorer import analysis

    _check_resolution(resolution)
    return analysis.compare(a.matrix, b.matrix, resolution or analysis.RESOLUTION)


def _analyses(items: Sequence[PositionEmbedding], resolution: int | None) -> tuple[list, list]:
    """Every table's analysis and every pair's comparison: what a report shows."""
    results = [analyze(e, resolution) for e in items]
    comparisons = [(i, j, compare(items[i], items[j], resolution))
                   for i in range(len(items)) for j in range(i + 1, len(items))]
    return results, comparisons


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
    from explorer import background
    from explorer.embedding import PositionEmbedding
    from explorer.output import write_atomic

    items = [embeddings] if isinstance(embeddings, PositionEmbedding) else list(embeddings)
    if not items:
        raise EmbeddingError("report needs at least one table")
    _check_resolution(resolution)
    # The analyses (numpy) run in a forked child on another core while this process imports Bokeh (pure
    # Python); where forking is not safe they run here first (see explorer.background).
    analysing = background.start(_analyses, items, resolution)
    try:
        from explorer.reporting.page import build_page  # imports Bokeh

        results, comparisons = analysing.result()
        html = build_page(items, results, comparisons=comparisons, title=title, resources=resources)
    finally:
        analysing.cancel()
    if path is not None:
        write_atomic(path, html)
    return html


def show(
    embeddings: PositionEmbedding | Sequence[PositionEmbedding],
    *,
    title: str | None = None,
    resolution: int | None = None,
    notebook: bool = True,
) -> Any:
    """Show the report inline in Jupyter through Bokeh's own notebook output; returns the Bokeh layout.

    The same views, analyses and captions as :func:`report`, as live Bokeh models in the notebook's output
    cell (``bokeh.io.output_notebook`` then ``bokeh.io.show``). With ``notebook=False`` nothing is shown:
    the layout is returned for the caller to embed (``bokeh.embed.components``) or show otherwise.
    bokeh is imported here, on first use.
    """
    from explorer.embedding import PositionEmbedding
    from explorer.reporting.page import build_document

    items = [embeddings] if isinstance(embeddings, PositionEmbedding) else list(embeddings)
    if not items:
        raise EmbeddingError("show needs at least one table")
    results, comparisons = _analyses(items, resolution)
    # One root in one document, so Bokeh shows that document as-is, with its document-ready callback.
    layout = build_document(items, results, comparisons=comparisons, title=title).roots[0]
    if notebook:
        _show_in_notebook(layout)
    return layout


def _show_in_notebook(layout: Any) -> None:
    """Bokeh's notebook output (what ``bokeh.io.show`` does in Jupyter), keeping the report's own document.

    ``bokeh.io.show`` would copy the layout into a fresh document and so drop the report's document-ready
    callback, which unpacks the similarity images; this publishes the same two display items from the
    report's document instead.
    """
    from bokeh.core.json_encoder import serialize_json
    from bokeh.core.templates import DOC_NB_JS
    from bokeh.embed.elements import div_for_render_item
    from bokeh.embed.util import standalone_docs_json_and_render_items
    from bokeh.io import output_notebook
    from bokeh.io.notebook import EXEC_MIME_TYPE, HTML_MIME_TYPE, JS_MIME_TYPE, publish_display_data

    output_notebook(hide_banner=True)  # loads BokehJS into the notebook once
    docs_json, [render_item] = standalone_docs_json_and_render_items([layout])
    script = DOC_NB_JS.render(docs_json=serialize_json(docs_json), render_items=serialize_json([render_item.to_json()]))
    publish_display_data({HTML_MIME_TYPE: div_for_render_item(render_item)})
    publish_display_data({JS_MIME_TYPE: script, EXEC_MIME_TYPE: ""}, metadata={EXEC_MIME_TYPE: {"id": layout.id}})
