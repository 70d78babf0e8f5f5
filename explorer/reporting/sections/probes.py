"""Linear probes: how much position a linear read-out recovers from the vectors."""

from __future__ import annotations

from explorer.analysis.probes import MIN_POSITIONS
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures


def build(context: SectionContext):
    """The probes' numbers with their references, and the caption; a note when there were too few positions."""
    probes = context.results["probes"]
    rows = context.embedding.rows
    note = "" if rows is None else (f" The rows are not positions ({rows.name}): i is the row number, so the probes "
                                    "measure how linearly the rows' order can be read out.")
    if probes is None:
        return figures.caption(f"Probes: not run, the table has fewer than {MIN_POSITIONS} positions.")
    if probes.protocol == "wang-chen":
        return figures.stack(
            figures.number_grid("linear probes (Wang & Chen 2020's protocol)", ("probe", "held-out error", "reference"), [
                ("absolute position (MAE, positions)", probes.absolute_mae,
                 f"predicting the mean: {probes.absolute_baseline:.4g}"),
                ("relative order (error rate)", probes.order_error, f"chance: about 0.5 ({probes.order_pairs} pairs)"),
            ], name="probes"),
            figures.caption(
                f"The protocol of Wang & Chen 2020's code (--probe-protocol wang-chen): the first {probes.rows} "
                "rows; plain least squares from p_i to i on the rows shuffled, 5 folds, mean |round(prediction) - i|; "
                f"logistic regression (L2, C = 1) on [p_i; p_j] for {probes.order_pairs} random cells (i, j) "
                "predicting j > i, 5 stratified folds. docs/analyses.md says how it differs from the ridge default."
                + note),
        )
    return figures.stack(
        figures.number_grid("linear probes", ("probe", "held-out error", "reference"), [
            ("absolute position (MAE, positions)", probes.absolute_mae,
             f"predicting the mean: {probes.absolute_baseline:.4g}"),
            ("relative order (error rate)", probes.order_error, f"chance: 0.5 ({probes.order_pairs} pairs)"),
            ("interpolation (MAE on odd positions)", probes.interpolation_mae, "trained on even positions"),
        ], name="probes"),
        figures.caption("How much position a linear read-out recovers (after Wang & Chen 2020): ridge regression from "
                      "p_i to i with 5-fold cross-validation (mean |round(prediction) - i|); logistic regression on "
                      "[p_i; p_j] predicting j > i, scored on held-out pairs; the same ridge fitted on even "
                      f"positions and scored on odd ones. Ridge penalty {probes.ridge:g} x trace(X_c^T X_c) / D."
                      + note),
    )


SECTION = Section("probes", "probes", build, order=100, needs=("probes",))
