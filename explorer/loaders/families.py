"""Which tensor of a checkpoint is the position table, by ``model_type``, and what a model without one uses.

``FAMILIES`` is what the providers consult first: for each ``model_type`` a ``TensorRule`` per position
table (``default``, or ``encoder`` and ``decoder``): the tensor name (matched as a suffix, so ``wpe.weight``
finds ``transformer.wpe.weight`` too), the rows stored before position 0 (``offset``), and the kind of
table. In this package "table" means only a position matrix. An unknown ``model_type`` falls back to asking
transformers for the model's structure on the meta device (no weights are allocated or read).
A model whose config shows rotary, ALiBi or T5's relative positions has no table: ``hf:`` hands it to the provider a
plugin claims it for (``provider_for_config``), and without one it gets one error naming the scheme.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from explorer.errors import ProviderError
from explorer.loaders.checkpoints import Checkpoint
from explorer.runtime.console import did_you_mean

#: ``offset`` value meaning "the padding index plus one" (RoBERTa's position ids start at padding_idx + 1).
PADDING = "padding_idx + 1"
#: Values of the providers' ``table=`` parameter: which of a model's position tables to read (``space`` and
#: ``time``: TimeSformer's, ``explorer.loaders.video``).
TABLE_CHOICES = ("auto", "encoder", "decoder", "space", "time")
#: Values of the ``tower=`` parameter: which tower of a CLIP-style model to read (auto = vision).
TOWER_CHOICES = ("auto", "vision", "text")
#: The table ``auto`` picks, by the labels a family's rules use.
_AUTO_ORDER = ("default", "encoder", "vision", "text")


@dataclass(frozen=True)
class TensorRule:
    """Which tensor of a family's checkpoints holds a position table (by name suffix), its offset rows, its kind."""

    suffix: str
    offset: int | str = 0
    kind: str = "learned"
    note: str = ""
    grid: str | None = None
    """Where ``image_size`` and ``patch_size`` are in ``config.json`` for a table of image patches: ``""`` at the
    top level, else the name of a sub-config (``"vision_config"``); ``None``: a 1-D table."""


_GPT2 = {"default": TensorRule("wpe.weight", note="learned absolute positions (wpe)")}
_BERT = {"default": TensorRule("embeddings.position_embeddings.weight", note="learned absolute positions")}
_ROBERTA = {"default": TensorRule("embeddings.position_embeddings.weight", PADDING,
                             note="learned absolute positions; ids start at padding_idx + 1")}
_ENC_DEC = {
    "encoder": TensorRule("encoder.embed_positions.weight", 2, note="encoder's learned positions, 2 offset rows"),
    "decoder": TensorRule("decoder.embed_positions.weight", 2, note="decoder's learned positions, 2 offset rows"),
}

_DEBERTA_NOTE = ("learned relative-distance embeddings; row r is the query-minus-key bucket r - S (key - query distance "
                 "S - r, in log buckets past position_buckets / 2 when it is set), S = rows / 2")
_VIT = {"default": TensorRule("embeddings.position_embeddings", 1, grid="",
                              note="learned patch positions; class token row dropped")}


def _towers(vision: str | None, offset: int, grid: str, text: str | None) -> dict[str, TensorRule]:
    """A CLIP-style model's tables: the vision tower's patch grid (the default) and the text tower's sequence."""
    rules = {}
    if vision:
        note = "vision tower's learned patch positions" + ("; class token row dropped" if offset else "")
        rules["vision"] = TensorRule(vision, offset, grid=grid, note=note)
    if text:
        rules["text"] = TensorRule(text, note="text tower's learned positions")
    return rules


# A one-tower model saved by transformers 5 has no "vision_model." prefix (older checkpoints have one): a suffix
# without it finds both.
_ONE_TOWER = "embeddings.position_embedding.weight"
_VISION_TOWER, _TEXT_TOWER = "vision_model." + _ONE_TOWER, "text_model." + _ONE_TOWER


