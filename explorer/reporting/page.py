"""Assemble the views of one or more tables into one standalone HTML page."""

from __future__ import annotations

import html
from typing import Sequence

from explorer.analysis import Analysis
from explorer.embedding import PositionEmbedding
from explorer.errors import OutputError

RESOURCES = ("inline", "cdn")


def _resources(kind: str):
    from bokeh.resources import CDN, INLINE

    if kind not in RESOURCES:
        raise OutputError(f"resources must be one of {', '.join(RESOURCES)}, got {kind!r}")
    return INLINE if kind == "inline" else CDN


def table_column(embedding: PositionEmbedding, result: Analysis):
    """The views of one table, top to bottom, each with its caption."""
    from bokeh.layouts import column, row

    from explorer.reporting import views

    limit = max(abs(result.summary["value_min"]), abs(result.summary["value_max"])) or 1.0
    pos, dims = result.positions, result.dimensions
    block_note = lambda img: (  # noqa: E731
        "" if img.exact else f" The table is longer than the display resolution, so each pixel is the mean "
        f"cosine over a block of about {int(img.bounds[-1]) // (len(img.bounds) - 1)} x "
        f"{int(img.bounds[-1]) // (len(img.bounds) - 1)} pairs."
    )
    return column(
        views.provenance_header(embedding, result.summary),
        views.matrix_heatmap(result.matrix, limit),
        views.caption(
            "Each column is one position's vector, each row one dimension; colour is the value, on a "
            f"symmetric range of \u00b1{limit:.3g} (the largest magnitude in the table)."
        ),
        views.dimension_traces(result.traces, embedding.positions),
        views.caption(
            "Dimension traces: the value of a few dimensions (spread evenly over the width) as a function of "
            "position. Click a legend entry to hide its line. Long tables show the min-max band per block."
        ),
        row(
            column(
                views.similarity_heatmap(pos),
                views.caption("cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of positions." + block_note(pos)),
            ),
            column(
                views.similarity_heatmap(dims),
                views.caption("Cosine similarity between dimension columns (each a vector over all positions)."
                              + block_note(dims)),
            ),
        ),
    )


def build_page(
    embeddings: Sequence[PositionEmbedding],
    results: Sequence[Analysis],
    *,
    title: str | None = None,
    resources: str = "inline",
) -> str:
    """The standalone HTML of the report (Bokeh JS inline by default, so it renders offline)."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import Div

    from explorer import __version__

    res = _resources(resources)
    title = title or "posembed: " + " vs ".join(e.label for e in embeddings)
    heading = Div(
        text=f"<h1>{html.escape(title)}</h1><p>posembed-explorer {html.escape(__version__)}</p>",
        name="title",
    )
    columns = [table_column(e, r) for e, r in zip(embeddings, results)]
    body = column(heading, row(*columns) if len(columns) > 1 else columns[0])
    return file_html(body, res, title=title)
