"""Many tables at once: revision series, spec files, and loading a set of specs concurrently.

A **revision series** is one spec whose option value lists several values separated by ``|``:
``hf:EleutherAI/pythia-70m,revision=step1000|step2000|step3000`` is three specs, one per revision, in the order
given. Exactly one option of a spec may be a series (``revision`` is the usual one; ``sinusoidal,base=100|10000``
works too); empty members are refused.

A **spec file** (``--specs FILE``) holds one spec (or series) a line; blank lines and lines starting with ``#``
are skipped, and a ``#`` after whitespace starts a comment. A bad line is named by its line number.

``load_many`` loads a set of specs with at most ``WORKERS`` loads at once (remote tables are network-bound, so
threads overlap their waiting; each still reads only its own bytes) and draws one progress line for the set.
"""

from __future__ import annotations

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
        return f"{self.spec!r}" + (f" ({self.origin})" if self.origin else "")


def expand_series(text: str) -> list[str]:
    """The specs a spec stands for: itself, or one per member of its one ``|`` series, in the order given."""
    parsed = parse_spec(text)
    series = [key for key, value in parsed.options.items() if SERIES in value]
    if not series:
        return [text.strip()]
    if len(series) > 1:
        raise SpecError(f"bad provider spec {text.strip()!r}: only one option may list several values with "
                        f"'{SERIES}', got {', '.join(series)}")
    key = series[0]
    members = [member.strip() for member in parsed.options[key].split(SERIES)]
    if not all(members):
        raise SpecError(f"bad provider spec {text.strip()!r}: an empty value in the series {key}={parsed.options[key]}")
    return [str(Spec(parsed.name, parsed.target, {**parsed.options, key: member})) for member in members]


def read_spec_file(path: str | Path) -> list[Request]:
    """The requests of a spec file, series expanded; a bad line raises ``SpecError`` naming its number."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    requests: list[Request] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        try:
            requests += [Request(spec, where) for spec in expand_series(line)]
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    if not requests:
        raise SpecError(f"the spec file {str(path)!r} names no spec")
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