FAMILIES: dict[str, dict[str, TensorRule]] = {
    "gpt2": _GPT2,  # also DistilGPT-2
    "gpt_neo": _GPT2,
    "opt": {"default": TensorRule("decoder.embed_positions.weight", 2, note="learned positions, 2 offset rows")},
    "bert": _BERT,
    "electra": _BERT,
    "distilbert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "camembert": _ROBERTA,
    "bart": _ENC_DEC,
    "mbart": _ENC_DEC,
    "whisper": {
        "encoder": TensorRule("encoder.embed_positions.weight", 0, "formula",
                         "encoder's sinusoidal table, stored and frozen"),
        "decoder": TensorRule("decoder.embed_positions.weight", 0, note="decoder's learned positions"),
    },
    "biogpt": {"default": TensorRule("embed_positions.weight", 2, note="learned positions, 2 offset rows")},
    # DeBERTa's positions are relative: row r of rel_embeddings is the query-minus-key bucket r - S (S =
    # position_buckets, else max_relative_positions), projected into each layer's disentangled attention;
    # explorer.loaders.deberta labels each row with the key - query distances it serves.
    "deberta-v2": {"default": TensorRule("encoder.rel_embeddings.weight", 0, "relative", _DEBERTA_NOTE)},
    "deberta": {"default": TensorRule("encoder.rel_embeddings.weight", 0, "relative", _DEBERTA_NOTE)},
    # Vision transformers: a (1, 1 + H*W, D) parameter (ViT, DeiT, DINOv2) or an nn.Embedding (CLIP, SigLIP)
    # whose leading rows belong to the class (and distillation) tokens, not to a patch.
    "vit": _VIT,
    "vit_msn": _VIT,
    "vit_mae": {"default": TensorRule("embeddings.position_embeddings", 1, "formula", grid="",
                                      note="fixed 2-D sin-cos patch positions (stored, frozen); 1 class-token row")},
    "deit": {"default": TensorRule("embeddings.position_embeddings", 2, grid="",
                                   note="learned patch positions; class and distillation token rows dropped")},
    "dinov2": _VIT,
    "dinov2_with_registers": _VIT,  # its register tokens are added after the positions: the table has no row for them
    "clip": _towers(_VISION_TOWER, 1, "vision_config", _TEXT_TOWER),
    "clip_vision_model": _towers(_ONE_TOWER, 1, "", None),
    "clip_text_model": _towers(None, 0, "", _ONE_TOWER),
    "siglip": _towers(_VISION_TOWER, 0, "vision_config", _TEXT_TOWER),  # SigLIP has no class token
    "siglip_vision_model": _towers(_ONE_TOWER, 0, "", None),
    "siglip_text_model": _towers(None, 0, "", _ONE_TOWER),
}

_ROTARY_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi", "phi3", "gptj", "gpt_neox", "gpt_neox_japanese", "stablelm", "olmo", "olmo2",
    "cohere", "starcoder2", "deepseek_v2", "deepseek_v3", "roformer", "codegen", "persimmon", "granite",
}
_ALIBI_TYPES = {"bloom", "mpt"}
_RELATIVE_TYPES = {"t5", "mt5", "umt5", "longt5", "switch_transformers", "deberta", "deberta-v2",
                   "transfo-xl", "xlnet", "pop2piano"}
_ROTARY_KEYS = ("rope_theta", "rope_scaling", "rope_parameters", "rotary_dim", "rotary_pct", "rotary_emb_base",
                "partial_rotary_factor")


_RELATIVE = "it uses relative position biases"
_DISTILBERT_SINUSOID = "sinusoidal absolute positions (sinusoidal_pos_embds), stored and frozen"
_CONV = ("it uses a convolutional position embedding: a convolution over time (pos_conv_embed) adds each frame's "
         "neighbourhood to it, so there is no table of positions, and posembed has no reader for this model's (the "
         "`conv` provider reads those of Wav2Vec2, HuBERT, WavLM and UniSpeech)")
