"""A convolutional position embedding (``explorer.ConvKernel``): every group's kernel over its output channels and
frame offsets, and its frequency response in cycles per frame, each as a grid of one image per group, and each
group's numbers."""

from __future__ import annotations

import math

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.sections.relative_matrix import colours
from explorer.reporting.sections.relative_term import provenance_table
from explorer.reporting.sections.window_bias import GAP, label_montage, montage

#: The grid's height in pixels is about this many times its rows over its columns, within the bounds below.
ASPECT_WIDTH, LOWEST, HIGHEST = 900, 220, 640


def provenance(term) -> "object":
    """The term's provenance as a small escaped table."""
    info = term.provenance()
    rows = [("provider", info["provider"]), ("source", info["source"]),
            ("term", "convolution over time (each frame adds a grouped filter of its neighbours)"),
            ("kind", info["kind"]),
            ("shape", f"{term.channels} channels in {term.groups} groups of {term.group_channels}, {term.taps} taps "
                      f"(frame offsets {info['offsets'][0]} .. {info['offsets'][1]})"),
            ("stored dtype", info["dtype"]), ("tensor", info["tensor"]), ("revision", info["revision"]),
            ("parameters", ", ".join(f"{k}={v}" for k, v in info["params"].items())), ("note", info["description"])]
    return provenance_table(term.label, rows, "conv_provenance")


def _ticks(tiles: int, values: np.ndarray, chosen: list[int]) -> dict[float, str]:
    """Labels ``values[i]`` for the chosen cells ``i`` of every tile along one axis, at the cells' centres."""
    side = len(values)
    return {tile * (side + GAP) + i + 0.5: f"{values[i]:.3g}" for tile in range(tiles) for i in chosen}


def group_grid(images: np.ndarray, along: np.ndarray, title: str, name: str, x_label: str, what: str,
               along_name: str, low_tick: int) -> "object":
    """One image per group (output channels down, ``along`` across) tiled row by row on one colour scale from 0."""
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Range1d

    groups, side, columns = images.shape
    tiled, across = montage(images)
    channel, _ = montage(np.broadcast_to(np.arange(groups * side, dtype=np.float32).reshape(groups, side, 1),
                                         images.shape))
    position, _ = montage(np.broadcast_to(np.asarray(along, dtype=np.float32), images.shape))
    down, wide = tiled.shape
    high = float(np.nanmax(tiled)) if np.isfinite(tiled).any() else 0.0
    mapper = LinearColorMapper(palette=colours(1), low=0.0, high=high if high > 0 else 1.0, nan_color=(0, 0, 0, 0))
    height = int(min(HIGHEST, max(LOWEST, ASPECT_WIDTH * down / wide))) + 90
    fig = figures.figure(title, name, height, x_range=Range1d(0, wide), y_range=Range1d(down, 0),
                         x_axis_label=x_label, y_axis_label="output channel of the group")
    figures.without_grid(fig)
    source = ColumnDataSource({"image": [tiled], "channel": [channel], "along": [position]})
    image = fig.image(image="image", x=0, y=0, dw=wide, dh=down, source=source, color_mapper=mapper)
    fig.add_tools(HoverTool(renderers=[image], tooltips=[("channel", "@channel{0}"), (along_name, "@along{0.[000]}"),
                                                         (what, "@image{0.0000}")]))
    # inner cells only (a tile's first and last labels would run into its neighbour's); three only on wide tiles
    inner = [low_tick // 2, low_tick, min(columns - 1, low_tick + low_tick // 2)]
    x_ticks = _ticks(across, np.asarray(along), sorted(set(inner)) if across <= 2 and columns >= 16 else [low_tick])
    y_ticks = _ticks(math.ceil(groups / across), np.arange(side), sorted({0, side // 2}))
    label_montage(fig, x_ticks, y_ticks, [f"group {g}" for g in range(groups)], across, columns, side)
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title=what), "right")
    return fig


def build(context: SectionContext):
    """The kernel grid, the frequency-response grid, the per-group numbers and their captions."""
    term, result = context.embedding, context.results["conv_kernel"]
    side, taps = term.group_channels, term.taps
    kernel = group_grid(result.strength, result.offsets, "kernel per group: strength by output channel and frame "
                        "offset", "conv_kernel", "frame offset (input frame - output frame)", "rms weight",
                        "offset", taps // 2)
    response = group_grid(result.response, result.frequencies, "frequency response per group", "conv_response",
                          "frequency (cycles per frame)", "rms gain", "frequency", len(result.frequencies) // 2)
    rows = [[f"group {g}", float(result.norm[g]), float(result.centroid[g]), float(result.spread[g]),
             float(result.peak_frequency[g]), float(result.low_share[g])] for g in range(term.groups)]
    header = ("group", "norm", "centre (frames)", "spread (frames)", "peak (cycles/frame)", "low share")
    return figures.stack(
        kernel, figures.caption(
            f"The weight the convolution uses (after weight normalisation), one image per group of {side} channels: "
            f"row c is an output channel, column k the frame it reads, {-(taps // 2)} to {taps - 1 - taps // 2} "
            f"frames from the output frame. The colour is the root mean square of the weights over the group's "
            f"{side} input channels (0 white, the largest dark red), so it shows where in time each channel looks, "
            f"not the sign of its weights (posembed export writes every weight)."),
        response, figures.caption(
            f"|DFT| of each kernel's {taps} taps, root mean square over the group's input channels, at f / {taps} "
            f"cycles per frame from 0 (the mean of the taps: a constant input) to 1/2 (frames alternating). A "
            f"smoothing kernel is dark on the left; one that picks out changes from frame to frame, on the right."),
        figures.number_grid("per group", header, rows, name="conv_numbers"), figures.caption(
            "norm: the Frobenius norm of the group's weights. centre: the frame offset weighted by the squared "
            "weights (< 0: it reads mostly earlier frames); spread: their standard deviation in frames. peak: the "
            "frequency of the largest mean power. low share: the share of the power below 1/8 cycles per frame."))


SECTION = Section("conv_kernel", "Convolutional positions: the kernel per group and its frequency response", build,
                  order=16, needs=("conv_kernel",), terms=("conv",))
