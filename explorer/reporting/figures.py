"""The house style of every figure on the page, public for plugin sections: ``figure`` (no Bokeh logo, the
house tools on the right, as wide as its column but never under ``MIN_WIDTH``), ``captioned`` (a view with its
caption under it), ``switch`` (buttons that show one of a figure's views at a time), and the blocks a section lays out
(``caption``, ``heading``, ``stack``, ``side_by_side``, ``number_grid``). Every string given is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (BoxZoomTool, CustomJS, Div, Grid, HoverTool, PanTool, RadioButtonGroup, ResetTool, SaveTool,
                          Spacer, WheelZoomTool)
from bokeh.plotting import figure as bokeh_figure

SIZE = 420
#: No plot is narrower than this many pixels, however narrow its column.
MIN_WIDTH = 300
#: Where every plot's toolbar sits (the page's subtitle says so): a vertical bar beside the plot needs only
#: the plot's height, which every plot has to spare; above it, it shares the title's line and overflows on
#: narrow plots.
TOOLBAR = "right"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
CAPTION_STYLE = "color:#444;font-size:90%;margin:0 0 1.2em 0"


def without_grid(fig) -> None:
    """Drop the grid of a plot an opaque image fills: its lines are drawn under the image, never seen."""
    fig.center = [r for r in fig.center if not isinstance(r, Grid)]


def figure(title: str, name: str | None = None, height: int = SIZE - 80, *, tools: str | Sequence | None = TOOLS,
           title_size: str = "12pt", **kw: Any) -> Any:
    """A Bokeh figure in the house style, for built-in and plugin sections alike.

    No Bokeh logo; ``tools`` (default: pan, wheel zoom, box zoom, reset and save) on a toolbar to the right of
    the plot, none with ``tools=None``; as wide as its column but never under ``MIN_WIDTH`` pixels, unless a
    fixed size is given (``width`` or ``frame_width``); ``height`` pixels high (unless ``frame_height``); the title
    at ``title_size``. Every other keyword goes to ``bokeh.plotting.figure`` (``x_range``, ``x_axis_label``,
    ``y_axis_type``, ...). A model belongs to one document: call it afresh for every figure of every page."""
    if tools == TOOLS:  # the TOOLS string's tools, made directly: resolving tool names costs more than the tools
        tools = [PanTool(), WheelZoomTool(), BoxZoomTool(), ResetTool(), SaveTool()]
    if "width" in kw or "frame_width" in kw:  # a fixed size is kept: a flex row must wrap it, never squeeze it
        # never narrower than itself either: squeezed by a narrow window (or a headless browser's full-page
        # capture, which lays the page out 1 px wide), a plot drew its frame at a negative x, and BokehJS's next
        # paint, which clears the canvas from half a pixel in, left that paint's first column on screen: the 1 px
        # sliver of colour and dotted title left of fixed-size images (sizing_mode "fixed" would ignore the frame)
        size = {"styles": {"flex": "0 0 auto", "min-width": "max-content", **kw.pop("styles", {})}}
    else:
        size = {"sizing_mode": "stretch_width", "min_width": MIN_WIDTH}
    if "frame_height" not in kw:
        size["height"] = height
    fig = bokeh_figure(title=title, name=name, tools=tools or "", toolbar_location=TOOLBAR if tools else None,
                       **size, **kw)
    fig.toolbar.logo = None
    fig.title.text_font_size = title_size
    return fig


#: Shows the chosen view of a figure and hides the others: its renderers (and the hover's), title and axis labels;
#: ranges that follow the data (``DataRange1d``) are reset to the view shown, even after a pan or zoom (which stops
#: them following); fixed ranges (a page's shared position axes) stay as they are.
SWITCH_JS = """
const k = cb_obj.active;
views.forEach((renderers, i) => renderers.forEach((r) => { r.visible = i === k; }));
if (hover !== null) hover.renderers = views[k];
fig.title.text = titles[k];
if (labels !== null) axes.forEach((axis, i) => { axis.axis_label = labels[k][i]; });
for (const range of [fig.x_range, fig.y_range]) if (range.type === "DataRange1d") range.reset();
"""


def switch(fig, views: dict[str, Sequence[Any]], titles: Sequence[str], *, hover: HoverTool | None = None,
           axis_labels: Sequence[tuple[str, str]] | None = None, name: str | None = None) -> RadioButtonGroup:
    """Buttons that show one of ``fig``'s views at a time: one figure where several would show the same thing.

    ``views`` maps each button's label to its renderers, the first view shown (the others are hidden here);
    the chosen view's renderers are the ``hover``'s, its title ``titles[k]`` and, with ``axis_labels``, its
    (x, y) axis labels; axes that follow the data (``DataRange1d``) fit the view shown. Put the buttons above the
    figure (``stack(buttons, fig, ...)``). ``ValueError`` when there is no view, or not one title (and one pair of
    axis labels, when given) per view."""
    renderers = list(views.values())
    counts = {"titles": len(titles), **({"axis label pairs": len(axis_labels)} if axis_labels is not None else {})}
    if not renderers or any(count != len(renderers) for count in counts.values()):
        raise ValueError("switch needs one or more views and as many titles (and axis label pairs, when given): "
                         f"{len(renderers)} views, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for k, group in enumerate(renderers):
        for renderer in group:
            renderer.visible = k == 0
    if hover is not None:
        hover.renderers = list(renderers[0])
    buttons = RadioButtonGroup(labels=list(views), active=0, **({"name": name} if name else {}))
    labelled = axis_labels is not None  # only then are the figure's axes needed (a plugin's may have none)
    buttons.js_on_change("active", CustomJS(args={"views": renderers, "hover": hover, "fig": fig,
                                                  "titles": list(titles),
                                                  "axes": [fig.xaxis[0], fig.yaxis[0]] if labelled else [],
                                                  "labels": [list(pair) for pair in axis_labels] if labelled
                                                  else None}, code=SWITCH_JS))
    return buttons


def captioned(view: Any, text: str, name: str | None = None) -> Any:
    """``view`` with its caption (plain text, escaped) under it, as wide as its column."""
    return stack(view, caption(text), name=name)


def legend_outside(fig, place: str = "below") -> None:
    """Move the figure's legend out of the data: below in one row (few entries), or right in a column."""
    legend = fig.legend[0]
    fig.add_layout(legend, place)
    legend.orientation = "horizontal" if place in ("above", "below") else "vertical"
    legend.label_text_font_size = "9pt"
    legend.spacing = 0 if place == "right" else 12
    legend.padding = 4


