"""One function per report view: analysis results in, a fresh Bokeh model out. Renders, never computes.

Images travel as uint8 codes 0..255 with a colour mapper over the codes; the colour bar
carries a second mapper over the real values, and hovers decode the code back to a value
(accurate to half a code step, which the hover shows).
"""

from __future__ import annotations

import html

import numpy as np
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSHover,
    Div,
    HoverTool,
    LinearColorMapper,
)
from bokeh.palettes import Category10_10, RdBu11, interp_palette
from bokeh.plotting import figure

from explorer.analysis import MatrixImage, Traces
from explorer.analysis.similarity import SimilarityImage
from explorer.embedding import PositionEmbedding

LEVELS = 256
#: Blue for negative, red for positive, white at zero.
DIVERGING = tuple(interp_palette(RdBu11, LEVELS))
SIZE = 420


def quantise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``values`` in [low, high] to uint8 codes 0..255 (NaN maps to 0; it is shown as missing by the caption)."""
    span = (high - low) or 1.0
    codes = np.rint((np.nan_to_num(values, nan=low) - low) / span * (LEVELS - 1))
    return np.clip(codes, 0, LEVELS - 1).astype(np.uint8)


def _decode_js(low: float, high: float) -> CustomJSHover:
    step = (high - low) / (LEVELS - 1)
    return CustomJSHover(
        code=f"const v = {low!r} + value * {step!r}; return v.toFixed(4) + ' \u00b1 ' + ({step / 2!r}).toPrecision(2);"
    )


def _floor_js() -> CustomJSHover:
    return CustomJSHover(code="return Math.floor(value).toString();")


def _coded_image(fig, values: np.ndarray, low: float, high: float, x0: float, y0: float, dw: float, dh: float):
    mapper = LinearColorMapper(palette=DIVERGING, low=0, high=LEVELS - 1)
    fig.image(image=[quantise(values, low, high)], x=x0, y=y0, dw=dw, dh=dh, color_mapper=mapper)
    bar_mapper = LinearColorMapper(palette=DIVERGING, low=low, high=high)
    fig.add_layout(ColorBar(color_mapper=bar_mapper, width=10), "right")


def provenance_header(embedding: PositionEmbedding, summary: dict[str, float]) -> Div:
    """A table of where the matrix came from and a few summary numbers; every string is escaped."""
    info = embedding.provenance()
    rows = [
        ("provider", info["provider"]),
        ("source", info["source"]),
        ("kind", info["kind"]),
        ("shape", f"{embedding.positions} positions \u00d7 {embedding.dim} dimensions"),
        ("stored dtype", info["dtype"]),
        ("offset rows dropped", info["offset"]),
        ("tensor", info["tensor"]),
        ("revision", info["revision"]),
        ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())),
        ("note", info["description"]),
        ("values", f"{summary['value_min']:.4g} .. {summary['value_max']:.4g}"),
        ("mean row norm", f"{summary['row_norm_mean']:.4g}"),
        ("mean cos(p_i, p_i+1)", f"{summary['neighbour_cosine_mean']:.4f}"),
    ]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
        if v not in (None, "")
    )
    return Div(
        text=f"<h2>{html.escape(embedding.label)}</h2><table>{cells}</table>",
        name="provenance",
        width=2 * SIZE,
    )


def caption(text: str) -> Div:
    """A short explanation under a view (plain text, escaped)."""
    return Div(text=f"<p style='max-width:{SIZE}px;color:#444;font-size:90%'>{html.escape(text)}</p>", width=SIZE)


def matrix_heatmap(image: MatrixImage, limit: float) -> figure:
    """The table as an image: positions on x, dimensions on y, symmetric colour range [-limit, limit]."""
    n, d = int(image.position_bounds[-1]), int(image.dimension_bounds[-1])
    fig = figure(
        title="position embedding matrix",
        name="matrix",
        width=2 * SIZE,
        height=SIZE,
        x_range=(0, n),
        y_range=(0, d),
        x_axis_label="position",
        y_axis_label="dimension",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    _coded_image(fig, image.values, -limit, limit, 0, 0, n, d)
    fig.add_tools(HoverTool(
        tooltips=[("position", "$x{custom}"), ("dimension", "$y{custom}"), ("value", "@image{custom}")],
        formatters={"$x": _floor_js(), "$y": _floor_js(), "@image": _decode_js(-limit, limit)},
    ))
    return fig


def similarity_heatmap(image: SimilarityImage) -> figure:
    """A cosine-similarity image over positions or across dimensions, colour range [-1, 1]."""
    n = int(image.bounds[-1])
    item = "position" if image.axis == "positions" else "dimension"
    fig = figure(
        title=f"cosine similarity {'over' if image.axis == 'positions' else 'across'} {image.axis}",
        name=f"cosine_{image.axis}",
        width=SIZE + 60,
        height=SIZE,
        x_range=(0, n),
        y_range=(n, 0),
        x_axis_label=item,
        y_axis_label=item,
        match_aspect=True,
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    _coded_image(fig, image.values, -1.0, 1.0, 0, 0, n, n)
    fig.add_tools(HoverTool(
        tooltips=[(f"{item} i", "$y{custom}"), (f"{item} j", "$x{custom}"), ("cosine", "@image{custom}")],
        formatters={"$x": _floor_js(), "$y": _floor_js(), "@image": _decode_js(-1.0, 1.0)},
    ))
    return fig


def dimension_traces(traces: Traces, positions: int) -> figure:
    """Each chosen dimension's value across positions (one line per dimension; min/max band when decimated)."""
    fig = figure(
        title="dimension traces: one dimension's value across positions",
        name="dimension_traces",
        width=2 * SIZE,
        height=SIZE - 120,
        x_range=(0, positions),
        x_axis_label="position",
        y_axis_label="value",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    decimated = len(traces.index) < positions
    for k, dim in enumerate(traces.dims):
        colour = Category10_10[k % 10]
        source = ColumnDataSource({"position": traces.index.astype(np.int32), "low": traces.low[k], "high": traces.high[k]})
        legend = f"dimension {int(dim)}"
        if decimated:
            fig.varea(x="position", y1="low", y2="high", source=source, color=colour, alpha=0.6, legend_label=legend)
        else:
            fig.line(x="position", y="low", source=source, color=colour, line_width=1.5, legend_label=legend)
    fig.legend.click_policy = "hide"
    fig.legend.location = "top_right"
    fig.add_tools(HoverTool(tooltips=[("position", "@position"), ("value", "@low{0.0000} .. @high{0.0000}")]))
    return fig
