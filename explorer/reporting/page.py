"""Assemble the registered sections of one or more tables into one Bokeh document, and write it as HTML.

One table: its sections top to bottom, each under its heading. Two tables: each table section's blocks side
by side (one column per table) under one heading. Three or more make an atlas: the page sections (the atlas
overview of every table, ``sections/atlas.py``) then one panel per table holding that table's full sections, of
which one is shown at a time (``Page.drill``; the atlas's thumbnails and rows choose which). Position axes are
linked across every position plot of every table (a table whose rows are not positions, such as DeBERTa's
distance buckets, links its own plots only: ``Page.position_range``); each table's matrix heatmap has its own
colour scale unless the page shares one (``shared_scale``); page sections (the comparison) appear once.
Everything stretches to the window's width. The page builder knows no section by name: it loops over what is
registered (``explorer.plugins.units.Section``).
"""

from __future__ import annotations

import html
from functools import cached_property
from typing import Any, Sequence

from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.models import Column, Div, Range1d, UIElement
from bokeh.resources import CDN, INLINE

from explorer.core.embedding import PositionEmbedding
from explorer.errors import OutputError
from explorer.plugins.units import PAGE, Failed, Results, Section, SectionContext, guarded, in_order
from explorer.reporting import encoding, figures, rows

RESOURCES = ("inline", "cdn")
#: Up to this many tables stand side by side; more make an atlas (each column would be narrower than a plot).
SIDE_BY_SIDE = 2

#: Bokeh's own page (``file_html``'s documented ``template`` extends it) with the document's JSON and the script that
#: renders it written as they are: Bokeh's template re-indents them with Jinja's ``indent`` filter, three more copies
#: of the JSON at the report's peak of memory (8.5 of the 27 MiB rendering a GPT-2 page takes; docs/performance.md).
PAGE_TEMPLATE = """
{% block inner_body %}
{{ self.contents() }}
{{ plot_script }}
{% endblock %}
"""

#: With BokehJS from the CDN: a visible message when it did not load (offline, blocked), instead of a blank page.
#: The CDN scripts in <head> are loaded before <body> is parsed, so the check runs after they succeeded or failed.
CDN_TEMPLATE = """
{% block contents %}
<div id="posembed-no-bokeh" style="display:none;margin:2em;padding:1em 1.5em;border:2px solid #b2182b;
     background:#fff5f0;color:#67000d;font:16px/1.5 sans-serif;max-width:46em">
  <b>This report could not load BokehJS</b>, the JavaScript library that draws its plots, from
  cdn.bokeh.org: this computer is offline or the site is blocked. Open it with network access, or write
  the report with <code>posembed report --resources inline</code> (the default), which works offline.
</div>
<script>
  if (typeof window.Bokeh === "undefined") {
    document.getElementById("posembed-no-bokeh").style.display = "block";
    console.warn("posembed: BokehJS did not load from the CDN");
  }
</script>
{{ super() }}
{% endblock %}
"""


def bokeh_resources(kind: str):
    """Bokeh's resources for ``inline`` (BokehJS in the file: works offline) or ``cdn``."""
    if kind not in RESOURCES:
        raise OutputError(f"resources must be one of {', '.join(RESOURCES)}, got {kind!r}")
    return INLINE if kind == "inline" else CDN


