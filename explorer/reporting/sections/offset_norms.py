"""The offset profile m(k) with its spread, and the row norms |p_i|."""

from __future__ import annotations

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views
from explorer.reporting.sections.matrix import row_kind


def build(context: SectionContext):
    """The two plots side by side, each with its caption."""
    results, page, n = context.results, context.page, context.embedding.positions
    off, norms, rows = results["offset"], results["norms"], context.embedding.rows
    invariance = views.fmt(results.get("translation_invariance"), ".3f")
    lag_note = "" if len(off.lag) >= n else f" Shown at {len(off.lag)} lags, the first lag of each block."
    return views.side_by_side(
        views.stack(views.offset_profile(off, page.lags, rows), views.caption(
            "m(k) = mean over i of cos(p_i, p_i+k), with a band of \u00b1 s(k), the standard deviation over i. A "
            "narrow band means similarity depends on the distance alone. Translation invariance "
            f"TI = 1 - ||C - T(m)||_F / ||C||_F = {invariance} (1: the cosine matrix C is fully described by m)."
            + lag_note + (" s(k) uses a sample of starting positions." if off.sampled else "")
            + ("" if rows is None else f" Here k counts rows, not positions: the rows are labelled by {rows.name}."))),
        views.stack(views.row_norms(norms, page.position_range(context.index), rows), views.caption(
            f"|p_i|, the Euclidean length of each {row_kind(context)} vector: mean {norms.mean:.4g}, min {norms.min:.4g}, "
            f"max {norms.max:.4g}." + ("" if len(norms.index) >= n else " Long tables show the min-max band of each "
                                       "block."))),
    )


SECTION = Section("offset_norms", "offset profile and row norms", build, order=60, needs=("offset", "norms"))
