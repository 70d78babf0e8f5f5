"""Principal components: explained variance, and the positions' scores on PC1/PC2 and PC2/PC3."""

from __future__ import annotations

import numpy as np
from explorer.reporting import views
from explorer.units import Section, SectionContext


def build(context: SectionContext):
    """The bars, the two linked scatters and the caption."""
    pca, n = context.results["pca"], context.embedding.positions
    pc12, pc23 = views.pca_scatters(pca, n, context.page.max_positions)
    shown = "all positions" if len(pca.index) >= n else f"{len(pca.index)} evenly spaced positions"
    top3 = float(np.sum(pca.explained[:3])) * 100
    return views.stack(views.side_by_side(views.pca_explained(pca), pc12, pc23, spacing=16), views.caption(
        "PCA of the position vectors centred over positions (X_c = X - mean row). Bars: share of variance "
        "lambda_k / sum lambda of each top component (line: cumulative; the top three hold "
        f"{top3:.1f}%). Scatters: the scores X_c v_k of {shown}, coloured by position. Select with the box or "
        "lasso tool in either scatter: the same positions light up in the other."))


SECTION = Section("pca", "principal components", build, order=80, needs=("pca",))
