"""The ``t5`` provider: T5's learned relative attention bias (and mT5's, LongT5's, UMT5's, Switch's), by distance.

T5 adds to each attention score a learned value per head and distance bucket (``relative_attention_bias.weight``,
buckets x heads). Distances map to buckets exactly as transformers' ``_relative_position_bucket`` maps them:
bidirectional in the encoder (half the buckets for keys after the query), causal in the decoder, exact up to
half the buckets and logarithmic up to ``relative_attention_max_distance``. Only that tensor's bytes are read.
"""

from __future__ import annotations

import math
import re
from typing import Any

from explorer.errors import ProviderError
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider

#: model_type values whose checkpoints keep T5's bias tensors under T5's names.
T5_TYPES = ("t5", "mt5", "longt5", "umt5", "switch_transformers")
#: Distances covered by default: twice the config's max distance, so the far plateau shows.
DEFAULT_SPAN = 2
#: The most buckets or the longest max distance a config may give: real models have 32 to 256 and 128 to 4096;
#: past float's range the logarithmic buckets' max_distance / max_exact could not even be divided.
MAX_CONFIG_INT = 10**9
_BIAS = re.compile(r"(^|\.)(encoder|decoder)\.block\.(\d+)\.layer\.0\.[A-Za-z]*SelfAttention\."
                   r"relative_attention_bias\.weight$")


def relative_position_bucket(distances: Any, bidirectional: bool, num_buckets: int, max_distance: int):
    """The bucket of each signed distance (key - query), as an int64 numpy array.

    Computed with the very torch operations transformers uses: at the logarithmic buckets' edges the bucket
    depends on float32 rounding, which another implementation of ``log`` could round the other way.
    """
    import torch

    relative_position = torch.as_tensor(distances, dtype=torch.long)
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact)
                            * (num_buckets - max_exact)).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return (relative_buckets + torch.where(is_small, relative_position, if_large)).numpy()


def config_int(config: dict[str, Any], key: str, default: int, source: str, low: int) -> int:
    """``config[key]`` as an int from ``low`` to ``MAX_CONFIG_INT``: an int, or a whole float (``128.0``, which
    transformers takes too); ProviderError for anything else (``128.5``, NaN, a bool, a string)."""
    value = config.get(key, default)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not low <= value <= MAX_CONFIG_INT:
        raise ProviderError(f"{source}: config.json's {key} is {value!r}, not a whole number from {low} to "
                            f"{MAX_CONFIG_INT:g}")
    return int(value)


def bias_tensor(names: list[str], stack: str, layer: int, source: str) -> str:
    """The name of the ``stack``'s (encoder or decoder) self-attention bias in block ``layer``."""
    found = {}
    for name in names:
        match = _BIAS.search(name)
        if match and match.group(2) == stack:
            found.setdefault(int(match.group(3)), name)
    if layer in found:
        return found[layer]
    if not found:
        raise ProviderError(f"{source}: no {stack} tensor ending in 'relative_attention_bias.weight' among its "
                            f"{len(names)} tensors")
    raise ProviderError(f"{source}: the {stack} keeps relative_attention_bias in block(s) "
                        f"{', '.join(map(str, sorted(found)))}, not {layer}")


