"""The 2-D offset profile m(dy, dx) as an image, with the 2-D translation invariance and the separability; on a
video grid m(dt, dy, dx) as a strip of (dy, dx) images, one per frame lag. Only for tables on a patch grid."""

from __future__ import annotations

from bokeh.layouts import column, row

from explorer.analysis.grid import MAX_FRAMES
from explorer.plugins.units import Section, SectionContext
from explorer.reporting import figures
from explorer.reporting.grid_views import frame_strip, grid_image


def build(context: SectionContext):
    """The image and its caption; None for a 1-D table."""
    offset, separable = context.results["grid_offset"], context.results.get("separability")
    if offset is None:
        return None
    video = offset.dt0 is not None
    if video:  # m(-dt, -dy, -dx) = m(dt, dy, dx): the lags dt >= 0 say everything
        fig = frame_strip(offset.mean[offset.dt0:offset.dt0 + MAX_FRAMES],
                          "offset profile m(dt, dy, dx), one image per frame lag dt",
                          "grid_offset", starts=(0, -offset.dy0, -offset.dx0), labels=("dt", "dy", "dx"),
                          value_label="m", cosine=True)
    else:
        fig = grid_image(offset.mean, "offset profile m(dy, dx)", "grid_offset", x_start=-offset.dx0 - 0.5,
                         y_start=-offset.dy0 - 0.5, x_label="dx", y_label="dy", value_label="m", cosine=True)
    split = ""
    if separable is not None:
        frames = (f"frame term {figures.fmt(separable.frames, '.3f')}, " if video else "")
        split = (f" Separability {figures.fmt(separable.total, '.3f')} ({frames}row term "
                 f"{figures.fmt(separable.rows, '.3f')}, column term {figures.fmt(separable.columns, '.3f')}): the "
                 "share of the centred unit vectors' sum of squares (the trace of the centred cosine matrix) that "
                 + ("a frame term c_t plus a row term a_r plus a column term b_c explain; about (T + H + W - 3) / "
                    "(THW - 1) for noise." if video else "a row term a_r plus a column term b_c explain; 1 for the "
                    "2-D sin-cos table, about (H + W - 2) / (HW - 1) for noise."))
    if video:
        return column(row(fig), figures.caption(
            "m(dt, dy, dx) = mean cos(p_(t,r,c), p_(t+dt,r+dy,c+dx)) over the (T - |dt|)(H - |dy|)(W - |dx|) pairs of "
            "patches that far apart in frames, rows and columns; image dt holds the (dy, dx) plane (dy down, dx "
            "right, the centre is dy = dx = 0; m(0, 0, 0) = 1), on [-1, 1]. Negative dt mirror these "
            f"(m(-dt, -dy, -dx) = m(dt, dy, dx)){f'; lags beyond {MAX_FRAMES - 1} are not drawn' if offset.dt0 >= MAX_FRAMES else ''}. 3-D translation invariance TI3 = 1 - ||C - T3(m)||_F / ||C||_F = "
            f"{figures.fmt(offset.invariance, '.3f')} (1: the cosine between two patches depends on their offset in "
            "time and space alone)." + split), sizing_mode="stretch_width")
    return column(row(fig), figures.caption(
        "m(dy, dx) = mean cos(p_(r,c), p_(r+dy,c+dx)) over the (H - |dy|)(W - |dx|) pairs of patches that far apart "
        "(dy down, dx right; the centre is 1), on [-1, 1] as the patch similarity. 2-D translation invariance TI2 = 1 - ||C - T2(m)||_F / ||C||_F = "
        f"{figures.fmt(offset.invariance, '.3f')} (1: the cosine between two patches depends on their offset "
        "alone)." + split), sizing_mode="stretch_width")


SECTION = Section("grid_offset", "offset profile on the grid", build, order=65, needs=("grid_offset",))
