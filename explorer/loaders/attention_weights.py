"""Which tensors one layer's attention needs, by model family, and reading exactly those (``attention=L``).

A ``LayerRecipe`` names, as suffixes matched like the position tables' (``explorer.loaders.families``), the layer's
query and key projections (GPT-2's fused ``c_attn`` holds Q, K and V in one Conv1D; the others keep one
``nn.Linear`` each), the LayerNorm before attention (pre-LN models), the LayerNorm right after the embeddings
(BERT's), and what is added to every position besides the table: BERT's token type 0, and, with ``tokens=mean``,
the mean token embedding (a ViT's: the patch projection's bias, the embedding of an all-zero normalised image).
Each tensor is read by ``Checkpoint.read`` (one byte range on the hub, as for the table). Layers past 0 need
the layers below: ``explorer.loaders.attention_stack`` runs them with torch for a local checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.attention import AttentionInputs, Norm
from explorer.errors import ProviderError, SpecError
from explorer.loaders.checkpoints import Checkpoint, LocalCheckpoint
from explorer.loaders.families import find_tensor


@dataclass(frozen=True)
class LayerRecipe:
    """Where one family keeps a layer's attention inputs (``{L}`` stands for the layer's index)."""

    query: str
    key: str | None
    """``None``: ``query`` is GPT-2's fused Conv1D ``c_attn`` (D x 3D: Q, K, V side by side)."""
    heads: tuple[str, ...]
    causal: bool
    pre_norm: str | None = None
    embed_norm: str | None = None
    eps: tuple[str, float] = ("layer_norm_eps", 1e-12)
    token_type: str | None = None
    tokens: str | None = None
    """The token embeddings (``tokens=mean`` adds their mean row); for grids, the patch projection's bias."""
    project_in: str | None = None
    note: str = ""


_BERT_NOTE = ("positions alone: the position row plus token type 0's row (BERT always adds a token type; "
              "inputs_embeds of zeros adds type 0), through the embeddings' LayerNorm")
_BERT = LayerRecipe(
    "encoder.layer.{L}.attention.self.query", "encoder.layer.{L}.attention.self.key", ("num_attention_heads",),
    causal=False, embed_norm="embeddings.LayerNorm", token_type="embeddings.token_type_embeddings.weight",
    tokens="embeddings.word_embeddings.weight", note=_BERT_NOTE)
_VIT_NOTE = ("positions alone: the patch rows of the position table, without the class token (attention over "
             "the H x W patches only)")
_VIT = LayerRecipe(
    "encoder.layer.{L}.attention.attention.query", "encoder.layer.{L}.attention.attention.key",
    ("num_attention_heads",), causal=False, pre_norm="encoder.layer.{L}.layernorm_before",
    tokens="embeddings.patch_embeddings.projection.bias", note=_VIT_NOTE)

RECIPES: dict[str, LayerRecipe] = {
    "gpt2": LayerRecipe("h.{L}.attn.c_attn", None, ("n_head", "num_attention_heads"), causal=True,
                        pre_norm="h.{L}.ln_1", eps=("layer_norm_epsilon", 1e-5), tokens="wte.weight",
                        note="positions alone: the position row (inputs_embeds of zeros), causal mask"),
    "opt": LayerRecipe("decoder.layers.{L}.self_attn.q_proj", "decoder.layers.{L}.self_attn.k_proj",
                       ("num_attention_heads",), causal=True, pre_norm="decoder.layers.{L}.self_attn_layer_norm",
                       eps=("layer_norm_eps", 1e-5), tokens="decoder.embed_tokens.weight",
                       project_in="decoder.project_in.weight",
                       note="positions alone: the position row (inputs_embeds of zeros), causal mask"),
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "camembert": _BERT,
    "distilbert": LayerRecipe(
        "transformer.layer.{L}.attention.q_lin", "transformer.layer.{L}.attention.k_lin", ("n_heads",),
        causal=False, embed_norm="embeddings.LayerNorm", tokens="embeddings.word_embeddings.weight",
        note="positions alone: the position row through the embeddings' LayerNorm (DistilBERT has no token types)"),
    "vit": _VIT,
    "vit_msn": _VIT,
    "deit": _VIT,
    "dinov2": LayerRecipe(
        "encoder.layer.{L}.attention.attention.query", "encoder.layer.{L}.attention.attention.key",
        ("num_attention_heads",), causal=False, pre_norm="encoder.layer.{L}.norm1", eps=("layer_norm_eps", 1e-6),
        tokens="embeddings.patch_embeddings.projection.bias", note=_VIT_NOTE),
}


