"""Dimension traces: chosen dimensions' values across positions, with a picker."""

from __future__ import annotations

import numpy as np
from bokeh.layouts import column

from explorer.reporting import views
from explorer.reporting.sections.matrix import heatmap
from explorer.units import Section, SectionContext


def initial_dims(decoded: np.ndarray, bounds: np.ndarray, evenly: np.ndarray) -> tuple[list[int], str]:
    """The traces shown first: the analysis's evenly spread dimensions, unless a few dimensions carry far more
    spread than the typical one, in which case the four with the largest spread (else they would look flat)."""
    spread = decoded.std(axis=1)
    if len(spread) > 4 and spread.max() > 4 * np.median(spread):
        top = np.sort(np.argsort(spread)[-4:])
        return [int(bounds[b]) for b in top], " Shown first: the four dimensions with the largest spread."
    return [int(d) for d in evenly], " Shown first: four dimensions spread evenly over the width."


def build(context: SectionContext):
    """The picker, the traces and the caption."""
    img, shown = context.results["matrix"], heatmap(context)
    dims, spread_note = initial_dims(views.decode(shown.codes, shown.scale), img.dimension_bounds,
                                     context.results["traces"].dims)
    choice, fig = views.dimension_traces(img, shown.source, shown.scale, dims, context.page.positions,
                                         width=context.page.wide)
    return column(choice, fig, views.caption(
        "Dimension traces: each chosen dimension's value across positions. Pick dimensions in the box (type a "
        "number to search; click x to remove)." + spread_note + " The lines are decoded in the browser from the "
        f"matrix heatmap's 8-bit codes, so the picker adds no data to the file: {shown.precision}."
        + views.block_note(img.position_bounds, "positions").replace("each pixel", "each point"),
        width=context.page.wide))


SECTION = Section("traces", "dimension traces", build, order=30, needs=("matrix", "traces"))
