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

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from explorer.core.attention import AttentionInputs, Norm
from explorer.errors import ProviderError, SpecError
from explorer.loaders.checkpoints import Checkpoint, LocalCheckpoint
from explorer.loaders.model_tensors import ModelTensors


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
    layers: tuple[str, ...] = ("n_layer", "num_hidden_layers", "n_layers", "num_layers")
    scaled: bool = True
    """False: scores are q . k, not divided by sqrt(head_dim) (GPT-Neo)."""
    anchor: str | None = None
    """Where the table's name starts its tower or side: ``{R}`` in every name is the table's name up to it
    (CLIP's ``vision_model.``, BART's ``encoder.``)."""
    sides: tuple[str, ...] = ()
    """The roots whose self-attention is computed (a table elsewhere, e.g. a text tower, is refused)."""
    side_note: str = ""
    embed_scale: str | None = None
    """A config switch (``scale_embedding``) by which the model multiplies its token embeddings by sqrt(D)."""
    subconfig: str | None = None
    """Where a two-tower config keeps the tower's numbers (CLIP's ``vision_config``), when it has one."""


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

_CLIP_NOTE = ("positions alone: the patch rows of the vision tower's position table, without the class token, "
              "through its pre_layrnorm (attention over the H x W patches only)")
_CLIP = LayerRecipe(
    "{R}encoder.layers.{L}.self_attn.q_proj", "{R}encoder.layers.{L}.self_attn.k_proj", ("num_attention_heads",),
    causal=False, pre_norm="{R}encoder.layers.{L}.layer_norm1", embed_norm="{R}pre_layrnorm",
    eps=("layer_norm_eps", 1e-5), anchor="embeddings.position_embedding", sides=("", "vision_model."),
    side_note="the vision tower's self-attention (tower=vision)", note=_CLIP_NOTE,
    layers=("num_hidden_layers",), subconfig="vision_config")
_SIGLIP = LayerRecipe(
    "{R}encoder.layers.{L}.self_attn.q_proj", "{R}encoder.layers.{L}.self_attn.k_proj", ("num_attention_heads",),
    causal=False, pre_norm="{R}encoder.layers.{L}.layer_norm1", eps=("layer_norm_eps", 1e-6),
    tokens="{R}embeddings.patch_embedding.bias", anchor="embeddings.position_embedding", sides=("", "vision_model."),
    side_note="the vision tower's self-attention (tower=vision)", layers=("num_hidden_layers",),
    subconfig="vision_config", note="positions alone: the patch rows of the vision tower's position table (SigLIP has no class token)")
_BART = LayerRecipe(
    "{R}layers.{L}.self_attn.q_proj", "{R}layers.{L}.self_attn.k_proj", ("encoder_attention_heads",), causal=False,
    embed_norm="{R}layernorm_embedding", eps=("layer_norm_eps", 1e-5), tokens="shared.weight",
    anchor="embed_positions", sides=("encoder.",), side_note="the encoder's self-attention (table=encoder)",
    layers=("encoder_layers",), embed_scale="scale_embedding",
    note="positions alone: the encoder's position row (its 2 offset rows dropped), through layernorm_embedding; "
         "no mask")

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
    "gpt_neo": LayerRecipe("h.{L}.attn.attention.q_proj", "h.{L}.attn.attention.k_proj", ("num_heads",),
                           causal=True, pre_norm="h.{L}.ln_1", eps=("layer_norm_epsilon", 1e-5), tokens="wte.weight",
                           scaled=False, layers=("num_layers",),
                           note="positions alone: the position row (inputs_embeds of zeros), causal mask (local "
                                "layers: within the window); scores are not scaled"),
    "bart": _BART,
    "mbart": replace(_BART, pre_norm="{R}layers.{L}.self_attn_layer_norm"),
    "clip": _CLIP,
    "clip_vision_model": _CLIP,
    "siglip": _SIGLIP,
    "siglip_vision_model": _SIGLIP,
}


