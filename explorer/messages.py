"""Lines on stderr: every message posembed prints is one safe line, and libraries print none of their own.

Messages quote file names, tensor names and server answers, which anyone can fill with line breaks and
terminal escape sequences; :func:`one_line` escapes them where the line is printed, so no message can
forge a second ``posembed: error:`` line or recolour the terminal. Library warnings (the ``warnings``
module and ``logging``) are printed the same way, as ``posembed: warning:`` lines.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

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
