"""Principal components: explained variance, and the positions' scores on PC1/PC2 or PC2/PC3 (one figure)."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import BoxSelectTool, ColorBar, ColumnDataSource, DataRange1d, HoverTool, LassoSelectTool, Range1d
from bokeh.palettes import Viridis256
from bokeh.transform import linear_cmap

from explorer.core.embedding import RowAxis

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import SIZE, figure, legend_outside
from explorer.reporting.rows import POINTS, label_rows, row_text, row_word
from explorer.reporting.sections.matrix import row_kind


def pca_explained(pca) -> Any:
    """The share of variance on each of the top principal components."""
    k = np.arange(1, len(pca.explained) + 1, dtype=np.int32)
    source = ColumnDataSource({"component": k, "share": pca.explained,
                               "cumulative": np.cumsum(pca.explained, dtype=np.float32)})
    fig = figure("PCA: explained variance", "pca_explained", SIZE - 60, x_axis_label="component",
                  y_axis_label="share of variance", y_range=Range1d(0, 1.02))
    fig.vbar(x="component", top="share", width=0.8, source=source, color="#6baed6", legend_label="share")
    fig.line(x="component", y="cumulative", source=source, color="#08519c", legend_label="cumulative")
    fig.scatter(x="component", y="cumulative", source=source, color="#08519c", size=4, legend_label="cumulative")
    fig.add_tools(HoverTool(tooltips=[("PC", "@component"), ("share", "@share{0.0000}"),
                                      ("cumulative", "@cumulative{0.0000}")]))
    legend_outside(fig)
    fig.xaxis.ticker.desired_num_ticks = len(k) or 1
    return fig


#: The pairs of components the scores figure shows, one at a time.
PAIRS = (("pc1", "pc2"), ("pc2", "pc3"))


def pca_scores(pca, positions: int, mapper_high: int | None = None, rows: RowAxis | None = None) -> tuple[Any, Any]:
    """The scores of the positions (or the rows of ``rows``) on PC1/PC2 or PC2/PC3, coloured by row: one figure
    whose axes follow the pair shown, and the buttons above it that choose the pair (both scatters read one source,
    so a selection made in one is there in the other). Returns (buttons, figure)."""
    source = ColumnDataSource({"position": pca.index.astype(np.int32), "pc1": pca.scores[:, 0],
                               "pc2": pca.scores[:, 1], "pc3": pca.scores[:, 2],
                               **({"label": row_text(rows, pca.index)} if rows is not None else {})})
    colour = linear_cmap("position", Viridis256, 0, max(1, mapper_high or positions) - 1)
    titles = [f"{a.upper()} / {b.upper()}" for a, b in PAIRS]
    fig = figure(titles[0], "pca_scores", SIZE - 60, x_axis_label=PAIRS[0][0].upper(),
                  y_axis_label=PAIRS[0][1].upper(), x_range=DataRange1d(only_visible=True),
                  y_range=DataRange1d(only_visible=True))
    views = {title: [fig.scatter(x=a, y=b, source=source, color=colour, size=4, line_color=None,
                                 selection_line_color="black", nonselection_alpha=0.08)]
             for title, (a, b) in zip(titles, PAIRS)}
    hover = HoverTool(tooltips=[(row_word(rows), "@position" if rows is None else "@label"),
                                *((pc.upper(), f"@{pc}{{0.000}}") for pc in ("pc1", "pc2", "pc3"))])
    fig.add_tools(hover, BoxSelectTool(), LassoSelectTool())
    bar = ColorBar(color_mapper=colour.transform, width=10, title=row_word(rows))
    label_rows(bar, rows, POINTS)
    fig.add_layout(bar, "right")
    buttons = figures.switch(fig, views, titles, hover=hover,
                             axis_labels=[(a.upper(), b.upper()) for a, b in PAIRS], name="pca_pair")
    return buttons, fig


def build(context: SectionContext):
    """The bars, the scores with the buttons that choose their pair, and the caption."""
    pca, n = context.results["pca"], context.embedding.positions
    rows = context.embedding.rows
    buttons, scores = pca_scores(pca, n, context.page.max_positions if rows is None else n, rows)
    item = row_kind(context)
    shown = f"all {item}s" if len(pca.index) >= n else f"{len(pca.index)} evenly spaced {item}s"
    top3 = float(np.sum(pca.explained[:3])) * 100
    return figures.stack(figures.side_by_side(pca_explained(pca), figures.stack(buttons, scores), spacing=16),
                         figures.caption(
        f"PCA of the {item} vectors centred over {item}s (X_c = X - mean row). Bars: share of variance "
        "lambda_k / sum lambda of each top component (line: cumulative; the top three hold "
        f"{top3:.1f}%). Scatter: the scores X_c v_k of {shown} on PC1/PC2 or PC2/PC3 (the buttons choose), "
        f"coloured by {item}" + ("" if rows is None else f" (the colour bar is labelled by {rows.name})")
        + f". Select with the box or lasso tool: the same {item}s stay selected when the other pair is shown."))


SECTION = Section("pca", "principal components", build, order=80, needs=("pca",))
