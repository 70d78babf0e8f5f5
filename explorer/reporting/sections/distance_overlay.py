"""On a page holding a relative term: every item's distance curve on one normalised plot."""

from __future__ import annotations

import numpy as np

from explorer.plugins.units import PAGE, Section, SectionContext
from explorer.reporting import figures


def distance_curve(embedding, results) -> tuple[np.ndarray, np.ndarray] | None:
    """(|k|, curve) of one item: an absolute table's offset profile m(k), a relative term's mean over heads of
    (b(k) + b(-k)) / 2 (b(-k) alone when causal); None without the result it needs."""
    if embedding.term == "relative":
        profile = results.get("relative_profile")
        if profile is None:
            return None
        k, mean = profile.distance.astype(np.int64), profile.mean.astype(np.float64)
        back = k <= 0
        far, value = -k[back][::-1], mean[back][::-1]
        if not profile.causal:
            ahead = dict(zip(k[k >= 0].tolist(), mean[k >= 0].tolist()))
            value = np.array([(v + ahead.get(int(d), v)) / 2 for d, v in zip(far, value)])
        return far, value
    offset = results.get("offset")
    return None if offset is None else (offset.lag.astype(np.int64), offset.mean.astype(np.float64))


def normalised(curve: np.ndarray) -> np.ndarray:
    """(y - min) / (max - min), so 1 is the curve's highest value and 0 its lowest (all 1 when flat)."""
    low, high = float(curve.min()), float(curve.max())
    return np.ones_like(curve) if high == low else (curve - low) / (high - low)


def build(context: SectionContext):
    """One line per item, each normalised to [0, 1], against |k|; only on a page with a relative term."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.palettes import Category10_10

    page = context.page
    if not any(e.term == "relative" for e in page.embeddings):
        return None
    fig = figures.figure("distance curves, normalised", "distance_overlay", figures.SIZE - 60,
                         x_axis_label="distance |k| (positions apart)", y_axis_label="normalised value")
    drawn = 0
    for index, (embedding, results) in enumerate(zip(page.embeddings, page.results)):
        curve = distance_curve(embedding, results)
        if curve is None or not len(curve[0]):
            continue
        what = "mean bias" if embedding.term == "relative" else "offset profile m(k)"
        source = ColumnDataSource({"k": curve[0].astype(np.int32), "y": normalised(curve[1]).astype(np.float32),
                                   "raw": curve[1].astype(np.float32)})
        fig.line(x="k", y="y", source=source, color=Category10_10[index % 10], line_width=1.8,
                 legend_label=f"{index + 1}. {page.label_of(index)} ({what})")
        drawn += 1
    if not drawn:
        return None
    fig.add_tools(HoverTool(tooltips=[("|k|", "@k"), ("normalised", "@y{0.000}"), ("value", "@raw{0.0000}")]))
    fig.legend.label_text_font_size = "9pt"
    fig.legend.location = "top_right"
    return figures.stack(fig, figures.caption(
        "Each curve is min-max normalised on its own: (y - min) / (max - min) over the distances it covers, so 1 "
        "is its highest value and 0 its lowest. Absolute tables: the offset profile m(k), the mean cosine of "
        "positions k apart. Relative terms: the mean over heads of (b(k) + b(-k)) / 2 (b(-k) for causal terms) "
        "at |k|. The shapes compare; the units do not."))


SECTION = Section("distance_overlay", "distance curves of every term", build, order=6, scope=PAGE, min_tables=2)
