"""posembed-rotary: the cos/sin table of rotary position embeddings (RoPE) as a posembed provider.

Layout: with k = rotary_dim / 2 inverse frequencies ``inv_freq`` and attention scaling ``s``
(1 unless the RoPE type has one), row p is

    [s*cos(p*inv_freq[0]) ... s*cos(p*inv_freq[k-1]), s*sin(p*inv_freq[0]) ... s*sin(p*inv_freq[k-1])]

the ``cos`` and ``sin`` a Hugging Face model computes in its ``*RotaryEmbedding.forward``, without
their duplicated second half. torch and transformers are imported inside ``load`` only, so this
plugin does not slow the command line it joins.

Multimodal RoPE (M-RoPE: Qwen2-VL, Qwen2.5-VL) splits the k frequency pairs into ``mrope_section`` =
(temporal, height, width) runs: pair i turns by id_s * inv_freq[i], with id_s the token's temporal, height or
width position id for the section s that pair i falls in. A text token's three ids are equal, so its row is the
plain one above (the 1-D text view, the default). ``section=S`` keeps only section S's pairs, over its own ids;
``image=TxHxW`` takes an image of that ``image_grid_thw`` and gives one row per image token (on its grid), its ids
built as transformers' ``get_rope_index`` builds them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer import Param, Provider, check_shape, hookimpl
from explorer.errors import ProviderError, SpecError

DEFAULT_POSITIONS = 2048
DEFAULT_DIM = 128
DEFAULT_BASE = 10000.0
#: The default never exceeds this many rows: some configs allow millions of positions (gigabytes of table).
MAX_DEFAULT_POSITIONS = 131072


def rotary_table(inv_freq: np.ndarray, positions: int, scaling: float = 1.0) -> np.ndarray:
    """The ``positions x 2k`` float32 table [cos(p*inv_freq), sin(p*inv_freq)] * scaling for k frequencies.

    The angles are float32 products, as the models compute them; cos and sin are evaluated in
    float64 and rounded once.
    """
    inv_freq = np.asarray(inv_freq, dtype=np.float32)
    check_shape((positions, 2 * len(inv_freq)), "rotary", itemsize=8)  # cos and sin are evaluated in float64
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv_freq[None, :]
    angles = angles.astype(np.float64)
    return (np.concatenate([np.cos(angles), np.sin(angles)], axis=1) * scaling).astype(np.float32)


def default_inv_freq(dim: int, base: float) -> np.ndarray:
    """The original RoPE frequencies base^(-2i/dim) for i < dim/2, computed in float64, rounded to float32."""
    return (1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)).astype(np.float32)


@dataclass(frozen=True)
class Rope:
    """What a model config says about its rotary embedding, resolved to numbers."""

    inv_freq: np.ndarray
    attention_scaling: float
    rope_type: str
    theta: float
    head_dim: int
    rotary_dim: int
    max_positions: int | None
    layer: str | None = None
    mrope_section: tuple[int, ...] | None = None
    """Multimodal RoPE's (Qwen2-VL's) frequency pairs per temporal, height and width section, when it has them."""

    def describe(self, view: str | None = None) -> str:
        """One line for the report's provenance (``view``: what an M-RoPE table shows, when not the text view)."""
        where = f" ({self.layer} layers)" if self.layer else ""
        part = f" of head_dim {self.head_dim}" if self.rotary_dim != self.head_dim else ""
        scale = f", attention scaling {self.attention_scaling:.6g}" if self.attention_scaling != 1.0 else ""
        return (f"RoPE {self.rope_type}{where}, theta {self.theta:g}, rotary dim {self.rotary_dim}{part}{scale}; "
                f"row p = [cos(p*inv_freq), sin(p*inv_freq)] * scaling" + self._mrope(view))

    def section_pairs(self, only: int | None = None) -> str:
        """Which frequency pairs each section (or section ``only``) turns: ``temporal pairs 0-15, ...``."""
        ends = np.cumsum(self.mrope_section)
        return ", ".join(f"{name} pairs {end - size}-{end - 1}" for k, (name, size, end) in
                         enumerate(zip(SECTIONS, self.mrope_section, ends)) if size and only in (None, k))

    def _mrope(self, view: str | None = None) -> str:
        if not self.mrope_section:
            return ""
        return (f"; M-RoPE, mrope_section {list(self.mrope_section)} ({self.section_pairs()}): " + (view or (
                "shown is the 1-D text view, where a text token's temporal, height and width position ids are "
                "equal, so every pair turns by p*inv_freq as in plain RoPE; image and video tokens take their ids "
                "from their frame and patch grid instead (transformers' get_rope_index): section=temporal|height|"
                "width shows one section's pairs, image=TxHxW an image's tokens")))


