"""Assemble the views of one or more tables into one standalone HTML page.

One table: its views top to bottom, each with a caption. Several tables: the same views side by side
(one column per table), with one colour scale per kind of image, position axes linked across every
position plot of every table, a table of pairwise comparison numbers and the offset profiles overlaid.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Sequence

import numpy as np
from bokeh.document import Document
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.embed.elements import html_page_for_render_items
from bokeh.embed.util import RenderItem, standalone_docs_json_and_render_items
from bokeh.layouts import column, row
from bokeh.models import Div, Range1d
from bokeh.resources import CDN, INLINE
from bokeh.settings import settings
from bokeh.util.serialization import make_globally_unique_css_safe_id

from explorer import background
from explorer.analysis import Analysis
from explorer.embedding import PositionEmbedding
from explorer.errors import OutputError
from explorer.reporting import views

if TYPE_CHECKING:
    from explorer.analysis import Comparison, MatrixImage
    from explorer.reporting.views import CodeScale, Unpacker

RESOURCES = ("inline", "cdn")


def _resources(kind: str):
    if kind not in RESOURCES:
        raise OutputError(f"resources must be one of {', '.join(RESOURCES)}, got {kind!r}")
    return INLINE if kind == "inline" else CDN


@dataclass
class Shared:
    """What every table on a page shares: linked ranges, one matrix colour scale, the image unpacker."""

    positions: object  # Range1d over positions, linked across every position axis
    positions_down: object  # the same span, flipped, for the y axis of position-cosine images
    lags: object
    matrices: Sequence[MatrixImage]
    unpacker: Unpacker
    max_positions: int
    tables: int

    @cached_property
    def scale(self) -> CodeScale:
        """The matrix heatmaps' one colour scale (computed only by a part of the page that shows them)."""
        return views.matrix_scale(self.matrices)


def shared_for(results: Sequence[Analysis]) -> Shared:
    """The linked ranges and shared colour scale for the tables of one page."""
    n = max(int(r.matrix.position_bounds[-1]) for r in results)
    return Shared(Range1d(0, n, name="positions_range"), Range1d(n, 0), Range1d(0, n),
                  [r.matrix for r in results], views.Unpacker(), n, len(results))


def _block_note(bounds: np.ndarray, what: str, pairs: bool = False) -> str:
    """A caption sentence for block-averaged views (empty when every block holds one item)."""
    sizes = np.diff(bounds)
    if sizes.max(initial=1) <= 1:
        return ""
    size = int(round(sizes.mean()))
    block = f"{size} x {size} pairs of {what}" if pairs else f"{size} {what}"
    return f" There are more {what} than the display resolution, so each pixel is a mean over a block of about {block}."


def _fmt(value: float, digits: str = ".3g") -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, digits)


