"""Provider specs: one token per provider, ``NAME[:TARGET][,key=value...]``.

Examples: ``sinusoidal``, ``sinusoidal,positions=2048,dim=512``, ``hf:facebook/opt-350m,revision=main``,
``file:/data/table.npz,key=wpe``. The target runs up to the first comma that starts a
``key=value`` pair, so paths and ids may hold colons and commas of their own. ``NAME:`` with nothing after the
colon (``hf:``, as the docs name the provider) is ``NAME`` with no target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from explorer.errors import SpecError

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_OPTION_START = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: provider name, optional target, raw (untyped) options."""

    name: str
    target: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = self.name + (f":{self.target}" if self.target is not None else "")
        return text + "".join(f",{k}={v}" for k, v in self.options.items())


#: Endings of files posembed reads through ``file:`` (docs/providers.md), for the hint when one is given bare.
_FILE_ENDINGS = (".npy", ".npz", ".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def file_hint(text: str) -> str:
    """``"; for a file, write 'file:TEXT'"`` when ``text`` looks like a path (a folder separator, a leading ``.`` or
    ``~``, a table file's ending, or a file that exists), else ``""``."""
    import os

    looks = (any(sep in text for sep in ("/", "\\")) or text.startswith((".", "~"))
             or text.lower().endswith(_FILE_ENDINGS) or os.path.isfile(text))
    return f"; for a file, write {'file:' + text!r}" if looks else ""


def parse_spec(text: str) -> Spec:
    """Parse one spec token; raise SpecError with the reason when it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("empty provider spec; expected NAME[:TARGET][,key=value...]")
    text = text.strip()
    match = _NAME.match(text)
    if not match:
        raise SpecError(f"bad provider spec {text!r}: it must start with a provider name{file_hint(text)}")
    name, rest = match.group(0), text[match.end():]
    target: str | None = None
    if rest.startswith(":"):
        parts = _OPTION_START.split(rest[1:], maxsplit=1)
        target = parts[0] or None  # ``hf:`` alone, as the docs name a provider: no target
        rest = "," + parts[1] if len(parts) > 1 else ""
    elif rest and not rest.startswith(","):
        raise SpecError(f"bad provider spec {text!r}: expected ':' or ',' after {name!r}")
    options: dict[str, str] = {}
    for pair in _OPTION_START.split(rest)[1:] if rest else []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"bad provider spec {text!r}: {pair!r} is not key=value")
        if key in options:
            raise SpecError(f"bad provider spec {text!r}: {key!r} given twice")
        options[key] = value.strip()
    if rest and not _OPTION_START.match(rest):
        raise SpecError(f"bad provider spec {text!r}: {rest[1:]!r} is not key=value")
    return Spec(name, target, options)
