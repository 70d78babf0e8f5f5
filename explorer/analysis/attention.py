"""One layer's attention computed from positions alone (tables loaded with ``attention=L``), in numpy.

With X the stream entering the layer (``explorer.core.attention.AttentionInputs``: the position table P plus what
the family adds, through its embedding LayerNorm, or the stream the layers below made), the layer's own norm
and projections give, per head h, ``Q_h = LN(X) W_q,h + b_q,h`` and ``K_h`` alike; the scores are
``S_h = Q_h K_h^T * scale`` and the probabilities ``A_h = softmax(S_h + mask)`` row by row, with the model's own
mask (causal: key j > query i gets probability 0). Per head, over the N queries i:

- mean attention distance ``mean_i sum_j A_ij |i - j|`` (positions; on a patch grid also in patches, the
  Euclidean distance between patch (r_i, c_i) and (r_j, c_j));
- previous-token share ``mean_{i >= 1} A_i,i-1``; diagonal share ``mean_i A_ii``;
- entropy ``mean_i -sum_j A_ij ln A_ij`` (nats; ln N for uniform attention over N keys).

The N x N images are kept at display resolution R as block means (exact when N <= R), computed a band of query
rows at a time, so memory stays O(N D + H R^2); the per-head numbers are exact.

A rotary model (``inputs.rotary`` set, the table its cos/sin table) has no position in its stream: its layer is
described by ``rotary_attention`` instead, per head, from the weights and the rotary table alone (docs/analyses.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.analysis.context import TableContext
from explorer.analysis.resample import block_bounds
from explorer.plugins.units import Analysis

#: At most this many query patches (a regular sub-grid) keep their full attention image on a grid.
MAX_PATCH_SIDE = 8


@dataclass(frozen=True)
class LayerAttention:
    """A layer's attention from positions alone: per head (axis 0) the probabilities and scores at display
    resolution (block means over ``bounds``, exact for N <= R), and the per-head numbers.

    On a patch grid, ``patch_maps[h, k]`` is the (H x W) image of head h's attention from query patch
    ``patch_index[k]`` (row-major patch number) and ``patch_distance`` the mean attention distance in patches;
    otherwise they are empty."""

    layer: int
    causal: bool
    positions: int
    bounds: np.ndarray  # int32, r + 1 block edges of the positions
    probabilities: np.ndarray  # float32, heads x r x r
    scores: np.ndarray  # float32, heads x r x r, before the mask
    mean_distance: np.ndarray  # float32, heads
    previous: np.ndarray
    diagonal: np.ndarray
    entropy: np.ndarray
    patch_distance: np.ndarray  # float32, heads (empty off a grid)
    patch_index: np.ndarray  # int32, queries shown (empty off a grid)
    patch_maps: np.ndarray  # float32, heads x queries x H x W (empty off a grid)

    @property
    def heads(self) -> int:
        """The number of heads."""
        return int(self.probabilities.shape[0])


def layer_stream(table: np.ndarray, inputs) -> np.ndarray:
    """The stream entering the layer (float64, N x D): the layers' own output below, else the positions plus the
    family's additions through its embedding norm."""
    if inputs.hidden is not None:
        return inputs.hidden.astype(np.float64)
    x = np.asarray(table, dtype=np.float64)
    if inputs.shift is not None:
        x = x + inputs.shift
    return inputs.embed_norm(x) if inputs.embed_norm is not None else x


def queries_and_keys(table: np.ndarray, inputs) -> tuple[np.ndarray, np.ndarray]:
    """Q and K (float64, heads x N x head_dim) of the layer, from the table and the layer's inputs."""
    x = layer_stream(table, inputs)
    if inputs.pre_norm is not None:
        x = inputs.pre_norm(x)
    q = x @ inputs.query.astype(np.float64)
    k = x @ inputs.key.astype(np.float64)
    if inputs.query_bias is not None:
        q += inputs.query_bias
    if inputs.key_bias is not None:
        k += inputs.key_bias
    n, heads = x.shape[0], inputs.heads
    return (q.reshape(n, heads, -1).transpose(1, 0, 2), k.reshape(n, heads, -1).transpose(1, 0, 2))


