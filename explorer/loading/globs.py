"""A spec whose target is a glob stands for the local folders (or files) it matches, ordered by step.

``hf:runs/out/checkpoint-*`` is every checkpoint folder transformers' ``Trainer`` wrote into ``runs/out``, in
step order (``checkpoint-500`` before ``checkpoint-1000``); ``hf:runs/seed-*/checkpoint-*`` is every seed's, seed
by seed; ``file:tables/*.npy`` is every file. ``*``, ``?`` and ``[...]`` match within one path component
(``fnmatch``, case-sensitive; ``**`` is ``*``: nothing recursive), a name starting with ``.`` only when the
pattern's component does. A target that exists as it is written (a folder really named ``a*``) is not a glob.

Read as any other input, and more carefully since the user did not name each match:

- symbolic links among the matches (or among the folders a component matches) are left out, with one
  warning line: a link can point anywhere, a Trainer writes none;
- a glob matching both folders and files is refused (``hf:`` reads folders, ``file:`` files: narrow it);
  sockets, FIFOs and devices are never matched;
- a name that would not read back as the same spec (``a,revision=x``: a comma before ``key=``) is refused, and
  one that holds a control character or ``|`` too;
- a glob that matches nothing is one line naming it; more than ``MAX_MATCHES`` matches, or more than
  ``MAX_SCANNED`` directory entries looked at, is refused before anything is loaded.
"""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from pathlib import Path

from explorer.errors import PosembedWarning, SpecError

#: At most this many matches (each is a table to load); a glob matching more is refused.
MAX_MATCHES = 2000
#: At most this many directory entries are looked at for one glob (bounded time on a huge folder).
MAX_SCANNED = 200_000
_MAGIC = re.compile(r"[*?[]")
#: What a training step looks like in a name: checkpoint-500, step1000, global_step_2000, step_20k (MultiBERTs).
_STEP = re.compile(r"(?:checkpoint|step)[-_]?(\d+)(k?)(?![0-9])", re.IGNORECASE)
_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_DIGITS = re.compile(r"(\d+)")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f|]")


def is_glob(target: str | None) -> bool:
    """Whether ``target`` is a glob: it holds ``*``, ``?`` or ``[`` and no path is written that way."""
    return bool(target) and bool(_MAGIC.search(target)) and not os.path.lexists(os.path.expanduser(target))


def step_of(text: str) -> float | None:
    """The training step a name holds (``checkpoint-500``: 500, ``step_20k``: 20000), else the last number in it
    (``seed-3``: 3, ``base=1e4``: 10000), else None."""
    found = _STEP.findall(text)
    if found:
        digits, thousands = found[-1]
        return float(int(digits) * (1000 if thousands else 1))
    numbers = _NUMBER.findall(text)
    return float(numbers[-1]) if numbers else None


def natural_key(name: str) -> tuple:
    """Sorts ``checkpoint-500`` before ``checkpoint-1000`` (digits compare as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(name) if part)


class _Scan:
    """One glob's walk: the entries looked at and the links left out, both bounded."""

    def __init__(self, pattern: str) -> None:
        self.pattern, self.scanned, self.links = pattern, 0, 0

    def entries(self, folder: Path, component: str) -> list[os.DirEntry]:
        """The entries of ``folder`` matching ``component`` (symbolic links counted and left out)."""
        hidden = component.startswith(".")
        found = []
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    self.scanned += 1
                    if self.scanned > MAX_SCANNED:
                        raise SpecError(f"the glob {self.pattern!r} looks through more than {MAX_SCANNED:,} "
                                        f"directory entries; narrow it")
                    if entry.name.startswith(".") and not hidden:
                        continue
                    if fnmatch.fnmatchcase(entry.name, component.replace("**", "*")):
                        if entry.is_symlink():
                            self.links += 1
                        else:
                            found.append(entry)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise SpecError(f"cannot read the folder {str(folder)!r} of the glob {self.pattern!r}: "
                            f"{exc.strerror or exc}") from None
        return sorted(found, key=lambda e: natural_key(e.name))


def expand_glob(pattern: str) -> list[str]:
    """The folders or files ``pattern`` matches, as paths written like it, ordered component by component (seed,
    then step); SpecError when it matches nothing, too much, both folders and files, or a name that cannot be a
    spec's target."""
    path = Path(os.path.expanduser(pattern))
    parts = path.parts
    first = next(k for k, part in enumerate(parts) if _MAGIC.search(part))
    base = Path(*parts[:first]) if first else Path(".")
    scan = _Scan(pattern)
    current: list[tuple[Path, os.DirEntry | None]] = [(base, None)]
    for k, part in enumerate(parts[first:], start=first):
        last = k == len(parts) - 1
        following: list[tuple[Path, os.DirEntry | None]] = []
        for folder, _ in current:
            if not _MAGIC.search(part):  # a literal component below a matched one: runs/*/out
                literal = folder / part
                if os.path.lexists(literal) and not os.path.islink(literal):
                    following.append((literal, None))
                continue
            following += [(folder / entry.name, entry) for entry in scan.entries(folder, part)
                          if last or entry.is_dir(follow_symlinks=False)]
            if len(following) > MAX_MATCHES:
                raise SpecError(f"the glob {pattern!r} matches more than {MAX_MATCHES:,} entries; narrow it")
        current = following
    if scan.links:
        warnings.warn(PosembedWarning(f"the glob {pattern!r}: left out {scan.links} symbolic "
                                      f"link{'s' if scan.links > 1 else ''} among its matches"), stacklevel=2)
    folders = [p for p, _ in current if p.is_dir() and not p.is_symlink()]
    files = [p for p, _ in current if p.is_file() and not p.is_symlink()]
    if folders and files:
        raise SpecError(f"the glob {pattern!r} matches {len(folders)} folder{'s' if len(folders) > 1 else ''} and "
                        f"{len(files)} file{'s' if len(files) > 1 else ''}; narrow it to one kind "
                        f"(e.g. checkpoint-* for a run's checkpoint folders)")
    matches = folders or files
    if not matches:
        raise SpecError(f"the glob {pattern!r} matches no folder or file")
    out = []
    for match in matches:
        text = str(match)
        if _UNSAFE.search(text):
            raise SpecError(f"the glob {pattern!r} matches {text!r}, whose name holds a control character or '|'; "
                            f"rename it or name the others one by one")
        out.append(text)
    return out
