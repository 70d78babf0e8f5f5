"""posembed-monotonicity: is a position table monotone and symmetric, as Wang et al. (2021) ask?

Wang, Shang, Lioma, Jiang, Yang, Liu & Simonsen, "On Position Embeddings in BERT" (ICLR 2021), define
properties of a proximity phi between position vectors. Two of them, read on the table's cosines:

- monotonicity: "for all x, m, n: m > n <=> phi(x, x + m) < phi(x, x + n)", proximity falls as the
  distance grows. Measured here as the share of triples (anchor i, direction +-, offsets 1 <= k' < k <= K)
  in which the nearer position is the more similar one, cos(p_i, p_i+-k') > cos(p_i, p_i+-k), ties
  counting 1/2: 1 for a strictly monotone table, 0.5 for a coin flip. M(k) is that share among the
  triples whose farther offset is k.
- symmetry: the paper's phi(x, y) = phi(y, x) holds for any cosine by construction (it bites for attention
  scores, through W_Q W_K^T). What can differ on a table is direction: whether position i sees the position
  k ahead as it sees the one k behind. With f_i(k) = cos(p_i, p_i+k) and g_i(k) = cos(p_i, p_i-k),
  S = 2 sum f g / sum (f^2 + g^2) = 1 - sum (f - g)^2 / sum (f^2 + g^2), over anchors with both
  neighbours in the table: 1 when f = g, 0 when they are unrelated, -1 when f = -g. S(k) sums over one k.

The paper's own indicators are computed on attention scores (its "identical word probing"); these two are
this plugin's reading of its definitions for a bare table, not numbers from the paper. Translation
invariance, its third property, is built into posembed (``translation_invariance``).

Offsets go up to K = min(N - 1, MAX_OFFSET): the paper finds local monotonicity is what helps. Anchors are
every position of a table of at most ANCHORS rows, else one drawn (seeded) from each of ANCHORS equal strata.
Each anchor reads only its 2K + 1 neighbours: O(N D) memory for the unit rows plus O(ANCHORS K) for the
cosines, O(ANCHORS K (D + K)) time; never an N x N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explorer import Analysis, Section, SectionContext, hookimpl

if TYPE_CHECKING:  # for the type hints only: numpy is imported where it is used
    import numpy as np

#: Largest offset looked at: the property that matters is local.
MAX_OFFSET = 256
#: Anchor positions used; a table with at most this many positions uses every one.
ANCHORS = 256


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare fields
class Indicators:
    """Monotonicity and symmetry over offsets 1 .. K, per offset and overall."""

    offset: np.ndarray  # int32, k = 1 .. K
    monotonicity: np.ndarray  # float32, M(k) (NaN at k = 1: no nearer offset)
    symmetry: np.ndarray  # float32, S(k) (NaN where no anchor has both neighbours)
    overall_monotonicity: float  # M over every triple with k <= K
    overall_symmetry: float  # S over every offset k <= K
    anchors: int  # anchor positions used (N when every position is one)


def anchor_positions(n: int, anchors: int = ANCHORS, seed: int = 0) -> np.ndarray:
    """Every position when ``n <= anchors``, else one drawn uniformly from each of ``anchors`` equal strata."""
    import numpy as np  # imported here, not at the top, so `posembed --help` stays fast

    if n <= anchors:
        return np.arange(n)
    # stratified: spread over the whole table, with no grid to alias with periodic structure
    rng = np.random.default_rng(seed)
    return np.floor((np.arange(anchors) + rng.random(anchors)) * (n / anchors)).astype(np.int64)


def proximity_profiles(x: np.ndarray, anchors: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """f[a, k] = cos(p_i, p_i+k) and g[a, k] = cos(p_i, p_i-k) for anchor i = anchors[a], k = 0 .. max_offset.

    NaN where the neighbour lies outside the table or a row is zero. Float64.
    """
    import numpy as np

    unit = np.array(x, dtype=np.float64)  # the one N x D copy: divided in place
    with np.errstate(divide="ignore", invalid="ignore"):
        unit /= np.sqrt(np.einsum("ij,ij->i", unit, unit))[:, None]  # a zero row becomes NaN: no direction
    n = len(unit)
    forward = np.full((len(anchors), max_offset + 1), np.nan)
    backward = np.full((len(anchors), max_offset + 1), np.nan)
    for a, i in enumerate(anchors):
        low, high = max(0, i - max_offset), min(n, i + max_offset + 1)
        near = unit[low:high] @ unit[i]  # a slice, not a copy: 2K + 1 cosines for this anchor
        forward[a, : high - i] = near[i - low:]
        backward[a, : i - low + 1] = near[i - low::-1]
    return forward, backward


def _wins_and_pairs(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per farther offset k: triples where the nearer offset wins (ties 1/2), and defined triples."""
    import numpy as np

    size = profile.shape[1]
    wins, pairs = np.zeros(size), np.zeros(size)
    for k in range(2, size):
        nearer, farther = profile[:, 1:k], profile[:, k:k + 1]
        # comparisons with NaN are False, so undefined triples add nothing to the wins
        wins[k] = np.count_nonzero(nearer > farther) + 0.5 * np.count_nonzero(nearer == farther)
        pairs[k] = np.count_nonzero(np.isfinite(nearer) & np.isfinite(farther))
    return wins, pairs


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def indicators(x: np.ndarray, max_offset: int = MAX_OFFSET, anchors: int = ANCHORS, seed: int = 0) -> Indicators | None:
    """Monotonicity and symmetry of the table ``x`` (positions x dimensions); None below 3 positions."""
    import numpy as np

    n = len(x)
    size = min(n - 1, int(max_offset))
    if size < 2:  # a triple needs two offsets
        return None
    chosen = anchor_positions(n, anchors, seed)
    forward, backward = proximity_profiles(x, chosen, size)

    wins_ahead, pairs_ahead = _wins_and_pairs(forward)
    wins_behind, pairs_behind = _wins_and_pairs(backward)
    wins, pairs = wins_ahead + wins_behind, pairs_ahead + pairs_behind

    both = np.isfinite(forward) & np.isfinite(backward)
    f, g = np.where(both, forward, 0.0), np.where(both, backward, 0.0)
    cross, energy = 2.0 * (f * g).sum(axis=0), (f * f + g * g).sum(axis=0)

    return Indicators(
        offset=np.arange(1, size + 1, dtype=np.int32),
        monotonicity=_ratio(wins, pairs)[1:].astype(np.float32),
        symmetry=_ratio(cross, energy)[1:].astype(np.float32),
        overall_monotonicity=float(_ratio(wins.sum(), pairs.sum())),
        overall_symmetry=float(_ratio(cross[1:].sum(), energy[1:].sum())),
        anchors=len(chosen),
    )


