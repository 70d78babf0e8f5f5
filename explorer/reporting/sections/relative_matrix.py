"""The query x key matrix b_h(j - i) of one head, with a picker for the head."""

from __future__ import annotations

import math

import numpy as np
from bokeh.palettes import interp_palette

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.encoding import DIVERGING, LEVELS

#: At most this many positions a side: the browser rebuilds the image from 2n - 1 values when the head changes.
SIDE = 256

#: Redraws the image from the chosen head's 2n - 1 values, and sets the colour range as ``colour_range`` does.
_JS = """
const h = parseInt(select.value.split(' ')[1]);
const v = values[h], n = size;
const image = source.data.image[0];  // the n x n float32 array written by Python, filled in place
let top = 0;
for (let i = 0; i < n; i++) {
  for (let j = 0; j < n; j++) {
    const x = (is_causal && j > i) ? NaN : v[j - i + n - 1];
    image[i * n + j] = x;
    if (!Number.isNaN(x)) { top = Math.max(top, Math.abs(x)); }
  }
}
if (!(top > 0)) { top = 1; }
mapper.low = sign > 0 ? 0 : -top; mapper.high = sign < 0 ? 0 : top;
fig.title.text = 'query \u00d7 key bias, head ' + h;
source.change.emit();
"""


def one_sign(values: np.ndarray) -> int:
    """1 when every finite value is >= 0, -1 when every one is <= 0 (ALiBi's penalties), 0 when they have both
    signs (or are all 0)."""
    finite = values[np.isfinite(values)]
    if not finite.size or not finite.any() or (finite.min() < 0 < finite.max()):
        return 0
    return 1 if finite.max() > 0 else -1


def colours(sign: int) -> tuple[str, ...]:
    """The page's diverging palette (blue negative, white 0, red positive; 256 steps), or for a one-signed term
    the half of it on that term's side, stretched to 256 steps: white at 0 to the end colour."""
    if not sign:
        return DIVERGING
    half = DIVERGING[:LEVELS // 2] if sign < 0 else DIVERGING[LEVELS // 2:]
    return tuple(interp_palette(half, LEVELS))


def colour_range(image: np.ndarray, sign: int) -> tuple[float, float]:
    """The colour range of one head's image: symmetric about 0 over its largest |value| (white is 0), or from 0
    to its extreme for a one-signed term."""
    finite = np.abs(image[np.isfinite(image)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return (0.0 if sign > 0 else -top, 0.0 if sign < 0 else top)


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

    term = context.embedding
    values, n, stride = sampled(term)
    sign = one_sign(term.values)
    first = image_of(values[0], n, term.causal)
    low, high = colour_range(first, sign)
    mapper = LinearColorMapper(palette=colours(sign), low=low, high=high, nan_color=(0, 0, 0, 0))
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
                                                    values=list(values.astype(np.float32)), size=n,
                                                    is_causal=term.causal, sign=sign), code=_JS))
    note = f" Every {stride}th position is shown ({n} a side)." if stride > 1 else ""
    return figures.stack(select, fig, figures.caption(
        "B[i, j] = b_h(j - i): what head h adds to the score of query i attending to key j, the same along every "
        "diagonal." + (" A causal term has no value above the diagonal (keys after the query)." if term.causal
                       else "") + note + " " + colour_note(sign)))


def colour_note(sign: int) -> str:
    """The caption's account of the colours."""
    if not sign:
        return ("Colour: blue negative, red positive, white 0, on a range symmetric about 0 out to the chosen "
                "head's largest |value|.")
    side, end = ("<= 0", "most negative value, dark blue") if sign < 0 else (">= 0", "largest value, dark red")
    return (f"Every value of this term is {side}, so the palette is sequential: white at 0 to the chosen head's "
            f"{end}.")


SECTION = Section("relative_matrix", "query \u00d7 key matrix of one head", build, order=21,
                  needs=("relative_profile",), terms=("relative",))
