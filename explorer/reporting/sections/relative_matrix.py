"""The query x key matrix b_h(j - i) of one head, with a picker for the head."""

from __future__ import annotations

import math

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures

#: At most this many positions a side: the browser rebuilds the image from 2n - 1 values when the head changes.
SIDE = 256

_JS = """
const h = parseInt(select.value.split(' ')[1]);
const v = values[h], n = size;
const image = source.data.image[0];  // the n x n float32 array written by Python, filled in place
let lo = Infinity, hi = -Infinity;
for (let i = 0; i < n; i++) {
  for (let j = 0; j < n; j++) {
    const x = (is_causal && j > i) ? NaN : v[j - i + n - 1];
    image[i * n + j] = x;
    if (!Number.isNaN(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  }
}
if (hi === lo) { hi = lo + 1; }
mapper.low = lo; mapper.high = hi;
fig.title.text = 'query \u00d7 key bias, head ' + h;
source.change.emit();
"""


def sampled(term) -> tuple[np.ndarray, int, int]:
    """Every head's values at multiples of the stride s (heads x (2n-1)), the side n and s."""
    stride = max(1, math.ceil(term.positions / SIDE))
    n = (term.positions - 1) // stride + 1
    k = np.arange(-(n - 1), n) * stride
    columns = np.clip(k + term.positions - 1, 0, term.dim - 1)  # a causal term has no k > 0: masked in the image
    return np.ascontiguousarray(term.values[:, columns]), n, stride


def image_of(vector: np.ndarray, n: int, causal: bool) -> np.ndarray:
    """The n x n image b(j - i) of one head's sampled vector (NaN above the diagonal for a causal term)."""
    i, j = np.indices((n, n))
    image = vector[j - i + n - 1].astype(np.float32)
    if causal:
        image[j > i] = np.nan
    return image


def build(context: SectionContext):
    """The head picker, the image of the chosen head, its caption."""
    from bokeh.models import ColorBar, ColumnDataSource, CustomJS, HoverTool, LinearColorMapper, Range1d, Select
    from bokeh.palettes import RdBu11

    term = context.embedding
    values, n, stride = sampled(term)
    first = image_of(values[0], n, term.causal)
    finite = first[np.isfinite(first)]
    low, high = float(finite.min()), float(finite.max())
    mapper = LinearColorMapper(palette=RdBu11[::-1], low=low, high=high if high > low else low + 1,
                               nan_color=(0, 0, 0, 0))
    span = n * stride
    fig = figures.figure("query \u00d7 key bias, head 0", "relative_matrix", figures.SIZE + 40,
                         x_range=Range1d(0, span), y_range=Range1d(span, 0), x_axis_label="key position j",
                         y_axis_label="query position i", match_aspect=True)
    source = ColumnDataSource({"image": [first]})
    fig.image(image="image", x=0, y=0, dw=span, dh=span, source=source, color_mapper=mapper)
    fig.add_tools(HoverTool(tooltips=[("query i", "$y{0}"), ("key j", "$x{0}"), ("b", "@image{0.0000}")]))
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    select = Select(title="head", value="head 0", options=[f"head {h}" for h in range(term.heads)], width=160,
                    name="head_picker")
    select.js_on_change("value", CustomJS(args=dict(select=select, source=source, mapper=mapper, fig=fig,
                                                    values=[list(map(float, row)) for row in values], size=n,
                                                    is_causal=term.causal), code=_JS))
    note = f" Every {stride}th position is shown ({n} a side)." if stride > 1 else ""
    return figures.stack(select, fig, figures.caption(
        "B[i, j] = b_h(j - i): what head h adds to the score of query i attending to key j, the same along every "
        "diagonal." + (" A causal term has no value above the diagonal (keys after the query)." if term.causal
                       else "") + note + " Colours span the chosen head's own range."))


SECTION = Section("relative_matrix", "query \u00d7 key matrix of one head", build, order=21,
                  needs=("relative_profile",), terms=("relative",))