ANALYSIS = Analysis(
    name="monotonicity",
    description="Wang et al. (2021): does similarity fall with distance (monotonicity), alike both ways (symmetry)?",
    run=lambda context: indicators(context.matrix, seed=context.seed),
    scalars=lambda found: {"monotonicity": found.overall_monotonicity, "symmetry": found.overall_symmetry},
    arrays=lambda found: {"offset": found.offset, "monotonicity": found.monotonicity, "symmetry": found.symmetry},
)


def build(context: SectionContext) -> Any:
    """The report's view: M(k) and S(k) over the offset k, with the formulas in the caption."""
    import numpy as np  # Bokeh, like numpy, is imported here: `posembed --help` must not load it
    from bokeh.models import ColumnDataSource, HoverTool, Range1d, Span

    from explorer.reporting.figures import captioned, figure

    found = context.results["monotonicity"]
    if found is None:  # below 3 positions; `needs` only says the analysis ran, not that it applied
        return None  # no block for this table
    last = int(found.offset[-1])
    source = ColumnDataSource({"k": found.offset, "m": found.monotonicity, "s": found.symmetry})
    low = min(0.0, float(np.nanmin(found.symmetry, initial=0.0)))
    fig = figure("monotonicity M(k) and symmetry S(k)", "monotonicity", height=300,
                 x_range=context.page.shared_range("monotonicity_offset", 0, last + 1),
                 y_range=Range1d(low - 0.05, 1.05), x_axis_label="offset k (positions apart)",
                 y_axis_label="M(k), S(k)")
    fig.add_layout(Span(location=0.5, dimension="width", line_dash="dotted", line_color="#888"))
    fig.line("k", "m", source=source, color="#08519c", line_width=1.6, legend_label="monotonicity M(k)")
    fig.line("k", "s", source=source, color="#d95f02", line_width=1.6, legend_label="symmetry S(k)")
    fig.add_tools(HoverTool(tooltips=[("k", "@k"), ("M(k)", "@m{0.000}"), ("S(k)", "@s{0.000}")], mode="vline"))
    fig.legend.location = "bottom_left"
    anchors = "every position" if found.anchors == context.embedding.positions else f"{found.anchors} sampled positions"
    return captioned(fig, (
        f"Properties of Wang et al. (2021), read on cosines, with anchors i at {anchors}. M(k): share of anchors "
        "i, directions \u00b1 and nearer offsets 1 \u2264 k' < k with cos(p_i, p_i\u00b1k') > cos(p_i, p_i\u00b1k), "
        "ties counting \u00bd: 1 means similarity still falls at distance k, 0.5 (dotted) is a coin flip. "
        "S(k) = 2 \u03a3 f g / \u03a3 (f\u00b2 + g\u00b2) over anchors, with f = cos(p_i, p_i+k) and "
        "g = cos(p_i, p_i\u2212k): 1 when each position sees k ahead as it sees k behind, 0 when the two are "
        "unrelated; it swings where those cosines pass through zero. Over k \u2264 "
        f"{last}: monotonicity M = {found.overall_monotonicity:.3f}, symmetry S = {found.overall_symmetry:.3f}."))


SECTION = Section(name="monotonicity", title="monotonicity and symmetry (Wang et al. 2021)", build=build,
                  order=65, needs=("monotonicity",))


@hookimpl
def register_analyses(register):
    """Tell posembed about the analysis."""
    register(ANALYSIS)


@hookimpl
def register_sections(register):
    """Tell posembed about the report section."""
    register(SECTION)
