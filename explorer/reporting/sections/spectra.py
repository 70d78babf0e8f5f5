"""Spectra: the raw table's singular values, and each dimension's dominant wavelength."""

from __future__ import annotations

from bokeh.layouts import column, row

from explorer.reporting import views
from explorer.units import Section, SectionContext


def build(context: SectionContext):
    """The two plots side by side, each with its caption."""
    spec, freq = context.results["spectrum"], context.results["frequencies"]
    n, d = context.embedding.shape
    return row(
        column(views.singular_values(spec), views.caption(
            "Singular values s_k of the raw table (not centred), descending. Effective rank exp(H(p)) with "
            f"p_k = s_k / sum s (Roy & Vetterli 2007): {views.fmt(spec.effective_rank, '.1f')} of a possible "
            f"{min(n, d)}.")),
        column(views.dimension_frequencies(freq), views.caption(
            "Per-dimension spectrum: each dimension's dominant frequency (the strongest rfft bin of its centred "
            "column, refined between bins), shown as its wavelength 1/frequency in positions; colour is the share "
            "of the column's variance in that bin. A wavelength near the table length means slower than the "
            "table can resolve; a sinusoidal table shows a geometric ladder.")),
    )


SECTION = Section("spectra", "spectra", build, order=90, needs=("spectrum", "frequencies"))