def softmax_rows(scores: np.ndarray, rows: np.ndarray, causal: bool) -> np.ndarray:
    """Row-wise softmax of ``scores`` (query ``rows`` x all keys) with the causal mask when asked."""
    s = scores.copy()
    if causal:
        s[np.arange(s.shape[1])[None, :] > rows[:, None]] = -np.inf
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s


def patch_queries(grid: tuple[int, int]) -> np.ndarray:
    """The query patches whose images are kept: a regular sub-grid of at most ``MAX_PATCH_SIDE`` per side (every
    patch on small grids), always with the centre patch."""
    height, width = grid
    rows = np.unique(np.append(np.linspace(0, height - 1, min(height, MAX_PATCH_SIDE)).round(), height // 2))
    cols = np.unique(np.append(np.linspace(0, width - 1, min(width, MAX_PATCH_SIDE)).round(), width // 2))
    return (rows[:, None] * width + cols[None, :]).reshape(-1).astype(np.int32)


def layer_attention(table: np.ndarray, inputs, resolution: int = 1024,
                    grid: tuple[int, int] | None = None) -> LayerAttention:
    """The layer's attention maps and per-head numbers for the positions ``table`` (N x D) and ``inputs``."""
    q, k = queries_and_keys(table, inputs)
    heads, n = q.shape[0], q.shape[1]
    bounds = block_bounds(n, resolution)
    r = len(bounds) - 1
    counts = np.diff(bounds)
    # bands of whole row blocks, each band at most max(R^2 / N, one block) rows: memory O(R^2) per band
    band_rows = max(resolution * resolution // max(n, 1), int(counts.max()))
    bands, start = [], 0
    while start < r:
        stop = start + 1
        while stop < r and bounds[stop + 1] - bounds[start] <= band_rows:
            stop += 1
        bands.append((start, stop))
        start = stop
    probs = np.zeros((heads, r, r), dtype=np.float32)
    scores = np.zeros((heads, r, r), dtype=np.float32)
    sums = {name: np.zeros(heads) for name in ("distance", "previous", "diagonal", "entropy", "patch")}
    queries = patch_queries(grid) if grid is not None else np.zeros(0, dtype=np.int32)
    maps = np.zeros((heads, len(queries), *(grid or (0, 0))), dtype=np.float32)
    coords = None if grid is None else np.stack(np.divmod(np.arange(n), grid[1]), axis=1).astype(np.float64)
    cells = np.outer(counts, counts).astype(np.float64)
    keys = np.arange(n)
    for h in range(heads):
        for b0, b1 in bands:
            rows = np.arange(bounds[b0], bounds[b1])
            s = (q[h, rows] @ k[h].T) * inputs.scale
            a = softmax_rows(s, rows, inputs.causal)
            local = bounds[b0:b1 + 1] - bounds[b0]
            for image, values in ((scores, s), (probs, a)):
                block = np.add.reduceat(np.add.reduceat(values, bounds[:-1], axis=1), local[:-1], axis=0)
                image[h, b0:b1] = block / cells[b0:b1]
            gap = np.abs(rows[:, None] - keys[None, :])
            sums["distance"][h] += float((a * gap).sum())
            sums["diagonal"][h] += float(a[np.arange(len(rows)), rows].sum())
            later = rows >= 1
            sums["previous"][h] += float(a[np.arange(len(rows))[later], rows[later] - 1].sum())
            with np.errstate(divide="ignore", invalid="ignore"):
                sums["entropy"][h] -= float(np.where(a > 0, a * np.log(a), 0.0).sum())
            if coords is not None:
                apart = np.sqrt(((coords[rows, None, :] - coords[None, :, :]) ** 2).sum(axis=2))
                sums["patch"][h] += float((a * apart).sum())
                inside = np.flatnonzero((queries >= rows[0]) & (queries <= rows[-1]))
                for j in inside:
                    maps[h, j] = a[queries[j] - rows[0]].reshape(grid)
    per_query = 1.0 / n
    previous = sums["previous"] / (n - 1) if n > 1 else np.full(heads, np.nan)
    return LayerAttention(
        int(inputs.layer), bool(inputs.causal), n, bounds.astype(np.int32), probs, scores,
        (sums["distance"] * per_query).astype(np.float32), previous.astype(np.float32),
        (sums["diagonal"] * per_query).astype(np.float32), (sums["entropy"] * per_query).astype(np.float32),
        (sums["patch"] * per_query).astype(np.float32) if grid is not None else np.zeros(0, np.float32),
        queries, maps)


def _run(ctx: TableContext) -> LayerAttention | None:
    inputs = getattr(ctx.embedding, "attention", None)
    if inputs is None or inputs.rotary is not None:
        return None
    grid = ctx.embedding.grid
    # the patch view is an image's: a video grid's attention is read along its positions alone
    return layer_attention(ctx.matrix, inputs, ctx.resolution, grid if grid is not None and len(grid) == 2 else None)


def _scalars(result: LayerAttention) -> dict[str, float]:
    # summaries over heads first (the atlas's columns), then every head's own numbers
    out = {"attention_layer": float(result.layer), "attention_previous_max": float(np.nanmax(result.previous)),
           "attention_distance_mean": float(result.mean_distance.mean()),
           "attention_entropy_mean": float(result.entropy.mean())}
    for h in range(result.heads):
        out[f"attention_distance_h{h}"] = float(result.mean_distance[h])
        out[f"attention_previous_h{h}"] = float(result.previous[h])
        out[f"attention_diagonal_h{h}"] = float(result.diagonal[h])
        out[f"attention_entropy_h{h}"] = float(result.entropy[h])
        if result.patch_distance.size:
            out[f"attention_patch_distance_h{h}"] = float(result.patch_distance[h])
    return out


def _arrays(result: LayerAttention) -> dict[str, np.ndarray]:
    names = ("bounds", "probabilities", "scores", "mean_distance", "previous", "diagonal", "entropy")
    out = {name: getattr(result, name) for name in names}
    if result.patch_index.size:
        out.update(patch_distance=result.patch_distance, patch_index=result.patch_index, patch_maps=result.patch_maps)
    return out


# --------------------------------------------------------------------------- rotary models


@dataclass(frozen=True)
class RotaryAttention:
    """Per head, how the layer's query and key weights use each rotary frequency pair, and the score of a unit
    input as query and key against their distance d = query - key position (``distance``, at most 2R of them).

    ``query_energy[h, i]`` and ``key_energy[h, i]``: the share of head h's squared weight (over all its head
    dimensions) in pair i's two dimensions; ``score[h, k]``: E[q_m . k_n] * scale at m - n = distance[k]."""

    layer: int
    distance: np.ndarray  # int32
    score: np.ndarray  # float32, heads x distances
    query_energy: np.ndarray  # float32, heads x pairs
    key_energy: np.ndarray
    wavelength: np.ndarray  # float32, pairs (2 pi / theta_i, Inf for theta 0)
    context: int

    @property
    def heads(self) -> int:
        """The number of heads."""
        return int(self.score.shape[0])


def rotary_pairs(head_dim: int, pairs: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The two head dimensions of each frequency pair: (i, i + F) for ``half`` (rotate_half, the first 2F
    dimensions rotating), (2i, 2i + 1) for ``interleaved``."""
    i = np.arange(pairs)
    return (i, i + pairs) if layout == "half" else (2 * i, 2 * i + 1)


def rotary_attention(table: np.ndarray, inputs, resolution: int = 1024) -> RotaryAttention:
    """The per-pair weight energies and the unit-input score against distance of a rotary model's layer.

    ``table`` is the rotary table s [cos(p theta_i) | sin(p theta_i)] (N x 2F); theta_i and s are read from its rows
    1 and 0. ``inputs.pre_norm``'s weight g scales the input's coordinates (x -> g * x after the RMS norm)."""
    n, width = table.shape
    pairs = width // 2
    t = np.asarray(table, dtype=np.float64)
    scaling = float(np.hypot(t[0, 0], t[0, pairs])) or 1.0
    theta = np.arctan2(t[1, pairs:], t[1, :pairs]) if n > 1 else np.zeros(pairs)
    g = 1.0 if inputs.pre_norm is None else inputs.pre_norm.weight.astype(np.float64)[:, None]
    wq = inputs.query.astype(np.float64) * g
    wk = inputs.key.astype(np.float64) * g
    heads, dim = inputs.heads, inputs.head_dim
    a, b = rotary_pairs(dim, pairs, inputs.rotary)
    rotating = np.zeros(dim, dtype=bool)
    rotating[np.concatenate([a, b])] = True
    distance = np.arange(n)
    if n > 2 * resolution:
        distance = np.unique(np.linspace(0, n - 1, 2 * resolution).round().astype(np.int64))
    angles = distance[:, None] * theta[None, :]
    score = np.zeros((heads, len(distance)))
    q_energy, k_energy = np.zeros((heads, pairs)), np.zeros((heads, pairs))
    for h in range(heads):
        cols = slice(h * dim, (h + 1) * dim)
        q, k = wq[:, cols], wk[:, cols]
        qq, kk = (q * q).sum(axis=0), (k * k).sum(axis=0)
        q_energy[h] = (qq[a] + qq[b]) / (qq.sum() or 1.0)
        k_energy[h] = (kk[a] + kk[b]) / (kk.sum() or 1.0)
        # E[k q^T] for a random input of unit variance in every coordinate after the norm (E[x x^T] = I), plus
        # the biases' outer product
        c = k.T @ q
        if inputs.query_bias is not None and inputs.key_bias is not None:
            c += np.outer(inputs.key_bias[cols], inputs.query_bias[cols])
        diag = np.diag(c)
        rotated = np.cos(angles) @ (diag[a] + diag[b]) + np.sin(angles) @ (c[b, a] - c[a, b])
        score[h] = (scaling * scaling * rotated + diag[~rotating].sum()) * inputs.scale
    with np.errstate(divide="ignore"):
        wavelength = np.where(theta > 0, 2 * np.pi / np.where(theta > 0, theta, 1.0), np.inf)
    return RotaryAttention(int(inputs.layer), distance.astype(np.int32), score.astype(np.float32),
                           q_energy.astype(np.float32), k_energy.astype(np.float32), wavelength.astype(np.float32), n)


def _run_rotary(ctx: TableContext) -> RotaryAttention | None:
    inputs = getattr(ctx.embedding, "attention", None)
    if inputs is None or inputs.rotary is None:
        return None
    return rotary_attention(ctx.matrix, inputs, ctx.resolution)


def _rotary_scalars(result: RotaryAttention) -> dict[str, float]:
    out = {"attention_layer": float(result.layer)}
    long = result.wavelength > result.context
    for h in range(result.heads):
        both = np.sqrt(result.query_energy[h] * result.key_energy[h])
        out[f"rotary_long_share_h{h}"] = float(both[long].sum() / (both.sum() or 1.0))
        out[f"rotary_score_0_h{h}"] = float(result.score[h, 0])
    return out


ANALYSES = (
    Analysis("attention", "a layer's attention from positions alone (attention=L): per-head maps, distance, "
             "previous-token and diagonal shares, entropy", order=140, run=_run, scalars=_scalars, arrays=_arrays),
    Analysis("rotary_attention", "a rotary model's layer (attention=L): each head's query/key weight energy per "
             "frequency pair and the score of a unit input against distance", order=141, run=_run_rotary,
             scalars=_rotary_scalars),
)