def stack(*children, name: str | None = None):
    """Children one under another, as wide as the column they are in."""
    return column(*children, sizing_mode="stretch_width", **({"name": name} if name else {}))


def side_by_side(*children, spacing: int = 24, wrap: bool = True):
    """Children next to each other, sharing the width evenly; with ``wrap`` (the default), those that would be
    narrower than ``MIN_WIDTH`` wrap under each other instead (a narrow column: a comparison's at 1280 px).

    Bokeh's Row is a CSS flex box, and a stretching child is ``flex: 1 0 0px`` with its ``min_width`` as CSS
    ``min-width``: the box wraps a line once its children's min widths and the spacing overflow it, and the
    children of a line share its width evenly. A stretching child without a min width (a plot's stack with its
    caption) gets ``MIN_WIDTH``, that of the plot in it; fixed-width children keep their widths."""
    if wrap:
        for child in children:
            if child.min_width is None and child.sizing_mode in ("stretch_width", "stretch_both"):
                child.min_width = MIN_WIDTH
    return row(*children, sizing_mode="stretch_width", spacing=spacing,
               **({"styles": {"flex-wrap": "wrap"}} if wrap else {}))


def spacer() -> Spacer:
    """An empty stretch of the column (where a table has no block)."""
    return Spacer(sizing_mode="stretch_width", height=1)


def fmt(value: float | None, digits: str = ".3g") -> str:
    """A number for a caption, ``n/a`` when missing or not finite."""
    return "n/a" if value is None or not np.isfinite(value) else format(value, digits)


def block_note(bounds: np.ndarray, what: str, pairs: bool = False) -> str:
    """A caption sentence for block-averaged views (empty when every block holds one item)."""
    sizes = np.diff(bounds)
    if sizes.max(initial=1) <= 1:
        return ""
    size = int(round(sizes.mean()))
    block = f"{size} x {size} pairs of {what}" if pairs else f"{size} {what}"
    return f" There are more {what} than the display resolution, so each pixel is a mean over a block of about {block}."


def div(text: str, **kw) -> Div:
    """A Div of ``text`` (HTML whose every string is escaped) with Bokeh's TeX typesetting off: MathJax would read
    ``$$...$$`` in a file's or a model's strings as math, and its ``\\href`` as a link to any URL (javascript: too)."""
    return Div(text=text, disable_math=True, **kw)


def _width(width: int | None) -> dict:
    """A fixed width when given, else as wide as the column."""
    return {"width": width} if width else {"sizing_mode": "stretch_width"}


def caption(text: str, width: int | None = None) -> Div:
    """A short explanation under a view (plain text, escaped); as wide as its column unless ``width`` is given."""
    return div(f"<p style='{CAPTION_STYLE}'>{html.escape(text)}</p>", **_width(width))


def heading(text: str, width: int | None = None) -> Div:
    """A section heading (plain text, escaped)."""
    return div(f"<h3 style='margin:1em 0 0 0'>{html.escape(text)}</h3>", **_width(width))


def number_grid(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], name: str,
                 width: int | None = None) -> Div:
    """A small grid of numbers and labels with a header row, as HTML (every cell escaped)."""
    def cell(tag: str, value: object) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"<{tag} style='text-align:left;padding:2px 1em 2px 0'>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return div(f"<b>{html.escape(title)}</b><table><tr>{head}</tr>{body}</table>", name=name, **_width(width))