#: Model types whose scheme posembed knows but has no reader for: one sentence each, instead of "found no table".
#: (Wav2Vec2, HuBERT, WavLM and UniSpeech are claimed by the `conv` provider before this is asked.)
KNOWN_SCHEMES = {
    **dict.fromkeys(("wav2vec2-conformer", "data2vec-audio", "sew", "sew-d"), _CONV),
    "funnel": _RELATIVE + " inside attention (relative sinusoidal terms computed per layer, nothing stored)",
    "reformer": ("it uses axial position embeddings (weights factored over axial_pos_shape), which posembed cannot "
                 "read as one table; name a factor with tensor=NAME"),
}
#: Wav2Vec2-BERT's encoder has no convolution; its scheme is the config's position_embeddings_type.
_SPEECH_ATTENTION = {
    "relative_key": ("it uses relative position keys inside attention (Shaw et al.): each layer learns a vector per "
                     "clipped distance (distance_embedding, left_max_position_embeddings + "
                     "right_max_position_embeddings + 1 rows); load one with "
                     "`file:<checkpoint>.safetensors,key=<...distance_embedding.weight>` to look at it"),
    "relative": ("it uses Transformer-XL relative positions inside attention (sinusoids of the distance computed "
                 "per call, projected by each layer's linear_pos), so there is no table of positions"),
    "rotary": ("it uses rotary position embedding inside attention (base rotary_embedding_base), so there is no "
               "table of positions; its rotation angles are those of `posembed report sinusoidal,layout=split`"),
}
_TABLE_NAME = re.compile(r"(^|\.)(position_embeddings|embed_positions|wpe)\.weight$")


@dataclass(frozen=True)
class Choice:
    """The tensor picked as the position table, with the rows to drop and what it is."""

    tensor: str
    offset: int
    kind: str
    description: str
    grid: tuple[int, int] | None = None
    """``(H, W)`` of an image's patches, from the config, for the rows after ``offset``."""


def find_tensor(names: Sequence[str], suffix: str) -> str | None:
    """The shortest of ``names`` that is ``suffix`` or ends in ``.suffix``; None when none does."""
    matches = [n for n in names if n == suffix or n.endswith("." + suffix)]
    return min(matches, key=len) if matches else None


def _offset(rule: int | str, config: dict[str, Any], source: str) -> int:
    if rule != PADDING:
        return int(rule)
    pad = config.get("pad_token_id")
    if not isinstance(pad, int) or pad < 0:
        raise ProviderError(f"{source}: config.json has no pad_token_id, needed to drop the padding offset rows")
    return pad + 1


def family_rule(model_type: str, which: str, source: str) -> tuple[str, TensorRule]:
    """The family's rule for the position table ``which`` (``auto``, ``encoder``, ``decoder``), with its label."""
    rules = FAMILIES[model_type]
    if which == "auto":
        label = next(label for label in _AUTO_ORDER if label in rules)
        return label, rules[label]
    if which not in rules:
        if "default" in rules:
            raise ProviderError(f"{source}: {model_type} has a single position table; use table=auto, not {which}")
        raise ProviderError(f"{source}: {model_type} has no {which} table (tables: {', '.join(rules)})")
    return which, rules[which]


def choose(checkpoint: Checkpoint, which: str = "auto", tensor: str | None = None) -> Choice:
    """Pick the position table ``which`` of a checkpoint (or the tensor named), or raise ProviderError saying
    why there is none."""
    config, source = checkpoint.config, checkpoint.source
    model_type = str(config.get("model_type") or "")
    if tensor:
        names = checkpoint.names()
        if tensor not in names:
            raise ProviderError(f"{source}: no tensor {tensor!r} among its {len(names)} tensors"
                                f"{did_you_mean(tensor, names)}")
        for rule in FAMILIES.get(model_type, {}).values():
            if find_tensor([tensor], rule.suffix):
                return Choice(tensor, _offset(rule.offset, config, source), rule.kind, f"{model_type}: {rule.note}",
                              config_grid(rule, config, source))
        return Choice(tensor, 0, "other", f"tensor {tensor} named by the user")
    if model_type in FAMILIES:
        label, rule = family_rule(model_type, which, source)
        names = checkpoint.names()
        found = find_tensor(names, rule.suffix)
        if found is None:
            raise ProviderError(f"{source}: {model_type} keeps its position table in a tensor ending in "
                                f"{rule.suffix!r}, but none of its {len(names)} tensors does")
        kind, described = rule.kind, rule.note
        if model_type == "distilbert" and config.get("sinusoidal_pos_embds"):
            kind, described = "formula", _DISTILBERT_SINUSOID
        note = f"{model_type} {label if label != 'default' else ''}".strip()
        return Choice(found, _offset(rule.offset, config, source), kind, f"{note}: {described}",
                      config_grid(rule, config, source))
    scheme = positional_scheme(config)
    # A config says enough for rotary, ALiBi and the known relative families, so no weights are touched.
    # Relative-bias keys alone are not enough: MPNet has them and an absolute table, which wins.
    mixed = scheme is not None and scheme.startswith(_RELATIVE) and model_type not in _RELATIVE_TYPES
    if scheme is not None and not (mixed and any(_TABLE_NAME.search(n) for n in checkpoint.names())):
        raise ProviderError(f"{source}: {model_type or 'this model'} has no position table: {scheme}")
    return from_structure(checkpoint, which)


