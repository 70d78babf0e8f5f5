"""Assemble the registered sections of one or more tables into one Bokeh document, and write it as HTML.

One table: its sections top to bottom, each under its heading. Several tables: each table section's blocks
side by side (one column per table) under one heading, with position axes linked across every position plot
of every table and one colour scale for the matrix heatmaps; page sections (the comparison) appear once.
The page builder knows no section by name: it loops over what is registered (``explorer.units.Section``).
"""

from __future__ import annotations

import html
from functools import cached_property
from typing import Any, Sequence

from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import Div, Range1d, Spacer
from bokeh.resources import CDN, INLINE

from explorer.embedding import PositionEmbedding
from explorer.errors import OutputError
from explorer.reporting import views
from explorer.units import FAILED, PAGE, Results, Section, SectionContext, guarded, in_order

RESOURCES = ("inline", "cdn")


def bokeh_resources(kind: str):
    """Bokeh's resources for ``inline`` (BokehJS in the file: works offline) or ``cdn``."""
    if kind not in RESOURCES:
        raise OutputError(f"resources must be one of {', '.join(RESOURCES)}, got {kind!r}")
    return INLINE if kind == "inline" else CDN


class Page:
    """Every table on the page with its results, the pairs' results, and what their views share."""

    def __init__(self, embeddings: Sequence[PositionEmbedding], results: Sequence[Results],
                 pairs: Sequence[tuple[int, int, Results]] = (), title: str | None = None) -> None:
        self.embeddings, self.results, self.pairs = list(embeddings), list(results), list(pairs)
        self.title = title or page_title(self.embeddings)
        self.max_positions = max(e.positions for e in self.embeddings)
        n = self.max_positions
        #: Linked across every plot with a position axis, in every table's column.
        self.positions = Range1d(0, n, name="positions_range")
        self.positions_down = Range1d(n, 0)  # the same span flipped, for the y axis of position-cosine images
        self.lags = Range1d(0, n)
        self.unpacker = views.Unpacker()
        self.wide = 2 * views.SIZE + 70

    @property
    def tables(self) -> int:
        """How many tables the page shows."""
        return len(self.embeddings)

    @cached_property
    def matrix_scale(self) -> views.CodeScale:
        """The matrix heatmaps' one colour scale (from every table whose matrix image was computed)."""
        return views.matrix_scale([r["matrix"] for r in self.results if "matrix" in r])


def page_title(embeddings: Sequence[PositionEmbedding]) -> str:
    """The default title: the tables' labels."""
    return "posembed: " + " vs ".join(e.label for e in embeddings)


def _title_block(page: Page) -> Div:
    from explorer import __version__

    intro = (f"{page.tables} tables side by side: shared colour scales, position axes linked across plots."
             if page.tables > 1 else "Hover any plot for values; the tools beside each plot pan, zoom and save.")
    return Div(text=f"<h1 style='margin-bottom:0.2em'>{html.escape(page.title)}</h1><p style='color:#555'>"
                    f"posembed-explorer {html.escape(__version__)}. {html.escape(intro)}</p>", name="title")


def _blocks(section: Section, page: Page, memos: list[dict]) -> list[Any]:
    """The section's blocks: one for the page, or one per table (a spacer where a table has none)."""
    def built(context: SectionContext) -> Any:
        block = guarded(section, lambda: section.build(context))
        return None if block is FAILED else block

    if section.scope == PAGE:
        if page.tables < section.min_tables:
            return []
        block = built(SectionContext(page))
        return [block] if block is not None else []
    blocks = []
    for k, (embedding, results) in enumerate(zip(page.embeddings, page.results)):
        applies = embedding.term in section.terms and all(need in results for need in section.needs)
        blocks.append(built(SectionContext(page, embedding, results, k, memos[k])) if applies else None)
    if all(block is None for block in blocks):
        return []
    return [block if block is not None else Spacer(width=page.wide) for block in blocks]


def build_document(embeddings: Sequence[PositionEmbedding], results: Sequence[Results],
                   pairs: Sequence[tuple[int, int, Results]] = (), *, title: str | None = None,
                   sections: Sequence[Section] | None = None) -> Document:
    """The Bokeh document of the report: the title, then every section (default: the built-in ones) in order.

    A section that needs an analysis a table lacks is left out for that table; a plugin's section that fails
    is named in one warning line and left out, and the rest of the page still renders.
    """
    if sections is None:
        from explorer.reporting.sections import builtin_sections

        sections = builtin_sections()
    page = Page(embeddings, results, pairs, title)
    memos: list[dict] = [{} for _ in page.embeddings]
    body: list[Any] = [_title_block(page)]
    for section in in_order(sections):
        blocks = _blocks(section, page, memos)
        if not blocks:
            continue
        if section.title:
            body.append(views.heading(section.title, 2 * views.SIZE))
        body.append(row(*blocks, spacing=40) if len(blocks) > 1 else blocks[0])
    doc = Document(title=page.title)
    doc.add_root(column(*body))
    doc.js_on_event("document_ready", page.unpacker.callback())
    return doc


def render(document: Document, resources: str = "inline") -> str:
    """The standalone HTML of ``document`` through Bokeh's ``file_html`` (BokehJS inline by default: offline)."""
    return file_html(document, bokeh_resources(resources), title=document.title)
