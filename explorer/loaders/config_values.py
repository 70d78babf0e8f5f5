"""Sizes read from a model's ``config.json``, which is untrusted text: each one a whole number in a bounded range, or
one error naming the key and what it holds."""

from __future__ import annotations

from typing import Any

from explorer.errors import ProviderError

#: The largest size taken from a config (a window, a frame count, an image side); larger is not a real model.
MAX_SIZE = 1 << 20


def whole(config: dict[str, Any], key: str, source: str, where: dict[str, Any] | None = None) -> int:
    """``config[key]`` (or ``where[key]``) as an int from 1 to ``MAX_SIZE``, or one ProviderError."""
    value = (config if where is None else where).get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ProviderError(f"{source}: config.json's {key} is {value!r}, not a whole number from 1 to {MAX_SIZE}")
    return value


def sides(config: dict[str, Any], key: str, source: str, count: int = 2) -> tuple[int, ...]:
    """``config[key]`` as ``count`` ints from 1 to ``MAX_SIZE`` (one number stands for all of them), or one
    ProviderError."""
    value = config.get(key)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    if len(values) != count or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE
                                       for v in values):
        raise ProviderError(f"{source}: config.json's {key} is {value!r}, not a whole number or "
                            f"{'a pair' if count == 2 else f'a list of {count}'} of them")
    return tuple(values)


def pair(config: dict[str, Any], key: str, source: str) -> tuple[int, int]:
    """``config[key]`` (an int, or [h, w]) as ``(h, w)`` of ints from 1 to ``MAX_SIZE``, or one ProviderError."""
    return sides(config, key, source, 2)
