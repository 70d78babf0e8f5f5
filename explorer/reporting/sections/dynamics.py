"""The dynamics of a series: how its tables change from member to member (an atlas's tables, in their order).

A series is any ordered set of tables: revisions, a run's checkpoint folders, a swept option, the lines of a
spec file. Its x axis and lines come from what sets the members apart (``explorer.reporting.members``: the step
of ``checkpoint-500`` or ``step1000`` where one is known). The view shows:

- linear CKA of every member to the first and to the last member of its line: the table has formed where CKA to
  the last reaches 1, and stops changing where it stays there;
- the pairwise CKA matrix in series order (the pairs' ``comparison`` results: nothing is computed here);
- every scalar of ``Results.scalars()`` (built-in and plugins' alike) against the member: one chosen in a picker,
  and all of them at once, each scaled to its own range;
- a slider and a player stepping through the members' matrix and cosine thumbnails.

Its Bokeh models do not grow with the number of tables: one source holds every member's numbers and
thumbnails, and the views switch between them in the browser.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (Button, ColorBar, ColumnDataSource, CustomJS, HoverTool, LinearColorMapper, Range1d,
                          Select, Slider, Span, TapTool)
from bokeh.palettes import Category10_10, Viridis256

from explorer.analysis.resample import block_mean
from explorer.plugins.units import PAGE, Section, SectionContext
from explorer.reporting import encoding, figures
from explorer.reporting.members import SeriesAxis, series_axis
from explorer.reporting.sections.atlas import THUMB_PIXELS, labels_of

#: Milliseconds between members when the player runs.
PLAY_MS = 400
THUMB = 220
#: The scalar the picker starts with, when the tables have it (it changes most as a learned table forms).
FIRST_SCALAR = "effective_rank"

_SCALAR_JS = """
const k = names.indexOf(select.value);
if (k < 0) { return; }
const values = members.data[columns[k]];
members.data = {...members.data, y: values};
lines.data = {...lines.data, ys: lines.data.index.map((idx) => idx.map((i) => values[i]))};
axis.axis_label = select.value;
"""

_STEP_JS = """
const k = slider.value - 1;
frame.data = {matrix: [frames.data.matrix[k]], cosine: [frames.data.cosine[k]]};
for (const span of spans) { span.location = members.data.x[k]; }
note.text = notes[k];
"""

_PLAY_JS = """
const key = 'posembed_play_' + button.id;
if (window[key]) {
  clearInterval(window[key]); window[key] = null; button.label = '\u25B6 play';
} else {
  if (slider.value >= slider.end) { slider.value = slider.start; }
  button.label = '\u23F8 pause';
  window[key] = setInterval(() => {
    if (slider.value >= slider.end) { clearInterval(window[key]); window[key] = null; button.label = '\u25B6 play'; }
    else { slider.value = slider.value + 1; }
  }, %d);
}
""" % PLAY_MS

_PICK_ROW_JS = """
const i = cells.selected.indices.length ? cells.selected.indices[0] : -1;
if (i >= 0) { select.value = cells.data.scalar[i]; }
"""


def cka_matrix(page: Any) -> np.ndarray:
    """Every pair's linear CKA in page order (1 on the diagonal, NaN where a pair has no comparison)."""
    values = np.full((page.tables, page.tables), np.nan)
    np.fill_diagonal(values, 1.0)
    for i, j, pair in page.pairs:
        comparison = pair.get("comparison")
        if comparison is not None:
            values[i, j] = values[j, i] = comparison.cka
    return values


def to_ends(cka: np.ndarray, axis: SeriesAxis) -> tuple[np.ndarray, np.ndarray]:
    """Each member's CKA to the first and to the last member of its line."""
    first, last = np.full(len(cka), np.nan), np.full(len(cka), np.nan)
    for line in axis.line_names:
        members = [k for k, name in enumerate(axis.lines) if name == line]
        first[members] = cka[members, members[0]]
        last[members] = cka[members, members[-1]]
    return first, last


def scalar_table(page: Any) -> tuple[list[str], np.ndarray]:
    """The scalar names any table has (in the order they first appear) and a members x scalars array (NaN where a
    table lacks one)."""
    scalars = [r.scalars() for r in page.results]
    names = list(dict.fromkeys(key for s in scalars for key in s))
    values = np.array([[s.get(key, np.nan) for key in names] for s in scalars], dtype=np.float64)
    return names, values.reshape(len(scalars), len(names))