def read_bias(provider: str, checkpoint: Any, params: dict[str, Any], table: str = "auto",
              positions: int | None = None, layer: int = 0):
    """The encoder's (``table`` auto or encoder) or decoder's bias of a T5-family checkpoint as a
    ``RelativePositionTerm``."""
    import numpy as np

    from explorer.core.relative import RelativePositionTerm
    from explorer.runtime.limits import check_shape

    config, source = checkpoint.config, checkpoint.source
    model_type = str(config.get("model_type") or "")
    if model_type not in T5_TYPES:
        raise ProviderError(f"{source} is a {model_type or 'model of unknown type'} model, not one of "
                            f"{', '.join(T5_TYPES)}")
    stack = "decoder" if table == "decoder" else "encoder"
    buckets = config_int(config, "relative_attention_num_buckets", 32, source, 2)
    max_distance = config_int(config, "relative_attention_max_distance", 128, source, 2)
    exact = buckets // (2 if stack == "encoder" else 1) // 2
    if exact < 1:  # transformers' _relative_position_bucket would divide by max_exact = 0
        raise ProviderError(f"{source}: relative_attention_num_buckets {buckets} leaves the {stack} no exact "
                            f"bucket (it needs at least {4 if stack == 'encoder' else 2})")
    if max_distance <= exact:  # the logarithmic buckets would divide by log(max_distance / exact) <= 0
        raise ProviderError(f"{source}: relative_attention_max_distance {max_distance} must exceed the "
                            f"{exact} exact buckets")
    tensor = bias_tensor(checkpoint.names(), stack, layer, source)
    length = positions if positions is not None else DEFAULT_SPAN * max_distance
    causal = stack == "decoder"
    weight, dtype = checkpoint.read(tensor)
    if weight.ndim != 2 or weight.shape[0] != buckets:
        raise ProviderError(f"{source}: {tensor} has shape {list(weight.shape)}, expected "
                            f"[{buckets} buckets, heads]")
    check_shape((weight.shape[1], length if causal else 2 * length - 1), provider)
    distances = np.arange(-(length - 1), 1 if causal else length, dtype=np.int64)
    bucket = relative_position_bucket(distances, not causal, buckets, max_distance)
    values = np.ascontiguousarray(weight[bucket].T, dtype=np.float32)
    direction = "bidirectional" if not causal else "causal"
    return RelativePositionTerm(
        values, provider=provider, source=source, causal=causal, kind="bucketed", dtype=dtype, params=params,
        tensor=tensor, revision=checkpoint.revision,
        description=f"{model_type} {stack}: learned bias per head and bucket, {buckets} {direction} buckets up to "
                    f"distance {max_distance} (transformers' _relative_position_bucket)",
    )


def load_t5(model: str | None, revision: str | None, table: str, positions: int | None, layer: int):
    """The ``t5`` provider's ``load``."""
    from explorer.providers.huggingface import open_checkpoint

    if not model:
        raise ProviderError("t5 needs a model: t5:ORG/NAME (a hub id) or t5:PATH (a local folder)")
    params = {"model": model, "revision": revision, "table": table, "positions": positions,
              "layer": layer or None}
    checkpoint = open_checkpoint(model, revision)
    return read_bias("t5", checkpoint, {k: v for k, v in params.items() if v is not None}, table, positions, layer)


def expected_shape(model: str | None, table: str, positions: int | None, **_: Any) -> tuple[int, int] | None:
    """heads x distances of a local folder's bias, from its ``config.json`` (``Provider.expected_shape``); None
    for a hub id or a config that does not say."""
    from explorer.providers.huggingface import local_config

    config = local_config(model)
    heads = config.get("num_heads") if config is not None else None
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        return None
    length = positions or DEFAULT_SPAN * config_int(config, "relative_attention_max_distance", 128, str(model), 2)
    return heads, length if table == "decoder" else 2 * length - 1


PROVIDER = Provider(
    name="t5",
    description="T5's relative attention bias (t5, mt5, longt5, umt5, switch_transformers): a value per head and "
                "key-query distance",
    load=load_t5,
    params=(
        Param("model", str, None, "hub id (ORG/NAME) or local folder of a T5-family model"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("table", str, "auto", "encoder (bidirectional; auto) or decoder (causal)",
              choices=("auto", "encoder", "decoder")),
        Param("positions", int, None, "L: distances -(L-1)..L-1 (default: twice relative_attention_max_distance)",
              minimum=1),
        Param("layer", int, 0, "the block whose bias to read (UMT5 has one per block; T5 only block 0)", minimum=0),
    ),
    target="model",
    expected_shape=expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``t5`` provider."""
    register(PROVIDER)


@hookimpl
def provider_for_config(config: dict) -> str | None:
    """Claim the T5 family's configs for ``t5``."""
    return "t5" if config.get("model_type") in T5_TYPES else None
