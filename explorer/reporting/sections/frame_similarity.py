"""Along time on a video grid: the mean cosine of a patch with the same patch in every other frame, as a T x T image.
Only for tables on a video grid (frames x rows x columns)."""

from __future__ import annotations

from bokeh.layouts import column, row
from bokeh.models import FixedTicker

from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.grid_views import grid_image


def build(context: SectionContext):
    """The frame x frame image and its caption; None off a video grid."""
    result, grid = context.results["frame_similarity"], context.embedding.grid
    if result is None:
        return figures.caption("The same patch across frames: not shown, the grid has more frames than the display "
                               "resolution.") if grid is not None and len(grid) == 3 else None
    frames, height, width = grid
    fig = grid_image(result.cosine, "the same patch across frames: mean cosine", "frame_similarity",
                     x_label="frame t'", y_label="frame t", value_label="mean cosine", cosine=True)
    ticks = list(range(0, frames, max(1, frames // 16)))  # at the cells' centres, at most about 16
    for axis in (fig.xaxis, fig.yaxis):
        axis.ticker = FixedTicker(ticks=[t + 0.5 for t in ticks], minor_ticks=[])
        axis.major_label_overrides = {t + 0.5: str(t) for t in ticks}
    return column(row(fig), figures.caption(
        f"F[t, t'] = mean over the {height} x {width} patches (r, c) of cos(p_(t,r,c), p_(t',r,c)): how alike a patch's "
        "position vector is in two frames (1 on the diagonal), on [-1, 1] as the patch similarity. Next to the "
        f"diagonal its mean is {figures.fmt(result.adjacent, '.3f')}: a learned time axis shows a band fading away from "
        "the diagonal, frames that share nothing but their patch a value near 0 everywhere off it, and a table whose "
        "time term is small beside its space term (TimeSformer's sum, where the space table dominates) values near 1. "
        "The patch similarity's picker shows one patch's cosine with every patch of every frame."),
        sizing_mode="stretch_width")


SECTION = Section("frame_similarity", "the same patch across frames (video grid)", build, order=26,
                  needs=("frame_similarity",))