def _thumb(values: np.ndarray, scale: encoding.CodeScale | None = None) -> np.ndarray:
    """A small uint8 image: codes 1..255 over the scale's colour range (0: no value)."""
    small = block_mean(values, THUMB_PIXELS, THUMB_PIXELS)[0]
    if scale is None:  # cosines over [-1, 1]
        codes = np.clip((np.nan_to_num(small) + 1) / 2, 0, 1) * 254 + 1
    else:  # the matrix's own codes, stretched over one mapper's range: the colours of its full heatmap
        coded = encoding.quantise(small, scale).astype(np.float64)
        span = max(scale.high_code - scale.low_code, 1)
        codes = np.clip((coded - scale.low_code) / span, 0, 1) * 254 + 1
    out = np.round(codes).astype(np.uint8)
    out[~np.isfinite(small)] = 0
    return out


def _plot(title: str, name: str, axis: SeriesAxis, **kw):
    fig = figures.figure(title, name, height=300, x_axis_type="log" if axis.log_scale else "linear", **kw)
    fig.xaxis.axis_label = axis.x_name + (" (log scale)" if axis.log_scale else "")
    return fig


def _lines_source(axis: SeriesAxis, colours: list[str], **columns: np.ndarray) -> ColumnDataSource:
    """One row per line: its members' indices and x values, its colour and name, and ``columns`` per member."""
    data: dict[str, list] = {"index": [], "xs": [], "colour": [], "line": []}
    data.update({key: [] for key in columns})
    for k, line in enumerate(axis.line_names):
        members = [m for m, name in enumerate(axis.lines) if name == line]
        data["index"].append(members)
        data["xs"].append(axis.x[members].tolist())
        data["colour"].append(colours[k])
        data["line"].append(line or "series")
        for key, values in columns.items():
            data[key].append(values[members].tolist())
    return ColumnDataSource(data)