def _scale_text(scale: CodeScale, values: np.ndarray, several: bool) -> tuple[str, str]:
    """The caption's account of the matrix colour scale, and the precision of values decoded from its codes."""
    over = " over all tables shown" if several else ""
    if scale.kind == "symlog":
        ratio = float(np.exp(np.log(scale.extreme / scale.linthresh) / (views.LEVELS // 2 - 16))) - 1
        if views.heavy_tailed(values) is not None:
            text = (
                f"Colour follows a symmetric log scale: linear within \u00b1{scale.linthresh:.2g} (the median "
                f"|value|{over}), logarithmic beyond, out to the largest magnitude \u00b1{scale.extreme:.3g}. This "
                f"table's magnitudes span orders (a few large-magnitude outlier dimensions reach "
                f"{float(np.nanmax(np.abs(values))):.2g}, while most cells are tiny), so a linear range would leave "
                "most dimensions white; read colours as orders of magnitude and hover for values."
            )
        else:
            text = (
                "Colour follows the symmetric log scale shared by every table on this page (linear within "
                f"\u00b1{scale.linthresh:.2g}, logarithmic out to \u00b1{scale.extreme:.3g}), because another "
                "table's magnitudes span orders; this table's own values are not heavy-tailed, so most of its cells "
                "sit at the strong ends of the scale: read colours as orders of magnitude and hover for values."
            )
        return text, (f"accurate to about \u00b1{ratio * 50:.1f}% of the value (\u00b1{scale.linthresh / 32:.1g} "
                      "near zero)")
    inner_step = float(scale.table[scale.low_code + 1] - scale.table[scale.low_code])
    if scale.saturates:
        beyond = float(np.mean(np.abs(values) > scale.limit)) * 100
        tail_step = float(np.max(np.diff(scale.table[:scale.low_code + 1])))
        text = (
            f"The colour range is symmetric, \u00b1{scale.limit:.3g}: the {views.ROBUST_QUANTILE:g}th percentile "
            f"of |value|{over}, so a few large-magnitude outliers cannot wash out the rest. {beyond:.2g}% of the "
            f"cells here lie beyond it and show in the end colours; their hover still gives the value "
            f"(to \u00b1{tail_step / 2:.2g})."
        )
    else:
        text = f"The colour range is symmetric, \u00b1{scale.limit:.3g} (the largest magnitude{over})."
    return text, f"accurate to \u00b1{inner_step / 2:.2g} inside the colour range"


def _default_dims(decoded: np.ndarray, bounds: np.ndarray, evenly: np.ndarray) -> tuple[list[int], str]:
    """The traces shown first: the analysis's evenly spread dimensions, unless a few dimensions carry far more
    spread than the typical one, in which case the four with the largest spread (else they would look flat)."""
    spread = decoded.std(axis=1)
    if len(spread) > 4 and spread.max() > 4 * np.median(spread):
        top = np.sort(np.argsort(spread)[-4:])
        return [int(bounds[b]) for b in top], " Shown first: the four dimensions with the largest spread."
    return [int(d) for d in evenly], " Shown first: four dimensions spread evenly over the width."


def table_sections(embedding: PositionEmbedding, result: Analysis, shared: Shared,
                   keys: Sequence[str] | None = None) -> dict[str, object]:
    """The views of one table in the sections ``keys`` (default: every section), each a column of figure(s) and
    caption, keyed by section."""
    from explorer.analysis.probes import MIN_POSITIONS

    keys = tuple(SECTION_TITLES) if keys is None else tuple(keys)
    cap = views.caption
    wide = 2 * views.SIZE + 70
    img = result.matrix
    n, d = embedding.positions, embedding.dim
    sections: dict[str, object] = {}

    if "header" in keys:
        extra = {
            "translation invariance": _fmt(result.translation_invariance, ".4f"),
            "effective rank": _fmt(result.spectrum.effective_rank, ".1f"),
            "|mean position vector|": _fmt(result.pca.mean_norm, ".4g"),
        }
        sections["header"] = views.provenance_header(embedding, result.summary, extra, width=wide)

    if HEATMAP_VIEWS & set(keys):
        scale = shared.scale
        matrix_note = _block_note(img.position_bounds, "positions") + _block_note(img.dimension_bounds, "dimensions")
        codes = views.quantise(img.values, scale)
        decoded = views.decode(codes, scale)
        heat, source = views.matrix_heatmap(img, scale, shared.positions, width=wide, codes=codes)
        range_text, precision = _scale_text(scale, img.values, shared.tables > 1)
        sections["matrix"] = column(heat, cap(
            "Each column is one position's vector p_i, each row one dimension; colour is the value, blue negative, "
            "red positive. " + range_text + matrix_note, width=wide))

        dims, spread_note = _default_dims(decoded, img.dimension_bounds, result.traces.dims)
        choice, traces = views.dimension_traces(img, source, scale, dims, shared.positions, width=wide)
        sections["traces"] = column(choice, traces, cap(
            "Dimension traces: each chosen dimension's value across positions. Pick dimensions in the box (type a "
            "number to search; click x to remove)." + spread_note + " The lines are decoded in the browser from the matrix heatmap's "
            f"8-bit codes, so the picker adds no data to the file: {precision}."
            + _block_note(img.position_bounds, "positions").replace("each pixel", "each point"), width=wide))

        choice, vectors = views.position_vectors(img, source, scale, [0, n // 2, n - 1], width=wide)
        sections["vectors"] = column(choice, vectors, cap(
            "Position vectors: each chosen position's value in every dimension (a column of the heatmap). Pick "
            f"positions in the box. Decoded from the heatmap's codes like the traces: {precision}."
            + _block_note(img.position_bounds, "positions").replace("each pixel", "a choice"), width=wide))

    if "cosine_positions" in keys:
        down = shared.positions_down
        sections["cosine_positions"] = row(
            column(views.similarity_heatmap(result.positions, shared.unpacker, shared.positions, down), cap(
                "cos(p_i, p_j) = p_i\u00b7p_j / (|p_i||p_j|) for every pair of positions; colour range [-1, 1]."
                + _block_note(result.positions.bounds, "positions", pairs=True))),
            column(views.similarity_heatmap(result.positions_centred, shared.unpacker, shared.positions, down), cap(
                "The same after subtracting the mean position vector from every row: the structure left once the "
                "offset all positions share is removed (it matters when |mean position vector| is large next to "
                "the row norms)."
                + _block_note(result.positions_centred.bounds, "positions", pairs=True))),
        )

    if "cosine_dimensions" in keys:
        sections["cosine_dimensions"] = row(
            column(views.similarity_heatmap(result.dimensions, shared.unpacker), cap(
                "Cosine between dimension columns (each a vector over all positions): which dimensions move together."
                + _block_note(result.dimensions.bounds, "dimensions", pairs=True))),
            column(views.similarity_heatmap(result.dimensions_centred, shared.unpacker), cap(
                "The same with each column centred over positions first, i.e. the Pearson correlation between "
                "dimensions." + _block_note(result.dimensions_centred.bounds, "dimensions", pairs=True))),
        )

    if "offset_norms" in keys:
        off = result.offset
        lag_note = "" if len(off.lag) >= n else f" Shown at {len(off.lag)} lags, the first lag of each block."
        sections["offset_norms"] = row(
            column(views.offset_profile(off, shared.lags), cap(
                "m(k) = mean over i of cos(p_i, p_i+k), with a band of \u00b1 s(k), the standard deviation over i. A "
                "narrow band means similarity depends on the distance alone. Translation invariance "
                f"TI = 1 - ||C - T(m)||_F / ||C||_F = {_fmt(result.translation_invariance, '.3f')} (1: the cosine "
                "matrix C is fully described by m)." + lag_note
                + (" s(k) uses a sample of starting positions." if off.sampled else ""))),
            column(views.row_norms(result.norms, shared.positions), cap(
                f"|p_i|, the Euclidean length of each position vector: mean {result.norms.mean:.4g}, min "
                f"{result.norms.min:.4g}, max {result.norms.max:.4g}."
                + ("" if len(result.norms.index) >= n else " Long tables show the min-max band of each block."))),
        )

    if "pca" in keys:
        pca = result.pca
        pc12, pc23 = views.pca_scatters(pca, n, shared.max_positions)
        shown = "all positions" if len(pca.index) >= n else f"{len(pca.index)} evenly spaced positions"
        top3 = float(np.sum(pca.explained[:3])) * 100
        sections["pca"] = column(row(views.pca_explained(pca), pc12, pc23), cap(
            "PCA of the position vectors centred over positions (X_c = X - mean row). Bars: share of variance "
            "lambda_k / sum lambda of each top component (line: cumulative; the top three hold "
            f"{top3:.1f}%). Scatters: the scores X_c v_k of {shown}, coloured by position. Select with the box or "
            "lasso tool in either scatter: the same positions light up in the other.", width=wide))

    if "spectra" in keys:
        spec = result.spectrum
        sections["spectra"] = row(
            column(views.singular_values(spec), cap(
                "Singular values s_k of the raw table (not centred), descending. Effective rank exp(H(p)) with "
                f"p_k = s_k / sum s (Roy & Vetterli 2007): {_fmt(spec.effective_rank, '.1f')} of a possible "
                f"{min(n, d)}.")),
            column(views.dimension_frequencies(result.frequencies), cap(
                "Per-dimension spectrum: each dimension's dominant frequency (the strongest rfft bin of its centred "
                "column, refined between bins), shown as its wavelength 1/frequency in positions; colour is the share "
                "of the column's variance in that bin. A wavelength near the table length means slower than the "
                "table can resolve; a sinusoidal table shows a geometric ladder.")),
        )

    if "probes" in keys:
        probes = result.probes
        if probes is None:
            probe_view = views.caption(f"Probes: not run, the table has fewer than {MIN_POSITIONS} positions.", wide)
        else:
            probe_view = column(
                views.number_table("linear probes", ("probe", "held-out error", "reference"), [
                    ("absolute position (MAE, positions)", probes.absolute_mae,
                     f"predicting the mean: {probes.absolute_baseline:.4g}"),
                    ("relative order (error rate)", probes.order_error, f"chance: 0.5 ({probes.order_pairs} pairs)"),
                    ("interpolation (MAE on odd positions)", probes.interpolation_mae, "trained on even positions"),
                ], name="probes", width=wide),
                cap("How much position a linear read-out recovers (after Wang & Chen 2020): ridge regression from "
                    "p_i to i with 5-fold cross-validation (mean |round(prediction) - i|); logistic regression on "
                    "[p_i; p_j] predicting j > i, scored on held-out pairs; the same ridge fitted on even positions "
                    "and scored on odd ones. Ridge penalty "
                    f"{probes.ridge:g} x trace(X_c^T X_c) / D.", width=wide),
            )
        sections["probes"] = probe_view

    return {key: sections[key] for key in keys}


def comparison_section(embeddings: Sequence[PositionEmbedding], results: Sequence[Analysis],
                       comparisons: Sequence[tuple[int, int, Comparison]]):
    """The pairwise numbers and the offset profiles overlaid."""
    wide = 2 * views.SIZE + 70
    labels = [f"{k + 1}. {e.label}" for k, e in enumerate(embeddings)]
    rows = [(labels[i], labels[j], c.positions, c.cka, c.similarity_correlation) for i, j, c in comparisons]
    return column(
        views.heading("comparison", wide),
        views.number_table("pairwise comparison", ("table A", "table B", "common positions", "linear CKA",
                                                   "similarity correlation"), rows, name="comparison", width=wide),
        views.caption(
            "On the positions both tables have (the first min(N_a, N_b) rows). Linear CKA (Kornblith et al. "
            "2019) = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F) with A, B centred over positions: 1 when the tables "
            "agree up to rotation and scale, whatever their widths. Similarity correlation: Pearson r between the "
            "two position-cosine images, over the cells above the diagonal.", wide),
        views.offset_overlay(labels, [r.offset for r in results], width=wide),
        views.caption("The offset profiles m(k) of every table on one axis (each over its own positions).", wide),
    )


#: The page's sections in order, with their headings. build_page builds the page in two parts at once (see
#: there): FIRST_PART holds every view with a position axis (their ranges are linked, and both pickers decode
#: the matrix heatmap's codes), the rest are independent of it.
SECTION_TITLES = {
    "header": None,
    "matrix": "the matrix",
    "traces": "dimension traces",
    "vectors": "position vectors",
    "cosine_positions": "cosine similarity over positions",
    "offset_norms": "offset profile and row norms",
    "cosine_dimensions": "cosine similarity across dimensions",
    "pca": "principal components",
    "spectra": "spectra",
    "probes": "probes",
}
FIRST_PART = ("header", "matrix", "traces", "vectors", "cosine_positions", "offset_norms")
SECOND_PART = tuple(key for key in SECTION_TITLES if key not in FIRST_PART)
#: Built together: the traces and vectors read the matrix heatmap's source.
HEATMAP_VIEWS = {"matrix", "traces", "vectors"}


def page_title(embeddings: Sequence[PositionEmbedding]) -> str:
    """The default title: the tables' labels."""
    return "posembed: " + " vs ".join(e.label for e in embeddings)


def build_document(
    embeddings: Sequence[PositionEmbedding],
    results: Sequence[Analysis],
    *,
    comparisons: Sequence[tuple[int, int, Comparison]] = (),
    title: str | None = None,
    sections: Sequence[str] = tuple(SECTION_TITLES),
):
    """The Bokeh document of the report: the views of every table in ``sections`` (default: all), with captions.

    The page's title and the comparison of several tables open the part that holds the "header" section.
    """
    from explorer import __version__

    title = title or page_title(embeddings)
    shared = shared_for(results)
    per_table = [table_sections(e, r, shared, sections) for e, r in zip(embeddings, results)]
    body: list = []
    if "header" in sections:
        intro = (f"{len(embeddings)} tables side by side: shared colour scales, position axes linked across plots."
                 if len(embeddings) > 1 else "Hover any plot for values; the tools above each plot pan, zoom and save.")
        body.append(Div(
            text=f"<h1 style='margin-bottom:0.2em'>{html.escape(title)}</h1><p style='color:#555'>posembed-explorer "
                 f"{html.escape(__version__)}. {html.escape(intro)}</p>",
            name="title",
        ))
        if len(embeddings) > 1 and comparisons:
            body.append(comparison_section(embeddings, results, comparisons))
    for key in sections:
        if SECTION_TITLES[key]:
            body.append(views.heading(SECTION_TITLES[key], 2 * views.SIZE))
        blocks = [parts[key] for parts in per_table]
        body.append(row(*blocks, spacing=40) if len(blocks) > 1 else blocks[0])
    layout = column(*body)
    views.share_models(layout)
    doc = Document()
    doc.add_root(layout)
    doc.js_on_event("document_ready", shared.unpacker.callback())
    return doc


def build_page(
    embeddings: Sequence[PositionEmbedding],
    results: Sequence[Analysis],
    *,
    comparisons: Sequence[tuple[int, int, Comparison]] = (),
    title: str | None = None,
    resources: str = "inline",
) -> str:
    """The standalone HTML of the report (Bokeh JS inline by default, so it renders offline).

    Building and serialising Bokeh models is pure Python and most of a report's time, so the page is made in
    two parts at once: a forked child (``explorer.background``; in-process where forking is unsafe) builds and
    serialises the sections of ``SECOND_PART`` while this process builds ``FIRST_PART``. The two parts share no
    model; their JSON becomes one Bokeh document with two roots, shown one under the other.
    """
    res = _resources(resources)
    title = title or page_title(embeddings)
    second = background.start(_second_part, embeddings, results, title, task="page-building")
    try:
        # Bokeh's integrity checks cost a large share of the build; the tests run them (test_report_html).
        settings.perform_document_validation.set_value(False)
        try:
            first = build_document(embeddings, results, comparisons=comparisons, title=title, sections=FIRST_PART)
            docs_json, [item] = standalone_docs_json_and_render_items(first)
            bundle = bundle_for_objs_and_resources([first], res)
        finally:
            settings.perform_document_validation.unset_value()
        part, root_id, root_name = second.result()
    finally:
        second.cancel()
    (docid, doc_json), = docs_json.items()
    doc_json["roots"] = [*doc_json["roots"], *part["roots"]]
    doc_json["callbacks"] = _merged_callbacks(doc_json.get("callbacks"), part.get("callbacks"))
    roots = {_Root(root.id, root.name): root.elementid for root in item.roots}
    roots[_Root(root_id, root_name)] = make_globally_unique_css_safe_id()
    return html_page_for_render_items(bundle, docs_json, [RenderItem(docid, roots=roots)], title=title)


@dataclass(frozen=True)
class _Root:
    """Stands for a root in the page's render item, which only reads its id, name and tags."""

    id: str
    name: str | None
    tags: tuple = ()


def _second_part(embeddings: Sequence[PositionEmbedding], results: Sequence[Analysis], title: str) -> tuple:
    """The JSON of a document with the sections of ``SECOND_PART``, and its root's id and name.

    Its models get globally unique ids: the first part, built meanwhile in the other process, counts the
    same short ids up from the same start.
    """
    settings.simple_ids.set_value(False)
    settings.perform_document_validation.set_value(False)
    try:
        doc = build_document(embeddings, results, title=title, sections=SECOND_PART)
        [root] = doc.roots
        return doc.to_json(deferred=False), root.id, root.name
    finally:
        settings.simple_ids.unset_value()
        settings.perform_document_validation.unset_value()


def _merged_callbacks(first: dict | None, second: dict | None) -> dict:
    """Both parts' document callbacks (Bokeh's serialised map of event name -> list of callbacks)."""
    merged: dict[str, list] = {}
    for part in (first, second):
        for event, callbacks in (part or {}).get("entries", []):
            merged.setdefault(event, []).extend(callbacks)
    return {"type": "map", "entries": [[event, callbacks] for event, callbacks in merged.items()]}