class Page:
    """Every table on the page with its results, the pairs' results, and what their views share.

    The page-wide choices of the matrix colour scale: ``shared_scale`` (one scale for every table, to compare
    magnitudes; default: each table its own, so it looks as it does alone), ``scale`` (``auto``, ``linear`` or
    ``symlog``) and ``vmax`` (the end of the colour range; default: from the data).

    What a section may read (the plugin API, ``SectionContext.page``; docs/hooks.md lists the same): ``API``.
    The rest (``drill``, ``drill_view``, ``drill_heading``: the atlas's panels; ``links``: a folder site's table pages) is
    the built-in atlas's own.
    """

    #: The attributes and methods sections read, kept within a minor version (docs/plugins.md, "API version").
    API = ("embeddings", "results", "pairs", "title", "tables", "atlas", "label_of", "max_positions", "positions",
           "positions_down", "lags", "position_range", "shared_range", "shared_scale", "scale", "vmax", "matrix_scale",
           "matrix_scale_of", "unpacker", "wide")

    def __init__(self, embeddings: Sequence[PositionEmbedding], results: Sequence[Results],
                 pairs: Sequence[tuple[int, int, Results]] = (), title: str | None = None, *,
                 shared_scale: bool = False, scale: str = "auto", vmax: float | None = None,
                 links: Sequence[str] | None = None, matrix_scale: encoding.CodeScale | None = None) -> None:
        self.embeddings, self.results, self.pairs = list(embeddings), list(results), list(pairs)
        if matrix_scale is not None:  # one shared with tables not on this page (a folder site's table page)
            self.__dict__["matrix_scale"], shared_scale = matrix_scale, True
        #: A folder site's index: each table's page (a relative URL), linked instead of its sections shown here.
        self.links = list(links) if links is not None else None
        self.title = title or page_title(self.embeddings)
        self.shared_scale, self.scale, self.vmax = bool(shared_scale), scale, vmax
        self.max_positions = max(e.positions for e in self.embeddings)
        n = self.max_positions
        #: Linked across every plot with a position axis, in every table's column.
        self.positions = Range1d(0, n, name="positions_range")
        self.positions_down = Range1d(n, 0)  # the same span flipped, for the y axis of position-cosine images
        self.lags = Range1d(0, n)
        self._row_ranges: dict[tuple[int, bool], Range1d] = {}
        self._shared: dict[str, Range1d] = {}
        self.unpacker = encoding.Unpacker()
        #: A fixed width that fits any column of the page at 1920 px (for blocks that do not stretch).
        self.wide = 2 * figures.SIZE + 70
        #: On an atlas: one panel per table for its full sections, and the one place on the page that shows one of
        #: them (the first; a page section's controls put another there), with the heading above it (set by the
        #: section that chooses). The other panels are in the file but not in the layout: BokehJS builds a
        #: panel's views only when it is shown (hidden views of 6 tables took 30 s to settle, shown ones 2 s).
        self.drill = [Column(sizing_mode="stretch_width", name=f"drill_{k}") for k in range(self.tables)] \
            if self.atlas and self.links is None else []
        self.drill_view = Column(children=self.drill[:1], sizing_mode="stretch_width", name="atlas_drill")
        self.drill_heading: Div | None = None

    def position_range(self, index: int, down: bool = False) -> Range1d:
        """The range of table ``index``'s position axes (``down``: top to bottom, for the y axis of position-cosine
        images): ``positions`` (or ``positions_down``), linked across every table, unless the table's rows are
        not positions (``PositionEmbedding.rows``): then its own range, shared by its plots alone."""
        embedding = self.embeddings[index]
        if embedding.rows is None:
            return self.positions_down if down else self.positions
        key = (index, down)
        if key not in self._row_ranges:
            self._row_ranges[key] = rows.row_range(embedding.positions, embedding.rows, down)
        return self._row_ranges[key]

    def shared_range(self, key: str, start: float, end: float) -> Range1d:
        """One range per ``key`` for the whole page, linking every plot given it (as ``positions`` links the
        position axes): each call widens it to cover ``start .. end``; the first call sets its direction (start
        above end: drawn the other way)."""
        shared = self._shared.get(key)
        if shared is None:
            return self._shared.setdefault(key, Range1d(start, end))
        low, high = min(shared.start, shared.end, start, end), max(shared.start, shared.end, start, end)
        shared.start, shared.end = (low, high) if shared.start <= shared.end else (high, low)
        return shared

    @property
    def tables(self) -> int:
        """How many tables the page shows."""
        return len(self.embeddings)

    @property
    def atlas(self) -> bool:
        """Whether the page is an atlas: an overview, then one table's full sections at a time."""
        return self.tables > SIDE_BY_SIDE

    def label_of(self, index: int) -> str:
        """Table ``index``'s label, naming what tells it apart when another table has the same label (a series):
        its revision as asked for (``@ step1000``), and the parameters whose values differ (``(dim=64)``)."""
        embedding = self.embeddings[index]
        group = [k for k, e in enumerate(self.embeddings) if e.label == embedding.label]
        if len(group) < 2:
            return embedding.label
        same, at = [self.embeddings[k] for k in group], group.index(index)
        # the revision as asked for (a branch or tag such as step1000), not the commit it resolved to
        revisions = [e.params.get("revision") or e.revision for e in same]
        params = [{k: v for k, v in e.params.items() if k != "revision"} for e in same]
        differ = [k for k in dict.fromkeys(k for p in params for k in p) if len({repr(p.get(k)) for p in params}) > 1]
        label = embedding.label
        if len(set(map(str, revisions))) > 1 and revisions[at]:
            label += f" @ {revisions[at]}"
        if differ:
            label += " (" + ", ".join(f"{k}={params[at].get(k, '-')}" for k in differ) + ")"
        return label

    @cached_property
    def matrix_scale(self) -> encoding.CodeScale:
        """The colour scale over every table's matrix image (the one in force with ``shared_scale``)."""
        return shared_matrix_scale(self.results, self.scale, self.vmax)

    def matrix_scale_of(self, index: int) -> encoding.CodeScale:
        """The colour scale of table ``index``'s matrix heatmap: the shared one, or its own."""
        if self.shared_scale or self.tables == 1:
            return self.matrix_scale
        return self._own_scales.setdefault(index, encoding.matrix_scale([self.results[index]["matrix"]], self.scale,
                                                                     self.vmax))

    @cached_property
    def _own_scales(self) -> dict[int, encoding.CodeScale]:
        return {}


