"""The ``window`` provider: the relative position bias of Swin, Swin v2, BEiT and Data2Vec-vision over 2-D offsets.

Swin and BEiT keep a learned table per layer (``relative_position_bias_table``, one row per 2-D offset and heads
columns; BEiT adds three class-token rows) and index it with ``relative_position_index``; Swin v2 computes the table
with a small MLP on log-spaced offset coordinates (continuous position bias) and squashes it with 16 * sigmoid.
Each is read as transformers computes it and handed over as an ``explorer.WindowBias``. Only the tensors of the one
layer asked for are read.
"""

from __future__ import annotations

import math
import re
from typing import Any

from explorer.errors import ProviderError
from explorer.loaders.config_values import pair, whole
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider

SWIN_TYPES = ("swin", "donut-swin", "maskformer-swin")
SWINV2_TYPES = ("swinv2",)
BEIT_TYPES = ("beit", "data2vec-vision")
# Tensor names as transformers 5 saves them and as older checkpoints on the hub hold them (attention.self...).
_SWIN = re.compile(r"(^|\.)encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.(self\.)?(relative_position_bias\.)?"
                   r"relative_position_bias_table$")
_SWINV2 = re.compile(r"(^|\.)encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.(self\.)?continuous_position_bias_mlp\."
                     r"(0\.weight|0\.bias|2\.weight)$")
_BEIT = re.compile(r"(^|\.)(encoder\.layer|layers)\.(\d+)\.(attention\.attention\.)?relative_position_bias\."
                   r"relative_position_bias_table$")
_BEIT_SHARED = re.compile(r"(^|\.)(encoder\.relative_position_bias|shared_position_bias)\."
                          r"relative_position_bias_table$")


def _found(names: list[str], pattern: re.Pattern, layer: int, block: int | None, source: str, what: str) -> list[str]:
    """The tensors matching ``pattern`` in ``layer`` (and ``block``), or one error naming the layers there are."""
    hits: dict[tuple[int, ...], list[str]] = {}
    for name in names:
        match = pattern.search(name)
        if match:
            numbers = tuple(int(g) for g in match.groups() if g and g.isdigit())
            hits.setdefault(numbers, []).append(name)
    key = (layer,) if block is None else (layer, block)
    if key in hits:
        return hits[key]
    if not hits:
        raise ProviderError(f"{source}: no tensor of its {len(names)} holds {what}")
    have = ", ".join(".".join(map(str, k)) for k in sorted(hits))
    wanted = f"layer {layer}" + (f", block {block}" if block is not None else "")
    raise ProviderError(f"{source}: it keeps {what} in {'layer.block' if block is not None else 'layer'} {have}, "
                        f"not {wanted}")


def _table(checkpoint: Any, name: str, rows: int, source: str):
    table, dtype = checkpoint.read(name)
    if table.ndim != 2 or table.shape[0] != rows:
        raise ProviderError(f"{source}: {name} has shape {list(table.shape)}, expected [{rows} offsets, heads]")
    return table, dtype


def swin(checkpoint: Any, layer: int, block: int):
    """Swin's learned table of ``layer``.``block``: (2W-1)^2 offsets x heads, W = ``window_size``."""
    from explorer.core.window import offsets_from_table

    config, source = checkpoint.config, checkpoint.source
    size = whole(config, "window_size", source)
    [name] = _found(checkpoint.names(), _SWIN, layer, block, source, "a relative_position_bias_table")[:1]
    table, dtype = _table(checkpoint, name, (2 * size - 1) ** 2, source)
    note = (f"learned relative position bias of stage {layer}, block {block}: one value per head and 2-D offset "
            f"in a {size} x {size} window, indexed by relative_position_index")
    return offsets_from_table(table, (size, size)), (size, size), (), name, dtype, note


