"""The ``alibi`` provider: ALiBi's fixed per-head linear bias m_h * k on the distance k = key - query <= 0.

No weights exist: the slopes follow from the number of heads (BLOOM, Falcon with ``alibi``) and MPT's
``alibi_bias_max``, computed as transformers computes them (``_get_alibi_slopes`` of BLOOM,
``build_mpt_alibi_tensor`` of MPT), head counts that are not powers of two included. From a model only its
``config.json`` is read.

Two models add something other than m_h * k, and the term is what they add:
- ``MptModel`` calls ``build_mpt_alibi_tensor`` without the config's ``alibi_bias_max``, so always with 8; a model
  read from its config gets 8 too, and the description names the config's other value (MosaicML's own code uses
  it) and the spec that shows that reading.
- ``FalconModel`` adds bf16(bf16(m_h) * bf16(j)) / sqrt(head_dim) to the score of key j, the same for every query
  (softmax drops a constant per query). Its bfloat16 rounding depends on j, not only on k = j - i, so no single
  b_h(k) is exact for every query: the term is what the last query (i = L - 1, the only one that sees every
  distance) gets, less its value at k = 0; other queries differ from it by that rounding (docs/providers.md).
"""

from __future__ import annotations

import math
from typing import Any

from explorer.errors import ProviderError, SpecError
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider

SCHEMES = ("bloom", "mpt", "falcon")
DEFAULT_POSITIONS = 2048
#: Heads without a model.
DEFAULT_HEADS = 8
#: A config's context length is used up to this many positions (the bias is linear: longer shows nothing new).
MAX_DEFAULT_POSITIONS = 8192
_HEAD_KEYS = ("n_head", "num_attention_heads", "n_heads")
#: The alibi_bias_max transformers' MptModel uses whatever its config says.
MPT_MODEL_BIAS_MAX = 8.0
#: Falcon's head size when none is given (Falcon-RW's 2048 / 32 heads): its bias is divided by sqrt(head_dim).
FALCON_HEAD_DIM = 64
#: The largest head_dim taken (real models use 64 to 256).
MAX_HEAD_DIM = 1 << 20
#: MPT's alibi_bias_max must lie below this (MPT uses 8; past a few hundred every slope is already 0 in float32).
MAX_BIAS_MAX = 1e6


def bloom_slopes(heads: int):
    """BLOOM's slopes: 2^(-8h/n) for the n = 2^floor(log2 H) first heads, then every other slope of 2n heads."""
    import numpy as np

    closest = 2 ** math.floor(math.log2(heads))
    # the bases are float32, as in transformers; powers are taken in float64 and rounded once
    base = np.float64(np.float32(2 ** (-(2 ** -(math.log2(closest) - 3)))))
    slopes = base ** np.arange(1, closest + 1, dtype=np.float64)
    if closest != heads:
        extra_base = np.float64(np.float32(2 ** (-(2 ** -(math.log2(2 * closest) - 3)))))
        remaining = min(closest, heads - closest)
        slopes = np.concatenate([slopes, extra_base ** np.arange(1, 1 + 2 * remaining, 2, dtype=np.float64)])
    return slopes.astype(np.float32)


def mpt_slopes(heads: int, alibi_bias_max: float = 8.0):
    """MPT's slopes: 1 / 2^(b * alibi_bias_max / P) for b = 1..P (P = the next power of two), interleaved when
    H < P."""
    import numpy as np

    power = 2 ** math.ceil(math.log2(heads))
    with np.errstate(over="ignore"):  # a large alibi_bias_max gives 2^inf and slopes of 0, as torch gives them
        base = np.arange(1, power + 1, dtype=np.float32) * np.float32(alibi_bias_max / power)
        slopes = (1.0 / np.power(2.0, base.astype(np.float64))).astype(np.float32)
    if power != heads:
        slopes = np.concatenate([slopes[1::2], slopes[::2]])[:heads]
    return slopes


def bfloat16(values):
    """float32 values rounded to the nearest bfloat16 (ties to even), as torch's ``.bfloat16()`` rounds them."""
    import numpy as np

    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (((bits >> 16) & 1) + np.uint32(0x7FFF))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def falcon_values(slopes, positions: int, head_dim: int):
    """What ``FalconModel`` adds for the last query (i = L-1) to key i + k, k = -(L-1) .. 0, less its value at
    k = 0: bf16(bf16(m_h) * bf16(j)) / sqrt(head_dim) (``build_alibi_tensor``, then ``FalconModel.forward``)."""
    import numpy as np

    keys = bfloat16(np.arange(positions, dtype=np.float32))  # the long key positions become bfloat16 too
    added = bfloat16(bfloat16(slopes)[:, None] * keys[None, :]) / np.float32(math.sqrt(head_dim))
    return added - added[:, -1:]


