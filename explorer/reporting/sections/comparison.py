"""The pairwise numbers of a comparison page, and the tables' offset profiles overlaid."""

from __future__ import annotations

from explorer.reporting import views
from explorer.units import PAGE, Section, SectionContext


def build(context: SectionContext):
    """A table of each pair's CKA and similarity correlation, and one plot of every offset profile."""
    page = context.page
    if getattr(page, "atlas", False):  # the atlas shows these numbers as heatmaps, and the profiles overlaid
        return None
    labels = [f"{k + 1}. {e.label}" for k, e in enumerate(page.embeddings)]
    rows = [(labels[i], labels[j], c.positions, c.cka, c.similarity_correlation)
            for i, j, pair in page.pairs if (c := pair.get("comparison")) is not None]
    parts = []
    if rows:
        parts += [
            views.number_grid("pairwise comparison", ("table A", "table B", "common positions", "linear CKA",
                                                       "similarity correlation"), rows, name="comparison"),
            views.caption(
                "On the positions both tables have (the first min(N_a, N_b) rows). Linear CKA (Kornblith et al. "
                "2019) = ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F) with A, B centred over positions: 1 when the "
                "tables agree up to rotation and scale, whatever their widths. Similarity correlation: Pearson r "
                "between the two position-cosine images, over the cells above the diagonal."),
        ]
    parts += offsets_overlaid(page, labels)
    return views.stack(*parts) if parts else None


def offsets_overlaid(page, labels: list[str], hideable: bool = False) -> list:
    """The offset profiles m(k) of every table with one, on one plot with its caption (also the atlas's); with
    ``hideable`` a click on a legend entry hides or shows its table."""
    offsets = [(label, r["offset"]) for label, r in zip(labels, page.results) if "offset" in r]
    if not offsets:
        return []
    overlay = views.offset_overlay([label for label, _ in offsets], [o for _, o in offsets])
    text = "The offset profiles m(k) of every table on one axis (each over its own positions)."
    if hideable:
        overlay.legend.click_policy = "hide"
        text += " Click a legend entry to hide or show its table."
    return [overlay, views.caption(text)]


SECTION = Section("comparison", "comparison", build, order=5, scope=PAGE, min_tables=2)