def _pair(value: Any) -> tuple[int, int] | None:
    """An ``image_size`` or ``patch_size`` (an int, or [h, w]) as ``(h, w)`` of ints >= 1; None when it is not one."""
    values = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        return None
    return values[0], values[1]


def config_grid(rule: TensorRule, config: dict[str, Any], source: str) -> tuple[int, int] | None:
    """The patch grid ``(H, W)`` = image_size // patch_size of a vision table, from ``config.json``; None for 1-D."""
    if rule.grid is None:
        return None
    where = config.get(rule.grid) if rule.grid else config
    key = f"{rule.grid}." if rule.grid else ""
    image = _pair(where.get("image_size")) if isinstance(where, dict) else None
    patch = _pair(where.get("patch_size")) if isinstance(where, dict) else None
    if image is None or patch is None:  # a config is untrusted text: name what is missing, read no weights
        raise ProviderError(f"{source}: config.json needs whole numbers {key}image_size and {key}patch_size to lay "
                            f"the patch positions out on a grid")
    return image[0] // patch[0], image[1] // patch[1]


def _positive(value: Any) -> float | None:
    """``value`` if it is a finite number > 0 (not a bool, not a string such as ``"0.5"``), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    return None


def _config_count(config: dict[str, Any], keys: Sequence[str]) -> int | None:
    """The first of ``keys`` that ``config`` gives as a whole number >= 1 (a bool is not one), else None."""
    return next((config[k] for k in keys if isinstance(config.get(k), int) and not isinstance(config.get(k), bool)
                 and config[k] >= 1), None)


#: Where a config gives a model's width and the positions of its table.
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
POSITION_KEYS = ("max_position_embeddings", "n_positions")


def config_table_shape(config: dict[str, Any]) -> tuple[int, int] | None:
    """positions x width of the table of a model of a known family, as its ``config.json`` gives them (for a run's
    memory estimate: ``Provider.expected_shape``); None when the family or either number is not known."""
    if config.get("model_type") not in FAMILIES:
        return None
    rows, width = _config_count(config, POSITION_KEYS), _config_count(config, WIDTH_KEYS)
    return (rows, width) if rows and width else None


def _head_dim(config: dict[str, Any]) -> int | None:
    if isinstance(config.get("rotary_dim"), int):
        return config["rotary_dim"]
    width = next((config[k] for k in WIDTH_KEYS if isinstance(config.get(k), int)), None)
    heads = next((config[k] for k in ("num_attention_heads", "n_head") if isinstance(config.get(k), int)), None)
    head = config.get("head_dim") if isinstance(config.get("head_dim"), int) else (
        width // heads if width and heads else None)
    # A config is untrusted text: "0.5" or "abc" where a number belongs only drops the hint's dim.
    fraction = _positive(config.get("partial_rotary_factor") or config.get("rotary_pct") or 1.0)
    return int(head * fraction) if head and fraction else None


def positional_scheme(config: dict[str, Any]) -> str | None:
    """For a model that has no position table, its scheme and where to look instead; else None."""
    model_type = str(config.get("model_type") or "")
    attn = config.get("attn_config") if isinstance(config.get("attn_config"), dict) else {}
    if model_type in _ALIBI_TYPES or config.get("alibi") or attn.get("alibi"):
        return ("it uses ALiBi, a fixed per-head linear penalty -m*|i-j| on attention scores (slopes "
                "m = 2^(-8h/H)), so there is nothing learned to read; look at it with the `alibi` provider "
                "(alibi,heads=H) instead")
    rope = config.get("rope_parameters") if isinstance(config.get("rope_parameters"), dict) else {}
    if (model_type in _ROTARY_TYPES or config.get("position_embedding_type") == "rotary"
            or any(k in config for k in _ROTARY_KEYS)):
        theta = _positive(config.get("rope_theta") or rope.get("rope_theta") or config.get("rotary_emb_base")) or 10000
        dim = _head_dim(config)
        hint = f"sinusoidal,base={float(theta):g}" + (f",dim={dim}" if dim else "") + ",layout=split"
        from explorer.plugins.selection import left_out

        setting = left_out("posembed-rotary")
        plugin = (f"; the posembed-rotary plugin, with which hf: reads its rotary table, is installed, but {setting} "
                  f"leaves it out (add posembed-rotary to it)" if setting else ", or install the posembed-rotary "
                  "plugin (pip install -e plugins/posembed-rotary in posembed's repository), with which hf: reads "
                  "its rotary table")
        return (f"it uses rotary position embedding (RoPE, base {float(theta):g}): positions rotate query/key "
                f"pairs inside attention. Its rotation angles are those of the sinusoidal table, so look at "
                f"`posembed report {hint}` instead{plugin}")
    if model_type in KNOWN_SCHEMES:
        return KNOWN_SCHEMES[model_type]
    if model_type == "wav2vec2-bert":
        return _SPEECH_ATTENTION.get(str(config.get("position_embeddings_type")),
                                     "it has no position embedding (position_embeddings_type is none)")
    if (model_type in _RELATIVE_TYPES or "relative_attention_num_buckets" in config
            or config.get("relative_attention")):
        return (_RELATIVE + " inside attention (a learned bias per distance bucket and head, "
                "tensors named like '...relative_attention_bias.weight'); load one of those with "
                "`file:<checkpoint>.safetensors,key=<tensor name>` to look at it")
    return None


def from_structure(checkpoint: Checkpoint, which: str) -> Choice:
    """Find the table of a model type not in FAMILIES from transformers' structure on the meta device."""
    source = checkpoint.source
    model_type = checkpoint.config.get("model_type") or "unknown"
    if checkpoint.config_dir is None:
        raise ProviderError(f"{source}: unknown model type {model_type!r}; name the table with tensor=NAME")
    try:
        import torch
        from transformers import AutoConfig, AutoModel

        # Never trust_remote_code: a config's auto_map must not make posembed import code from the model folder.
        config = AutoConfig.from_pretrained(str(checkpoint.config_dir), trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModel.from_config(config, trust_remote_code=False)
    except Exception as exc:  # transformers raises ValueError, KeyError, ImportError... for unknown models
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProviderError(f"{source}: model type {model_type!r} is not among posembed's known families and "
                            f"transformers cannot build it ({first}); name the table with tensor=NAME") from None
    found = []
    sinusoidal = False
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1].lower()
        sinusoidal |= "sinusoidal" in type(module).__name__.lower()
        if isinstance(module, torch.nn.Embedding) and ("pos" in last or last == "wpe"):
            found.append((name, module))
    if which != "auto":
        found = [(n, m) for n, m in found if which in n]
    if not found:
        if sinusoidal:
            raise ProviderError(f"{source}: {model_type} computes a sinusoidal table when it loads and stores none; "
                                f"use the `sinusoidal` provider (see its layout parameter) instead")
        raise ProviderError(f"{source}: found no position table in {model_type}'s structure"
                            f"{' for table=' + which if which != 'auto' else ''}; name it with tensor=NAME")
    found.sort(key=lambda item: ("encoder" not in item[0], item[0]))
    module_name, module = found[0]
    names = checkpoint.names()
    wanted = f"{module_name}.weight"
    stored = [n for n in names if n == wanted or n.endswith("." + wanted) or wanted.endswith("." + n)]
    if not stored:
        raise ProviderError(f"{source}: {model_type}'s position table {wanted!r} is not stored in the checkpoint")
    if isinstance(getattr(module, "offset", None), int):
        offset = module.offset
    elif module.padding_idx is not None:
        offset = module.padding_idx + 1
    else:
        offset = 0
    # Pegasus and Marian store the sinusoid they compute (an nn.Embedding subclass named for it), frozen
    formula = "sinusoidal" in type(module).__name__.lower()
    return Choice(min(stored, key=len), offset, "formula" if formula else "learned",
                  f"{model_type}: {type(module).__name__} found in transformers' structure"
                  + ("; a sinusoidal table, stored and frozen" if formula else ""))
