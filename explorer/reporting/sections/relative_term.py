"""A relative position term's value against distance per head, each head's numbers, and its provenance table."""

from __future__ import annotations

import html

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures

#: At most about this many ticks on the heads' colour bar (every k-th head beyond).
HEAD_TICKS = 16


def head_colours(heads: int) -> list[str]:
    """One colour per head along Viridis (heads are ordered: ALiBi's slopes fall with the head index)."""
    from bokeh.palettes import Viridis256

    return [Viridis256[round(h * 255 / max(heads - 1, 1))] for h in range(heads)]


def provenance(term) -> "object":
    """The term's provenance as a small escaped table."""
    info = term.provenance()
    rows = [("provider", info["provider"]), ("source", info["source"]), ("term", "relative (value per head and "
            "key-minus-query distance k)"), ("kind", info["kind"]),
            ("shape", f"{term.heads} heads \u00d7 {term.dim} distances, k = {info['distances'][0]} .. "
                      f"{info['distances'][1]}" + (" (causal)" if term.causal else "")),
            ("stored dtype", info["dtype"]), ("tensor", info["tensor"]), ("revision", info["revision"]),
            ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())), ("note", info["description"])]
    return provenance_table(term.label, rows, "relative_provenance")


def provenance_table(label: str, rows, name: str) -> "object":
    """A term's heading and its (label, value) rows as an escaped table; rows without a value left out."""
    cells = "".join(f"<tr><th style='text-align:left;padding-right:1em;font-weight:600;white-space:nowrap;"
                    f"vertical-align:top'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows if v not in (None, ""))
    return figures.div(f"<h2 style='margin-bottom:0.3em'>{html.escape(label)}</h2><table>{cells}</table>",
                       name=name, sizing_mode="stretch_width")


def curves(profile) -> "object":
    """b_h(k) against k, one line per head coloured by head, and the mean over heads dashed."""
    from bokeh.models import ColorBar, ColumnDataSource, FixedTicker, HoverTool, LinearColorMapper

    heads = profile.values.shape[0]
    colours = head_colours(heads)
    distance = profile.distance.astype(np.int32)
    source = ColumnDataSource({"xs": [distance] * heads, "ys": list(profile.values), "head": list(range(heads)),
                               "colour": colours})
    fig = figures.figure("value against distance, per head", "relative_curves", figures.SIZE - 60,
                         x_axis_label="distance k = key - query", y_axis_label="b_h(k)")
    lines = fig.multi_line(xs="xs", ys="ys", line_color="colour", source=source, line_width=1.4, line_alpha=0.85)
    mean = ColumnDataSource({"k": distance, "mean": profile.mean})
    fig.line(x="k", y="mean", source=mean, color="#d62728", line_dash="dashed", line_width=2,
             legend_label="mean over heads")
    fig.add_tools(HoverTool(renderers=[lines], tooltips=[("head", "@head"), ("k", "$x{0}"), ("b", "$y{0.0000}")]))
    fig.legend.location = "bottom_left" if profile.causal else "top_right"
    fig.legend.label_text_font_size = "9pt"
    if heads > 1:  # one band per head, each ticked at its whole number
        mapper = LinearColorMapper(palette=colours, low=-0.5, high=heads - 0.5)
        every = -(-heads // HEAD_TICKS)
        fig.add_layout(ColorBar(color_mapper=mapper, title="head", width=10, name="head_colours",
                                ticker=FixedTicker(ticks=list(range(0, heads, every)))), "right")
    return fig


def build(context: SectionContext):
    """The per-head curves and the per-head numbers, with their captions (the provenance section shows the rest)."""
    term, results = context.embedding, context.results
    profile, stats = results["relative_profile"], results["relative_heads"]
    rows = [(f"head {h}", float(stats.value_at_0[h]), float(stats.decay_distance[h]), float(stats.symmetry[h]),
             float(stats.monotonicity[h])) for h in range(len(stats.value_at_0))]
    shown = "" if len(profile.distance) >= term.dim else f" Shown at {len(profile.distance)} evenly spaced distances."
    return figures.stack(
        curves(profile),
        figures.caption("b_h(k): the value head h adds to the attention score of a query and a key k positions "
                      "after it (k < 0: before it). Dashed: the mean over heads." + shown),
        figures.number_grid("per head", ("head", "b(0)", "decay distance", "symmetry", "monotonicity"), rows,
                          name="relative_heads"),
        figures.caption("decay distance: the least |k| at which b_h(k) <= b_h(0) - (max b_h - min b_h) / 2 (nan: "
                      "never). symmetry: Pearson r of b_h(k) and b_h(-k), k = 1..L-1 (nan for causal terms). "
                      "monotonicity: Spearman's rho of b_h(k) against |k| (-1: falls steadily with distance)."),
    )


SECTION = Section("relative_term", "relative term: value against distance", build, order=11, needs=("relative_profile", "relative_heads"),
                  terms=("relative",))
