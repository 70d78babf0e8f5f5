"""posembed's environment variables, read in one place: text, yes/no flags, bounded numbers and URLs; and the settings
of the command line's own process (``command_process``, and ``give_back_memory``, which acts only there).

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
    """The ``posembed`` process's four settings, kept for what users see; the Python API sets none of them.

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
      ``file_html`` took 0.43 s of CPU with it, 0.35 s without (a 12-table atlas 7.6 s, 6.0 s);
    - ``give_back_memory`` acts, where the command asks for it: between a report's analyses and its page.
    """
    import gc

    global _command
    if not any(name in os.environ for name in BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ.setdefault("BOKEH_VALIDATE_DOC", "false")
    gc.set_threshold(200_000, 50, 50)
    _command = True
    try:
        yield
    finally:
        _command = False
        gc.freeze()


#: Whether this is the command line's own process, inside ``command_process``: ``give_back_memory`` acts only then.
_command = False
#: glibc's ``mallopt`` parameter ``M_MMAP_THRESHOLD`` (``<malloc.h>``), and the value posembed fixes it at: glibc's own
#: starting value, 128 KiB (32,768 float32 values).
M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 128 * 1024
#: When the user set it, glibc read it at start-up and the threshold is theirs: posembed leaves it alone. So too when
#: they set it as a glibc tunable (``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``).
MMAP_THRESHOLD_VARIABLE = "MALLOC_MMAP_THRESHOLD_"
MMAP_THRESHOLD_TUNABLE = "glibc.malloc.mmap_threshold"


def give_back_memory() -> bool:
    """In the ``posembed`` process (``command_process``) with glibc: hand the memory the heap holds free back to the
    system (``malloc_trim``), and from now on map every block of 128 KiB or more on its own (``mallopt``), so that it
    goes back when freed; True when done. Elsewhere (the Python API, in a notebook's process; another C library)
    nothing is done (False).

    glibc's default suits the analyses: after a large block is freed it raises its mapping threshold to that size,
    so later temporaries reuse heap memory instead of costing fresh pages (mapping them all from the start cost the
    GPT-2 report 0.15 s more CPU, 1.88 s against 1.73 s). But the heap keeps what it once held, and the page built
    next (Bokeh, the document, its JSON and HTML copies) piles on top of it. ``report`` asks for this once its
    analyses are done and again once the page is built and the results are let go, before rendering:
    ``posembed --quiet report gpt2:DIR`` (a full-size GPT-2 folder) peaked at 115 MB instead of 124, the default
    report at 114 instead of 128, at the same CPU time (``ru_maxrss``, medians of 3; docs/performance.md, "A report
    is one process").
    """
    if not _command:
        return False
    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or no such name (macOS, musl)
        glibc = False
    if not glibc:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)  # the process's own C library
        users = MMAP_THRESHOLD_VARIABLE in os.environ or MMAP_THRESHOLD_TUNABLE in os.environ.get("GLIBC_TUNABLES", "")
        if not users:
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # no such functions after all
        return False
    return True

