"""The console: every line posembed writes to standard error, and the switch that silences the optional ones.

**Safe lines.** Messages quote file names, tensor names and server answers, which anyone can fill with line
breaks and terminal escape sequences; :func:`one_line` escapes them where the line is printed, so no message can
forge a second ``posembed: error:`` line or recolour the terminal. Library warnings (the ``warnings`` module and
``logging``) are printed the same way, as ``posembed: warning:`` lines, and libraries print none of their own.

**Feedback.** Informational lines, the stage of a long step and download progress are drawn here.
``posembed --quiet`` sets ``POSEMBED_QUIET=1`` (so subprocesses and plugins see it too); the same variable works
from a notebook or a script. Quiet silences progress and informational lines ("wrote FILE", "downloading ...")
and huggingface_hub's own progress bars; warnings and errors are still printed. Results never go to stderr, and
feedback never goes to stdout.

Progress that redraws itself (``\\r``) is only drawn when stderr is a terminal; elsewhere a long step prints at most
one line when it starts and one when it ends. A ``stage`` is such a line: what is being done and the seconds
since the outermost stage began, redrawn by each ``step`` inside it (loading a table, each analysis by name,
building the page, writing) and erased when the outermost stage ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from explorer.runtime import environment

#: Libraries that attach their own stderr handler when imported, so their records never reach ours: they log
#: errors only (their warnings are about their own APIs and retries, not the user's input; posembed says what
#: failed in its own line). The variables are read at import; the loggers' levels are set for imports before.
QUIET_LIBRARIES = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error",
                   "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
QUIET_LOGGERS = ("transformers", "huggingface_hub")


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of an undecodable file name (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    return ascii(ch)[1:-1]  # \n, \x1b, \u202e: the character's Python escape


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8 text: each lone surrogate spelled as an escape, the bytes of an undecodable file
    name (surrogateescape) as ``\\xff``, any other (a JSON ``\\ud800``, a torch tensor name) as ``\\ud800``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(_escape(ch) if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def one_line(text: object) -> str:
    """``text`` as one printable line: line breaks, control characters and undecodable bytes escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


#: How many characters of an untrusted value an error line quotes (``excerpt``).
EXCERPT_CHARS = 60


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short quotation of an untrusted value for an error line: its ``repr``, cut to ``limit`` characters with the
    length said (``'abc...' (5000 characters)``), escaped as :func:`one_line` does; a file's whole text (a token, the
    environment) is never repeated in full."""
    if isinstance(value, str):
        shown = repr(value[:limit]) + (f"... ({len(value)} characters)" if len(value) > limit else "")
    else:
        import reprlib

        shown = reprlib.repr(value)
        shown = shown if len(shown) <= limit else shown[:limit] + "..."
    return one_line(shown)


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate closest to ``word``, or ``""``."""
    import difflib

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def warn(message: object, stacklevel: int = 3) -> None:
    """Issue a ``PosembedWarning`` of exactly one line: the message's whitespace runs (a plugin's multi-line error)
    collapsed; what the terminal would obey is escaped where the warning is printed (``warnings_as_lines``)."""
    from explorer.errors import PosembedWarning

    warnings.warn(PosembedWarning(" ".join(str(message).split())), stacklevel=stacklevel)


def library_lines_off() -> None:
    """Stop the libraries that print through their own handlers from printing warnings (call before importing them)."""
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)


class _WarningHandler(logging.Handler):
    """Log records of WARNING and above from any library, printed as posembed warnings."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.echo(f"posembed: warning: {one_line(record.getMessage())}")
        except Exception:  # a malformed record must not stop the command
            self.handleError(record)


@contextmanager
def warnings_as_lines(echo: Callable[[str], None], category: type[Warning]) -> Iterator[None]:
    """While inside, every warning and every logged library warning is one ``posembed: warning:`` line.

    ``category`` (posembed's own) is shown every time; any other library's warning once per message.
    """
    seen: set[str] = set()

    def show(message, kind, filename, lineno, file=None, line=None) -> None:
        text = one_line(message)
        if not issubclass(kind, category):
            if text in seen:
                return
            seen.add(text)
        echo(f"posembed: warning: {text}")

    handler = _WarningHandler(echo)
    root = logging.getLogger()
    quiet = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in quiet]
    with warnings.catch_warnings():
        warnings.simplefilter("always", category)
        warnings.showwarning = show
        root.addHandler(handler)  # records with no handler of their own would otherwise reach logging's lastResort
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.removeHandler(handler)
            for logger, level in zip(quiet, levels):
                logger.setLevel(level)

ENV = "POSEMBED_QUIET"
#: When each stage in progress began (all the outermost stage's start: the elapsed time is the whole command's).
_stages: list[float] = []
#: How many sets of tables are being loaded together (``batch.load_many``): their one line stands for each
#: download's own, which several threads would otherwise draw over each other.
_sets: list[None] = []


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


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


def _write(text: str) -> None:
    sys.stderr.write(text)  # looked up now: click's test runner and notebooks replace sys.stderr
    sys.stderr.flush()


def interactive() -> bool:
    """Whether progress may be drawn in place: stderr is a terminal and not quiet."""
    return not quiet() and _stderr_is_terminal()


def info(message: str) -> None:
    """One informational line on stderr, unless quiet (made safe: names in it cannot break the line)."""
    if not quiet():
        _write(one_line(message) + "\n")


@contextmanager
def one_line_for_a_set() -> Iterator[None]:
    """While the block runs, downloads draw no progress of their own: the set's ``step`` line stands for them."""
    _sets.append(None)
    try:
        yield
    finally:
        _sets.pop()


@contextmanager
def stage(message: str) -> Iterator[None]:
    """A transient ``posembed: MESSAGE ... 1.2 s`` line while the block runs, erased when the outermost stage
    ends; drawn only in place on a terminal (a pipe or a log file would keep the erased line for ever).
    A stage inside another redraws the same line and keeps the outer one's clock."""
    outermost = not _stages
    _stages.append(time.monotonic() if outermost else _stages[0])
    shown = interactive()
    if shown:
        _draw(message)
    try:
        yield
    finally:
        _stages.pop()
        if shown and outermost:
            _write("\r\033[K")


def step(message: str) -> None:
    """Redraw the current stage's line with what is being done now (nothing outside a stage or off a terminal)."""
    if _stages and interactive():
        _draw(message)


def _draw(message: str) -> None:
    _write(f"\rposembed: {one_line(message)} ... {time.monotonic() - _stages[0]:.1f} s\033[K")


class Progress:
    """A download's progress: redrawn in place on a terminal, else one line when it starts and one when it ends."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.shown = one_line(label), total, -1
        self.silent = quiet() or bool(_sets)
        self.in_place = interactive() and not self.silent
        if not self.silent and not self.in_place:
            info(f"posembed: downloading {label} ({total / 1e6:.1f} MB)")

    def update(self, done: int) -> None:
        """Report ``done`` bytes of ``total``."""
        percent = done * 100 // max(self.total, 1)
        if self.in_place and percent != self.shown:
            self.shown = percent
            _write(f"\rposembed: downloading {self.label}: {done / 1e6:.1f} of {self.total / 1e6:.1f} MB "
                   f"({percent}%)")

    def close(self) -> None:
        """End the progress line."""
        if self.in_place:
            _write("\n")
        elif not self.silent:
            info(f"posembed: downloaded {self.label}")
