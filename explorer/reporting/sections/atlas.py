"""The atlas: the overview of a page of three or more tables, above one table's full sections.

Numbers (every table's scalars in one sortable table; CKA and similarity-correlation heatmaps), the offset
profiles overlaid (a legend entry hides or shows each), and thumbnails on a grid that wraps with the window
(the matrix, the cosine over positions, PCA PC1/PC2). Choosing a thumbnail or a row of the table shows that
table's full sections below (``Page.drill``: the page builder puts them there, one panel per table).
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
from bokeh.events import Tap
from bokeh.layouts import column, row
from bokeh.models import (BasicTicker, ColorBar, ColumnDataSource, CustomJS, DataTable, Div, HoverTool,
                          LinearColorMapper, NumberFormatter, Range1d, StringFormatter, TableColumn)
from bokeh.palettes import Viridis256

from explorer.analysis.resample import block_mean
from explorer.plugins.units import PAGE, Section, SectionContext
from explorer.reporting import encoding, figures
from explorer.reporting.sections.comparison import offsets_overlaid, row_axis, unpaired

#: The scalars of the numbers table, in this order, when the tables have them: (scalar, column title).
COLUMNS = (
    ("translation_invariance", "translation invariance"),
    ("effective_rank", "effective rank"),
    ("neighbour_cosine_mean", "neighbour cosine"),
    ("pca_explained_top3", "PCA top-3 share"),
    ("row_norm_mean", "mean |p_i|"),
    ("probe_absolute_mae", "absolute probe MAE"),
    ("probe_order_error", "order probe error"),
    ("probe_interpolation_mae", "interpolation MAE"),
    ("attention_previous_max", "max previous-token share"),
    ("attention_distance_mean", "mean attention distance"),
)
#: The atlas table's widths: pixels per character of a name, and of a number column.
NAME_PX, NUMBER_PX = 7, 96
#: Thumbnails: images at most this many pixels a side, scatters at most this many points.
THUMB_PIXELS, THUMB_POINTS, THUMB_SIZE = 96, 256, 150

#: Shows table ``chosen``'s panel in place of the one shown, and marks its row (the callers pass ``chosen`` or the row).
_CHOOSE = """
const k = (typeof chosen === 'number') ? chosen : (source.selected.indices.length ? source.selected.indices[0] : -1);
if (k < 0) { return; }
if (view.children[0] !== panels[k]) { view.children = [panels[k]]; }
note.text = notes[k];
if (source.selected.indices.length !== 1 || source.selected.indices[0] !== k) { source.selected.indices = [k]; }
"""
#: On a folder site's index: opens table ``chosen``'s page (or the chosen row's).
_OPEN = """
const k = (typeof chosen === 'number') ? chosen : (source.selected.indices.length ? source.selected.indices[0] : -1);
if (k >= 0) { window.location.href = links[k]; }
"""


def labels_of(page: Any) -> list[str]:
    """``k. label`` for each table (the label names the revision when a series gave several of one model)."""
    return [f"{k + 1}. {page.label_of(k)}" for k in range(page.tables)]


def _number(value: Any) -> float:
    return float(value) if value is not None and np.isfinite(value) else float("nan")


def numbers_table(page: Any, labels: Sequence[str]) -> tuple[DataTable, ColumnDataSource]:
    """Every table's scalars in one table that sorts by any column (click a header)."""
    scalars = [r.scalars() for r in page.results]
    shown = [(key, title) for key, title in COLUMNS if any(key in s for s in scalars)]
    data: dict[str, list] = {"table": list(labels), "index": list(range(page.tables)),
                             "positions": [e.positions for e in page.embeddings],
                             "dims": [e.dim for e in page.embeddings]}
    for key, _ in shown:
        data[key] = [_number(s.get(key)) for s in scalars]
    source = ColumnDataSource(data, name="atlas_numbers_source")
    number = NumberFormatter(format="0.0000", nan_format="n/a")
    # widths are shares of the table's width (Bokeh's default force_fit): the name column's share holds its
    # longest label whole at 1280 px, and the number columns keep what their headers need
    name = max(160, NAME_PX * max(map(len, labels), default=0) + 16)
    columns = [TableColumn(field="table", title="table", formatter=StringFormatter(), width=name),
               TableColumn(field="positions", title="N", formatter=NumberFormatter(format="0"), width=50),
               TableColumn(field="dims", title="D", formatter=NumberFormatter(format="0"), width=40)]
    columns += [TableColumn(field=key, title=title, formatter=number, width=NUMBER_PX) for key, title in shown]
    # Bokeh's default column sizing (autosize_mode "fit_columns" fails in BokehJS 3.9 with a ReferenceError)
    table = DataTable(source=source, columns=columns, sortable=True, selectable=True, index_position=None,
                      height=min(32 + 28 * page.tables, 400), sizing_mode="stretch_width", name="atlas_numbers")
    return table, source


