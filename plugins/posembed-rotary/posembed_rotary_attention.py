"""``rotary:MODEL,attention=L``: what a rotary model's layer L does with positions, from its own weights.

A rotary model adds nothing to its stream for a position: its layer rotates each head's query and key by the
angle p * theta_i of every frequency pair i. So the layer is described from its input norm and its query and key
projections, read through ``explorer.open_model`` (only those tensors' bytes; one HTTP range each on the hub), and
the rotary table the provider computed. explorer's ``rotary_attention`` analysis computes, per head, the weight
energy per frequency pair, the expected score of a unit input at each distance, and at layer 0 the score of the
token itself (zero, or the mean token embedding with ``tokens=mean``) at each distance and the causal attention
numbers it gives (docs/analyses.md).

Families, as transformers builds them (``apply_rotary_pos_emb`` with ``rotate_half``: pair i is head dimensions
i and i + R/2 of the first R rotating ones):

- Llama, Mistral, Qwen2: ``input_layernorm`` (RMSNorm, ``rms_norm_eps``), ``q_proj`` and ``k_proj``
  (``nn.Linear``, Qwen2's with biases), grouped-query key heads repeated as ``repeat_kv`` repeats them;
- GPT-NeoX: ``input_layernorm`` (LayerNorm, ``layer_norm_eps``), the fused ``query_key_value`` whose output is,
  head after head, [q | k | v], partial rotary (``rotary_pct``).

Scores are q . k / sqrt(head_dim) in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer import AttentionInputs, Norm, open_model
from explorer.errors import ProviderError, SpecError


@dataclass(frozen=True)
class Recipe:
    """Where one family keeps a layer's norm and query/key projections (``{L}``: the layer's index)."""

    norm: str
    rms: bool
    eps: str
    tokens: str
    query: str
    key: str | None = None
    """None: ``query`` is GPT-NeoX's fused ``query_key_value`` ([q | k | v] per head)."""


_LLAMA = Recipe("layers.{L}.input_layernorm", True, "rms_norm_eps", "embed_tokens.weight",
                "layers.{L}.self_attn.q_proj", "layers.{L}.self_attn.k_proj")
RECIPES = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "gpt_neox": Recipe("layers.{L}.input_layernorm", False, "layer_norm_eps", "embed_in.weight",
                       "layers.{L}.attention.query_key_value"),
}
NOTE = ("rotary: no position enters the stream; each head's query and key are rotated by p * theta_i per "
        "frequency pair. Unit input: the expected score of a random input of unit variance in every coordinate "
        "after the layer's input norm")


def _count(config: dict[str, Any], key: str, source: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProviderError(f"rotary: {source}: config.json gives no {key} as a whole number >= 1")
    return value


def read_layer(model: str, revision: str | None, layer: int, tokens: str | None, pairs: int) -> AttentionInputs:
    """Layer ``layer``'s attention inputs of a rotary model whose table has ``pairs`` frequency pairs."""
    opened = open_model(model, revision)
    config, source = opened.config, opened.source
    model_type = str(config.get("model_type") or "")
    if model_type not in RECIPES:
        raise ProviderError(f"rotary: attention= is not available for {model_type or 'this model'} models "
                            f"(it is for {', '.join(sorted(RECIPES))})")
    recipe = RECIPES[model_type]
    layers = config.get("num_hidden_layers")
    if isinstance(layers, int) and layer >= layers:
        raise SpecError(f"rotary: {source}: attention={layer}, but the model has {layers} layers (0 to {layers - 1})")
    tokens = tokens or "zero"
    if tokens == "mean" and layer > 0:
        raise SpecError(f"rotary: tokens=mean describes layer 0, whose input is the token itself; the stream entering "
                        f"layer {layer} depends on the layers below (use attention=0, or drop tokens)")
    width = _count(config, "hidden_size", source)
    heads = _count(config, "num_attention_heads", source)
    groups = _count(config, "num_key_value_heads", source, heads)
    head_dim = config.get("head_dim") or width // heads
    if not isinstance(head_dim, int) or head_dim < 1 or heads % groups or 2 * pairs > head_dim:
        raise ProviderError(f"rotary: {source}: {heads} heads, {groups} key heads and head_dim {head_dim} do not fit "
                            f"together or with {pairs} rotary pairs")
    eps = config.get(recipe.eps, 1e-6)
    eps = float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps < 1 else 1e-6
    at = {"L": layer}
    norm = recipe.norm.format(**at)
    weight = opened.tensor(norm + ".weight", (width,))
    bias = None if recipe.rms else opened.tensor(norm + ".bias", (width,), required=False)
    if recipe.key is None:
        query, query_bias, key, key_bias = _fused(opened, recipe.query.format(**at), width, heads, head_dim)
    else:
        query, query_bias = _linear(opened, recipe.query.format(**at), width, heads * head_dim)
        key, key_bias = _linear(opened, recipe.key.format(**at), width, groups * head_dim)
        key, key_bias = _repeat_groups(key, key_bias, heads, groups, head_dim)
    shift = None
    if tokens == "mean":
        table = opened.tensor(recipe.tokens)
        if table.ndim != 2 or table.shape[1] != width:
            raise ProviderError(f"rotary: {source}: the token embeddings have shape {list(table.shape)}, not "
                                f"tokens x {width}")
        shift = table.astype(np.float64).mean(axis=0).astype(np.float32)
    note = NOTE + (f"; token curve: the {'mean token embedding' if tokens == 'mean' else 'zero token'} through "
                   f"the input norm" if layer == 0 else "")
    return AttentionInputs(layer, heads, query, key, query_bias, key_bias, head_dim ** -0.5, True,
                           Norm(weight, bias, eps, rms=recipe.rms), None, shift, None, tokens,
                           tuple(opened.read_names), note, rotary="half")


def _linear(opened: Any, prefix: str, width: int, out: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``nn.Linear`` (out x in) as ``x @ W`` (in x out) and its bias."""
    weight = opened.tensor(prefix + ".weight", (out, width))
    return weight.T, opened.tensor(prefix + ".bias", (out,), required=False)


def _fused(opened: Any, prefix: str, width: int, heads: int, head_dim: int):
    """GPT-NeoX's ``query_key_value`` (3 * heads * d x D; per head [q | k | v]) split into query and key."""
    weight = opened.tensor(prefix + ".weight", (3 * heads * head_dim, width)).reshape(heads, 3, head_dim, width)
    bias = opened.tensor(prefix + ".bias", (3 * heads * head_dim,), required=False)
    bias = None if bias is None else bias.reshape(heads, 3, head_dim)
    query = weight[:, 0].reshape(heads * head_dim, width).T
    key = weight[:, 1].reshape(heads * head_dim, width).T
    if bias is None:
        return query, None, key, None
    return query, bias[:, 0].reshape(-1), key, bias[:, 1].reshape(-1)


def _repeat_groups(key: np.ndarray, bias: np.ndarray | None, heads: int, groups: int, head_dim: int):
    """Grouped-query key heads repeated for their query heads (transformers' ``repeat_kv``: head h uses key head
    h // (heads / groups))."""
    if groups == heads:
        return key, bias
    width = key.shape[0]
    key = np.repeat(key.reshape(width, groups, 1, head_dim), heads // groups, axis=2).reshape(width, heads * head_dim)
    if bias is not None:
        bias = np.repeat(bias.reshape(groups, 1, head_dim), heads // groups, axis=1).reshape(-1)
    return key, bias
