"""A layer's attention from positions alone (``attention=L``): one head's probabilities at a time (a head picker),
every head's numbers, and on a patch grid where a chosen patch attends; for a rotary model, each head's score of a
unit input against distance and its weight energy per frequency pair."""

from __future__ import annotations

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures

#: Probabilities are coloured on a log scale from 10^LOW_DECADE to 1 (smaller ones, and masked ones, at the bottom).
LOW_DECADE = -4
LEVELS = 256
#: Pixels of the probability image's square frame (with its axes, colour bar and toolbar it fits one column of a
#: two-table page at 1280 px).
FRAME = 400

#: Show head ``select.value``'s codes (``codes`` holds every head's r x r codes, head after head; only the lower
#: triangle, row by row, when ``causal``: the rest is masked, code 0).
PICK_HEAD_JS = """
const h = parseInt(select.value.split(" ")[1]);
const codes = source.data.codes[0];
const img = target.data.image[0];
const size = img.length, r = Math.round(Math.sqrt(size));
if (causal) {
  let k = h * r * (r + 1) / 2;
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) img[i * r + j] = j <= i ? codes[k++] : 0;
  }
} else {
  for (let i = 0; i < size; i++) img[i] = codes[h * size + i];
}
target.change.emit();
fig.title.text = `head ${h}: attention probabilities`;
if (patch !== null) patch_update.execute(null);
"""

#: Show where patch ``patch.value`` attends under the head picked (``maps`` holds heads x patches x H*W values).
PICK_PATCH_JS = """
const h = parseInt(select.value.split(" ")[1]);
const k = patch.options.indexOf(patch.value);
const maps = source.data.maps[0];
const img = target.data.image[0];
const size = img.length, count = patch.options.length;
let top = 0;
for (let i = 0; i < size; i++) { img[i] = maps[(h * count + k) * size + i]; top = Math.max(top, img[i]); }
mapper.high = top > 0 ? top : 1;
target.change.emit();
const [r, c] = [Math.floor(where[k] / cols), where[k] % cols];
marker.data = {x: [c + 0.5], y: [r + 0.5]};
fig.title.text = `head ${h}: where patch (row ${r}, col ${c}) attends`;
"""


def probability_codes(values: np.ndarray) -> np.ndarray:
    """uint8 codes of probabilities on the log scale 10^LOW_DECADE .. 1 (0 and anything below: code 0)."""
    with np.errstate(divide="ignore"):
        logs = np.log10(np.maximum(values, 0))
    codes = np.rint((logs - LOW_DECADE) / -LOW_DECADE * (LEVELS - 1))
    return np.clip(np.nan_to_num(codes, nan=0.0, neginf=0.0), 0, LEVELS - 1).astype(np.uint8)


def _probability_figure(result, first: np.ndarray):
    from bokeh.models import ColorBar, CustomJSHover, FixedTicker, HoverTool, LinearColorMapper, Range1d
    from bokeh.palettes import Viridis256

    n = int(result.bounds[-1])
    # square cells: queries and keys are the same positions
    fig = figures.figure("head 0: attention probabilities", "attention_probabilities", frame_width=FRAME,
                         frame_height=FRAME, x_range=Range1d(0, n), y_range=Range1d(n, 0),
                         x_axis_label="key position", y_axis_label="query position")
    figures.without_grid(fig)
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=LEVELS - 1)
    # near-equal blocks of positions: the r x r image spans positions 0..n on both axes
    renderer = fig.image(image=[first], x=0, y=0, dw=n, dh=n, color_mapper=mapper)
    ticks = {round((d - LOW_DECADE) / -LOW_DECADE * (LEVELS - 1)): f"1e{d}" if d else "1"
             for d in range(LOW_DECADE, 1)}
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title="probability (log)", ticker=FixedTicker(
        ticks=list(ticks)), major_label_overrides=ticks), "right")
    decode = CustomJSHover(code=f"return value <= 0 ? '<= 1e{LOW_DECADE}' : "
                                f"Math.pow(10, {LOW_DECADE} + value * {-LOW_DECADE} / {LEVELS - 1}).toPrecision(3)")
    floor = CustomJSHover(code="return String(Math.floor(value))")
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=[("query", "$y{custom}"), ("key", "$x{custom}"),
                                                            ("probability", "@image{custom}")],
                            formatters={"$x": floor, "$y": floor, "@image": decode}))
    return fig, renderer.data_source