def _config_int(config: dict[str, Any], keys: tuple[str, ...], what: str, source: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    raise ProviderError(f"{source}: config.json gives no {what} ({' or '.join(keys)} as a whole number >= 1)")


def _norm(reader: ModelTensors, prefix: str, width: int, eps: float) -> Norm:
    weight = reader.tensor(prefix + ".weight", (width,))
    return Norm(weight, reader.tensor(prefix + ".bias", (width,), required=False), eps)


def recipe_for(config: dict[str, Any], source: str) -> LayerRecipe:
    """The family's recipe, or one ProviderError naming the families posembed computes attention for."""
    model_type = str(config.get("model_type") or "")
    if model_type not in RECIPES:
        raise ProviderError(f"{source}: attention= is not available for {model_type or 'this model'} models "
                            f"(it is for {', '.join(sorted(RECIPES))})")
    return RECIPES[model_type]


def layer_count(config: dict[str, Any], keys: tuple[str, ...] = LayerRecipe.layers) -> int | None:
    """The number of layers the config declares (under one of ``keys``), when it says."""
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


def read_attention(checkpoint: Checkpoint, layer: int, table: tuple[int, int], tokens: str = "zero",
                   tensor: str = "") -> AttentionInputs:
    """Layer ``layer``'s attention inputs for a position table of shape ``table`` (N x D) read from ``tensor``,
    reading only the tensors it needs.

    Layers past 0 also need the stream the layers below make: they are allowed for a local checkpoint only.
    """
    config, source = checkpoint.config, checkpoint.source
    positions, width = table
    recipe = recipe_for(config, source)
    root = tensor[:tensor.index(recipe.anchor)] if recipe.anchor and recipe.anchor in tensor else ""
    if recipe.anchor and root not in recipe.sides:
        raise ProviderError(f"{source}: attention= on {config.get('model_type')} computes {recipe.side_note}, not "
                            f"for the table {tensor!r}")
    numbers = config.get(recipe.subconfig) if recipe.subconfig else None
    numbers = numbers if isinstance(numbers, dict) else config
    layers = layer_count(numbers, recipe.layers)
    if layers is not None and layer >= layers:
        raise SpecError(f"{source}: attention={layer}, but the model has {layers} layers (0 to {layers - 1})")
    if layer > 0 and not isinstance(checkpoint, LocalCheckpoint):
        raise ProviderError(f"{source}: attention={layer} needs the layers below it run on the whole model, "
                            f"which posembed does only for a local checkpoint (a model folder); attention=0 reads the hub by range")
    heads = _config_int(numbers, recipe.heads, "number of heads", source)
    if width % heads:
        raise ProviderError(f"{source}: {width} dimensions do not split into {heads} heads")
    eps = numbers.get(recipe.eps[0], recipe.eps[1])
    eps = float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps < 1 else recipe.eps[1]
    reader = ModelTensors(checkpoint, "for the attention")
    at = {"L": layer, "R": root}
    query, query_bias, key, key_bias = _projections(reader, recipe, at, width)
    head_dim = width // heads
    scale = head_dim ** -0.5 if recipe.scaled else 1.0
    if recipe.key is None:  # GPT-2's own switches
        scale = scale if config.get("scale_attn_weights", True) else 1.0
        if config.get("scale_attn_by_inverse_layer_idx", False):
            scale /= layer + 1
    pre_norm = None
    if recipe.pre_norm and config.get("do_layer_norm_before", True):
        pre_norm = _norm(reader, recipe.pre_norm.format(**at), width, eps)
    embed_norm = _norm(reader, recipe.embed_norm.format(**at), width, eps) if recipe.embed_norm else None
    shift = None
    if recipe.token_type and config.get("type_vocab_size", 2):
        types = reader.tensor(recipe.token_type, required=False)
        shift = None if types is None else types[0]
    raw_mean = None
    if tokens == "mean":
        if recipe.tokens is None:
            raise SpecError(f"{source}: tokens=mean adds the patch embedding of a mean (all-zero) image, which is "
                            f"zero for {config.get('model_type')} (its patch embedding has no bias): use tokens=zero")
        factor = width ** 0.5 if recipe.embed_scale and config.get(recipe.embed_scale) is True else 1.0
        raw_mean, mean = _mean_token(reader, recipe.tokens.format(**at), recipe.project_in, width, factor)
        shift = _add(shift, mean)
    hidden = None
    if layer > 0:
        from explorer.loaders.attention_stack import stream_below

        hidden = stream_below(checkpoint, layer, raw_mean, positions)
        embed_norm, shift = None, None  # the stream already holds them; the layer's own pre_norm still applies
    note = recipe.note + ("; plus the mean token embedding" if tokens == "mean" else "")
    if layer > 0:
        note += ("; layer 0 runs" if layer == 1 else f"; layers 0 to {layer - 1} run") + " with torch on those inputs"
    window = local_window(config, layer, source) if config.get("model_type") == "gpt_neo" else None
    if window is not None:
        note += f"; layer {layer} is local: each query sees its last {window} keys"
    return AttentionInputs(layer, heads, query, key, query_bias, key_bias, scale, recipe.causal, pre_norm, embed_norm,
                           shift, hidden, tokens, tuple(reader.read_names), note, window=window)


def local_window(config: dict[str, Any], layer: int, source: str) -> int | None:
    """GPT-Neo's window for ``layer`` when it is a local layer (``attention_layers``, else ``attention_types``
    expanded as GPTNeoConfig expands it: [[["global", "local"], 12]]), else None."""
    kinds = config.get("attention_layers")
    if not isinstance(kinds, list):
        kinds = []
        for item in config.get("attention_types") or []:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)
                    and isinstance(item[1], int) and 0 <= item[1] <= 10_000):
                raise ProviderError(f"{source}: config.json's attention_types is not [[[kinds...], repeats], ...]")
            for _ in range(item[1]):
                kinds.extend(item[0])
                if len(kinds) > 10_000:
                    raise ProviderError(f"{source}: config.json's attention_types lists too many layers")
    kind = kinds[layer] if layer < len(kinds) else "global"
    if kind not in ("global", "local"):
        raise ProviderError(f"{source}: config.json gives layer {layer} the attention type {str(kind)[:40]!r}, "
                            f"not global or local")
    window = config.get("window_size", 256)
    if kind == "global":
        return None
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ProviderError(f"{source}: config.json's window_size is not a whole number >= 1")
    return window


def _projections(reader: ModelTensors, recipe: LayerRecipe, at: dict[str, int], width: int):
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


def _mean_token(reader: ModelTensors, tokens: str, project_in: str | None, width: int,
                factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The mean token embedding as the model takes it in (``inputs_embeds``: times ``factor`` where the model scales
    its token embeddings, BART's ``scale_embedding``) and as it enters the stream (projected in, where the model
    projects its tokens: OPT-350m); a grid's patch projection bias for both."""
    table = reader.tensor(tokens)
    raw = table.astype(np.float64) if table.ndim == 1 else table.astype(np.float64).mean(axis=0) * factor
    mean = raw
    if project_in and (name := reader.find(project_in)) is not None:
        mean = reader.tensor(name).astype(np.float64) @ raw
    if mean.shape != (width,):
        raise ProviderError(f"{reader.checkpoint.source}: the mean token has {mean.shape[0]} dimensions, the "
                            f"positions {width}")
    return raw.astype(np.float32), mean.astype(np.float32)


def _add(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    return b if a is None else a + b
