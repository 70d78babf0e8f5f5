"""Where a table came from, and a few numbers that describe it at a glance."""

from __future__ import annotations

import html
from typing import Any

from explorer.core.embedding import PositionEmbedding
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.figures import div


def provenance_header(embedding: PositionEmbedding, summary: dict[str, float], extra: dict[str, str] | None = None) -> Any:
    """A table of where the matrix came from and a few summary numbers; every string is escaped."""
    info = embedding.provenance()
    rows = [
        ("provider", info["provider"]),
        ("source", info["source"]),
        ("kind", info["kind"]),
        ("shape", f"{embedding.positions} {'positions' if embedding.rows is None else 'rows'} \u00d7 "
                  f"{embedding.dim} dimensions"),
        ("rows", None if embedding.rows is None else
         f"{embedding.rows.name}, {embedding.rows.labels[0]} (row 0) to {embedding.rows.labels[-1]}"),
        ("stored dtype", info["dtype"]),
        ("offset rows dropped", info["offset"]),
        ("tensor", info["tensor"]),
        ("revision", info["revision"]),
        ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())),
        ("note", info["description"]),
        ("values", f"{summary['value_min']:.4g} .. {summary['value_max']:.4g} "
                   f"(mean {summary['value_mean']:.3g}, std {summary['value_std']:.3g})"),
        ("row norm |p_i|", f"mean {summary['row_norm_mean']:.4g}, min {summary['row_norm_min']:.4g}, "
                           f"max {summary['row_norm_max']:.4g}"),
        ("mean cos(p_i, p_i+1)", f"{summary['neighbour_cosine_mean']:.4f}"),
        *(extra or {}).items(),
    ]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em;font-weight:600;white-space:nowrap;vertical-align:top'>{html.escape(str(k))}</th>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
        if v not in (None, "")
    )
    return div(
        f"<h2 style='margin-bottom:0.3em'>{html.escape(embedding.label)}</h2><table>{cells}</table>",
        name="provenance",
        sizing_mode="stretch_width",
    )


def build(context: SectionContext):
    """The provenance table: provider, source, kind, shape, dtype, offset rows, parameters, summary numbers."""
    results = context.results
    if context.embedding.term == "relative":  # its own table, in the same row as the absolute tables' ones
        from explorer.reporting.sections.relative_term import provenance

        return provenance(context.embedding)
    if context.embedding.term == "window":  # a 2-D relative bias: its own table too
        from explorer.reporting.sections.window_bias import provenance as window_provenance

        return window_provenance(context.embedding)
    if context.embedding.term == "conv":  # a convolution kernel: its own table too
        from explorer.reporting.sections.conv_kernel import provenance as conv_provenance

        return conv_provenance(context.embedding)
    if "summary" not in results:
        return None
    extra = {}
    if getattr(context.embedding, "grid", None) is not None:
        *frames, height, width = context.embedding.grid
        if frames:
            extra["patch grid"] = (f"{frames[0]} x {height} x {width} frames x rows x columns (position "
                                   f"(t * {height} + r) * {width} + c is frame t, row r, column c)")
        else:
            extra["patch grid"] = f"{height} x {width} (position r * {width} + c is row r, column c)"
    if "translation_invariance" in results:
        extra["translation invariance"] = figures.fmt(results["translation_invariance"], ".4f")
    if "spectrum" in results:
        extra["effective rank"] = figures.fmt(results["spectrum"].effective_rank, ".1f")
    if "pca" in results:
        extra["|mean position vector|"] = figures.fmt(results["pca"].mean_norm, ".4g")
    return provenance_header(context.embedding, results["summary"], extra)


SECTION = Section("provenance", None, build, order=10, terms=("absolute", "relative", "window", "conv"))