def build(context: SectionContext):
    """The series' dynamics view (pages of three or more tables)."""
    page = context.page
    n = page.tables
    labels = labels_of(page)
    axis = series_axis(page.embeddings, [page.label_of(k) for k in range(n)])
    palette = list(Category10_10)
    colours = [palette[k % len(palette)] for k in range(len(axis.line_names))]
    colour_of = {line: colours[k] for k, line in enumerate(axis.line_names)}
    cka = cka_matrix(page)
    first, last = to_ends(cka, axis)
    names, values = scalar_table(page)
    scalar_columns = [f"scalar_{k}" for k in range(len(names))]
    start = names.index(FIRST_SCALAR) if FIRST_SCALAR in names else 0
    members = ColumnDataSource({
        "x": axis.x, "name": axis.names, "label": labels, "line": [line or "series" for line in axis.lines],
        "colour": [colour_of[line] for line in axis.lines], "to_first": first, "to_last": last,
        "y": values[:, start] if names else np.full(n, np.nan),
        **{column_name: values[:, k] for k, column_name in enumerate(scalar_columns)},
    }, name="dynamics_members")
    member_tips = [("member", "@label"), (axis.x_name, "@x{0,0.[00]}")] + (
        [("line", "@line")] if any(axis.lines) else [])
    spans = []

    # CKA to the first and the last member
    ends = _plot("linear CKA to the first and to the last member", "dynamics_cka_ends", axis,
                 y_range=Range1d(-0.02, 1.02))
    ends_lines = _lines_source(axis, colours, to_first=first, to_last=last)
    named = {"legend_field": "line"} if any(axis.lines) else {"legend_label": "to the first"}
    ends.multi_line(xs="xs", ys="to_first", source=ends_lines, line_color="colour", line_width=2, **named)
    ends.multi_line(xs="xs", ys="to_last", source=ends_lines, line_color="colour", line_width=2, line_dash="dashed",
                    **({} if any(axis.lines) else {"legend_label": "to the last"}))
    first_dots = ends.scatter(x="x", y="to_first", source=members, color="colour", size=6)
    last_dots = ends.scatter(x="x", y="to_last", source=members, color="colour", size=6, marker="square")
    ends.add_tools(HoverTool(renderers=[first_dots], tooltips=member_tips + [("CKA to the first", "@to_first{0.000}")]))
    ends.add_tools(HoverTool(renderers=[last_dots], tooltips=member_tips + [("CKA to the last", "@to_last{0.000}")]))
    figures.legend_outside(ends, "right")
    ends.yaxis.axis_label = "linear CKA"
    spans.append(Span(location=float(axis.x[0]), dimension="height", line_color="#888", line_dash="dotted"))
    ends.add_layout(spans[-1])

    # the pairwise matrix, in series order
    size = 300
    grid = figures.figure("linear CKA of every pair, in series order", "dynamics_cka_matrix", size, width=size + 80,
                          x_range=Range1d(0.5, n + 0.5), y_range=Range1d(n + 0.5, 0.5), tools="save",
                          x_axis_location="above")
    mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0, nan_color="#eeeeee")
    grid.image(image=[cka.astype(np.float32)], x=0.5, y=0.5, dw=n, dh=n, color_mapper=mapper)
    grid.add_tools(HoverTool(tooltips=[("members", "$x{0} and $y{0}"), ("linear CKA", "@image{0.000}")]))
    grid.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    grid.grid.visible = False

    # every scalar against the member
    plot = _plot("one scalar against the member", "dynamics_scalar", axis)
    plot.yaxis.axis_label = names[start] if names else ""
    scalar_lines = _lines_source(axis, colours, ys=members.data["y"])
    plot.multi_line(xs="xs", ys="ys", source=scalar_lines, line_color="colour", line_width=2,
                    **({"legend_field": "line"} if any(axis.lines) else {}))
    if any(axis.lines):
        figures.legend_outside(plot, "right")
    dots = plot.scatter(x="x", y="y", source=members, color="colour", size=6)
    plot.add_tools(HoverTool(renderers=[dots], tooltips=member_tips + [("value", "@y{0.0000}")]))
    spans.append(Span(location=float(axis.x[0]), dimension="height", line_color="#888", line_dash="dotted"))
    plot.add_layout(spans[-1])
    select = Select(title="scalar", options=names, value=names[start] if names else "", width=260,
                    name="dynamics_scalar_picker")
    select.js_on_change("value", CustomJS(args={"select": select, "names": names, "columns": scalar_columns,
                                                "members": members, "lines": scalar_lines, "axis": plot.yaxis[0]},
                                          code=_SCALAR_JS))
    overview = _overview(names, values, axis, labels, select)

    # the player
    frames = ColumnDataSource({
        "matrix": [_thumb(r["matrix"].values, page.matrix_scale_of(k)) if "matrix" in r else np.zeros((1, 1), np.uint8)
                   for k, r in enumerate(page.results)],
        "cosine": [_thumb(r["cosine_positions"].values[::-1]) if "cosine_positions" in r
                   else np.zeros((1, 1), np.uint8) for r in page.results],
    }, name="dynamics_frames")
    frame = ColumnDataSource({"matrix": [frames.data["matrix"][0]], "cosine": [frames.data["cosine"][0]]},
                             name="dynamics_frame")
    thumbs = []
    for field, title in (("matrix", "matrix (its own colour scale)"), ("cosine", "cosine over positions")):
        fig = figures.figure(title, f"thumb_dynamics_{field}", THUMB, width=THUMB, tools=None, title_size="10pt",
                             x_range=Range1d(0, 1), y_range=Range1d(0, 1))
        fig.axis.visible = False
        fig.grid.visible = False
        fig.image(image=field, source=frame, x=0, y=0, dw=1, dh=1, color_mapper=LinearColorMapper(
            palette=encoding.DIVERGING, low=1, high=255, low_color="#dddddd"))
        thumbs.append(fig)
    notes = [f"<b>{html.escape(labels[k])}</b><br>{html.escape(axis.x_name)} {axis.x[k]:g}"
             + (f"<br>CKA to the first {figures.fmt(first[k])}, to the last {figures.fmt(last[k])}") for k in range(n)]
    note = figures.div(notes[0], width=300, name="dynamics_member")
    slider = Slider(start=1, end=max(n, 2), value=1, step=1, title="member", width=420, name="dynamics_slider")
    slider.js_on_change("value", CustomJS(args={"slider": slider, "frames": frames, "frame": frame, "spans": spans,
                                                "members": members, "note": note, "notes": notes}, code=_STEP_JS))
    play = Button(label="\u25B6 play", width=90, name="dynamics_play")
    play.js_on_click(CustomJS(args={"button": play, "slider": slider}, code=_PLAY_JS))
    player = column(row(slider, play, spacing=12), row(*thumbs, note, spacing=12), name="dynamics_player")

    parts = [
        figures.caption(_intro(axis, n)),
        figures.side_by_side(ends, grid),
        figures.caption(
            "Linear CKA (as in the atlas above) of each member to the first (solid) and to the last (dashed) member"
            + (" of its line" if any(axis.lines) else "") + ": the table has formed where CKA to the last reaches 1, "
            "and stops changing where it stays there. Right: every pair in series order (member 1 at the top left); "
            "blocks of high CKA are stretches where the table changes little." + _unpaired(cka)),
        row(select, sizing_mode="stretch_width"),
        figures.side_by_side(plot, overview),
        figures.caption(
            "Left: the scalar chosen above (every scalar of `posembed analyze`, plugins' too; docs/analyses.md) "
            "against the member. Right: every scalar at once, each scaled to its own range over the series "
            "(dark: its lowest, yellow: its highest; hover for the value); click a row to plot it on the left."),
        player,
        figures.caption("Step through the members' matrix (each on its own colour scale, as in its sections) and "
                      "cosine over positions (position 0 at the top left), or play them; the dotted lines above "
                      "mark the member shown."),
    ]
    return figures.stack(*parts, name="dynamics")