def beit(checkpoint: Any, layer: int, block: int):
    """BEiT's (and Data2Vec-vision's) table of ``layer``, or the shared one: offsets over the whole patch grid,
    then the three class-token entries."""
    import numpy as np

    from explorer.core.window import CLASS_TOKEN_ENTRIES, offsets_from_table

    config, source = checkpoint.config, checkpoint.source
    if block:
        raise ProviderError(f"{source}: a {config.get('model_type')} layer has one bias; block applies to Swin")
    image, patch = pair(config, "image_size", source), pair(config, "patch_size", source)
    window = (image[0] // patch[0], image[1] // patch[1])
    if min(window) < 1:
        raise ProviderError(f"{source}: config.json's patch_size {patch} is larger than its image_size {image}")
    shared = config.get("use_shared_relative_position_bias") is True
    pattern, what = (_BEIT_SHARED, "a shared relative_position_bias_table") if shared else (
        _BEIT, "a relative_position_bias_table")
    if shared:
        names = [n for n in checkpoint.names() if pattern.search(n)]
        if not names:
            raise ProviderError(f"{source}: no tensor of it holds {what}")
        name = min(names, key=len)
    else:
        [name] = _found(checkpoint.names(), pattern, layer, None, source, what)[:1]
    offsets = (2 * window[0] - 1) * (2 * window[1] - 1)
    table, dtype = _table(checkpoint, name, offsets + 3, source)
    values = np.concatenate([offsets_from_table(table[:offsets], window), table[offsets:].T], axis=1)
    where = "shared by every layer" if shared else f"of layer {layer}"
    note = (f"learned relative position bias {where}: one value per head and 2-D offset over the {window[0]} x "
            f"{window[1]} patch grid, plus 3 class-token entries, indexed by relative_position_index")
    return values, window, CLASS_TOKEN_ENTRIES, name, dtype, note


def swinv2_window(config: dict[str, Any], layer: int, source: str) -> tuple[int, int]:
    """Swin v2's window at stage ``layer``: ``window_size``, or the stage's resolution when that is smaller
    (``Swinv2Layer._compute_window_shift``, which keeps the first side for both)."""
    size = whole(config, "window_size", source)
    image, patch = pair(config, "image_size", source), pair(config, "patch_size", source)
    side = min((image[0] // patch[0]) // 2 ** layer, size)
    if side < 1:
        raise ProviderError(f"{source}: stage {layer} of a {image[0]} x {image[1]} image has no patches left")
    return side, side


def continuous_bias(weights: dict[str, Any], window: tuple[int, int], pretrained: int, heads: int):
    """Swin v2's continuous position bias: the MLP on ``relative_coords_table`` (as
    ``Swinv2SelfAttention.create_coords_table_and_index`` builds it), then 16 * sigmoid; rows in transformers'
    table order (query-minus-key offsets)."""
    import torch

    with torch.no_grad():
        coords_h = torch.arange(-(window[0] - 1), window[0], dtype=torch.int64).float()
        coords_w = torch.arange(-(window[1] - 1), window[1], dtype=torch.int64).float()
        table = torch.stack(torch.meshgrid([coords_h, coords_w], indexing="ij")).permute(1, 2, 0).contiguous()
        if pretrained > 0:
            table[:, :, 0] /= pretrained - 1
            table[:, :, 1] /= pretrained - 1
        elif window[0] > 1:
            table[:, :, 0] /= window[0] - 1
            table[:, :, 1] /= window[1] - 1
        table *= 8
        table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / math.log2(8)
        first = torch.from_numpy(weights["0.weight"]), torch.from_numpy(weights["0.bias"])
        hidden = torch.nn.functional.relu(torch.nn.functional.linear(table, *first))
        out = torch.nn.functional.linear(hidden, torch.from_numpy(weights["2.weight"])).view(-1, heads)
        return (16 * torch.sigmoid(out)).numpy()


def swinv2(checkpoint: Any, layer: int, block: int):
    """Swin v2's continuous position bias of ``layer``.``block``, evaluated as the model evaluates it."""
    from explorer.core.window import offsets_from_table

    config, source = checkpoint.config, checkpoint.source
    window = swinv2_window(config, layer, source)
    pretrained_sizes = config.get("pretrained_window_sizes") or [0] * (layer + 1)
    if not isinstance(pretrained_sizes, list):
        raise ProviderError(f"{source}: config.json's pretrained_window_sizes is {pretrained_sizes!r}, not a list")
    pretrained = pretrained_sizes[layer] if layer < len(pretrained_sizes) else 0
    if isinstance(pretrained, bool) or not isinstance(pretrained, int) or pretrained == 1 or \
            not 0 <= pretrained <= 1 << 20:
        raise ProviderError(f"{source}: config.json's pretrained_window_sizes[{layer}] is {pretrained!r}, not 0 or a "
                            f"whole number >= 2")
    names = _found(checkpoint.names(), _SWINV2, layer, block, source, "a continuous_position_bias_mlp")
    weights, dtypes = {}, set()
    for name in names:
        value, dtype = checkpoint.read(name)
        weights[name.rsplit("continuous_position_bias_mlp.", 1)[1]] = value
        dtypes.add(dtype)
    if set(weights) != {"0.weight", "0.bias", "2.weight"}:
        raise ProviderError(f"{source}: layer {layer}, block {block} lacks part of its continuous_position_bias_mlp")
    hidden = weights["0.weight"].shape
    if len(hidden) != 2 or hidden[1] != 2 or weights["0.bias"].shape != (hidden[0],) or \
            weights["2.weight"].ndim != 2 or weights["2.weight"].shape[1] != hidden[0]:
        raise ProviderError(f"{source}: its continuous_position_bias_mlp of layer {layer}, block {block} does not "
                            f"map 2 coordinates through one hidden layer to the heads")
    heads = weights["2.weight"].shape[0]
    from explorer.core.relative import check_heads
    from explorer.core.window import MAX_WINDOW
    from explorer.runtime.limits import check_shape

    check_heads(heads, "window")
    if max(window) > MAX_WINDOW:  # the config's window is untrusted: the MLP runs on (2W-1)^2 offsets
        raise ProviderError(f"{source}: a window of {window[0]} patches a side; posembed takes at most {MAX_WINDOW}")
    check_shape(((2 * window[0] - 1) * (2 * window[1] - 1), max(hidden[0], heads)), "window",
                what="the continuous position bias MLP's hidden layer")
    table = continuous_bias(weights, window, pretrained, heads)
    note = (f"continuous position bias of stage {layer}, block {block}: 16 * sigmoid of an MLP ({hidden[0]} hidden "
            f"units) on the log-spaced 2-D offsets of a {window[0]} x {window[1]} window"
            + (f" (scaled to the pretrained window {pretrained})" if pretrained else ""))
    name = names[0].rsplit(".0.", 1)[0] if ".0." in names[0] else names[0]
    return offsets_from_table(table, window), window, (), name, "/".join(sorted(dtypes)), note


READERS = {**dict.fromkeys(SWIN_TYPES, swin), **dict.fromkeys(SWINV2_TYPES, swinv2),
           **dict.fromkeys(BEIT_TYPES, beit)}


def uses_window_bias(config: dict[str, Any]) -> bool:
    """Whether a config describes a relative position bias over 2-D offsets (Swin always; BEiT when it uses one)."""
    model_type = config.get("model_type")
    if model_type in BEIT_TYPES:
        return any(config.get(key) is True for key in ("use_relative_position_bias", "use_shared_relative_position_bias"))
    return model_type in READERS


def load_window(model: str | None, revision: str | None, layer: int, block: int):
    """The ``window`` provider's ``load``."""
    from explorer.core.window import WindowBias
    from explorer.providers.huggingface import open_checkpoint

    if not model:
        raise ProviderError("window needs a model: window:ORG/NAME (a hub id) or window:PATH (a local folder)")
    checkpoint = open_checkpoint(model, revision)
    model_type = str(checkpoint.config.get("model_type") or "")
    if not uses_window_bias(checkpoint.config):
        raise ProviderError(f"{checkpoint.source} is a {model_type or 'model of unknown type'} model without a "
                            f"relative position bias over 2-D offsets (swin, swinv2, beit or data2vec-vision with "
                            f"use_relative_position_bias)")
    values, window, extras, tensor, dtype, note = READERS[model_type](checkpoint, layer, block)
    params = {k: v for k, v in {"model": model, "revision": revision, "layer": layer or None,
                                "block": block or None}.items() if v is not None}
    return WindowBias(values, provider="window", source=checkpoint.source, window=window, extras=extras,
                      kind="window", dtype=dtype, params=params, tensor=tensor, revision=checkpoint.revision,
                      description=f"{model_type}: {note}")


PROVIDER = Provider(
    name="window",
    description="Relative position bias over 2-D patch offsets (Swin, Swin v2, BEiT, Data2Vec-vision): a value per "
                "head and offset (dy, dx)",
    load=load_window,
    params=(
        Param("model", str, None, "hub id (ORG/NAME) or local folder of a Swin, Swin v2, BEiT or Data2Vec-vision "
              "model"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("layer", int, 0, "Swin's stage or BEiT's layer whose bias to read (BEiT's shared bias: ignored)",
              minimum=0),
        Param("block", int, 0, "the block within a Swin stage", minimum=0),
    ),
    target="model",
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``window`` provider."""
    register(PROVIDER)


@hookimpl
def provider_for_config(config: dict) -> str | None:
    """Claim Swin, Swin v2, and BEiT or Data2Vec-vision configs with relative position bias for ``window``."""
    return "window" if uses_window_bias(config) else None
