"""Principal components: explained variance, and the positions' scores on PC1/PC2 and PC2/PC3."""

from __future__ import annotations

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import views
from explorer.reporting.sections.matrix import row_kind


def build(context: SectionContext):
    """The bars, the two linked scatters and the caption."""
    pca, n = context.results["pca"], context.embedding.positions
    rows = context.embedding.rows
    pc12, pc23 = views.pca_scatters(pca, n, context.page.max_positions if rows is None else n, rows)
    item = row_kind(context)
    shown = f"all {item}s" if len(pca.index) >= n else f"{len(pca.index)} evenly spaced {item}s"
    top3 = float(np.sum(pca.explained[:3])) * 100
    return views.stack(views.side_by_side(views.pca_explained(pca), pc12, pc23, spacing=16), views.caption(
        f"PCA of the {item} vectors centred over {item}s (X_c = X - mean row). Bars: share of variance "
        "lambda_k / sum lambda of each top component (line: cumulative; the top three hold "
        f"{top3:.1f}%). Scatters: the scores X_c v_k of {shown}, coloured by {item}"
        + ("" if rows is None else f" (the colour bar is labelled by {rows.name})")
        + f". Select with the box or lasso tool in either scatter: the same {item}s light up in the other."))


SECTION = Section("pca", "principal components", build, order=80, needs=("pca",))