def _overview(names: list[str], values: np.ndarray, axis: SeriesAxis, labels: list[str], select: Select):
    """Every scalar (a row each) against the member (columns 1..n), each scaled to its own range."""
    n = len(labels)
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(values), values, np.nan)
        low, high = np.nanmin(finite, axis=0, initial=np.inf), np.nanmax(finite, axis=0, initial=-np.inf)
        scaled = (finite - low) / np.where(high > low, high - low, 1.0)
    scaled[:, ~(high > low)] = 0.5  # a scalar that does not change: the middle colour
    member, scalar = np.meshgrid(np.arange(n), np.arange(len(names)), indexing="ij")
    cells = ColumnDataSource({"member": (member.ravel() + 1).astype(np.int32),
                              "scalar": [names[s] for s in scalar.ravel()],
                              "scaled": scaled.ravel().astype(np.float32),
                              "value": values.ravel().astype(np.float32)}, name="dynamics_scalar_cells")
    fig = figures.figure("every scalar against the member", "dynamics_scalars", max(200, 14 * len(names) + 60),
                         x_range=Range1d(0.5, n + 0.5), y_range=list(reversed(names)), tools="save")
    fig.rect(x="member", y="scalar", width=1, height=1, source=cells, line_color=None,
             fill_color={"field": "scaled", "transform": LinearColorMapper(palette=Viridis256, low=0, high=1,
                                                                           nan_color="#eeeeee")})
    fig.add_tools(HoverTool(tooltips=[("member", "@member"), ("scalar", "@scalar"), ("value", "@value{0.0000}")]),
                  TapTool())
    fig.yaxis.major_label_text_font_size = "8pt"
    fig.xaxis.axis_label = "member"
    fig.grid.visible = False
    cells.selected.js_on_change("indices", CustomJS(args={"cells": cells, "select": select}, code=_PICK_ROW_JS))
    return fig


def _intro(axis: SeriesAxis, n: int) -> str:
    lines = axis.line_names
    text = f"The {n} tables above as one series, in their order; the x axis is the member's {axis.x_name}"
    if axis.x_name == "member":
        text = f"The {n} tables above as one series, in their order (the x axis numbers them as the atlas does)"
    if axis.log_scale:
        text += f", on a log scale (its values span {axis.decades:.1f} decades, most of them at the low end)"
    elif axis.decades > 1:
        text += f", on a linear scale (its values span {axis.decades:.1f} decades, but evenly)"
    elif axis.x_name != "member" and np.min(axis.x) <= 0 and _decades(axis.x[axis.x > 0]) > 1:
        text += f", on a linear scale ({axis.x_name} {np.min(axis.x):g} has no place on a log one)"
    if any(axis.lines):
        text += f", one line for each of the {len(lines)} values of what else varies ({', '.join(lines[:4])}" + (
            ", ...)" if len(lines) > 4 else ")")
    return text + "."


def _decades(values: np.ndarray) -> float:
    return float(np.log10(np.max(values) / np.min(values))) if values.size else 0.0


def _unpaired(cka: np.ndarray) -> str:
    missing = int(np.isnan(cka).sum() // 2)
    return f" {missing} pair{'s have' if missing > 1 else ' has'} no CKA (grey): their rows mean different " \
           f"things, or a table is a relative term." if missing else ""


SECTION = Section("dynamics", "series dynamics", build, order=3, scope=PAGE, min_tables=3)
