"""Many tables at once: series, spec files, and loading a set of specs concurrently.

A **series** is one spec standing for several, in order. An option may list values separated by ``|``
(``hf:EleutherAI/pythia-70m,revision=step1000|step2000|step3000``: one spec per revision, in the order given;
``sinusoidal,base=100|10000`` too); the target may list targets the same way, or be a glob over local folders
or files (``hf:runs/out/checkpoint-*``: every checkpoint of a training run, in step order;
``explorer.loading.globs``). At most two things of a spec are swept (seeds x steps), the first the outer one;
empty members are refused.

A **spec file** (``--specs FILE``) holds one spec (or series) a line; blank lines and lines starting with ``#``
are skipped, and a ``#`` after whitespace starts a comment. A bad line is named by its line number.

``load_many`` loads a set of specs with at most ``WORKERS`` loads at once (remote tables are network-bound, so
threads overlap their waiting; each still reads only its own bytes) and draws one progress line for the set.
"""

from __future__ import annotations

import itertools
import os
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from explorer.runtime import console
from explorer.errors import PosembedError, SpecError
from explorer.loading.spec import Spec, parse_spec

if TYPE_CHECKING:
    from explorer.core.embedding import PositionEmbedding
    from explorer.plugins.registry import Registry

#: At most this many tables are fetched at once (the hub is asked politely; four hide most of the latency).
WORKERS = 4
SERIES = "|"
#: A comment: ``#`` at the start of a line or after whitespace (a ``#`` inside a path or id is kept).
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Request:
    """One table to load: its spec text and where it came from (a command-line argument or a file's line)."""

    spec: str
    origin: str = ""

    def named(self) -> str:
        """The spec, with its origin when it came from a file."""
        from explorer.runtime.console import excerpt

        return excerpt(self.spec, 200) + (f" ({self.origin})" if self.origin else "")


def expand_series(text: str) -> list[str]:
    """The specs a spec stands for, in series order: itself, or one per member of what it sweeps.

    A spec sweeps at most two things: a target that is a glob (``hf:runs/out/checkpoint-*``,
    ``explorer.loading.globs``) or lists targets with ``|``, and options listing values with ``|``. With two, the
    first is the outer one (``sinusoidal,base=100|10000,dim=64|128``: both widths at base 100, then at 10000).
    """
    from explorer.loading.globs import expand_glob, is_glob

    parsed = parse_spec(text)
    swept: list[tuple[str | None, list[str]]] = []  # (option, values); None for the target
    if parsed.target is not None and is_glob(parsed.target):
        swept.append((None, expand_glob(parsed.target)))
    elif parsed.target is not None and SERIES in parsed.target and not os.path.lexists(parsed.target):
        swept.append((None, _members(text, "target", parsed.target)))
    swept += [(key, _members(text, key, value)) for key, value in parsed.options.items() if SERIES in value]
    if not swept:
        return [text.strip()]
    if len(swept) > 2:
        names = ", ".join("the target" if key is None else key for key, _ in swept)
        raise SpecError(f"bad provider spec {text.strip()!r}: at most two things may list several values "
                        f"(with '{SERIES}' or a glob), got {names}")
    specs = []
    for choice in itertools.product(*(values for _, values in swept)):
        target, options = parsed.target, dict(parsed.options)
        for (key, _), value in zip(swept, choice):
            if key is None:
                target = value
            else:
                options[key] = value
        spec = str(Spec(parsed.name, target, options))
        again = parse_spec(spec)
        if (again.target, again.options) != (target, options):  # a matched name holding ',key=' or ':'
            raise SpecError(f"bad provider spec {text.strip()!r}: its member {spec!r} does not read back as itself "
                            f"(a name with ',key=' in it); name it in a spec file line of its own")
        specs.append(spec)
    return specs


def _members(text: str, key: str, value: str) -> list[str]:
    members = [member.strip() for member in value.split(SERIES)]
    if not all(members):
        raise SpecError(f"bad provider spec {text.strip()!r}: an empty value in the series {key}={value}")
    return members


#: A spec file is a short list read whole: larger files (``/dev/zero``, a sparse file of gigabytes) are refused.
MAX_SPEC_FILE_BYTES = 1_000_000
#: The longest line a spec file may hold (a path is at most 4096 bytes on Linux; a series of revisions is shorter).
MAX_SPEC_LINE = 8192


