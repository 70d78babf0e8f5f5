"""The ``conv`` provider: the convolutional position embedding of speech models (Wav2Vec2, HuBERT, WavLM,
UniSpeech, UniSpeech-SAT), and WavLM's gated relative position bias.

Their encoder adds to each frame a grouped 1-D convolution of its neighbourhood (``encoder.pos_conv_embed.conv``),
weight-normalised over every dimension but the taps (``weight_norm(conv, dim=2)``): the weight the conv uses is
w[:, :, k] = g[k] * v[:, :, k] / ||v[:, :, k]||. Checkpoints store g and v as ``weight_g``/``weight_v`` (older
torch) or ``parametrizations.weight.original0``/``original1`` (newer); HuBERT with ``conv_pos_batch_norm`` stores a
plain ``weight`` (a batch norm of the input comes first). The kernel is read as the conv uses it and handed over as
an ``explorer.ConvKernel``. ``scheme=relative`` reads WavLM's bucketed relative bias instead (``rel_attn_embed`` of
layer 0, which every layer reuses) as an ``explorer.RelativePositionTerm``, as ``WavLMAttention.compute_bias``
computes it. Only the tensors needed are read.
"""

from __future__ import annotations

import re
from typing import Any

from explorer.errors import ProviderError, SpecError
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider

#: model_type values whose encoder has transformers' Wav2Vec2PositionalConvEmbedding (or HuBERT's variant).
CONV_TYPES = ("wav2vec2", "hubert", "wavlm", "unispeech", "unispeech-sat")
#: model_type values with a gated relative position bias (``scheme=relative``).
GATED_TYPES = ("wavlm",)
SCHEMES = ("conv", "relative")
_CONV = re.compile(r"^(.*?)encoder\.pos_conv_embed\.conv\.(weight_g|weight_v|parametrizations\.weight\.original0|"
                   r"parametrizations\.weight\.original1|weight)$")
_PARTS = {"weight_g": "g", "parametrizations.weight.original0": "g", "weight_v": "v",
          "parametrizations.weight.original1": "v", "weight": "w"}
_REL = re.compile(r"(^|\.)encoder\.layers\.0\.attention\.rel_attn_embed\.weight$")


def conv_tensors(names: list[str], source: str) -> dict[str, str]:
    """The stored parts of the positional conv's weight (``g`` and ``v``, or ``w``), by part, from the tensors of
    the shortest prefix (``wav2vec2.`` in a CTC model, none in a bare one)."""
    found: dict[str, dict[str, str]] = {}
    for name in names:
        match = _CONV.match(name)
        if match:
            found.setdefault(match.group(1), {})[_PARTS[match.group(2)]] = name
    if not found:
        raise ProviderError(f"{source}: no tensor of its {len(names)} holds the positional convolution "
                            f"(encoder.pos_conv_embed.conv.weight, weight_g and weight_v, or parametrizations)")
    parts = found[min(found, key=len)]
    if {"g", "v"} <= set(parts):
        return {"g": parts["g"], "v": parts["v"]}
    if "w" in parts:
        return {"w": parts["w"]}
    missing = "v" if "g" in parts else "g"
    raise ProviderError(f"{source}: its positional convolution stores {', '.join(sorted(parts.values()))} without "
                        f"the weight normalisation's {missing} ({'weight_v' if missing == 'v' else 'weight_g'})")


def normalised(g: Any, v: Any, source: str):
    """w = g * v / ||v||, the norm over every dimension but the taps (``torch.nn.utils.weight_norm(dim=2)``)."""
    import numpy as np

    taps = v.shape[2]
    if g.shape != (1, 1, taps):
        raise ProviderError(f"{source}: the weight normalisation's g has shape {list(g.shape)}, not [1, 1, {taps}] "
                            f"(one norm per tap, dim=2, as transformers normalises the positional convolution)")
    v64 = v.astype(np.float64)
    norm = np.sqrt(np.einsum("oik,oik->k", v64, v64))
    if not (norm > 0).all():
        tap = int(np.argmin(norm > 0))
        raise ProviderError(f"{source}: the weight normalisation's v is zero at tap {tap}, so its norm divides by 0 "
                            f"and the model's own kernel is NaN there")
    return (v64 * (g.astype(np.float64) / norm[None, None, :])).astype(np.float32)


