"""Feedback on standard error: one switch for progress and informational lines.

``posembed --quiet`` sets ``POSEMBED_QUIET=1`` (so subprocesses and plugins see it too); the same
variable works from a notebook or a script. Quiet silences progress and informational lines
("wrote FILE", "downloading ...") and huggingface_hub's own progress bars; warnings and errors are
still printed. Results never go to stderr, and feedback never goes to stdout.

Progress that redraws itself (``\\r``) is only drawn when stderr is a terminal; elsewhere a long step
prints at most one line when it starts and one when it ends.
"""

from __future__ import annotations

import os
import sys

from explorer import environment

ENV = "POSEMBED_QUIET"


def quiet() -> bool:
    """Whether informational output and progress are silenced (``POSEMBED_QUIET``, read now)."""
    return environment.flag(ENV)


def set_quiet(value: bool = True) -> dict[str, str | None]:
    """Silence (or restore) progress and informational lines for this process and its children.

    Returns the variables it changed with their previous values, for :func:`restore`.
    """
    names = (ENV, "HF_HUB_DISABLE_PROGRESS_BARS")
    previous = {name: os.environ.get(name) for name in names}
    if value:
        for name in names:
            os.environ[name] = "1"
        if "huggingface_hub" in sys.modules:  # it reads the variable at import
            try:
                from huggingface_hub.utils import disable_progress_bars

                disable_progress_bars()
            except ImportError:  # pragma: no cover
                pass
    else:
        os.environ.pop(ENV, None)
    return previous


def restore(previous: dict[str, str | None]) -> None:
    """Undo :func:`set_quiet` (the command line does so when a command ends, for in-process callers)."""
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def interactive() -> bool:
    """Whether progress may be drawn in place: stderr is a terminal and not quiet."""
    try:
        return not quiet() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


def info(message: str) -> None:
    """One informational line on stderr, unless quiet."""
    if not quiet():
        print(message, file=sys.stderr, flush=True)
