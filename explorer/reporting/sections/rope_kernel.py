"""RoPE seen as a relative scheme: its kernel against distance and each frequency's wavelength (rotary tables)."""

from __future__ import annotations

import numpy as np

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures


def build(context: SectionContext):
    """The kernel K(k) and the wavelengths against the context, side by side; nothing for other tables."""
    from bokeh.models import ColumnDataSource, HoverTool, Span

    rope = context.results["rope_kernel"]
    if rope is None:
        return None
    kernel = figures.figure("RoPE kernel K(k) = mean_i cos(\u03b8_i k)", "rope_kernel",
                            x_axis_label="distance k (positions apart)", y_axis_label="K(k)")
    source = ColumnDataSource({"k": rope.lag, "K": rope.kernel})
    kernel.line(x="k", y="K", source=source, color="#08519c", line_width=1.6)
    kernel.add_tools(HoverTool(tooltips=[("k", "@k"), ("K(k)", "@K{0.0000}")], mode="vline"))
    finite = np.isfinite(rope.wavelength)
    pairs = np.flatnonzero(finite).astype(np.int32)
    waves = figures.figure("wavelength 2\u03c0/\u03b8_i of each frequency pair", "rope_wavelengths",
                           y_axis_type="log", x_axis_label="frequency pair i", y_axis_label="tokens")
    longer = rope.wavelength[finite] > rope.context
    wave_source = ColumnDataSource({"i": pairs, "wave": rope.wavelength[finite],
                                    "colour": np.where(longer, "#d62728", "#08519c").tolist()})
    waves.scatter(x="i", y="wave", color="colour", source=wave_source, size=5)
    waves.add_layout(Span(location=rope.context, dimension="width", line_color="#555", line_dash="dashed"))
    waves.add_tools(HoverTool(tooltips=[("pair", "@i"), ("wavelength", "@wave{0,0.0}")]))
    shown = "" if len(rope.lag) >= rope.context else f" Shown at {len(rope.lag)} distances."
    return figures.side_by_side(
        figures.stack(kernel, figures.caption(
            "K(k) = (1/F) sum_i cos(\u03b8_i k) over the F frequency pairs: the part of a query-key score that "
            "depends on distance alone when every pair carries equal weight (RoFormer's long-term decay), read "
            "from the table as <row k, row 0> / <row 0, row 0>." + shown)),
        figures.stack(waves, figures.caption(
            f"2\u03c0/\u03b8_i in tokens, \u03b8_i read from row 1. Dashed: the table's {rope.context} positions "
            f"(the config's context); {int(longer.sum())} of {len(rope.wavelength)} pairs (red) never complete "
            f"a turn within it.")),
    )


SECTION = Section("rope_kernel", "RoPE as a relative kernel", build, order=64, needs=("rope_kernel",))
