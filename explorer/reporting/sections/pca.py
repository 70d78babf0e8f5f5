"""Principal components: explained variance, and the positions' scores on PC1/PC2 and PC2/PC3."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import BoxSelectTool, ColorBar, ColumnDataSource, HoverTool, LassoSelectTool, Range1d
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


def pca_scatters(pca, positions: int, mapper_high: int | None = None,
                 rows: RowAxis | None = None) -> tuple[Any, Any]:
    """PC1/PC2 and PC2/PC3 scores of the positions (or the rows of ``rows``), coloured by row; selection is
    shared (one source)."""
    source = ColumnDataSource({"position": pca.index.astype(np.int32), "pc1": pca.scores[:, 0],
                               "pc2": pca.scores[:, 1], "pc3": pca.scores[:, 2],
                               **({"label": row_text(rows, pca.index)} if rows is not None else {})})
    colour = linear_cmap("position", Viridis256, 0, max(1, mapper_high or positions) - 1)
    figs = []
    for a, b in (("pc1", "pc2"), ("pc2", "pc3")):
        fig = figure(f"{a.upper()} / {b.upper()}", f"pca_{a}_{b}", SIZE - 60,
                      x_axis_label=a.upper(), y_axis_label=b.upper())
        renderer = fig.scatter(x=a, y=b, source=source, color=colour, size=4, line_color=None,
                               selection_line_color="black", nonselection_alpha=0.08)
        fig.add_tools(HoverTool(renderers=[renderer], tooltips=[(row_word(rows), "@position" if rows is None else "@label"),
                                                                 (a.upper(), f"@{a}{{0.000}}"),
                                                                 (b.upper(), f"@{b}{{0.000}}")]))
        fig.add_tools(BoxSelectTool(), LassoSelectTool())
        figs.append(fig)
    bar = ColorBar(color_mapper=colour.transform, width=10, title=row_word(rows))
    label_rows(bar, rows, POINTS)
    figs[1].add_layout(bar, "right")
    return figs[0], figs[1]


def build(context: SectionContext):
    """The bars, the two linked scatters and the caption."""
    pca, n = context.results["pca"], context.embedding.positions
    rows = context.embedding.rows
    pc12, pc23 = pca_scatters(pca, n, context.page.max_positions if rows is None else n, rows)
    item = row_kind(context)
    shown = f"all {item}s" if len(pca.index) >= n else f"{len(pca.index)} evenly spaced {item}s"
    top3 = float(np.sum(pca.explained[:3])) * 100
    return figures.stack(figures.side_by_side(pca_explained(pca), pc12, pc23, spacing=16), figures.caption(
        f"PCA of the {item} vectors centred over {item}s (X_c = X - mean row). Bars: share of variance "
        "lambda_k / sum lambda of each top component (line: cumulative; the top three hold "
        f"{top3:.1f}%). Scatters: the scores X_c v_k of {shown}, coloured by {item}"
        + ("" if rows is None else f" (the colour bar is labelled by {rows.name})")
        + f". Select with the box or lasso tool in either scatter: the same {item}s light up in the other."))


SECTION = Section("pca", "principal components", build, order=80, needs=("pca",))
