"""Spectra: the raw table's singular values, and each dimension's dominant wavelength."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.palettes import Viridis256

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import SIZE, figure


def missing_values(spec) -> str:
    """The caption's count of singular values the log axis cannot show (exact zeros, unresolved ones)."""
    from explorer.analysis.decomposition import UNRESOLVED

    total = len(spec.singular_values)
    if not (spec.zeros or spec.unresolved):
        return f" All {total} are drawn."
    parts = []
    if spec.zeros:
        parts.append(f"{spec.zeros} of the {total} are exactly 0")
    if spec.unresolved:
        parts.append(f"{spec.unresolved} lie below {UNRESOLVED:g} s_1, where float32 rounding makes them "
                     "indistinguishable from 0")
    return (" " + " and ".join(parts) + ": a log axis cannot show them, so the line ends at the "
            f"{total - spec.zeros - spec.unresolved}th.")


def singular_values(spectrum) -> Any:
    """The raw table's resolved singular values, descending, on a log axis (zeros and unresolved ones left out:
    the caption counts them)."""
    from explorer.analysis.decomposition import UNRESOLVED

    s = spectrum.singular_values
    keep = s >= UNRESOLVED * float(s[0]) if len(s) else np.zeros(0, bool)
    keep &= s > 0
    k = (np.arange(1, len(s) + 1, dtype=np.int32))[keep]
    fig = figure(f"singular values (effective rank {spectrum.effective_rank:.1f})", "singular_values",
                  SIZE - 80, x_axis_label="k", y_axis_label="singular value s_k", y_axis_type="log")
    source = ColumnDataSource({"k": k, "s": s[keep]})
    fig.line(x="k", y="s", source=source, color="#756bb1", line_width=1.6)
    fig.add_tools(HoverTool(tooltips=[("k", "@k"), ("s_k", "@s{0.0000}")], mode="vline"))
    return fig


def dimension_frequencies(freq) -> Any:
    """Each dimension's dominant wavelength (positions per cycle), coloured by the share of power it holds."""
    d = np.arange(len(freq.wavelength), dtype=np.int32)
    source = ColumnDataSource({"dimension": d, "wavelength": freq.wavelength, "frequency": freq.frequency,
                               "power": freq.power})
    fig = figure("per-dimension spectrum: dominant wavelength", "dimension_frequencies", SIZE - 80,
                  x_axis_label="dimension", y_axis_label="wavelength (positions)", y_axis_type="log")
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
    fig.scatter(x="dimension", y="wavelength", source=source, size=4, line_color=None,
                color={"field": "power", "transform": mapper})
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title="power share"), "right")
    fig.add_tools(HoverTool(tooltips=[("dimension", "@dimension"), ("wavelength", "@wavelength{0.0}"),
                                      ("frequency", "@frequency{0.00000}"), ("power share", "@power{0.000}")]))
    return fig


def build(context: SectionContext):
    """The two plots side by side, each with its caption."""
    spec, freq = context.results["spectrum"], context.results["frequencies"]
    n, d = context.embedding.shape
    return figures.side_by_side(
        figures.stack(singular_values(spec), figures.caption(
            "Singular values s_k of the raw table (not centred), descending. Effective rank exp(H(p)) with "
            f"p_k = s_k / sum s (Roy & Vetterli 2007): {figures.fmt(spec.effective_rank, '.1f')} of a possible "
            f"{min(n, d)}." + missing_values(spec))),
        figures.stack(dimension_frequencies(freq), figures.caption(
            "Per-dimension spectrum: each dimension's dominant frequency (the strongest rfft bin of its centred "
            "column, refined between bins), shown as its wavelength 1/frequency in positions; colour is the share "
            "of the column's variance in that bin. A wavelength near the table length means slower than the "
            "table can resolve; a sinusoidal table shows a geometric ladder.")),
    )


SECTION = Section("spectra", "spectra", build, order=90, needs=("spectrum", "frequencies"))
