"""Which key - query distances read each row of DeBERTa's ``encoder.rel_embeddings.weight``, from ``config.json``.

Both DeBERTa (``deberta``) and DeBERTa-v2/v3 (``deberta-v2``) give the query at position q and the key at k the
row ``clamp(S + bucket(q - k), 0, 2S - 1)``, in the content-to-position and the position-to-content terms alike:
row r holds the query - key bucket r - S, so the key - query distance S - r, and the labels run from high to low.
S is ``position_buckets`` when it is > 0 (v2 only), else ``max_relative_positions``, else
``max_position_embeddings``. v2 with ``position_buckets`` takes ``bucket`` to be ``make_log_bucket_position``:
exact up to half the buckets, logarithmic up to ``max_relative_positions``, and beyond it past the clamp. v1 (whose
span shrinks to short inputs, over the same rows) and v2 without buckets take the distance itself. Rows past 2S
are never read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from explorer.core.embedding import RowAxis
from explorer.errors import ProviderError

#: The model types whose ``rel_embeddings`` rows are labelled here.
MODEL_TYPES = ("deberta", "deberta-v2")
#: The axis name of every relative term in posembed: the signed distance k - q from query to key.
AXIS_NAME = "key - query distance"
#: The largest distance enumerated to find where the clamp takes over; a config needing more gets no labels.
MAX_DISTANCE = 1 << 20
_SETTING = 2**31  # config values beyond +-2^31 are no real model's


def log_bucket_position(relative: Any, bucket_size: int, max_position: int) -> np.ndarray:
    """transformers' ``make_log_bucket_position`` in numpy: the bucket of each query - key distance, as int64.

    Its float32 steps are float32 here too; ``log`` is rounded from float64, where torch's float32 ``log`` may
    differ by a unit in the last place. That moves a bucket only near an integer after scaling, which in tests
    happens (if at all) far beyond where the clamp to the end rows takes over, so no label changes.
    """
    relative = np.asarray(relative, dtype=np.int64)
    mid = bucket_size // 2
    abs_pos = np.where((relative < mid) & (relative > -mid), mid - 1, np.abs(relative))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _log32(abs_pos.astype(np.float32) / np.float32(mid)) / _log32(np.float32((max_position - 1) / mid))
        log_pos = np.ceil(ratio * np.float32(mid - 1)) + np.float32(mid)
    return np.where(abs_pos <= mid, relative.astype(np.float32), log_pos * np.sign(relative)).astype(np.int64)


def _log32(values: Any) -> np.ndarray:
    return np.log(np.asarray(values, dtype=np.float64)).astype(np.float32)


def row_axis(config: dict[str, Any], rows: int) -> RowAxis:
    """The key - query distances each of the ``rows`` rows of ``rel_embeddings`` serves (``"-3"``, ``"140..143"``,
    ``">= 512"``, ``"unused"``), or one ``ProviderError`` line saying why ``config`` does not tell."""
    span, buckets, max_position = _layout(config)
    if 2 * span > rows:
        raise ProviderError(f"config.json gives {2 * span} distance rows, but the table has {rows}")
    if buckets:
        mid = buckets // 2
        if mid < 2 or max_position - 1 <= mid:
            raise ProviderError(f"config.json's position_buckets {buckets} and maximum distance {max_position} make "
                                f"no logarithmic buckets (they need buckets >= 4 and maximum > buckets // 2 + 1)")
        # the first distance whose bucket reaches span, past which the clamp gives every distance the end rows
        reach = math.log(mid) + (span - mid - 1) / (mid - 1) * math.log((max_position - 1) / mid)
        if reach > math.log(MAX_DISTANCE):
            raise ProviderError(f"config.json's position_buckets {buckets} and maximum distance {max_position} "
                                f"reach the end rows beyond distance {MAX_DISTANCE}")
        last = int(math.exp(reach) * 1.001) + 2
    else:
        last = span
    if last > MAX_DISTANCE:
        raise ProviderError(f"config.json's span of {span} distances is beyond {MAX_DISTANCE}")
    distances = np.arange(-last, last + 1)
    bucket = log_bucket_position(-distances, buckets, max_position) if buckets else -distances
    row = np.clip(span + bucket, 0, 2 * span - 1)
    if np.any(np.diff(row) > 0) or row[0] != 2 * span - 1 or row[-1] != 0:
        raise ProviderError("config.json's bucket settings do not map distances to rows in order")
    labels = ["unused"] * rows
    found, first, count = np.unique(row, return_index=True, return_counts=True)
    for r, i, n in zip(found.tolist(), first.tolist(), count.tolist()):
        low, high = int(distances[i]), int(distances[i]) + n - 1
        labels[r] = (f">= {low}" if r == 0 else f"<= {high}" if r == 2 * span - 1
                     else str(low) if low == high else f"{low}..{high}")
    return RowAxis(AXIS_NAME, tuple(labels), reverse=True)


def _layout(config: dict[str, Any]) -> tuple[int, int, int]:
    """``(S, position_buckets or 0, max_relative_positions)`` as transformers derives them from ``config``."""
    if config.get("relative_attention") is not True:
        raise ProviderError("config.json does not set relative_attention: true")
    max_position = _setting(config, "max_relative_positions", -1)
    if max_position < 1:
        max_position = _setting(config, "max_position_embeddings", None)
    buckets = _setting(config, "position_buckets", -1) if config.get("model_type") == "deberta-v2" else -1
    if max_position < 1 and buckets < 1:
        raise ProviderError(f"config.json's max_position_embeddings is {max_position}, not a number >= 1")
    if buckets > 0 and max_position > 0:
        return buckets, buckets, max_position
    return (buckets if buckets > 0 else max_position), 0, max_position


def _setting(config: dict[str, Any], key: str, default: int | None) -> int:
    value = config.get(key, default)
    if value is None:
        raise ProviderError(f"config.json has no {key}")
    if isinstance(value, bool) or not isinstance(value, int) or not -_SETTING < value < _SETTING:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ProviderError(f"config.json's {key} is {shown}, not a whole number between -2^31 and 2^31")
    return value
