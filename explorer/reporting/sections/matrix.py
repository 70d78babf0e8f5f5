"""The table as a heatmap: positions across, dimensions up, one colour per value."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from bokeh.layouts import column

from explorer.reporting import views
from explorer.units import Section, SectionContext


class Heatmap(NamedTuple):
    """The matrix heatmap of one table, shared by the pickers (which decode its codes in the browser)."""

    figure: Any
    source: Any  # the image's ColumnDataSource
    codes: np.ndarray
    scale: views.CodeScale
    precision: str  # how far decoded values may be from the table's block means


def heatmap(context: SectionContext) -> Heatmap:
    """The table's heatmap, built once per table for every section that reads it."""
    def make() -> Heatmap:
        img, scale = context.results["matrix"], context.page.matrix_scale
        codes = views.quantise(img.values, scale)
        fig, source = views.matrix_heatmap(img, scale, context.page.positions, width=context.page.wide, codes=codes)
        return Heatmap(fig, source, codes, scale, scale_text(scale, img.values, context.page.tables > 1)[1])
    return context.memo("heatmap", make)


def scale_text(scale: views.CodeScale, values: np.ndarray, several: bool) -> tuple[str, str]:
    """The caption's account of the colour scale, and the precision of values decoded from its codes."""
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


def build(context: SectionContext):
    """The heatmap with its caption."""
    img = context.results["matrix"]
    shown = heatmap(context)
    range_text, _ = scale_text(shown.scale, img.values, context.page.tables > 1)
    note = views.block_note(img.position_bounds, "positions") + views.block_note(img.dimension_bounds, "dimensions")
    return column(shown.figure, views.caption(
        "Each column is one position's vector p_i, each row one dimension; colour is the value, blue negative, "
        "red positive. " + range_text + note, width=context.page.wide))


SECTION = Section("matrix", "the matrix", build, order=20, needs=("matrix",))