#: M-RoPE's sections, in ``mrope_section``'s order.
SECTIONS = ("temporal", "height", "width")


def parse_image(text: str) -> tuple[int, int, int]:
    """``"1x28x28"`` (an ``image_grid_thw``: frames, height and width in patches, before the merge) as ints."""
    parts = str(text).strip().lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() and len(p.strip()) <= 7 and int(p) >= 1 for p in parts):
        raise SpecError(f"rotary: image must be TxHxW (image_grid_thw, in patches, whole numbers >= 1), e.g. "
                        f"image=1x28x28; got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def mrope_position_ids(grid_thw: tuple[int, int, int], merge: int = 1, start: int = 0) -> np.ndarray:
    """The (temporal, height, width) position ids (3 x tokens, int64) of an image's tokens after ``start`` earlier
    ids, as transformers' ``get_rope_index`` builds them for an image (``get_vision_position_ids`` with
    ``temp_merge_size`` 1 and ``time_interval`` 1): the LLM grid is T x H/merge x W/merge, token (t, r, c) (row by
    row, frame by frame) has ids (start + t, start + r, start + c)."""
    frames, height, width = grid_thw[0], grid_thw[1] // merge, grid_thw[2] // merge
    t, h, w = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([t, h, w]).reshape(3, -1).astype(np.int64) + start


def mrope_table(inv_freq: np.ndarray, ids: np.ndarray, section: tuple[int, ...], scaling: float = 1.0,
                only: int | None = None) -> np.ndarray:
    """The rows [cos(a), sin(a)] * scaling of tokens with position ids ``ids`` (3 x n), a_i = id_s(i) * inv_freq[i]
    with s(i) the section pair i falls in (float32 products, as the models form them; cos and sin in float64, rounded
    once); with ``only``, section ``only``'s pairs alone."""
    owner = np.repeat(np.arange(3), section)
    pairs = np.arange(len(inv_freq)) if only is None else np.flatnonzero(owner == only)
    check_shape((ids.shape[1], 2 * len(pairs)), "rotary", itemsize=8)
    inv = np.asarray(inv_freq, dtype=np.float32)[pairs]
    angles = (ids[owner[pairs]].T.astype(np.float32) * inv[None, :]).astype(np.float64)
    return (np.concatenate([np.cos(angles), np.sin(angles)], axis=1) * scaling).astype(np.float32)


def spatial_merge(config: Any) -> int:
    """``vision_config.spatial_merge_size`` of a multimodal config: image patches merged per side into one token."""
    merge = getattr(getattr(config, "vision_config", None), "spatial_merge_size", None)
    if isinstance(merge, bool) or not isinstance(merge, int) or not 1 <= merge <= 64:
        raise ProviderError(f"rotary: the config's vision_config.spatial_merge_size is {merge!r}, not a whole number "
                            f"from 1 to 64")
    return merge


def mrope_view(rope: Rope, section: str | None, image: tuple[int, int, int] | None, merge: int, start: int,
               positions: int) -> tuple[np.ndarray, tuple[int, ...] | None, str]:
    """An M-RoPE model's table for one section (``section``) or an image (``image``): the rows, the grid of an image's
    tokens, and what the view is, for the description."""
    only = SECTIONS.index(section) if section not in (None, "all") else None
    if image is None:  # the section's own pairs over its own ids 0 .. positions - 1
        ids = np.broadcast_to(np.arange(positions, dtype=np.int64), (3, positions))
        pairs = rope.section_pairs(only)
        return (mrope_table(rope.inv_freq, ids, rope.mrope_section, rope.attention_scaling, only), None,
                f"shown is section {section} alone ({pairs}) over its own position ids 0 .. {positions - 1}: for a "
                f"text token that is its position, as in the 1-D text view")
    grid = (image[0], image[1] // merge, image[2] // merge)
    if min(grid) < 1:
        raise SpecError(f"rotary: image={'x'.join(map(str, image))} has fewer patches a side than the "
                        f"spatial_merge_size {merge}")
    ids = mrope_position_ids(image, merge, start)
    table = mrope_table(rope.inv_freq, ids, rope.mrope_section, rope.attention_scaling, only)
    which = "every pair" if only is None else f"section {section} alone ({rope.section_pairs(only)})"
    return (table, grid if grid[0] > 1 else grid[1:],
            f"shown is an image of image_grid_thw {list(image)} (spatial_merge_size {merge}: {grid[1]} x {grid[2]} "
            f"tokens a frame, {grid[0]} frame{'s' if grid[0] > 1 else ''}) after {start} position ids, {which}: token "
            f"(t, r, c) has the temporal, height and width ids ({start} + t, {start} + r, {start} + c), as "
            f"transformers' get_rope_index builds them, one row per token laid out on its grid")


def read_config(model: str, revision: str | None = None) -> Any:
    """The config of a hub id or local folder, through ``transformers.AutoConfig`` without remote code (a
    multimodal model's whole config: ``text_config`` reads its language model's)."""
    from pathlib import Path

    folder = Path(model).expanduser()
    if model.startswith(("/", ".", "~")) and not folder.is_dir():
        raise ProviderError(f"rotary: no such model folder: {model}")  # rather than a hub lookup of a path
    from explorer import read_config as read_config_json

    if folder.is_dir() and os.path.lexists(folder / "config.json"):
        # posembed's own reader first: it refuses a config.json that is a FIFO, /dev/zero, a folder, too large
        # or nested too deeply, all of which transformers would read for ever or crash on.
        read_config_json(folder / "config.json", f"rotary: {model}")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder if model.startswith("~") else model,
                                            revision=revision, trust_remote_code=False)
    except RecursionError:  # a downloaded config.json nested thousands deep
        raise ProviderError(f"rotary: the config of {model} is nested too deeply to be a model config") from None
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProviderError(f"rotary: cannot read the config of {model}: {first}") from None
    return config


def text_config(config: Any) -> Any:
    """The language model's config: multimodal models keep their RoPE in a nested text config."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def rope_from_config(config: Any, positions: int | None = None, layer: str | None = None) -> Rope:
    """The inverse frequencies and attention scaling a model with ``config`` uses for ``positions`` tokens.

    Scaled RoPE types go through transformers' own ``ROPE_INIT_FUNCTIONS``; ``default`` is the
    original formula over ``int(head_dim * partial_rotary_factor)`` dimensions, as transformers
    computes it.
    """
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    model_type = getattr(config, "model_type", None) or "unknown"
    max_positions = getattr(config, "max_position_embeddings", None)
    head_dim = getattr(config, "head_dim", None) or _derived_head_dim(config)
    params = getattr(config, "rope_parameters", None)
    if not params:
        rotary_dim = getattr(config, "rotary_dim", None)
        if isinstance(rotary_dim, int) and rotary_dim > 0:  # GPT-J, CodeGen: base 10000 over rotary_dim dims
            if layer:
                raise SpecError(f"rotary: {model_type} has one RoPE for all layers; drop layer={layer}")
            check_shape((positions or 1, rotary_dim), "rotary", itemsize=8)
            inv = default_inv_freq(rotary_dim, DEFAULT_BASE)
            return Rope(inv, 1.0, "default", DEFAULT_BASE, head_dim or rotary_dim, rotary_dim, max_positions)
        raise ProviderError(f"rotary: the {model_type} config has no RoPE parameters (rope_parameters, rope_theta, "
                            f"rotary_dim): the model does not use rotary position embeddings")
    nested = config.nested_rope_parameter_keys(params) if hasattr(config, "nested_rope_parameter_keys") else []
    if nested:
        choices = [key for key in nested if params[key]]
        if layer is None:
            layer = "full_attention" if "full_attention" in choices else choices[0]
        elif layer not in choices:
            raise SpecError(f"rotary: layer must be one of {', '.join(choices)} for {model_type}, got {layer!r}")
        params = params[layer]
    elif layer is not None:
        raise SpecError(f"rotary: {model_type} has one RoPE for all layers; drop layer={layer}")
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta = _config_number(params.get("rope_theta", getattr(config, "default_theta", DEFAULT_BASE)), "rope_theta",
                           model_type)
    if head_dim is None:
        raise ProviderError(f"rotary: the {model_type} config gives neither head_dim nor hidden_size and "
                            f"num_attention_heads")
    head_dim = int(_config_number(head_dim, "head_dim", model_type, whole=True))
    fraction = _config_number(params.get("partial_rotary_factor", 1.0), "partial_rotary_factor", model_type, high=1.0)
    rotary_dim = int(head_dim * fraction)
    check_shape((positions or 1, rotary_dim), "rotary", itemsize=8)  # before transformers computes its frequencies
    if rope_type == "default":
        # transformers keeps this one per model (compute_default_rope_parameters); every RoPE model computes it so.
        exponent = torch.arange(0, rotary_dim, 2, dtype=torch.int64).to(dtype=torch.float) / rotary_dim
        inv_freq, scaling = 1.0 / (theta ** exponent), 1.0
    elif rope_type in ROPE_INIT_FUNCTIONS:
        kwargs: dict[str, Any] = {"layer_type": layer} if nested else {}
        if rope_type in ("dynamic", "longrope"):  # their frequencies depend on the sequence length
            kwargs["seq_len"] = positions
        try:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, **kwargs)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise ProviderError(f"rotary: the {model_type} config's {rope_type} RoPE parameters are incomplete "
                                f"or invalid: {type(exc).__name__}: {exc}") from None
    else:
        known = ", ".join(["default", *sorted(ROPE_INIT_FUNCTIONS)])
        raise ProviderError(f"rotary: the {model_type} config uses rope_type {rope_type!r}, which this version "
                            f"of transformers does not know (known: {known})")
    inv = inv_freq.detach().to(torch.float32).cpu().numpy()
    section = params.get("mrope_section")  # Qwen2-VL and Qwen2.5-VL; a config's text, checked before it is named
    if not (isinstance(section, list) and len(section) == 3 and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in section) and sum(section) == len(inv)):
        section = None
    return Rope(inv, float(scaling), rope_type, theta, int(head_dim), int(2 * len(inv)), max_positions,
                layer if nested else None, tuple(section) if section else None)


def _config_number(value: Any, name: str, model_type: str, *, whole: bool = False, high: float = math.inf) -> float:
    """A config field that must be a number > 0 (and <= ``high``; whole if asked), else one ProviderError.

    A config.json is untrusted text: ``"rope_theta": "abc"`` or ``"partial_rotary_factor": "0.5"`` (a string,
    which ``head_dim * "0.5"`` would repeat) must not reach arithmetic.
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 < value <= high or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        bound = f" from 0 (excluded) to {high:g}" if math.isfinite(high) else " > 0"
        raise ProviderError(f"rotary: the {model_type} config's {name} is {value!r}, not {kind}{bound}")
    return float(value)


def _derived_head_dim(config: Any) -> int | None:
    hidden = getattr(config, "hidden_size", None)
    heads = getattr(config, "num_attention_heads", None)
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None


def load(model: str | None, revision: str | None, positions: int | None, dim: int | None, base: float | None,
         layer: str | None, section: str | None = None, image: str | None = None, start: int | None = None,
         attention: int | None = None, tokens: str | None = None):
    """The ``rotary`` provider's ``load``: from a model config when ``model`` is given, else from dim and base; for an
    M-RoPE model, one section's pairs (``section``) or an image's tokens (``image``, after ``start`` ids); with
    ``attention=L``, also layer L's norm and query/key weights (``posembed_rotary_attention``)."""
    from explorer import PositionEmbedding

    grid_thw = parse_image(image) if image is not None else None
    section = None if section == "all" and grid_thw is None else section  # every pair over positions: the text view
    if start is not None and grid_thw is None:
        raise SpecError("rotary: start applies to an image: give image=TxHxW too")
    if grid_thw is not None and positions is not None:
        raise SpecError("rotary: with image=TxHxW the rows are the image's tokens; drop positions")
    if tokens is not None and attention is None:
        raise SpecError(f"rotary: tokens={tokens} applies to the attention; give attention=L too")
    if attention is not None and (section is not None or grid_thw is not None):
        raise SpecError("rotary: attention describes the 1-D text view; drop section and image")
    if model is None:
        if any(v is not None for v in (revision, layer, section, grid_thw, attention)):
            raise SpecError("rotary: revision, layer, section, image and attention apply to a model: rotary:MODEL,...")
        dim = DEFAULT_DIM if dim is None else dim
        base = DEFAULT_BASE if base is None else base
        if dim % 2:
            raise SpecError(f"rotary: dim must be even (it holds dim/2 rotation pairs), got {dim}")
        positions = DEFAULT_POSITIONS if positions is None else positions
        check_shape((positions, dim), "rotary", itemsize=8)  # before the frequencies: dim alone may be huge
        rope = Rope(default_inv_freq(dim, base), 1.0, "default", base, dim, dim, None)
        source = f"formula, base {base:g}, dim {dim}"
    else:
        given = [name for name, value in (("dim", dim), ("base", base)) if value is not None]
        if given:
            raise SpecError(f"rotary: {' and '.join(given)} {'come' if len(given) > 1 else 'comes'} from the "
                            f"model's config; give dim and base only without a model (rotary,dim=...,base=...)")
        whole = read_config(model, revision)
        config = text_config(whole)
        if positions is None and grid_thw is None:
            limit = getattr(config, "max_position_embeddings", None)
            positions = min(limit, MAX_DEFAULT_POSITIONS) if isinstance(limit, int) and limit > 0 else DEFAULT_POSITIONS
        rope = rope_from_config(config, positions, layer)
        source = model
    if not len(rope.inv_freq):
        raise ProviderError(f"rotary: {source} rotates no dimensions (rotary dim 0)")
    params = {"model": model, "revision": revision, "positions": positions, "dim": dim, "base": base, "layer": layer,
              "section": section, "image": image, "start": start, "attention": attention, "tokens": tokens}
    grid, view = None, None
    if section is not None or grid_thw is not None:
        if not rope.mrope_section:
            raise ProviderError(f"rotary: {source} has no mrope_section: section and image apply to multimodal "
                                f"RoPE (Qwen2-VL, Qwen2.5-VL)")
        merge = spatial_merge(whole) if grid_thw is not None else 1
        table, grid, view = mrope_view(rope, section, grid_thw, merge, start or 0, positions or 0)
    else:
        table = rotary_table(rope.inv_freq, positions, rope.attention_scaling)
    inputs = None
    if attention is not None:
        from posembed_rotary_attention import read_layer

        inputs = read_layer(model, revision, attention, tokens, len(rope.inv_freq))
    return PositionEmbedding(
        table,
        provider="rotary",
        source=source,
        kind="rotary",
        dtype="float32",
        params={k: v for k, v in params.items() if v is not None},
        revision=revision,
        description=rope.describe(view),
        grid=grid,
        attention=inputs,
    )


PROVIDER = Provider(
    name="rotary",
    description="Rotary position embedding (RoPE) as its cos/sin table, from dim and base or a model's config",
    load=load,
    params=(
        Param("model", str, None, "hub id or local folder whose config.json sets the RoPE (optional)"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("positions", int, None, "rows (default: the config's max_position_embeddings up to 131072, else 2048)", minimum=1),
        Param("dim", int, None, "rotary dimension, even; without a model only (default 128)", minimum=2),
        Param("base", float, None, "RoPE base theta; without a model only (default 10000)", minimum=1e-12),
        Param("layer", str, None, "layer type, for configs with RoPE per layer type (e.g. sliding_attention)"),
        Param("section", str, None, "M-RoPE (Qwen2-VL): one section's frequency pairs over its own position ids "
              "(default: every pair, the 1-D text view)", choices=("all", *SECTIONS)),
        Param("image", str, None, "M-RoPE: TxHxW, an image_grid_thw in patches; the rows are its tokens, on their grid, "
              "with the position ids transformers' get_rope_index gives them"),
        Param("start", int, None, "with image: the position ids before the image (text tokens first; default 0)",
              minimum=0),
        Param("attention", int, None, "also describe layer L's attention from its own query/key weights (reads "
              "that layer's norm and projections)", minimum=0),
        Param("tokens", str, None, "with attention=0: the token whose score by distance is shown, zero (default) or "
              "mean (the mean token embedding)", choices=("zero", "mean")),
    ),
    target="model",
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``rotary`` provider."""
    register(PROVIDER)


#: model_type values of models that rotate queries and keys (their configs may spell RoPE in many ways).
ROTARY_MODEL_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi", "phi3", "gptj", "gpt_neox", "gpt_neox_japanese", "stablelm", "olmo", "olmo2", "cohere",
    "starcoder2", "deepseek_v2", "deepseek_v3", "codegen", "persimmon", "granite",
})
_ROPE_KEYS = ("rope_theta", "rope_scaling", "rope_parameters", "rotary_dim", "rotary_pct", "rotary_emb_base",
              "partial_rotary_factor")


@hookimpl
def provider_for_config(config: dict) -> str | None:
    """Claim configs of models with rotary position embeddings, so that ``hf:`` hands them to ``rotary``."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    rotary = (config.get("model_type") in ROTARY_MODEL_TYPES or config.get("position_embedding_type") == "rotary"
              or any(key in config or key in text for key in _ROPE_KEYS))  # a multimodal model's text config too
    return "rotary" if rotary else None
