"""A 2-D relative bias (``explorer.WindowBias``): every head's bias over the offsets (dy, dx) as one image per head,
BEiT's class-token entries drawn apart, and each head's numbers."""

from __future__ import annotations

import math

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.sections.relative_matrix import colour_range, colours, one_sign
from explorer.reporting.sections.relative_term import provenance_table

#: Empty cells between two heads' images in the montage.
GAP = 1
#: The montage's largest size in pixels across and down (cells stay square, 3 to 36 pixels a side).
CELLS_WIDE, CELLS_HIGH = 480, 640
#: Pixels around the montage's frame: axes, title, colour bar and toolbar.
MARGIN_WIDE, MARGIN_HIGH = 150, 90


def montage(images: np.ndarray) -> tuple[np.ndarray, int]:
    """heads x h x w images tiled row by row, ``GAP`` transparent (NaN) cells apart, as one float32 array; and the
    number of tiles a row."""
    heads, height, width = images.shape
    across = math.ceil(math.sqrt(heads))
    down = math.ceil(heads / across)
    out = np.full((down * (height + GAP) - GAP, across * (width + GAP) - GAP), np.nan, dtype=np.float32)
    for head in range(heads):
        r, c = divmod(head, across)
        out[r * (height + GAP):r * (height + GAP) + height, c * (width + GAP):c * (width + GAP) + width] = images[head]
    return out, across