def alibi_term(provider: str, source: str, heads: int, positions: int, scheme: str = "bloom",
               alibi_bias_max: float = 8.0, params: dict[str, Any] | None = None, revision: str | None = None,
               head_dim: int = FALCON_HEAD_DIM, note: str = ""):
    """ALiBi as a causal ``RelativePositionTerm``: value m_h * k for k = -(L-1) .. 0 (Falcon's: ``falcon_values``)."""
    import numpy as np

    from explorer.core.relative import RelativePositionTerm, check_heads
    from explorer.runtime.limits import check_shape

    check_heads(heads, provider)  # before the slopes: a count of heads past float's range has no log2
    check_shape((heads, positions), provider, itemsize=8)
    slopes = mpt_slopes(heads, alibi_bias_max) if scheme == "mpt" else bloom_slopes(heads)
    distances = np.arange(-(positions - 1), 1, dtype=np.float32)
    if scheme == "falcon":
        values = falcon_values(slopes, positions, head_dim)
        description = (f"ALiBi as FalconModel adds it, {heads} heads: bf16(bf16(m_h) * bf16(j)) / sqrt({head_dim}) "
                       f"on key j's score, slopes m_h = 2^(-8h/n) (Falcon's build_alibi_tensor); shown for the last "
                       f"query (i = L-1) at key i + k, less its value at k = 0; the bfloat16 rounding makes other "
                       f"queries' values differ a little")
    else:
        values = slopes[:, None] * distances[None, :]  # float32 products, as the models form them
        rule = {"bloom": "2^(-8h/n) (BLOOM's _get_alibi_slopes)",
                "mpt": f"2^(-h*{alibi_bias_max:g}/P) (MPT's build_mpt_alibi_tensor, alibi_bias_max "
                       f"{alibi_bias_max:g})"}[scheme]
        description = f"ALiBi, {heads} heads: value m_h * k for k = key - query <= 0, slopes m_h = {rule}"
    return RelativePositionTerm(
        values, provider=provider, source=source, causal=True, kind="alibi", dtype="float32",
        params=params or {}, revision=revision, description=description + note,
    )