def pair_heatmap(page: Any, labels: Sequence[str], field: str, title: str, low: float, name: str):
    """One pairwise number of every pair as a heatmap (both triangles, 1 on the diagonal), with hover."""
    n = page.tables
    values = np.full((n, n), np.nan)
    np.fill_diagonal(values, 1.0)
    for i, j, pair in page.pairs:
        comparison = pair.get("comparison")
        if comparison is not None:
            values[i, j] = values[j, i] = getattr(comparison, field)
    ticks = [str(k + 1) for k in range(n)]
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    source = ColumnDataSource({"x": [ticks[k] for k in a.ravel()], "y": [ticks[k] for k in b.ravel()],
                               "a": [labels[k] for k in a.ravel()], "b": [labels[k] for k in b.ravel()],
                               "value": values.ravel().astype(np.float32)})
    palette = Viridis256 if low >= 0 else encoding.DIVERGING
    mapper = LinearColorMapper(palette=palette, low=low, high=1.0, nan_color="#eeeeee")
    size = min(420, 120 + 26 * n)
    fig = figures.figure(title, name, size, x_range=ticks, y_range=list(reversed(ticks)), width=size + 60, tools="save",
                         x_axis_location="above", title_size="10pt")
    cells = fig.rect(x="x", y="y", width=1, height=1, source=source, fill_color={"field": "value", "transform": mapper},
             line_color="white")
    fig.add_tools(HoverTool(renderers=[cells],
                            tooltips=[("table A", "@a"), ("table B", "@b"), (title, "@value{0.0000}")]))
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, ticker=BasicTicker(desired_num_ticks=5)), "right")
    fig.grid.visible = False
    fig.axis.major_tick_line_color = None
    return fig


def _thumbnail_figure(title: str, name: str, **kw):
    # no axes (and so no grids, tickers or formatters) are made at all: a thumbnail shows none, and hidden ones
    # were a tenth of an atlas's models
    return figures.figure(title, name, THUMB_SIZE, width=THUMB_SIZE, tools=None, title_size="9pt",
                          x_axis_type=None, y_axis_type=None, **kw)