def shared_matrix_scale(results: Sequence[Results], scale: str = "auto",
                        vmax: float | None = None) -> encoding.CodeScale:
    """One colour scale over the matrix images of every table of ``results`` (``--shared-scale``)."""
    return encoding.matrix_scale([r["matrix"] for r in results if "matrix" in r], scale, vmax)


def page_title(embeddings: Sequence[PositionEmbedding]) -> str:
    """The default title: the tables' labels (an atlas: how many tables, and the first's label)."""
    if len(embeddings) > SIDE_BY_SIDE:
        return f"posembed atlas: {len(embeddings)} tables, from {embeddings[0].label}"
    return "posembed: " + " vs ".join(e.label for e in embeddings)


def _title_block(page: Page) -> Div:
    from explorer import __version__

    tools = "Hover any plot for values; the tools to the right of each plot pan, zoom, select and save."
    if page.tables > 1:
        colours = ("one colour scale for every table's matrix (--shared-scale)" if page.shared_scale else
                   "each table's matrix on its own colour scale (--shared-scale for one)")
        layout = ("in an atlas: their numbers, pairs and thumbnails, then one table's sections at a time"
                  if page.atlas else "side by side")
        if page.links is not None:
            layout = "in an atlas: their numbers, pairs and thumbnails; each table's sections on a page of its own"
        intro = f"{page.tables} tables {layout}: {colours}; position axes linked across plots. {tools}"
    else:
        intro = tools
    return figures.div(f"<h1 style='margin-bottom:0.2em'>{html.escape(page.title)}</h1><p style='color:#555'>"
                     f"posembed-explorer {html.escape(__version__)}. {html.escape(intro)}</p>", name="title")


def _bokeh_model(block: Any) -> Any:
    """A section's block when it is one Bokeh can lay out (or None: no block); else TypeError saying what it is."""
    if block is not None and not isinstance(block, UIElement):
        raise TypeError(f"build returned {type(block).__name__}, not a Bokeh model (a figure or a layout)")
    return block


def _failure_note(failed: Failed) -> Div:
    """Where a plugin's section failed: the warning's line, on the page, instead of a blank column."""
    return figures.div(f"<p style='color:#b2182b;border-left:3px solid #b2182b;padding-left:0.6em'>"
                       f"{html.escape(failed.message)}</p>", sizing_mode="stretch_width")