def _patch_view(result, grid: tuple[int, int], select):
    """The picked patch's attention image under the picked head, with a patch picker."""
    from bokeh.models import ColumnDataSource, CustomJS, Select

    from explorer.reporting.grid_views import grid_image

    height, width = grid
    where = [int(i) for i in result.patch_index]
    centre = (height // 2) * width + width // 2
    start = where.index(centre) if centre in where else 0
    labels = [f"row {i // width}, col {i % width}" for i in where]
    first = np.ascontiguousarray(result.patch_maps[0, start], dtype=np.float32)
    from bokeh.palettes import Viridis256

    fig = grid_image(first.reshape(height, width), f"head 0: where patch ({labels[start]}) attends",
                     "attention_patch", value_label="probability")
    renderer = fig.renderers[0]
    mapper = renderer.glyph.color_mapper  # probabilities run from 0 to the image's largest: a sequential palette
    mapper.update(palette=Viridis256, low=0.0, high=float(first.max()) or 1.0)
    marker = ColumnDataSource({"x": [where[start] % width + 0.5], "y": [where[start] // width + 0.5]})
    fig.scatter(x="x", y="y", source=marker, marker="square", size=9, fill_color=None, line_color="red", line_width=2)
    maps = ColumnDataSource({"maps": [np.ascontiguousarray(result.patch_maps, dtype=np.float32).reshape(-1)]},
                            name="attention_patch_maps")
    patch = Select(title="query patch", options=labels, value=labels[start], width=200, name="attention_patch_picker")
    update = CustomJS(args={"select": select, "patch": patch, "source": maps, "target": renderer.data_source,
                            "mapper": mapper, "marker": marker, "fig": fig, "where": where, "cols": width},
                      code=PICK_PATCH_JS)
    patch.js_on_change("value", update)
    return patch, fig, update


#: Show head ``select.value``'s rotary curves (``full`` holds every head's, head after head).
PICK_ROTARY_JS = """
const h = parseInt(select.value.split(" ")[1]);
const n = score.data.d.length, f = energy.data.pair.length;
score.data.score = full.data.score[0].slice(h * n, (h + 1) * n);
if (full.data.token[0].length) score.data.token = full.data.token[0].slice(h * n, (h + 1) * n);
energy.data.query = full.data.query[0].slice(h * f, (h + 1) * f);
energy.data.key = full.data.key[0].slice(h * f, (h + 1) * f);
score.change.emit();
energy.change.emit();
figs[0].title.text = `head ${h}: score against distance`;
figs[1].title.text = `head ${h}: query and key weight energy per frequency pair`;
"""


def rotary_view(result, inputs):
    """A rotary model's layer: a head picker, the picked head's score against distance and its energy per pair."""
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Select

    heads = [f"head {h}" for h in range(result.heads)]
    select = Select(title="head", options=heads, value=heads[0], width=160, name="rotary_head")
    token = result.token_score.size > 0
    score = ColumnDataSource({"d": result.distance, "score": result.score[0],
                              **({"token": result.token_score[0]} if token else {})})
    pairs = np.arange(len(result.wavelength), dtype=np.int32)
    energy = ColumnDataSource({"pair": pairs, "query": result.query_energy[0], "key": result.key_energy[0],
                               "wave": result.wavelength})
    full = ColumnDataSource({"score": [result.score.reshape(-1)], "query": [result.query_energy.reshape(-1)],
                             "key": [result.key_energy.reshape(-1)], "token": [result.token_score.reshape(-1)]},
                            name="rotary_full")
    curve = figures.figure("head 0: score against distance", "rotary_score",
                           x_axis_label="distance d = query - key position", y_axis_label="score")
    curve.line(x="d", y="score", source=score, color="#08519c", line_width=1.6, legend_label="unit input (expected)")
    tips = [("d", "@d"), ("unit input", "@score{0.0000}")]
    if token:
        curve.line(x="d", y="token", source=score, color="#e6550d", line_width=1.6, line_dash="dashed",
                   legend_label=f"{result.tokens} token")
        tips.append((f"{result.tokens} token", "@token{0.0000}"))
    curve.add_tools(HoverTool(tooltips=tips, mode="vline"))
    curve.legend.location = "top_right"
    curve.legend.background_fill_alpha = 0.6
    bars = figures.figure("head 0: query and key weight energy per frequency pair", "rotary_energy",
                          x_axis_label="frequency pair i (wavelength grows with i)",
                          y_axis_label="share of the head's energy")
    bars.line(x="pair", y="query", source=energy, color="#d62728", line_width=1.6, legend_label="query")
    bars.line(x="pair", y="key", source=energy, color="#2ca02c", line_width=1.6, legend_label="key")
    bars.scatter(x="pair", y="query", source=energy, color="#d62728", size=5)
    bars.scatter(x="pair", y="key", source=energy, color="#2ca02c", size=5)
    bars.add_tools(HoverTool(tooltips=[("pair", "@pair"), ("wavelength", "@wave{0,0.0}"),
                                       ("query", "@query{0.0000}"), ("key", "@key{0.0000}")], mode="vline"))
    bars.legend.location = "top_right"
    select.js_on_change("value", CustomJS(args={"select": select, "score": score, "energy": energy, "full": full,
                                                "figs": [curve, bars]}, code=PICK_ROTARY_JS))
    header = ["head", "score at d = 0", "share in slow pairs"]
    if token:
        header += ["mean distance", "previous token", "diagonal", "entropy (nats)"]
    rows = []
    for h in range(result.heads):
        both = np.sqrt(result.query_energy[h] * result.key_energy[h])
        values = [float(result.score[h, 0]), float(both[result.wavelength > result.context].sum() / (both.sum() or 1.0))]
        if token:
            values += [float(result.mean_distance[h]), float(result.previous[h]), float(result.diagonal[h]),
                       float(result.entropy[h])]
        rows.append([f"head {h}", *values])
    return figures.stack(
        select,
        figures.side_by_side(
            figures.stack(curve, figures.caption(
                f"Layer {result.layer}, solid: E[q_m . k_n] * scale for a random input of unit variance in every "
                "coordinate after the layer's input norm, used as both query and key token, at distance d = m - n: "
                "sum_i cos(d theta_i) (C_aa + C_bb) + sin(d theta_i) (C_ba - C_ab) over the frequency pairs (a, b), "
                "C = E[k q^T] = W_k^T diag(g)^2 W_q + the outer product of the biases (the norm's bias through the "
                "projections included), times the table's scaling squared, plus the trace over dimensions that do "
                "not rotate: what the head's weights alone prefer, before any token content."
                + (f" Dashed: the same sum with C = k q^T of the {result.tokens} token through the input norm and "
                   "projections, the score the layer gives that token at every position." if token else ""))),
            figures.stack(bars, figures.caption(
                "Share of the head's squared query (red) and key (green) weights, over its head dimensions, in each "
                "frequency pair's two dimensions; pairs run from the fastest (wavelength 2 pi) to the slowest "
                "frequency. A head that keeps its energy in slow pairs is nearly position-blind."))),
        figures.number_grid(f"layer {result.layer}, per head", header, rows, name="rotary_heads"),
        figures.caption("share in slow pairs: sum over pairs whose wavelength exceeds the table's "
                        f"{result.context} positions of sqrt(query share x key share), over the sum over all pairs."
                        + (f" The other columns are the causal attention the {result.tokens} token gives at every "
                           f"position, exact over all {result.context} queries (the formulas of the absolute "
                           "models' numbers, with the dashed curve as the score)." if token else "")))


def build(context: SectionContext):
    """The head picker, the picked head's probabilities, the per-head numbers; on a grid the patch view."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Select

    result, embedding = context.results["attention"], context.embedding
    if result is None:
        rotary = context.results["rotary_attention"]
        return None if rotary is None else rotary_view(rotary, embedding.attention)
    inputs = embedding.attention
    codes = probability_codes(result.probabilities)
    heads = [f"head {h}" for h in range(result.heads)]
    select = Select(title="head", options=heads, value=heads[0], width=160, name="attention_head")
    fig, target = _probability_figure(result, codes[0].copy())
    if result.causal:  # a causal image's upper triangle is masked (code 0): half the bytes travel
        below = np.tril_indices(codes.shape[1])
        shipped = np.ascontiguousarray(codes[:, below[0], below[1]])
    else:
        shipped = codes
    source = ColumnDataSource({"codes": [shipped.reshape(-1)]}, name="attention_codes")
    grid = embedding.grid if result.patch_index.size else None
    patch = patch_fig = patch_update = None
    if grid is not None:
        patch, patch_fig, patch_update = _patch_view(result, grid, select)
    select.js_on_change("value", CustomJS(args={"select": select, "source": source, "target": target, "fig": fig,
                                                "causal": bool(result.causal),
                                                "patch": patch, "patch_update": patch_update}, code=PICK_HEAD_JS))
    header = ["head", "mean distance", "previous token", "diagonal", "entropy (nats)"]
    if grid is not None:
        header.append("distance (patches)")
    rows = []
    for h in range(result.heads):
        values = [float(result.mean_distance[h]), float(result.previous[h]), float(result.diagonal[h]),
                  float(result.entropy[h])]
        if grid is not None:
            values.append(float(result.patch_distance[h]))
        rows.append([f"head {h}", *values])
    numbers = figures.number_grid(f"layer {result.layer}, per head", header, rows, name="attention_heads")
    shown = ("" if len(result.bounds) - 1 >= result.positions else
             f" Shown as block means of {len(result.bounds) - 1} x {len(result.bounds) - 1} blocks of positions.")
    mask = "causal: a query attends to itself and earlier keys only" if result.causal else "none (every key)"
    if inputs.window:
        mask = f"causal within a window: a query attends to itself and its {inputs.window - 1} previous keys only"
    what = (f"Layer {result.layer}'s attention computed from positions alone ({inputs.note}), through the model's "
            f"own LayerNorm and query/key projections; tokens: {inputs.tokens}. Row i is query position i, "
            f"column j key position j; colours are probabilities on a log scale (10^{LOW_DECADE} and below, and "
            f"masked keys, darkest). Mask: {mask}.{shown}")
    block = [select, fig, figures.caption(what), numbers, figures.caption(
        "mean distance: mean over queries i of sum_j A_ij |i - j| (positions). previous token: mean over i >= 1 "
        "of A_i,i-1. diagonal: mean A_ii. entropy: mean over queries of -sum_j A_ij ln A_ij (ln N: uniform)."
        + (" distance (patches): sum_j A_ij times the Euclidean distance between the patches, averaged over "
           "queries." if grid is not None else ""))]
    if grid is not None:
        block += [row(patch_fig, column(patch), spacing=24), figures.caption(
            f"Where one query patch attends under the head picked: its row of probabilities laid out on the "
            f"{grid[0]} x {grid[1]} grid (red square: the patch), coloured from 0 to the image's largest value. "
            f"The picker offers {len(result.patch_index)} patches on a regular sub-grid.")]
    return figures.stack(*block)


SECTION = Section("attention", "attention from positions alone", build, order=110,
                  needs=("attention", "rotary_attention"))