def _codes(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values as uint8 codes 1..255 over [low, high] (0: NaN), a third of float32's bytes in the file."""
    scaled = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    codes = 1 + np.round(np.nan_to_num(scaled) * 254).astype(np.uint8)
    codes[~np.isfinite(values)] = 0
    return codes


def thumbnails(page: Any, k: int, label: str) -> tuple[Any, list]:
    """Table ``k``'s thumbnails (matrix, cosine over positions, PCA PC1/PC2) under its label (a link to its page on
    a folder site), and the figures."""
    results, figs = page.results[k], []
    mapper = LinearColorMapper(palette=encoding.DIVERGING, low=1, high=255, low_color="#dddddd")
    rows = row_axis(page.embeddings[k])
    flip = rows is not None and rows.reverse  # row 0 at the right (and bottom), as in the table's own sections

    def span() -> Range1d:
        return Range1d(1, 0) if flip else Range1d(0, 1)

    if "matrix" in results:
        image = results["matrix"].values  # dims x positions
        small = block_mean(image, THUMB_PIXELS, THUMB_PIXELS)[0]
        scale = page.matrix_scale_of(k)  # the colours of its full heatmap (symlog for GPT-2)
        fig = _thumbnail_figure("matrix", f"thumb_matrix_{k}", x_range=span(), y_range=Range1d(0, 1))
        fig.image(image=[encoding.quantise(small, scale)], x=0, y=0, dw=1, dh=1, color_mapper=LinearColorMapper(
            palette=encoding.DIVERGING, low=scale.low_code, high=scale.high_code))
        figs.append(fig)
    if "cosine_positions" in results:
        cosine = results["cosine_positions"].values
        small = block_mean(cosine, THUMB_PIXELS, THUMB_PIXELS)[0][::-1]  # position 0 at the top, as in the section
        fig = _thumbnail_figure("cosine over positions", f"thumb_cosine_{k}", x_range=span(), y_range=span())
        fig.image(image=[_codes(small, -1.0, 1.0)], x=0, y=0, dw=1, dh=1, color_mapper=mapper)
        figs.append(fig)
    if results.get("pca") is not None and len(results["pca"].index):
        pca = results["pca"]
        pick = np.unique(np.linspace(0, len(pca.index) - 1, min(THUMB_POINTS, len(pca.index))).astype(int))
        source = ColumnDataSource({"pc1": pca.scores[pick, 0], "pc2": pca.scores[pick, 1],
                                   "position": pca.index[pick].astype(np.int32)})
        fig = _thumbnail_figure("PCA PC1 / PC2", f"thumb_pca_{k}")
        fig.scatter(x="pc1", y="pc2", source=source, size=3, line_color=None,
                    color={"field": "position", "transform": LinearColorMapper(
                        palette=Viridis256, low=0, high=max(1, page.embeddings[k].positions - 1))})
        figs.append(fig)
    text = f"<b style='font-size:10pt'>{html.escape(label)}</b>"
    links = getattr(page, "links", None)
    if links is not None:
        text = f"<a href='{html.escape(links[k], quote=True)}' class='posembed-table-link'>{text}</a>"
    head = figures.div(text, width=3 * THUMB_SIZE + 20,
                     styles={"overflow": "hidden", "white-space": "nowrap", "text-overflow": "ellipsis", "cursor": "pointer"})
    group = column(head, row(*figs, spacing=6) if figs else Div(text="(no thumbnails)"), name=f"thumbs_{k}",
                   styles={"border": "1px solid #ddd", "padding": "6px", "cursor": "pointer"})
    return group, figs


def build(context: SectionContext):
    """The atlas overview; its choices show one table's panel of full sections (``page.drill``), or open its page
    on a folder site (``page.links``)."""
    page = context.page
    if not getattr(page, "atlas", False):
        return None
    labels = labels_of(page)
    table, source = numbers_table(page, labels)
    notes = [f"<h2 style='margin:1em 0 0 0'>{html.escape(label)}: every section</h2>"
             "<p style='color:#555;margin:0'>Choose a thumbnail or a row of the table above to show another.</p>"
             for label in labels]
    note = figures.div(notes[0], sizing_mode="stretch_width", name="atlas_chosen")
    args = {"panels": page.drill, "view": page.drill_view, "source": source, "note": note, "notes": notes}
    code = _CHOOSE
    if getattr(page, "links", None) is not None:  # a folder site's index: each table has a page of its own
        args, code = {"source": source, "links": page.links}, _OPEN
    else:
        page.drill_heading = note  # the page builder puts it above the panels
    source.selected.js_on_change("indices", CustomJS(args={**args, "chosen": None}, code=code))
    groups = []
    for k, label in enumerate(labels):
        group, figs = thumbnails(page, k, label)
        choose = CustomJS(args={**args, "chosen": k}, code=code)
        for fig in figs:
            fig.js_on_event(Tap, choose)
        groups.append(group)
    # a row whose flex box wraps (Bokeh's Row is a CSS flex box; its children keep their fixed widths)
    grid = row(*groups, spacing=10, sizing_mode="stretch_width", name="atlas_thumbnails",
               styles={"flex-wrap": "wrap", "row-gap": "10px"})
    protocol = next((r["probes"].protocol for r in page.results if r.get("probes") is not None), None)
    parts = [
        table,
        figures.caption(
            "Every table's numbers (docs/analyses.md has each formula); click a header to sort, a row to "
            + ("open that table's page." if getattr(page, "links", None) is not None else
               "show that table's sections below.") + (f" Probes by the {protocol} protocol (--probe-protocol)." if protocol else "")
            + " n/a: not defined for that table."),
    ]
    if page.pairs:
        parts += [
            figures.side_by_side(
                pair_heatmap(page, labels, "cka", "linear CKA", 0.0, "atlas_cka"),
                pair_heatmap(page, labels, "similarity_correlation", "similarity correlation", -1.0,
                             "atlas_similarity_correlation")),
            figures.caption(
                "Each pair of tables on the positions both have (the first min(N_a, N_b) rows). Linear CKA "
                "(Kornblith et al. 2019) = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F), A and B centred: 1 when the "
                "tables agree up to rotation and scale. Similarity correlation: Pearson r between the two "
                "position-cosine images above the diagonal. The axes number the tables as in the table above."
                + unpaired(page)),
        ]
    parts += offsets_overlaid(page, labels, hideable=True)
    parts += [figures.heading("thumbnails"), grid, figures.caption(
        "Each table's matrix (on its own colour scale), cosine over positions (position 0 at the top left) and PCA "
        "PC1 / PC2 (coloured by position), small. The grid wraps with the window; click one to "
        + ("open the table's page." if getattr(page, "links", None) is not None else
           "show the table's sections below."))]
    return figures.stack(*parts, name="atlas")


SECTION = Section("atlas", "atlas", build, order=2, scope=PAGE, min_tables=3)