def _blocks(section: Section, page: Page, memos: list[dict]) -> list[Any]:
    """The section's blocks: one for the page, or one per table (a spacer where a table has none; a note where a
    plugin's section failed)."""
    def built(context: SectionContext, table: str | None = None) -> Any:
        block = guarded(section, lambda: _bokeh_model(section.build(context)), table=table)
        return _failure_note(block) if isinstance(block, Failed) else block

    if section.scope == PAGE:
        if page.tables < section.min_tables:
            return []
        block = built(SectionContext(page))
        return [block] if block is not None else []
    blocks = []
    for k, (embedding, results) in enumerate(zip(page.embeddings, page.results)):
        applies = embedding.term in section.terms and all(need in results for need in section.needs)
        table = f"table {k + 1} ({embedding.label})" if page.tables > 1 else None  # as the analyses' warnings say
        blocks.append(built(SectionContext(page, embedding, results, k, memos[k]), table) if applies else None)
    if all(block is None for block in blocks):
        return []
    return [block if block is not None else figures.spacer() for block in blocks]


def build_document(embeddings: Sequence[PositionEmbedding], results: Sequence[Results],
                   pairs: Sequence[tuple[int, int, Results]] = (), *, title: str | None = None,
                   sections: Sequence[Section] | None = None, shared_scale: bool = False, scale: str = "auto",
                   vmax: float | None = None, links: Sequence[str] | None = None,
                   matrix_scale: encoding.CodeScale | None = None) -> Document:
    """The Bokeh document of the report: the title, then every section (default: the built-in ones) in order.

    ``links`` (a folder site's index, ``explorer.reporting.site``): each table's page, linked from the atlas
    instead of its sections built into this document; only the page sections are built.
    A section that needs an analysis a table lacks is left out for that table; a plugin's section that fails
    is named in one warning line and left out, and the rest of the page still renders. ``shared_scale``,
    ``scale`` and ``vmax`` choose the matrix colour scale (``Page``); ``matrix_scale``, one shared with tables not on
    this page (a folder site's table page with ``shared_scale``).
    """
    if sections is None:
        from explorer.reporting.sections import builtin_sections

        sections = builtin_sections()
    page = Page(embeddings, results, pairs, title, shared_scale=shared_scale, scale=scale, vmax=vmax, links=links,
                matrix_scale=matrix_scale)
    if links is not None:
        sections = [section for section in sections if section.scope == PAGE]
    memos: list[dict] = [{} for _ in page.embeddings]
    body: list[Any] = [_title_block(page)]
    for section in in_order(sections):
        blocks = _blocks(section, page, memos)
        if not blocks:
            continue
        if page.atlas and section.scope != PAGE:  # each table's block goes into its own panel
            for panel, block in zip(page.drill, blocks):
                if not isinstance(block, figures.Spacer):
                    panel.children += ([figures.heading(section.title)] if section.title else []) + [block]
            continue
        if section.title:
            body.append(figures.heading(section.title))
        if len(blocks) == 1:
            body.append(blocks[0])
        else:
            body.append(figures.side_by_side(*blocks, spacing=40, wrap=False))  # one column per table
    if page.atlas and page.links is None:
        if page.drill_heading is None:  # no section chooses (a custom set of sections): every panel, labelled
            for k, panel in enumerate(page.drill):
                panel.children.insert(0, figures.heading(f"{k + 1}. {page.label_of(k)}"))
            body += page.drill
        else:
            body += [page.drill_heading, page.drill_view]
    doc = Document(title=page.title)
    root = figures.stack(*body)
    root.margin = (0, 24, 24, 24)  # the page's own margin: the file template sets the body's to 0
    doc.add_root(root)
    doc.js_on_event("document_ready", page.unpacker.callback())
    return doc


def render(document: Document, resources: str = "inline") -> str:
    """The standalone HTML of ``document`` through Bokeh's ``file_html`` (BokehJS inline by default: offline)."""
    template = PAGE_TEMPLATE + (CDN_TEMPLATE if resources == "cdn" else "")
    return file_html(document, bokeh_resources(resources), title=document.title, template=template)


def write(document: Document, path: Any = None, resources: str = "inline", inputs: Sequence[Any] = ()) -> str:
    """``document``'s standalone HTML (``render``) as valid UTF-8 text, also written atomically to ``path`` unless it is
    None; ``inputs``: what the tables were read from, which the write must not replace (``write_atomic``)."""
    from explorer.runtime.console import utf8_text
    from explorer.runtime.output import write_atomic

    # A title that is not UTF-8 (an undecodable argument) shows its bytes escaped: the page is valid UTF-8.
    html = utf8_text(render(document, resources))
    if path is not None:
        write_atomic(path, html, inputs=inputs)
    return html
