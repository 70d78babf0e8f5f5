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

from dataclasses import dataclass, field

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


def softmax_rows(scores: np.ndarray, rows: np.ndarray, causal: bool, window: int | None = None) -> np.ndarray:
    """Row-wise softmax of ``scores`` (query ``rows`` x all keys) with the causal mask when asked (keys within
    ``window`` of the query only, for a local layer)."""
    s = scores.copy()
    if causal:
        back = rows[:, None] - np.arange(s.shape[1])[None, :]
        s[(back < 0) | (back >= window if window else False)] = -np.inf
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
            a = softmax_rows(s, rows, inputs.causal, inputs.window)
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


def head_numbers(layer: int, distance: np.ndarray, previous: np.ndarray, diagonal: np.ndarray,
                 entropy: np.ndarray) -> dict[str, float]:
    """The per-head attention numbers as scalars: summaries over heads first (the atlas's columns), then every
    head's own (the same names for a rotary model's token attention)."""
    out = {"attention_layer": float(layer), "attention_previous_max": float(np.nanmax(previous)),
           "attention_distance_mean": float(distance.mean()), "attention_entropy_mean": float(entropy.mean())}
    for h in range(len(distance)):
        out[f"attention_distance_h{h}"] = float(distance[h])
        out[f"attention_previous_h{h}"] = float(previous[h])
        out[f"attention_diagonal_h{h}"] = float(diagonal[h])
        out[f"attention_entropy_h{h}"] = float(entropy[h])
    return out


def _scalars(result: LayerAttention) -> dict[str, float]:
    out = head_numbers(result.layer, result.mean_distance, result.previous, result.diagonal, result.entropy)
    for h in range(result.heads if result.patch_distance.size else 0):
        out[f"attention_patch_distance_h{h}"] = float(result.patch_distance[h])
    return out


def _arrays(result: LayerAttention) -> dict[str, np.ndarray]:
    names = ("bounds", "probabilities", "scores", "mean_distance", "previous", "diagonal", "entropy")
    out = {name: getattr(result, name) for name in names}
    if result.patch_index.size:
        out.update(patch_distance=result.patch_distance, patch_index=result.patch_index, patch_maps=result.patch_maps)
    return out


# --------------------------------------------------------------------------- rotary models


def _empty(*shape: int) -> np.ndarray:
    return np.zeros(shape or (0,), np.float32)


@dataclass(frozen=True)
class RotaryAttention:
    """Per head, how the layer's query and key weights use each rotary frequency pair, and scores against the
    distance d = query - key position (``distance``, at most 2R of them).

    ``query_energy[h, i]`` and ``key_energy[h, i]``: the share of head h's squared weight (over all its head
    dimensions) in pair i's two dimensions; ``score[h, k]``: E[q_m . k_n] * scale at m - n = distance[k] for a unit
    input. At layer 0, ``token_score[h, k]`` is q_m . k_n * scale of the token itself (``tokens``: zero or the
    mean token embedding) at every position, and ``mean_distance``, ``previous``, ``diagonal``, ``entropy`` the
    causal attention it gives over the table's positions, exact; past layer 0 (whose input depends on the layers
    below) these are empty."""

    layer: int
    distance: np.ndarray  # int32
    score: np.ndarray  # float32, heads x distances
    query_energy: np.ndarray  # float32, heads x pairs
    key_energy: np.ndarray
    wavelength: np.ndarray  # float32, pairs (2 pi / theta_i, Inf for theta 0)
    context: int
    tokens: str = "zero"
    token_score: np.ndarray = field(default_factory=lambda: _empty(0, 0))  # heads x distances (empty past layer 0)
    mean_distance: np.ndarray = field(default_factory=_empty)  # float32, heads (empty past layer 0)
    previous: np.ndarray = field(default_factory=_empty)
    diagonal: np.ndarray = field(default_factory=_empty)
    entropy: np.ndarray = field(default_factory=_empty)

    @property
    def heads(self) -> int:
        """The number of heads."""
        return int(self.score.shape[0])


