"""Writing results: atomically to a regular file, streamed to a device or FIFO, or to standard output for ``-``.

An output path behaves like the shell's ``> PATH`` except that a regular file is replaced atomically:

- a regular file (or a new name) is written to a temporary sibling and renamed over it, so readers see
  the old file or the whole new one; an existing file keeps its permission bits (and, as root, its owner);
  a symlink to a file is followed, so the link stays and its target is replaced;
- a character device (``/dev/null``, a terminal) or a FIFO, directly or through a symlink such as
  ``/dev/stdout``, is written to in place: it is never replaced by a regular file;
- anything else (a folder, a socket, a block device) is refused in one line, as is a file that is an
  input of the same command.

:func:`check_writable` decides once, before any expensive work; :func:`write_atomic` decides again when
writing (the path may have changed meanwhile).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from explorer.errors import OutputError
from explorer.runtime.console import utf8_text

STDOUT = "-"
#: Longest file name most file systems allow, in bytes (used when ``pathconf`` cannot say).
NAME_MAX = 255
#: What a temporary sibling's name adds to the target's: ``.NAME.`` + 8 random characters + ``.part``.
_TEMP_EXTRA = len("..") + 8 + len(".part")


@dataclass(frozen=True)
class Target:
    """Where an output goes: ``kind`` is ``"stdout"``, ``"stream"`` (written in place) or ``"file"`` (replaced
    atomically at ``path``, symlinks resolved); ``existing`` is the file's status when it exists."""

    given: str
    kind: str
    path: Path | None = None
    existing: os.stat_result | None = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _what(mode: int) -> str:
    """A non-regular file type in words."""
    for test, name in ((stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _identities(inputs: Iterable[object]) -> set[tuple[int, int]]:
    """(device, inode) of every file an input value names: a file, or the files directly inside a folder."""
    found: set[tuple[int, int]] = set()
    for value in inputs:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            continue
        try:
            info = os.stat(value)
            if stat.S_ISREG(info.st_mode):
                found.add((info.st_dev, info.st_ino))
            elif stat.S_ISDIR(info.st_mode):  # a model folder: its config and weights are inputs
                with os.scandir(value) as entries:
                    for entry in entries:
                        if entry.is_file():
                            found.add((entry.stat().st_dev, entry.stat().st_ino))
        except (OSError, ValueError):  # not a path at all (a model id, a number), or unreadable: not an input here
            continue
    return found


def _through_proc(given: str) -> bool:
    """Whether ``given`` reaches its file through ``/proc`` (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``).

    Such a link stands for a file descriptor already open (``>`` or ``>>`` in the shell): it is written
    through that, as the shell would, not replaced by a new file of the same name.
    """
    path = os.path.abspath(given)
    for _ in range(40):  # the kernel's own limit on links followed
        parent = os.path.realpath(os.path.dirname(path))
        if parent == "/proc" or parent.startswith("/proc/"):
            return True
        step = os.path.join(parent, os.path.basename(path))
        if not os.path.islink(step):
            return False
        path = os.path.join(parent, os.readlink(step))
    return False


def _folder_checks(given: str, target: Path) -> None:
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {given!r}: {str(parent)!r} is a file, not a folder")
    if not parent.is_dir():
        raise OutputError(f"cannot write {given!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {given!r}: folder {str(parent)!r} is not writable")


def check_writable(path: str | Path, inputs: Iterable[object] = ()) -> Target:
    """Where ``path`` sends an output, or OutputError when it cannot or must not be written.

    ``inputs`` are values (paths, model folders, anything else is ignored) that the command reads: an
    output path that is one of their files is refused, so a command never overwrites its own input.
    """
    given = os.fspath(path)
    if given == STDOUT:
        return Target(given, "stdout")
    try:
        existing: os.stat_result | None = os.stat(given)  # follows symlinks, /dev/stdout's included
    except FileNotFoundError:
        existing = None
    except NotADirectoryError:
        existing = None  # a plain file where a folder should be: said below
    except (OSError, ValueError) as exc:  # too long, a loop of links, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"cannot write {given!r}: {reason}") from None
    if existing is not None:
        mode = existing.st_mode
        if stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {given!r}: it is a directory")
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            return Target(given, "stream", Path(given), existing)
        if not stat.S_ISREG(mode):
            raise OutputError(f"cannot write {given!r}: it is {_what(mode)}, not a regular file")
        if (existing.st_dev, existing.st_ino) in _identities(inputs):
            raise OutputError(f"cannot write {given!r}: it is an input of this command; choose another output name")
    if existing is not None and _through_proc(given):  # /dev/stdout redirected to a file: the shell's open file
        return Target(given, "stream", Path(given), existing)
    real = Path(os.path.realpath(given))  # a symlink stays a symlink: its target is what gets replaced
    _folder_checks(given, real)
    return Target(given, "file", real, existing)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _temporary_prefix(target: Path) -> str:
    """``.NAME.`` cut short enough that the temporary sibling's name fits wherever the target's does."""
    room = _name_max(target.parent) - _TEMP_EXTRA
    name = target.name
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


class ReaderGone(OutputError):
    """Standard output's reader has gone (``posembed info gpt2 | head -1``): the command line ends quietly, with the
    status a Unix tool killed by SIGPIPE leaves (128 + 13), as ``cat`` or ``git log`` do in such a pipe."""

    exit_code = 141


def stdout_error(exc: BaseException) -> OutputError:
    """The one line for standard output that cannot be written (full, closed); ``ReaderGone`` when its reader has
    gone (EPIPE), which the command line does not print."""
    global _stdout_failed
    _stdout_failed = True
    if getattr(exc, "errno", None) == errno.EPIPE:
        return ReaderGone("cannot write to standard output: its reader has gone")
    closed = isinstance(exc, AttributeError) or getattr(exc, "errno", None) == errno.EBADF or _closed_at_start
    reason = "it is closed" if closed else getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"cannot write to standard output: {reason}")


def release_stdout() -> None:
    """After standard output failed, point it at ``/dev/null``: Python's own flush at exit then finds nothing to
    complain about (it would print a second error and exit 120)."""
    if not _stdout_failed:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:  # pragma: no cover - nothing left to protect
        pass


def _write_stdout(payload: bytes) -> None:
    try:
        sys.stdout.flush()  # text printed before stays before
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
    except (OSError, AttributeError, ValueError) as exc:  # full, closed (None), a reader gone
        raise stdout_error(exc) from None


def _write_stream(target: Target, payload: bytes) -> None:
    """Write to a device or FIFO in place (a FIFO waits for its reader); append to a file reached by a magic link."""
    try:
        fd = os.open(target.given, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
    except OSError as exc:
        raise OutputError(f"cannot write {target.given!r}: {exc.strerror or exc}") from None


def _keep_mode(tmp: str, existing: os.stat_result | None) -> None:
    """Give the new file the old one's permission bits (and owner, where allowed), or the umask's for a new one."""
    if existing is None:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    if hasattr(os, "chown") and (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.chown(tmp, existing.st_uid, existing.st_gid)
        except OSError:  # only root may give a file away; the bits below are kept all the same
            pass
    os.chmod(tmp, stat.S_IMODE(existing.st_mode))


def write_atomic(path: str | Path, data: bytes | str, inputs: Iterable[object] = ()) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file beside the target, are flushed to disk, then renamed over
    it; on any failure or interrupt the temporary file is removed and the target is untouched.
    ``path`` ``-`` writes to standard output; a device or FIFO is written in place (see the module's
    docstring); ``inputs`` as for :func:`check_writable`.
    """
    payload = utf8_text(data).encode("utf-8") if isinstance(data, str) else data
    target = check_writable(path, inputs)
    if target.kind == "stdout":
        _write_stdout(payload)
        return
    if target.kind == "stream":
        _write_stream(target, payload)
        return
    real = target.path
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=_temporary_prefix(real), suffix=".part")
    except OSError as exc:
        raise OutputError(f"cannot write {target.given!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_mode(tmp, target.existing)
        os.replace(tmp, real)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target.given!r}: {exc.strerror or exc}") from None
        raise


# ---------------------------------------------------------------------------------------------------------------------
# a folder of files (a static site), replaced as a whole

#: The file that marks a folder as written by ``write_folder`` (and so as one it may replace).
FOLDER_MARK = ".posembed-site"


def is_folder_output(path: str | Path) -> bool:
    """Whether an output path names a folder: it ends with ``/`` or is an existing folder."""
    given = os.fspath(path)
    return given != STDOUT and (given.endswith(("/", os.sep)) or os.path.isdir(given))


def check_folder(path: str | Path, inputs: Iterable[object] = ()) -> Path:
    """The folder ``path`` names (symbolic links resolved), or OutputError when it must not be written: a file or
    device, a folder holding anything but an earlier site (or nothing), or one that holds an input of the command.
    """
    given = os.fspath(path)
    try:
        real = Path(os.path.realpath(given.rstrip("/" + os.sep) or "/"))
        existing = os.stat(real) if os.path.lexists(real) else None
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {given!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if real == Path(real.anchor):
        raise OutputError(f"cannot write {given!r}: it is the root of the file system")
    if existing is not None and not stat.S_ISDIR(existing.st_mode):
        raise OutputError(f"cannot write {given!r}: it is not a folder")
    if existing is not None:
        try:
            names = os.listdir(real)
        except OSError as exc:
            raise OutputError(f"cannot write {given!r}: {exc.strerror or exc}") from None
        if names and FOLDER_MARK not in names:
            raise OutputError(f"cannot write {given!r}: the folder holds files that posembed did not write; "
                              f"choose a new or empty folder")
    for value in inputs:
        if isinstance(value, (str, os.PathLike)) and str(value) and os.path.exists(value):
            inside = Path(os.path.realpath(value))
            if inside == real or real in inside.parents:
                raise OutputError(f"cannot write {given!r}: it holds {str(value)!r}, an input of this command")
    _folder_checks(given, real)
    return real


class FolderWriter:
    """Writes files into a new folder beside the target, which replaces the target as a whole on success.

    Used as a context manager: every ``write(name, data)`` goes into a temporary sibling (``.NAME.xxxxxxxx.part``);
    when the block ends without an error the target folder is swapped for it (an earlier site moved aside and then
    removed), and on an error or an interrupt the temporary folder is removed and the target is left as it was.
    Names are relative paths inside the folder: absolute names and ``..`` are refused, so nothing is written
    outside it.
    """

    def __init__(self, path: str | Path, inputs: Iterable[object] = ()) -> None:
        self.given = os.fspath(path)
        self.target = check_folder(path, inputs)
        self.root: Path | None = None
        self.written = 0

    def __enter__(self) -> "FolderWriter":
        try:
            self.root = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=_temporary_prefix(self.target),
                                              suffix=".part"))
            os.chmod(self.root, 0o777 & ~_umask())
        except OSError as exc:
            raise OutputError(f"cannot write {self.given!r}: {exc.strerror or exc}") from None
        self.write(FOLDER_MARK, b"written by posembed report: this folder is replaced as a whole when rewritten\n")
        return self

    def path_of(self, name: str) -> Path:
        """Where ``name`` (a relative path, ``/``-separated) goes in the folder being written."""
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise OutputError(f"cannot write {name!r} into {self.given!r}: not a plain relative name")
        assert self.root is not None, "write inside the with block"
        return self.root.joinpath(*parts)

    def write(self, name: str, data: bytes | str) -> None:
        """Write one file of the folder (its folders made as needed)."""
        payload = utf8_text(data).encode("utf-8") if isinstance(data, str) else data
        path = self.path_of(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(path, 0o666 & ~_umask())
        except OSError as exc:
            raise OutputError(f"cannot write {self.given!r}: {exc.strerror or exc}") from None
        self.written += len(payload)

    def __exit__(self, kind, exc, traceback) -> None:
        import shutil

        assert self.root is not None
        if kind is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        try:
            self._swap()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _swap(self) -> None:
        import shutil

        target, root = self.target, self.root
        check_folder(self.given)  # again: the target may have changed while the pages were built
        old = None
        if os.path.lexists(target):
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temporary_prefix(target), suffix=".old"))
            os.rmdir(old)
            try:
                os.rename(target, old)
            except OSError as exc:
                raise OutputError(f"cannot write {self.given!r}: {exc.strerror or exc}") from None
        try:
            os.rename(root, target)
        except BaseException as exc:
            if old is not None:
                os.rename(old, target)
            if isinstance(exc, OSError):
                raise OutputError(f"cannot write {self.given!r}: {exc.strerror or exc}") from None
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------------
# standard streams that are closed or fail

_closed_at_start = False
_stdout_failed = False


class _CheckedStdout:
    """Standard output whose failure (full, closed, reader gone) is an OutputError: one line, not a traceback."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text``; OutputError when standard output fails."""
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise stdout_error(exc) from None

    def flush(self) -> None:
        """Flush; OutputError when standard output fails."""
        try:
            self._stream.flush()
        except OSError as exc:
            raise stdout_error(exc) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_standard_streams() -> None:
    """At the entry point: no closed standard stream, and a failing standard output is one clear error.

    A closed descriptor 0, 1 or 2 would be reused by the next file opened (the output's temporary file,
    then written to by every ``print``); each is held by ``/dev/null`` instead, standard output read-only
    so that writing to it still fails, and is then reported as closed.
    """
    global _closed_at_start
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            if os.open(os.devnull, flags) != fd:  # pragma: no cover - a lower descriptor was free
                continue
            if fd == 1:
                _closed_at_start = True
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    if not isinstance(sys.stdout, _CheckedStdout):
        sys.stdout = _CheckedStdout(sys.stdout)