def read_spec_file(path: str | Path) -> list[Request]:
    """The requests of a spec file, series expanded; a bad line raises ``SpecError`` naming its number.

    The file is untrusted input like any other: a regular file of at most ``MAX_SPEC_FILE_BYTES`` (a FIFO, a device or
    a folder is refused without reading), UTF-8 text without NUL bytes, lines of at most ``MAX_SPEC_LINE``
    characters, counted at ``\\n`` alone as a person counts them (a form feed is not a line break); an error
    quotes a line only as a short escaped excerpt (``explorer.runtime.console.excerpt``), never the whole file.
    """
    from explorer.errors import ProviderError
    from explorer.loaders.regular_files import read_regular
    from explorer.runtime.console import EXCERPT_CHARS, excerpt

    name = excerpt(str(path))
    try:
        raw = read_regular(path, MAX_SPEC_FILE_BYTES, f"the spec file {name}", "it")
    except ProviderError as exc:  # a FIFO, a device, a folder, too large: refused before reading
        raise SpecError(str(exc)) from None
    except OSError as exc:
        raise SpecError(f"cannot read the spec file {name}: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise SpecError(f"the spec file {name} is not text: it holds NUL bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"the spec file {name}, line {line}: not UTF-8 text") from None
    requests: list[Request] = []
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"{path}, line {number}"
        if len(line) > MAX_SPEC_LINE:
            raise SpecError(f"the spec file {name}, line {number}: {len(line)} characters, more than the "
                            f"{MAX_SPEC_LINE} a spec line may hold")
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        try:
            requests += [Request(spec, where) for spec in expand_series(line)]
        except SpecError as exc:
            reason = str(exc).replace(repr(line), excerpt(line))  # the line itself, but only an excerpt of it
            reason = reason if len(reason) <= 4 * EXCERPT_CHARS else reason[:4 * EXCERPT_CHARS] + "..."
            raise SpecError(f"the spec file {name}, line {number}: {reason}") from None
    if not requests:
        raise SpecError(f"the spec file {name} names no spec")
    return requests


def requests_of(specs: Sequence[str], spec_file: str | Path | None = None) -> list[Request]:
    """The command's specs in order: the arguments' (series expanded), then the spec file's."""
    requests = [Request(spec) for text in specs for spec in expand_series(text)]
    return requests + (read_spec_file(spec_file) if spec_file is not None else [])


@dataclass(frozen=True)
class Failure:
    """A request that could not be loaded, and the one-line reason."""

    request: Request
    error: PosembedError

    def line(self) -> str:
        """The failure as one line naming the spec."""
        from explorer.runtime.console import one_line

        return f"{self.request.named()} failed: {one_line(self.error)}"


def _naming(failure: Failure) -> PosembedError:
    """The failure's error again, its message led by the spec (same class, so the same exit code)."""
    message = f"{failure.request.named()}: {failure.error}"
    try:
        return type(failure.error)(message)
    except TypeError:  # a subclass with its own constructor: the family's base class, same exit code
        error = PosembedError(message)
        error.exit_code = failure.error.exit_code
        return error


def load_many(requests: Sequence[Request], registry: Registry | None = None, *, keep_going: bool = False,
              workers: int = WORKERS) -> tuple[list[PositionEmbedding], list[Failure]]:
    """Load every request, at most ``workers`` at once; the tables in the order requested, and the failures.

    A failing request is a ``PosembedError`` naming its spec (the first failure in the requested order): unless
    ``keep_going``, which leaves it out and returns it among the failures. One progress line (``loading k of n``)
    stands for the whole set.
    """
    from explorer.loading.load import load
    from explorer.plugins.registry import get_registry

    registry = get_registry() if registry is None else registry  # built here, once, not from several threads
    outcomes: dict[int, PositionEmbedding | PosembedError] = {}
    total = len(requests)
    console.step(f"loading {requests[0].spec}" if total == 1 else f"loading {total} tables")
    if total == 1:  # the common single report: no pool to start, and the download draws its own progress
        try:
            return [load(requests[0].spec, registry)], []
        except PosembedError as exc:
            if not keep_going:
                raise _naming(Failure(requests[0], exc)) from exc
            return [], [Failure(requests[0], exc)]
    with console.one_line_for_a_set(), ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        futures = {pool.submit(load, request.spec, registry): k for k, request in enumerate(requests)}
        for future in as_completed(futures):
            k = futures[future]
            try:
                outcomes[k] = future.result()
            except PosembedError as exc:
                outcomes[k] = exc
            failed = sum(isinstance(o, PosembedError) for o in outcomes.values())
            if total > 1:
                console.step(f"loaded {len(outcomes)} of {total} tables" + (f", {failed} failed" if failed else ""))
    failures = [Failure(requests[k], o) for k, o in sorted(outcomes.items()) if isinstance(o, PosembedError)]
    if failures and not keep_going:
        first = failures[0]
        raise _naming(first) from first.error
    return [o for _, o in sorted(outcomes.items()) if not isinstance(o, PosembedError)], failures