def rotary_pairs(head_dim: int, pairs: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The two head dimensions of each frequency pair: (i, i + F) for ``half`` (rotate_half, the first 2F
    dimensions rotating), (2i, 2i + 1) for ``interleaved``."""
    i = np.arange(pairs)
    return (i, i + pairs) if layout == "half" else (2 * i, 2 * i + 1)


def rotated_score(c: np.ndarray, a: np.ndarray, b: np.ndarray, cos: np.ndarray, sin: np.ndarray,
                  gain: float) -> np.ndarray:
    """q_m . k_n against d = m - n (rows of ``cos``/``sin``: cos(d theta_i), sin(d theta_i)) for C = E[k q^T] (one
    head's d x d): sum_i cos(d theta_i) (C_aa + C_bb) + sin(d theta_i) (C_ba - C_ab), times ``gain`` (the table's
    scaling squared), plus the trace over the dimensions that do not rotate."""
    diag = np.diag(c)
    rest = diag.sum() - diag[a].sum() - diag[b].sum()
    return gain * (cos @ (diag[a] + diag[b]) + sin @ (c[b, a] - c[a, b])) + rest


def causal_numbers(f: np.ndarray) -> tuple[float, float, float, float]:
    """Mean distance, previous-token share, diagonal share and entropy of causal attention whose score at distance
    d = query - key is ``f[d]`` (d = 0 .. N-1, the same for every query), over the N queries, exactly, in O(N):
    query m's probabilities are exp(f(d)) / Z_m over d <= m, and every sum over keys is a running one (in logs)."""
    n = len(f)
    f = f.astype(np.float64)
    with np.errstate(divide="ignore"):
        log_d = np.log(np.arange(n, dtype=np.float64))
        low = f.min()
        log_excess = np.log(f - low)
    log_z = np.logaddexp.accumulate(f)
    distance = np.exp(np.logaddexp.accumulate(f + log_d) - log_z)
    expected_f = np.exp(np.logaddexp.accumulate(f + log_excess) - log_z) + low
    entropy = log_z - expected_f
    diagonal = np.exp(f[0] - log_z)
    previous = np.exp(f[1] - log_z[1:]).mean() if n > 1 else np.nan
    return float(distance.mean()), float(previous), float(diagonal.mean()), float(entropy.mean())


def rotary_attention(table: np.ndarray, inputs, resolution: int = 1024) -> RotaryAttention:
    """The per-pair weight energies and the scores against distance of a rotary model's layer.

    ``table`` is the rotary table s [cos(p theta_i) | sin(p theta_i)] (N x 2F); theta_i and s are read from its rows
    1 and 0. The unit input x (E[x] = 0, E[x x^T] = I) enters after the layer's norm: g * x + beta (weight g, bias
    beta); the token (layer 0) goes through the norm itself."""
    n, width = table.shape
    pairs = width // 2
    t = np.asarray(table, dtype=np.float64)
    gain = float(t[0, 0] ** 2 + t[0, pairs] ** 2) or 1.0
    theta = np.arctan2(t[1, pairs:], t[1, :pairs]) if n > 1 else np.zeros(pairs)
    norm = inputs.pre_norm
    g = 1.0 if norm is None else norm.weight.astype(np.float64)[:, None]
    wq, wk = inputs.query.astype(np.float64), inputs.key.astype(np.float64)
    bq = np.zeros(wq.shape[1]) if inputs.query_bias is None else inputs.query_bias.astype(np.float64)
    bk = np.zeros(wk.shape[1]) if inputs.key_bias is None else inputs.key_bias.astype(np.float64)
    if norm is not None and norm.bias is not None:  # the norm's bias beta reaches q and k as a bias
        beta = norm.bias.astype(np.float64)
        unit_bq, unit_bk = bq + beta @ wq, bk + beta @ wk
    else:
        unit_bq, unit_bk = bq, bk
    token = inputs.layer == 0 and inputs.hidden is None
    if token:
        x = np.zeros(wq.shape[0]) if inputs.shift is None else inputs.shift.astype(np.float64)
        x = x if norm is None else norm(x[None])[0]
        token_q, token_k = x @ wq + bq, x @ wk + bk
    heads, dim = inputs.heads, inputs.head_dim
    a, b = rotary_pairs(dim, pairs, inputs.rotary)
    distance = np.arange(n)
    if n > 2 * resolution:
        distance = np.unique(np.linspace(0, n - 1, 2 * resolution).round().astype(np.int64))
    shown = distance[:, None] * theta[None, :]
    cos, sin = np.cos(shown), np.sin(shown)
    every = np.arange(n)[:, None] * theta[None, :] if token else None
    cos_all, sin_all = (np.cos(every), np.sin(every)) if token else (None, None)
    score = np.zeros((heads, len(distance)))
    token_score = np.zeros((heads if token else 0, len(distance) if token else 0))
    numbers = np.full((4, heads if token else 0), np.nan)
    q_energy, k_energy = np.zeros((heads, pairs)), np.zeros((heads, pairs))
    for h in range(heads):
        cols = slice(h * dim, (h + 1) * dim)
        q, k = wq[:, cols] * g, wk[:, cols] * g
        qq, kk = (q * q).sum(axis=0), (k * k).sum(axis=0)
        q_energy[h] = (qq[a] + qq[b]) / (qq.sum() or 1.0)
        k_energy[h] = (kk[a] + kk[b]) / (kk.sum() or 1.0)
        c = k.T @ q + np.outer(unit_bk[cols], unit_bq[cols])  # E[k q^T] for the unit input
        score[h] = rotated_score(c, a, b, cos, sin, gain) * inputs.scale
        if token:
            c = np.outer(token_k[cols], token_q[cols])
            f = rotated_score(c, a, b, cos_all, sin_all, gain) * inputs.scale
            token_score[h] = f[distance]
            numbers[:, h] = causal_numbers(f)
    with np.errstate(divide="ignore"):
        wavelength = np.where(theta > 0, 2 * np.pi / np.where(theta > 0, theta, 1.0), np.inf)
    f32 = np.float32
    return RotaryAttention(int(inputs.layer), distance.astype(np.int32), score.astype(f32), q_energy.astype(f32),
                           k_energy.astype(f32), wavelength.astype(f32), n, inputs.tokens, token_score.astype(f32),
                           *(row.astype(f32) for row in numbers))


def _run_rotary(ctx: TableContext) -> RotaryAttention | None:
    inputs = getattr(ctx.embedding, "attention", None)
    if inputs is None or inputs.rotary is None:
        return None
    return rotary_attention(ctx.matrix, inputs, ctx.resolution)


def _rotary_scalars(result: RotaryAttention) -> dict[str, float]:
    out = {"attention_layer": float(result.layer)}
    if result.previous.size:  # layer 0: the token's causal attention, named as the absolute models' numbers
        out.update(head_numbers(result.layer, result.mean_distance, result.previous, result.diagonal, result.entropy))
    long = result.wavelength > result.context
    for h in range(result.heads):
        both = np.sqrt(result.query_energy[h] * result.key_energy[h])
        out[f"rotary_long_share_h{h}"] = float(both[long].sum() / (both.sum() or 1.0))
        out[f"rotary_score_0_h{h}"] = float(result.score[h, 0])
    return out


def _rotary_arrays(result: RotaryAttention) -> dict[str, np.ndarray]:
    names = ("distance", "score", "query_energy", "key_energy", "wavelength")
    if result.previous.size:
        names += ("token_score", "mean_distance", "previous", "diagonal", "entropy")
    return {name: getattr(result, name) for name in names}


ANALYSES = (
    Analysis("attention", "a layer's attention from positions alone (attention=L): per-head maps, distance, "
             "previous-token and diagonal shares, entropy", order=140, run=_run, scalars=_scalars, arrays=_arrays),
    Analysis("rotary_attention", "a rotary model's layer (attention=L): each head's query/key weight energy per "
             "frequency pair, the score of a unit input against distance; at layer 0 the token's score and the causal "
             "attention numbers it gives", order=141, run=_run_rotary, scalars=_rotary_scalars, arrays=_rotary_arrays),
)
