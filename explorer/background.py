"""Run one function in a forked child process while this process goes on with other work.

``posembed report`` spends about as long importing Bokeh (pure Python, holding the GIL) as analysing the
tables (numpy), and then builds two halves of its page. A thread cannot overlap such work: the import holds
the GIL between the analyses' many short numpy calls, and building Bokeh models is Python throughout. A
forked child can, on a second core: ``start(function, *args)`` forks, the child runs the function and sends
back its pickled result (and the warnings it raised), and ``Pending.result()`` collects it once the parent
is ready. ``explorer.api.report`` analyses this way and ``reporting.page.build_page`` builds half the page.

Forking is only safe in a process that has a single thread (a fork copies one thread; locks held by the
others stay locked forever in the child), and only on Linux, where numpy's BLAS supports it. Anywhere else,
``start`` runs the function at once in this process: the result is the same, only the overlap is lost.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import warnings
from typing import Any, Callable

from explorer.errors import PosembedError


def can_fork() -> bool:
    """True on Linux in a process with exactly one thread (Python's or native, e.g. a BLAS or torch pool)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class Pending:
    """The result of ``start``'s function: ``result()`` returns it or raises what the function raised."""

    def __init__(self, pid: int | None = None, fd: int | None = None, outcome: tuple | None = None,
                 task: str = "analysis"):
        self._pid, self._fd, self._outcome, self._task = pid, fd, outcome, task

    def result(self) -> Any:
        if self._outcome is None:
            self._outcome = self._collect()
        kind, value, caught = self._outcome
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if kind == "raised":
            raise value
        return value

    def cancel(self) -> None:
        """Stop the child if it is still running (e.g. the parent was interrupted); a no-op once collected."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def _collect(self) -> tuple:
        chunks = []
        try:
            with os.fdopen(self._fd, "rb") as pipe:
                self._fd = None
                while chunk := pipe.read(1 << 20):
                    chunks.append(chunk)
        except BaseException:  # e.g. an interrupt while waiting: stop the child rather than wait for it
            self.cancel()
            raise
        status = self._reap()
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:  # noqa: BLE001 - nothing (or half a message) came: the child died
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.waitstatus_to_exitcode(status)}"
            hint = " (out of memory?)" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else ""
            raise PosembedError(f"the {self._task} process died ({how}){hint}") from None

    def _reap(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        pid, self._pid = self._pid, None
        return os.waitpid(pid, 0)[1] if pid is not None else 0

    def __del__(self) -> None:
        self.cancel()


def _outcome(function: Callable[..., Any], args: tuple) -> tuple:
    """("returned", value, warnings) or ("raised", exception, warnings); each warning as plain picklable fields."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            kind, value = "returned", function(*args)
        except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it
            kind, value = "raised", error
    return kind, value, [(str(w.message), w.category, w.filename, w.lineno) for w in caught]


def start(function: Callable[..., Any], *args: Any, task: str = "analysis") -> Pending:
    """Run ``function(*args)`` in a forked child when ``can_fork()``, else here and now; see ``Pending``.

    ``task`` names the work in the error raised if the child dies ("the analysis process died ...").
    """
    if not can_fork():
        return Pending(outcome=_outcome(function, args))
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return Pending(pid, read, task=task)
    # the child: never returns into the caller's code, never runs its atexit handlers or flushes its buffers
    code = 1
    try:
        os.close(read)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends the child at once; the parent reports it
        outcome = _outcome(function, args)
        try:
            payload = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(payload)  # some objects pickle but cannot be rebuilt (an exception with extra arguments)
        except Exception:  # noqa: BLE001 - then the error goes as its message
            kind, value, caught = outcome
            payload = pickle.dumps((kind, PosembedError(str(value)) if kind == "raised" else value, caught))
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
        code = 0
    finally:
        os._exit(code)
