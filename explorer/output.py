"""Writing results: atomically to a file, or to standard output for ``-``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from explorer.errors import OutputError

STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | Path) -> Path:
    """The output path as a Path, or OutputError when its folder is missing or not writable."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: it is a directory")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: {str(parent)!r} is a file, not a folder")
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {str(target)!r}: folder {str(parent)!r} is not writable")
    return target


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file beside the target, are flushed to disk, then renamed over
    it; on any failure or interrupt the temporary file is removed and the target is untouched.
    ``path`` ``-`` writes to standard output instead.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if str(path) == STDOUT:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    target = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
        raise