def _config_int(config: dict[str, Any], keys: tuple[str, ...], what: str, source: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    raise ProviderError(f"{source}: config.json gives no {what} ({' or '.join(keys)} as a whole number >= 1)")


class _Reader:
    """Reads tensors by suffix from one checkpoint, remembering every name read (for the provenance)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint, self.names, self.read = checkpoint, checkpoint.names(), []

    def find(self, suffix: str) -> str | None:
        return find_tensor(self.names, suffix)

    def tensor(self, suffix: str, shape: tuple[int, ...] | None = None, required: bool = True) -> np.ndarray | None:
        name = self.find(suffix)
        if name is None:
            if required:
                raise ProviderError(f"{self.checkpoint.source}: no tensor ending in {suffix!r}, needed for the "
                                    f"attention")
            return None
        array, _ = self.checkpoint.read(name)
        if shape is not None and tuple(array.shape) != shape:
            raise ProviderError(f"{self.checkpoint.source}: {name!r} has shape {list(array.shape)}, expected "
                                f"{list(shape)}")
        self.read.append(name)
        return array

    def norm(self, prefix: str, width: int, eps: float) -> Norm:
        weight = self.tensor(prefix + ".weight", (width,))
        return Norm(weight, self.tensor(prefix + ".bias", (width,), required=False), eps)


def recipe_for(config: dict[str, Any], source: str) -> LayerRecipe:
    """The family's recipe, or one ProviderError naming the families posembed computes attention for."""
    model_type = str(config.get("model_type") or "")
    if model_type not in RECIPES:
        raise ProviderError(f"{source}: attention= is not available for {model_type or 'this model'} models "
                            f"(it is for {', '.join(sorted(RECIPES))})")
    return RECIPES[model_type]


def layer_count(config: dict[str, Any]) -> int | None:
    """The number of layers the config declares, when it says."""
    for key in ("n_layer", "num_hidden_layers", "n_layers", "num_layers"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


def read_attention(checkpoint: Checkpoint, layer: int, table: tuple[int, int], tokens: str = "zero") -> AttentionInputs:
    """Layer ``layer``'s attention inputs for a position table of shape ``table`` (N x D), reading only the tensors it needs.

    Layers past 0 also need the stream the layers below make: they are allowed for a local checkpoint only.
    """
    config, source = checkpoint.config, checkpoint.source
    positions, width = table
    recipe = recipe_for(config, source)
    layers = layer_count(config)
    if layers is not None and layer >= layers:
        raise SpecError(f"{source}: attention={layer}, but the model has {layers} layers (0 to {layers - 1})")
    if layer > 0 and not isinstance(checkpoint, LocalCheckpoint):
        raise ProviderError(f"{source}: attention={layer} needs the layers below it run on the whole model, "
                            f"which posembed does only for a local checkpoint (a model folder); attention=0 reads the hub by range")
    heads = _config_int(config, recipe.heads, "number of heads", source)
    if width % heads:
        raise ProviderError(f"{source}: {width} dimensions do not split into {heads} heads")
    eps = config.get(recipe.eps[0], recipe.eps[1])
    eps = float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps < 1 else recipe.eps[1]
    reader = _Reader(checkpoint)
    at = {"L": layer}
    query, query_bias, key, key_bias = _projections(reader, recipe, at, width)
    head_dim = width // heads
    scale = head_dim ** -0.5
    if recipe.key is None:  # GPT-2's own switches
        scale = scale if config.get("scale_attn_weights", True) else 1.0
        if config.get("scale_attn_by_inverse_layer_idx", False):
            scale /= layer + 1
    pre_norm = None
    if recipe.pre_norm and config.get("do_layer_norm_before", True):
        pre_norm = reader.norm(recipe.pre_norm.format(**at), width, eps)
    embed_norm = reader.norm(recipe.embed_norm, width, eps) if recipe.embed_norm else None
    shift = None
    if recipe.token_type and config.get("type_vocab_size", 2):
        types = reader.tensor(recipe.token_type, required=False)
        shift = None if types is None else types[0]
    raw_mean = None
    if tokens == "mean":
        raw_mean, mean = _mean_token(reader, recipe, width)
        shift = _add(shift, mean)
    hidden = None
    if layer > 0:
        from explorer.loaders.attention_stack import stream_below

        hidden = stream_below(checkpoint, layer, raw_mean, positions)
        embed_norm, shift = None, None  # the stream already holds them; the layer's own pre_norm still applies
    note = recipe.note + ("; plus the mean token embedding" if tokens == "mean" else "")
    if layer > 0:
        note += f"; layers 0 to {layer - 1} run with torch on those inputs"
    return AttentionInputs(layer, heads, query, key, query_bias, key_bias, scale, recipe.causal, pre_norm, embed_norm,
                           shift, hidden, tokens, tuple(reader.read), note)


def _projections(reader: _Reader, recipe: LayerRecipe, at: dict[str, int], width: int):
    """Query and key as D x D matrices (x @ W + b) and their biases."""
    if recipe.key is None:  # Conv1D stores (in, out): x @ W; c_attn is [Q | K | V]
        fused = reader.tensor(recipe.query.format(**at) + ".weight", (width, 3 * width))
        bias = reader.tensor(recipe.query.format(**at) + ".bias", (3 * width,), required=False)
        split = (None, None) if bias is None else (bias[:width], bias[width:2 * width])
        return fused[:, :width], split[0], fused[:, width:2 * width], split[1]
    out = []
    for prefix in (recipe.query, recipe.key):  # nn.Linear stores (out, in): x @ W.T
        weight = reader.tensor(prefix.format(**at) + ".weight", (width, width))
        out += [weight.T, reader.tensor(prefix.format(**at) + ".bias", (width,), required=False)]
    return out[0], out[1], out[2], out[3]


def _mean_token(reader: _Reader, recipe: LayerRecipe, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean token embedding as the model takes it in (``inputs_embeds``) and as it enters the stream (projected
    in, where the model projects its tokens: OPT-350m); a grid's patch projection bias for both."""
    table = reader.tensor(recipe.tokens)
    raw = table.astype(np.float64) if table.ndim == 1 else table.astype(np.float64).mean(axis=0)
    mean = raw
    if recipe.project_in and (name := reader.find(recipe.project_in)) is not None:
        mean = reader.tensor(name).astype(np.float64) @ raw
    if mean.shape != (width,):
        raise ProviderError(f"{reader.checkpoint.source}: the mean token has {mean.shape[0]} dimensions, the "
                            f"positions {width}")
    return raw.astype(np.float32), mean.astype(np.float32)


def _add(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    return b if a is None else a + b
