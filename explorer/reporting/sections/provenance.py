"""Where a table came from, and a few numbers that describe it at a glance."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views


def build(context: SectionContext):
    """The provenance table: provider, source, kind, shape, dtype, offset rows, parameters, summary numbers."""
    results = context.results
    if context.embedding.term == "relative":  # its own table, in the same row as the absolute tables' ones
        from explorer.reporting.sections.relative_term import provenance

        return provenance(context.embedding)
    if context.embedding.term == "window":  # a 2-D relative bias: its own table too
        from explorer.reporting.sections.window_bias import provenance as window_provenance

        return window_provenance(context.embedding)
    if "summary" not in results:
        return None
    extra = {}
    if getattr(context.embedding, "grid", None) is not None:
        height, width = context.embedding.grid
        extra["patch grid"] = f"{height} x {width} (position r * {width} + c is row r, column c)"
    if "translation_invariance" in results:
        extra["translation invariance"] = views.fmt(results["translation_invariance"], ".4f")
    if "spectrum" in results:
        extra["effective rank"] = views.fmt(results["spectrum"].effective_rank, ".1f")
    if "pca" in results:
        extra["|mean position vector|"] = views.fmt(results["pca"].mean_norm, ".4g")
    return views.provenance_header(context.embedding, results["summary"], extra)


SECTION = Section("provenance", None, build, order=10, terms=("absolute", "relative", "window"))
