"""``AttentionInputs``: what a provider read to compute one layer's attention from positions alone.

A model provider given ``attention=L`` attaches one to the ``PositionEmbedding`` it returns (its ``attention``
field): the layer's own LayerNorm and query/key projections, and what enters the layer besides the position
table (a token-type row, the mean token, the stream the layers below made). ``explorer.analysis.attention``
computes the layer in numpy from these arrays alone. Pure numpy, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.errors import EmbeddingError

#: What stands in for the tokens: nothing (zero) or the mean of the model's token embeddings.
TOKENS = ("zero", "mean")


@dataclass(frozen=True, eq=False)
class Norm:
    """A LayerNorm, ``(x - mean) / sqrt(var + eps) * weight + bias`` over the last axis, or with ``rms`` an RMSNorm,
    ``x / sqrt(mean(x^2) + eps) * weight (+ bias)`` (Llama's: no centring)."""

    weight: np.ndarray
    bias: np.ndarray | None
    eps: float
    rms: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        centred = x if self.rms else x - x.mean(axis=-1, keepdims=True)
        spread = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)
        # a constant row with eps 0 (spread 0) has centred 0: its limit is 0, not 0/0
        out = centred / np.where(spread > 0, spread, 1.0) * self.weight
        return out if self.bias is None else out + self.bias


@dataclass(frozen=True, eq=False)
class AttentionInputs:
    """One layer's attention inputs, in the ``x @ W + b`` convention (``query`` and ``key`` are D x (heads * d)).

    The stream entering the layer is ``hidden`` when given (N x D, made by running the layers below: a local
    checkpoint's layers past 0); else, for the table P (N x D) the embedding holds, ``embed_norm(P + shift)``
    (``shift``: the rows added to every position, e.g. BERT's token type 0 or the mean token; ``embed_norm``:
    a LayerNorm right after the embeddings, BERT's). The layer applies ``pre_norm`` (GPT-2's ``ln_1``, ViT's
    ``layernorm_before``; None for post-LN models), then the projections; score = q . k * ``scale``, with a
    causal mask when ``causal`` (within ``window`` keys for a local layer).
    """

    layer: int
    heads: int
    query: np.ndarray
    key: np.ndarray
    query_bias: np.ndarray | None = None
    key_bias: np.ndarray | None = None
    scale: float = 1.0
    causal: bool = False
    pre_norm: Norm | None = None
    embed_norm: Norm | None = None
    shift: np.ndarray | None = None
    hidden: np.ndarray | None = None
    tokens: str = "zero"
    tensors: tuple[str, ...] = ()
    """The checkpoint's tensors read for this layer (beyond the position table)."""
    note: str = ""
    """What "positions alone" means for this model family, one sentence."""
    window: int | None = None
    """A local layer's window (GPT-Neo): query i sees keys j with 0 <= i - j < window; None: no such limit."""
    rotary: str | None = None
    """For a rotary model (the table is its cos/sin table, ``kind="rotary"``): how its heads pair dimensions,
    ``"half"`` (i with i + F, transformers' rotate_half) or ``"interleaved"`` (2i with 2i + 1); None otherwise."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        width, inner = np.shape(self.query)
        if np.shape(self.key) != (width, inner) or self.heads < 1 or inner % self.heads:
            raise EmbeddingError(f"attention: query {np.shape(self.query)} and key {np.shape(self.key)} must both "
                                 f"be D x (heads * head_dim) for {self.heads} heads")
        if self.rotary not in (None, "half", "interleaved"):
            raise EmbeddingError(f"attention: rotary must be 'half' or 'interleaved', got {self.rotary!r}")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1 or not self.causal):
            raise EmbeddingError(f"attention: window must be a whole number >= 1 on a causal layer, got {self.window!r}")
        if self.tokens not in TOKENS:
            raise EmbeddingError(f"attention: tokens must be one of {', '.join(TOKENS)}, got {self.tokens!r}")
        for name in ("query", "key", "query_bias", "key_bias", "shift", "hidden"):
            value = getattr(self, name)
            if value is not None:
                array = np.ascontiguousarray(value, dtype=np.float32)
                if not np.isfinite(array).all():
                    raise EmbeddingError(f"attention: layer {self.layer}'s {name} holds NaN or Inf")
                array.setflags(write=False)
                object.__setattr__(self, name, array)

    @property
    def width(self) -> int:
        """D, the width of the stream entering the layer."""
        return int(self.query.shape[0])

    @property
    def head_dim(self) -> int:
        """The width of one head's queries and keys."""
        return int(self.query.shape[1] // self.heads)

    def summary(self) -> dict[str, Any]:
        """Plain JSON-able values for the provenance: the layer, heads, tokens, mask and the tensors read."""
        return {"layer": self.layer, "heads": self.heads, "head_dim": self.head_dim, "tokens": self.tokens,
                "causal": self.causal, "scale": self.scale, **({"window": self.window} if self.window else {}),
                "from_layers_below": self.hidden is not None,
                "tensors": list(self.tensors), "note": self.note,
                **({"rotary": self.rotary} if self.rotary else {})}
