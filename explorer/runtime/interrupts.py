"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

Python turns SIGINT into ``KeyboardInterrupt``, which every cleanup in the code already handles (the
temporary file beside an output is removed, the old file kept); the other two signals would end the
process on the spot and leave the temporary file behind. :func:`install` makes them raise
:class:`Interrupted`, a ``KeyboardInterrupt`` that remembers its signal, so the same cleanups run and the
command exits with 128 + the signal's number, as a shell reports a process killed by it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

#: The signals handled like SIGINT (SIGHUP: the terminal went away; SIGTERM: kill, timeout, systemd, docker stop).
HANDLED = ("SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: a ``KeyboardInterrupt`` (so every cleanup runs) that knows its signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_name(exc: BaseException) -> str:
    """``SIGTERM``, ``SIGHUP`` or ``SIGINT`` (a plain ``KeyboardInterrupt``)."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


def exit_code(exc: BaseException) -> int:
    """128 + the number of the signal that interrupted the command (130 for Ctrl-C)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def _raise(signum: int, frame: FrameType | None) -> None:
    # Once is enough: a second signal would interrupt the cleanup the first one started.
    for name in HANDLED:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Interrupted(signum)


def install() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Interrupted`; a signal ignored on entry (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal works in the main thread only
        return
    for name in HANDLED:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _raise)
