"""posembed's environment variables, read in one place: text, yes/no flags, bounded numbers and URLs; and the two
settings of the command line's own process (``command_process``).

Each is read when asked, not at import, so a notebook or a test may change it at any time. A value
posembed cannot use is one ``SettingError`` naming the variable and what it accepts: a flag that is not
yes or no, a number that does not parse, is not finite or lies outside its range (a retry count of 1e12
would retry for ever, a back-off of 1e300 s overflows ``time.sleep``), a URL that does not parse
(``HF_ENDPOINT='http://[::1'``).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

from explorer.errors import SettingError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def text(name: str) -> str | None:
    """The variable's value, or None when it is not set (set but empty is ``""``)."""
    return os.environ.get(name)


def flag(name: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off in any case; unset or empty is no."""
    raw = (text(name) or "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS or not raw:
        return False
    raise SettingError(f"{name}={text(name)!r} is neither yes ({'/'.join(TRUE_WORDS)}) "
                       f"nor no ({'/'.join(FALSE_WORDS)})")


def number(name: str, default: float, low: float, high: float) -> float:
    """A finite number from ``low`` to ``high`` (inclusive); ``default`` when unset or empty."""
    raw = (text(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):  # NaN fails every comparison
        raise SettingError(f"{name}={raw!r}: expected a number from {low:g} to {high:g}")
    return value


def integer(name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (inclusive); ``default`` when unset or empty."""
    value = number(name, default, low, high)
    if not float(value).is_integer():
        raise SettingError(f"{name}={text(name)!r}: expected a whole number from {low} to {high}")
    return int(value)


def url(name: str, default: str) -> str:
    """An http(s) URL with a host, without its trailing slash; ``default`` when unset or empty."""
    from urllib.parse import urlsplit

    raw = (text(name) or "").strip() or default
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - parsing the port is what refuses ``http://host:port-is-not-a-number``
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        why = "expected http://HOST or https://HOST[:PORT][/PATH]"
    except ValueError as exc:
        valid, why = False, str(exc)
    if not valid or any(ord(c) < 33 or ord(c) == 127 for c in raw):
        raise SettingError(f"{name}={raw!r} is not a usable URL ({why})")
    return raw.rstrip("/")


#: The variables through which a user chooses OpenBLAS's thread count; with none of them set, a command uses one.
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


@contextlib.contextmanager
def command_process() -> Iterator[None]:
    """The ``posembed`` process's three settings, kept for what users see; the Python API sets none of them.

    Measured by ``python benchmarks/process_settings.py --runs 5`` (medians, 2 cores shared, load 2.1, 2026-12-06):

    - one BLAS thread unless the user chose: the analyses are FFT- and memory-bound, and a descheduled second
      thread stalls the first; ``posembed analyze sinusoidal,positions=65536,dim=128`` took 3.2 s (3.0 s CPU)
      with one, 5.3 s (6.1 s CPU) with two. Set before numpy is first imported, the only time OpenBLAS reads it;
    - a short-lived process (as mypy does): the cyclic garbage collector runs rarely, and the heap is frozen
      before exit so that the final collection skips it; ``posembed report`` (the default table) took 1.7 s
      (1.7 s CPU) so, 2.1 s (2.1 s CPU) without;
    - Bokeh's document validation off unless the user set it (Bokeh's public ``BOKEH_VALIDATE_DOC``): it walks every
      model of the page once more to log layout warnings only the page's own code can cause, and
      tests/test_report_fidelity.py asserts that every kind of page validates clean; the default report's
      ``file_html`` took 0.43 s of CPU with it, 0.35 s without (a 12-table atlas 7.6 s, 6.0 s).
    """
    import gc

    if not any(name in os.environ for name in BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ.setdefault("BOKEH_VALIDATE_DOC", "false")
    gc.set_threshold(200_000, 50, 50)
    try:
        yield
    finally:
        gc.freeze()
