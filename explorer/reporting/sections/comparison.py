"""The pairwise numbers of a comparison page, and the tables' offset profiles overlaid."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.palettes import Category10_10

from explorer.plugins.units import PAGE, Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import SIZE, figure, legend_outside


def build(context: SectionContext):
    """A table of each pair's CKA and similarity correlation, and one plot of every offset profile."""
    page = context.page
    if getattr(page, "atlas", False):  # the atlas shows these numbers as heatmaps, and the profiles overlaid
        return None
    labels = [f"{k + 1}. {page.label_of(k)}" for k in range(page.tables)]
    rows = [(labels[i], labels[j], c.positions, c.cka, c.similarity_correlation)
            for i, j, pair in page.pairs if (c := pair.get("comparison")) is not None]
    parts = []
    if rows:
        parts += [
            figures.number_grid("pairwise comparison", ("table A", "table B", "common positions", "linear CKA",
                                                       "similarity correlation"), rows, name="comparison"),
            figures.caption(
                "On the positions both tables have (the first min(N_a, N_b) rows). Linear CKA (Kornblith et al. "
                "2019) = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F) with A, B centred over positions: 1 when the "
                "tables agree up to rotation and scale, whatever their widths. Similarity correlation: Pearson r "
                "between the two position-cosine images, over the cells above the diagonal." + unpaired(page)),
        ]
    elif unpaired(page):
        parts.append(figures.caption("No pairwise numbers (CKA, similarity correlation)." + unpaired(page)))
    parts += offsets_overlaid(page, labels)
    return figures.stack(*parts) if parts else None


def row_axis(term):
    """A table's ``rows`` (``PositionEmbedding.rows``); None for a relative term, whose rows are heads."""
    return getattr(term, "rows", None)


def unpaired(page) -> str:
    """A caption sentence naming the tables left out of the pairs because their rows are not positions (empty when
    every table's rows mean the same)."""
    odd = [str(k + 1) for k, e in enumerate(page.embeddings) if row_axis(e) is not None]
    if not odd or all(row_axis(e) == row_axis(page.embeddings[0]) for e in page.embeddings):
        return ""
    many = len(odd) > 1
    names = ", ".join(dict.fromkeys(page.embeddings[int(k) - 1].rows.name for k in odd))
    return (f" Table{'s' if many else ''} {', '.join(odd)} {'have' if many else 'has'} rows that are not positions "
            f"({names}), so {'they are' if many else 'it is'} paired only with tables whose rows mean the same.")


def offsets_overlaid(page, labels: list[str], hideable: bool = False) -> list:
    """The offset profiles m(k) of every table with one, on one plot with its caption (also the atlas's); with
    ``hideable`` a click on a legend entry hides or shows its table."""
    offsets = [(label, r["offset"]) for label, r in zip(labels, page.results) if "offset" in r]
    if not offsets:
        return []
    overlay = offset_overlay([label for label, _ in offsets], [o for _, o in offsets])
    text = "The offset profiles m(k) of every table on one axis (each over its own positions)."
    text += "".join(f" {label} counts k in rows ({e.rows.name}), not positions." for label, e, r
                    in zip(labels, page.embeddings, page.results) if row_axis(e) is not None and "offset" in r)
    if hideable:
        overlay.legend.click_policy = "hide"
        text += " Click a legend entry to hide or show its table."
    return [overlay, figures.caption(text)]


def offset_overlay(labels: Sequence[str], offsets: Sequence) -> Any:
    """The offset profiles m(k) of several tables on one plot."""
    n = max((int(o.lag[-1]) + 1 for o in offsets if len(o.lag)), default=1)
    fig = figure("offset profiles overlaid", "offset_overlay", SIZE - 60, x_range=Range1d(0, n),
                  x_axis_label="offset k (positions apart)", y_axis_label="mean cosine m(k)")
    for k, (label, o) in enumerate(zip(labels, offsets)):
        source = ColumnDataSource({"lag": o.lag.astype(np.int32), "mean": o.mean})
        fig.line(x="lag", y="mean", source=source, color=Category10_10[k % 10], line_width=1.8, legend_label=label)
    fig.add_tools(HoverTool(tooltips=[("k", "@lag"), ("m(k)", "@mean{0.0000}")]))
    legend_outside(fig, "right" if len(labels) > 3 else "below")
    return fig


SECTION = Section("comparison", "comparison", build, order=5, scope=PAGE, min_tables=2)