def label_montage(fig, x_ticks: dict[float, str], y_ticks: dict[float, str], names: list[str], across: int,
                  width: int, height: int) -> None:
    """A montage's axes ticked at ``x_ticks`` and ``y_ticks`` (position: label), and each tile's name (``names``,
    one a tile of ``width`` x ``height`` cells, ``across`` a row) written in its top left corner."""
    from bokeh.models import ColumnDataSource, FixedTicker

    fig.xaxis.ticker = FixedTicker(ticks=list(x_ticks))
    fig.xaxis.major_label_overrides = x_ticks
    fig.yaxis.ticker = FixedTicker(ticks=list(y_ticks))
    fig.yaxis.major_label_overrides = y_ticks
    labels = ColumnDataSource({"x": [(k % across) * (width + GAP) for k in range(len(names))],
                               "y": [(k // across) * (height + GAP) for k in range(len(names))], "text": names})
    fig.text(x="x", y="y", text="text", source=labels, text_font_size="8pt", text_baseline="top",
             x_offset=2, y_offset=2, text_color="#222222", background_fill_color="white", background_fill_alpha=0.7)


def _ticks(tiles: int, side: int) -> dict[float, str]:
    """Each tile's first, centre and last offset along one axis, at the cell centres of the montage."""
    ticks = {}
    for tile in range(tiles):
        for cell in sorted({0, side // 2, side - 1}):
            ticks[tile * (side + GAP) + cell + 0.5] = str(cell - side // 2)
    return ticks


def provenance(term) -> "object":
    """The term's provenance as a small escaped table."""
    info = term.provenance()
    height, width = term.window
    rows = [("provider", info["provider"]), ("source", info["source"]),
            ("term", "2-D relative bias (a value per head and key-minus-query offset (dy, dx))"), ("kind", info["kind"]),
            ("shape", f"{term.heads} heads \u00d7 {term.span[0]} \u00d7 {term.span[1]} offsets of a {height} \u00d7 "
                      f"{width} window" + (f", plus {len(term.extras)} entries" if term.extras else "")),
            ("entries", ", ".join(term.extras)), ("stored dtype", info["dtype"]), ("tensor", info["tensor"]),
            ("revision", info["revision"]), ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())),
            ("note", info["description"])]
    return provenance_table(term.label, rows, "window_provenance")


def head_images(term, mapper) -> "object":
    """Every head's (2Wh-1) x (2Ww-1) image in one montage, dy down and dx across, on one colour scale."""
    from bokeh.models import ColumnDataSource, HoverTool, Range1d

    images = term.images
    heads, rows, columns = images.shape
    tiled, across = montage(images)
    grid = np.indices((rows, columns), dtype=np.float32)
    dy, _ = montage(np.broadcast_to(grid[0] - rows // 2, images.shape))
    dx, _ = montage(np.broadcast_to(grid[1] - columns // 2, images.shape))
    head, _ = montage(np.broadcast_to(np.arange(heads, dtype=np.float32)[:, None, None], images.shape))
    down, wide = tiled.shape
    cell = max(3, min(36, CELLS_WIDE // wide, CELLS_HIGH // down))  # square cells, the montage at most ~900 px
    # scale_width keeps the cells near square at any width (a fixed frame leaves a stray strip of the image at the
    # column's left edge in Chromium)
    fig = figures.figure("bias per head over the offsets (dy, dx)", "window_heads", cell * down + MARGIN_HIGH,
                         sizing_mode="scale_width", width=cell * wide + MARGIN_WIDE,
                         max_width=cell * wide + MARGIN_WIDE, x_range=Range1d(0, wide), y_range=Range1d(down, 0),
                         x_axis_label="dx = key column - query column", y_axis_label="dy = key row - query row")
    figures.without_grid(fig)
    source = ColumnDataSource({"image": [tiled], "dy": [dy], "dx": [dx], "head": [head]})
    fig.image(image="image", x=0, y=0, dw=tiled.shape[1], dh=down, source=source, color_mapper=mapper)
    fig.add_tools(HoverTool(tooltips=[("head", "@head{0}"), ("dy", "@dy{0}"), ("dx", "@dx{0}"),
                                      ("bias", "@image{0.0000}")]))
    x_ticks, y_ticks = _ticks(across, columns), _ticks(math.ceil(heads / across), rows)
    label_montage(fig, x_ticks, y_ticks, [f"head {h}" for h in range(heads)], across, columns, rows)
    return fig


def _short(name: str) -> str:
    """``class query to patch keys`` as ``class \u2192 patch`` for a tick label (the caption has the full names)."""
    words = [w for w in name.split() if w not in ("query", "queries", "key", "keys")]
    return " \u2192 ".join(" ".join(words).split(" to ")) if " to " in name else name


def extra_entries(term, mapper) -> "object":
    """The entries that are no offset (BEiT's class token), heads down and entries across, on the same scale."""
    from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, Range1d

    values = np.ascontiguousarray(term.extra_values, dtype=np.float32)
    heads, entries = values.shape
    fig = figures.figure("class-token entries", "window_extras", max(80, 18 * heads) + 70, tools=None,
                         sizing_mode="scale_width", width=110 * entries + 80, max_width=110 * entries + 80,
                         x_range=Range1d(0, entries), y_range=Range1d(heads, 0), y_axis_label="head")
    figures.without_grid(fig)
    index = np.broadcast_to(np.arange(entries, dtype=np.float32), values.shape).copy()
    source = ColumnDataSource({"image": [values], "entry": [index]})
    fig.image(image="image", x=0, y=0, dw=entries, dh=heads, source=source, color_mapper=mapper)
    names = {k + 0.5: _short(name) for k, name in enumerate(term.extras)}
    fig.xaxis.ticker = FixedTicker(ticks=list(names))
    fig.xaxis.major_label_overrides = names
    fig.yaxis.ticker = FixedTicker(ticks=[h + 0.5 for h in range(heads)])
    fig.yaxis.major_label_overrides = {h + 0.5: str(h) for h in range(heads)}
    fig.add_tools(HoverTool(tooltips=[("head", "$y{0}"), ("entry", "@entry{0}"), ("bias", "@image{0.0000}")]))
    return fig


def build(context: SectionContext):
    """The per-head montage, the class-token entries when there are any, the per-head numbers, their captions."""
    from bokeh.models import ColorBar, LinearColorMapper

    term, stats = context.embedding, context.results["window_heads"]
    sign = one_sign(term.values)  # the page's palette, as the relative terms' images have it
    low, high = colour_range(term.values, sign)
    mapper = LinearColorMapper(palette=colours(sign), low=low, high=high, nan_color=(0, 0, 0, 0))
    montage_fig = head_images(term, mapper)
    montage_fig.add_layout(ColorBar(color_mapper=mapper, width=10, title="bias"), "right")
    height, width = term.window
    parts = [montage_fig, figures.caption(
        f"b_h(dy, dx): what head h adds to the attention score of a query patch and the key patch dy rows below "
        f"and dx columns right of it, anywhere in a {height} \u00d7 {width} window (the centre of each image is the "
        f"patch itself; up and left are keys above and left of the query). One colour scale for every head"
        + (" and the class-token entries" if term.extras else "") + ": " + (
            "blue negative, red positive, white 0, symmetric about 0 out to the largest |value|." if not sign else
            f"every value is {'>= 0' if sign > 0 else '<= 0'}, so white at 0 to the "
            f"{'largest value, dark red' if sign > 0 else 'most negative value, dark blue'}."))]
    extra_names = list(term.extras)
    if term.extras:
        parts += [extra_entries(term, mapper), figures.caption(
            "Drawn apart from the offsets: " + "; ".join(extra_names) + ". These entries are no offset: the class "
            "token has no place in the grid.")]
    rows = []
    for h in range(term.heads):
        row = [f"head {h}", float(stats.value_at_0[h]), float(stats.value_range[h]), float(stats.symmetry[h]),
               float(stats.decay[h]), float(stats.anisotropy[h])]
        rows.append(row + [float(v) for v in term.extra_values[h]])
    header = ("head", "b(0, 0)", "range", "symmetry", "decay", "anisotropy", *extra_names)
    parts += [figures.number_grid("per head", header, rows, name="window_numbers"), figures.caption(
        "range: max - min over the offsets. symmetry: Pearson r of b(dy, dx) and b(-dy, -dx). decay: Spearman's rho "
        "of b against the distance sqrt(dy\u00b2 + dx\u00b2) (-1: falls steadily with distance). anisotropy: "
        "(mean |b(dy, 0) - b(0, 0)| - mean |b(0, dx) - b(0, 0)|) / their sum (> 0: changes more along dy).")]
    return figures.stack(*parts)


SECTION = Section("window_bias", "2-D relative bias: per head over the window's offsets", build, order=12,
                  needs=("window_heads",), terms=("window",))
