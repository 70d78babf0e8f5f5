"""Local input files read only when they are regular files, and never past a size limit.

A ``config.json`` that is ``/dev/zero`` reports a size of 0 and never ends; a FIFO blocks the first
``open`` until someone writes; a folder cannot be read at all. Each is one ``ProviderError`` here, decided
on the open descriptor (``fstat``), so a name swapped between a check and the read changes nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from explorer.errors import ProviderError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _refuse(mode: int, where: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise ProviderError(f"{where}: is {kind}, not a regular file")


def require_regular(path: str | Path, where: str | None = None) -> None:
    """ProviderError unless ``path`` (symlinks followed) is a regular file; for readers that only take a path.

    ``OSError`` (a missing file, say) is left to the caller, which knows what to call it.
    """
    _refuse(os.stat(path).st_mode, where or str(path))


def open_regular(path: str | Path, where: str | None = None) -> BinaryIO:
    """``path`` opened for binary reading, or ProviderError if it is a folder, FIFO, device or socket."""
    # O_NONBLOCK: opening a FIFO with no writer must return at once so that it can be refused.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _refuse(os.fstat(fd).st_mode, where or str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int, where: str | None = None, what: str = "the file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ProviderError otherwise (read ``limit + 1`` at most)."""
    with open_regular(path, where) as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ProviderError(f"{where or path}: {what} is larger than {limit} bytes")
    return raw
