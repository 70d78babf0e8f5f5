"""Spectra: the raw table's singular values, and each dimension's dominant wavelength."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views


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


def build(context: SectionContext):
    """The two plots side by side, each with its caption."""
    spec, freq = context.results["spectrum"], context.results["frequencies"]
    n, d = context.embedding.shape
    return views.side_by_side(
        views.stack(views.singular_values(spec), views.caption(
            "Singular values s_k of the raw table (not centred), descending. Effective rank exp(H(p)) with "
            f"p_k = s_k / sum s (Roy & Vetterli 2007): {views.fmt(spec.effective_rank, '.1f')} of a possible "
            f"{min(n, d)}." + missing_values(spec))),
        views.stack(views.dimension_frequencies(freq), views.caption(
            "Per-dimension spectrum: each dimension's dominant frequency (the strongest rfft bin of its centred "
            "column, refined between bins), shown as its wavelength 1/frequency in positions; colour is the share "
            "of the column's variance in that bin. A wavelength near the table length means slower than the "
            "table can resolve; a sinusoidal table shows a geometric ladder.")),
    )


SECTION = Section("spectra", "spectra", build, order=90, needs=("spectrum", "frequencies"))