def _layout(config: dict[str, Any], source: str) -> tuple[int, int, int]:
    from explorer.core.conv import check_layout
    from explorer.errors import EmbeddingError
    from explorer.loaders.config_values import whole

    channels, taps, groups = (whole(config, key, source) for key in (
        "hidden_size", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups"))
    try:
        return check_layout(groups, channels, taps, f"{source}: config.json")
    except EmbeddingError as exc:  # the config's fault, not a table's: a provider's error
        raise ProviderError(str(exc)) from None


def read_kernel(checkpoint: Any) -> tuple[Any, int, str, str, str]:
    """The positional conv's effective kernel (C x C/G x K float32), its groups, tensor name, stored dtype and
    a note on how it was stored."""
    config, source = checkpoint.config, checkpoint.source
    groups, channels, taps = _layout(config, source)
    parts = conv_tensors(checkpoint.names(), source)
    shape = [channels, channels // groups, taps]
    arrays, dtypes = {}, set()
    for part, name in parts.items():
        arrays[part], dtype = checkpoint.read(name)
        dtypes.add(dtype)
    weight = arrays.get("v", arrays.get("w"))
    if list(weight.shape) != shape:
        raise ProviderError(f"{source}: {parts.get('v', parts.get('w'))} has shape {list(weight.shape)}, but "
                            f"config.json's hidden_size, num_conv_pos_embedding_groups and num_conv_pos_embeddings "
                            f"give {shape}")
    if "w" in parts:
        note = ("stored without weight normalisation" + ("; a batch norm of the input comes before it "
                "(conv_pos_batch_norm), not folded in" if config.get("conv_pos_batch_norm") is True else ""))
        return weight, groups, parts["w"], "/".join(sorted(dtypes)), note
    kernel = normalised(arrays["g"], arrays["v"], source)
    stored = "weight_g/weight_v" if parts["g"].endswith("weight_g") else "parametrizations original0/original1"
    tensor = parts["v"][:parts["v"].index("pos_conv_embed.conv.")] + "pos_conv_embed.conv"
    return kernel, groups, tensor, "/".join(sorted(dtypes)), f"weight-normalised over the taps (stored as {stored})"


def read_relative(checkpoint: Any, params: dict[str, Any], positions: int | None):
    """WavLM's bucketed relative bias (layer 0's ``rel_attn_embed``) over distances -(L-1) .. L-1."""
    import numpy as np

    from explorer.core.relative import RelativePositionTerm
    from explorer.providers.t5 import DEFAULT_SPAN, config_int, relative_position_bucket
    from explorer.runtime.limits import check_shape

    config, source = checkpoint.config, checkpoint.source
    model_type = config.get("model_type")
    if model_type not in GATED_TYPES:
        raise ProviderError(f"{source}: a {model_type} model has no gated relative position bias (scheme=relative "
                            f"applies to {', '.join(GATED_TYPES)})")
    buckets = config_int(config, "num_buckets", 320, source, 4)
    max_distance = config_int(config, "max_bucket_distance", 800, source, 2)
    if max_distance <= buckets // 4:  # the logarithmic buckets would divide by log(max_distance / exact) <= 0
        raise ProviderError(f"{source}: max_bucket_distance {max_distance} must exceed the {buckets // 4} exact "
                            f"buckets")
    names = [n for n in checkpoint.names() if _REL.search(n)]
    if not names:
        raise ProviderError(f"{source}: no tensor ending in encoder.layers.0.attention.rel_attn_embed.weight")
    tensor = min(names, key=len)
    weight, dtype = checkpoint.read(tensor)
    if weight.ndim != 2 or weight.shape[0] != buckets:
        raise ProviderError(f"{source}: {tensor} has shape {list(weight.shape)}, expected [{buckets} buckets, heads]")
    length = positions if positions is not None else DEFAULT_SPAN * max_distance
    check_shape((weight.shape[1], 2 * length - 1), "conv")
    distances = np.arange(-(length - 1), length, dtype=np.int64)
    values = np.ascontiguousarray(weight[relative_position_bucket(distances, True, buckets, max_distance)].T)
    return RelativePositionTerm(
        values, provider="conv", source=source, causal=False, kind="bucketed", dtype=dtype, params=params,
        tensor=tensor, revision=checkpoint.revision,
        description=f"{model_type}: gated relative position bias, ungated: the learned bias per head and bucket "
                    f"({buckets} bidirectional buckets up to distance {max_distance}, as "
                    f"WavLMAttention.compute_bias), shown without its gate, which depends on the input "
                    f"(gru_rel_pos_linear of each query scales it per head)")


def load_conv(model: str | None, revision: str | None, scheme: str, positions: int | None):
    """The ``conv`` provider's ``load``."""
    from explorer.core.conv import ConvKernel, grouped
    from explorer.providers.huggingface import open_checkpoint

    if not model:
        raise ProviderError("conv needs a model: conv:ORG/NAME (a hub id) or conv:PATH (a local folder)")
    checkpoint = open_checkpoint(model, revision)
    model_type = str(checkpoint.config.get("model_type") or "")
    if model_type not in CONV_TYPES:
        raise ProviderError(f"{checkpoint.source} is a {model_type or 'model of unknown type'} model without "
                            f"transformers' positional convolution ({', '.join(CONV_TYPES)})")
    params = {k: v for k, v in {"model": model, "revision": revision, "positions": positions,
                                "scheme": scheme if scheme != "conv" else None}.items() if v is not None}
    if scheme == "relative":
        return read_relative(checkpoint, params, positions)
    if positions is not None:
        raise SpecError("conv: positions applies to scheme=relative (WavLM's bias); a kernel has its own taps")
    kernel, groups, tensor, dtype, note = read_kernel(checkpoint)
    channels, side, taps = kernel.shape
    described = (f"{model_type}: convolutional position embedding (pos_conv_embed), {groups} groups of {side} "
                 f"channels over {taps} taps (frame offsets {-(taps // 2)} .. {taps - 1 - taps // 2}), {note}; its "
                 f"output, after a GELU, is added to the frames")
    if model_type in GATED_TYPES:
        described += "; its gated relative bias is read with scheme=relative"
    return ConvKernel(grouped(kernel, groups, "conv"), provider="conv", source=checkpoint.source, taps=taps,
                      dtype=dtype, params=params, tensor=tensor, revision=checkpoint.revision, description=described)


PROVIDER = Provider(
    name="conv",
    description="Convolutional position embedding of speech models (Wav2Vec2, HuBERT, WavLM, UniSpeech): the "
                "effective kernel per group; WavLM's relative bias with scheme=relative",
    load=load_conv,
    params=(
        Param("model", str, None, "hub id (ORG/NAME) or local folder of a Wav2Vec2, HuBERT, WavLM or UniSpeech "
              "model"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("scheme", str, "conv", "conv: the positional convolution's kernel; relative: WavLM's gated relative "
              "bias, ungated", choices=SCHEMES),
        Param("positions", int, None, "with scheme=relative: distances -(L-1)..L-1 (default: twice "
              "max_bucket_distance)", minimum=1),
    ),
    target="model",
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``conv`` provider."""
    register(PROVIDER)


@hookimpl
def provider_for_config(config: dict) -> str | None:
    """Claim the speech models with transformers' positional convolution for ``conv``."""
    return "conv" if config.get("model_type") in CONV_TYPES else None