def _positive_int(value: Any, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProviderError(f"{source}: config.json's {what} is {value!r}, not a whole number >= 1")
    return value


def from_config(provider: str, config: dict[str, Any], source: str, positions: int | None = None,
                params: dict[str, Any] | None = None, revision: str | None = None):
    """The ALiBi term a BLOOM, MPT or Falcon (``alibi: true``) config describes."""
    model_type = str(config.get("model_type") or "")
    key = next((k for k in _HEAD_KEYS if k in config), None)
    if key is None:
        raise ProviderError(f"{source}: config.json names no head count ({', '.join(_HEAD_KEYS)})")
    heads = _positive_int(config[key], key, source)
    attn = config.get("attn_config") if isinstance(config.get("attn_config"), dict) else {}
    scheme = model_type if model_type in SCHEMES else "bloom"
    bias_max = attn.get("alibi_bias_max", MPT_MODEL_BIAS_MAX)
    if isinstance(bias_max, bool) or not isinstance(bias_max, (int, float)) or not 0 < bias_max < MAX_BIAS_MAX:
        raise ProviderError(f"{source}: config.json's attn_config.alibi_bias_max is {bias_max!r}, not a number "
                            f"between 0 and {MAX_BIAS_MAX:g}")
    note = ""
    if scheme == "mpt" and bias_max != MPT_MODEL_BIAS_MAX:  # MptModel never passes the config's value on
        note = (f"; transformers' MptModel uses alibi_bias_max {MPT_MODEL_BIAS_MAX:g} whatever config.json says; "
                f"its attn_config.alibi_bias_max {bias_max:g} (MosaicML's own code) is shown by "
                f"alibi,heads={heads},scheme=mpt,alibi_bias_max={bias_max:g}")
    head_dim = FALCON_HEAD_DIM
    if scheme == "falcon":
        width = config.get("hidden_size")
        head_dim = _positive_int(width, "hidden_size", source) // heads
        if head_dim < 1:
            raise ProviderError(f"{source}: config.json's hidden_size {width} is smaller than its {heads} heads")
    if positions is None:
        context = next((config[k] for k in ("max_seq_len", "max_position_embeddings", "seq_length")
                        if isinstance(config.get(k), int) and not isinstance(config.get(k), bool)
                        and config[k] > 0), DEFAULT_POSITIONS)
        positions = min(context, MAX_DEFAULT_POSITIONS)
    return alibi_term(provider, source, heads, positions, scheme, MPT_MODEL_BIAS_MAX, params, revision, head_dim,
                      note)


def uses_alibi(config: dict[str, Any]) -> bool:
    """Whether a model config describes ALiBi: BLOOM always, MPT unless ``attn_config.alibi`` is false, Falcon
    (and others) with ``alibi: true``."""
    model_type = config.get("model_type")
    attn = config.get("attn_config") if isinstance(config.get("attn_config"), dict) else {}
    if model_type == "bloom":
        return True
    if model_type == "mpt":
        return attn.get("alibi", True) is True
    return config.get("alibi") is True


def load_alibi(model: str | None, revision: str | None, heads: int | None, positions: int | None, scheme: str,
               alibi_bias_max: float | None, head_dim: int | None = None):
    """The ``alibi`` provider's ``load``: from a model's config, or from heads (and scheme) alone."""
    if model:
        given = [name for name, value in (("heads", heads), ("alibi_bias_max", alibi_bias_max),
                                          ("head_dim", head_dim)) if value is not None]
        if given or scheme != "bloom":
            raise SpecError(f"alibi: {', '.join(given) or 'scheme'} come(s) from the model's config; "
                            f"give heads, scheme, alibi_bias_max and head_dim only without a model")
        from explorer.providers.huggingface import open_checkpoint

        checkpoint = open_checkpoint(model, revision)
        if not uses_alibi(checkpoint.config):
            raise ProviderError(f"{checkpoint.source}: its config does not use ALiBi (bloom, mpt, or alibi: true)")
        params = {k: v for k, v in {"model": model, "revision": revision, "positions": positions}.items()
                  if v is not None}
        return from_config("alibi", checkpoint.config, checkpoint.source, positions, params, checkpoint.revision)
    if revision is not None:
        raise SpecError("alibi: revision applies to a model: alibi:MODEL,...")
    heads = DEFAULT_HEADS if heads is None else heads
    positions = DEFAULT_POSITIONS if positions is None else positions
    bias_max = 8.0 if alibi_bias_max is None else alibi_bias_max
    if not bias_max < MAX_BIAS_MAX:
        raise SpecError(f"alibi: parameter 'alibi_bias_max' must be < {MAX_BIAS_MAX:g}, got {bias_max!r}")
    if head_dim is not None and scheme != "falcon":
        raise SpecError("alibi: head_dim applies to scheme=falcon (Falcon divides its bias by sqrt(head_dim))")
    head_dim = FALCON_HEAD_DIM if head_dim is None else head_dim
    if head_dim > MAX_HEAD_DIM:  # sqrt of an int past float's range raises; no model has heads near this size
        raise SpecError(f"alibi: parameter 'head_dim' must be <= {MAX_HEAD_DIM}, got {head_dim}")
    params = {"heads": heads, "positions": positions, "scheme": scheme,
              **({"alibi_bias_max": bias_max} if scheme == "mpt" else {}),
              **({"head_dim": head_dim} if scheme == "falcon" else {})}
    return alibi_term("alibi", f"formula, {heads} heads ({scheme})", heads, positions, scheme, bias_max, params,
                      head_dim=head_dim)


def expected_shape(model: str | None, heads: int | None, positions: int | None, **_: Any) -> tuple[int, int] | None:
    """heads x distances without a model, from the parameters (``Provider.expected_shape``); None with a model."""
    if model:
        return None
    return (DEFAULT_HEADS if heads is None else heads), (DEFAULT_POSITIONS if positions is None else positions)


PROVIDER = Provider(
    name="alibi",
    description="ALiBi's per-head linear bias m_h * k, from a BLOOM/MPT/Falcon config or from the head count",
    load=load_alibi,
    params=(
        Param("model", str, None, "hub id or local folder whose config.json sets the heads (optional)"),
        Param("revision", str, None, "hub branch, tag or commit (default: main)"),
        Param("heads", int, None, "number of heads, without a model (default 8)", minimum=1),
        Param("positions", int, None, "L: distances -(L-1)..0 (default: the config's context up to 8192, else 2048)",
              minimum=1),
        Param("scheme", str, "bloom", "the bias as BLOOM, MPT or Falcon (bfloat16, over sqrt(head_dim)) add it",
              choices=SCHEMES),
        Param("alibi_bias_max", float, None, "MPT's alibi_bias_max, without a model (default 8)", minimum=1e-6),
        Param("head_dim", int, None, f"Falcon's head size, without a model (default {FALCON_HEAD_DIM})", minimum=1),
    ),
    target="model",
    expected_shape=expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``alibi`` provider."""
    register(PROVIDER)


@hookimpl
def provider_for_config(config: dict) -> str | None:
    """Claim BLOOM, MPT and Falcon-with-ALiBi configs for ``alibi``."""
    return "alibi" if uses_alibi(config) else None
