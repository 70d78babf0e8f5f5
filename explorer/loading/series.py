"""Many tables at once: series, spec files, and loading a set of specs concurrently.

A **series** is one spec standing for several, in order. An option may list values separated by ``|``
(``hf:EleutherAI/pythia-70m,revision=step1000|step2000|step3000``: one spec per revision, in the order given;
``sinusoidal,base=100|10000`` too); the target may list targets the same way, or be a glob over local folders
or files (``hf:runs/out/checkpoint-*``: every checkpoint of a training run, in step order;
``explorer.loading.globs``). At most two things of a spec are swept (seeds x steps), the first the outer one;
empty members are refused.

A **spec file** (``--specs FILE``) holds one spec (or series) a line; blank lines and lines starting with ``#``
are skipped, and a ``#`` after whitespace starts a comment. A bad line is named by its line number.

``run_jobs`` loads (and analyses) a set of specs, one ``table_job`` per table, through the run's executor
(``explorer.runtime.executor``: serial by default, ``--jobs N`` processes, or a Dask scheduler) and draws one
progress line for the set.
"""

from __future__ import annotations

import itertools
import os
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from explorer.runtime import console
from explorer.errors import PosembedError, SpecError
from explorer.loading.spec import Spec, parse_spec

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from explorer.core.embedding import PositionEmbedding
    from explorer.plugins.registry import Registry

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


@dataclass
class Loaded:
    """One table a job gave back: the table, and with ``analyse`` its analyses' results (plain values by name),
    the shared work its context memoised (for the pairs) and the warnings its analyses gave."""

    embedding: PositionEmbedding
    values: dict[str, Any] | None = None
    memo: dict[Any, Any] = field(default_factory=dict)
    warnings: list[tuple[type[Warning], str]] = field(default_factory=list)


@dataclass(frozen=True)
class Analysing:
    """How a job analyses its table: the display resolution and the run's settings (``TableContext.options``)."""

    resolution: int
    options: Mapping[str, Any] = field(default_factory=dict)


def _sendable(error: PosembedError) -> PosembedError:
    """The error, or one of the family's base class with its message and exit code when it would not survive
    the trip back from another process (a plugin's subclass with its own constructor)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - anything that stops the round trip
        plain = PosembedError(str(error))
        plain.exit_code = error.exit_code
        return plain


def _picklable(values: dict) -> dict:
    """The entries that another process can receive (a plugin's result may hold a lambda or a handle)."""
    import pickle

    kept = {}
    for key, value in values.items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - left out: the parent recomputes shared work, and warns of results
            continue
        kept[key] = value
    return kept


def table_job(spec: str, analysing: Analysing | None = None,
              registry: Registry | None = None) -> Loaded | PosembedError:
    """Load one spec (and analyse its table): the job each table is, in this process or in a worker.

    A worker (``registry`` None) builds its own registry, and sends back plain values that the parent binds to
    its own units (``bind``). A ``PosembedError`` is returned, not raised, so that it names its spec there.
    """
    import warnings

    from explorer.loading.load import load
    from explorer.plugins.registry import get_registry

    remote = registry is None
    registry = get_registry() if remote else registry
    try:
        embedding = load(spec, registry)
    except PosembedError as exc:
        return _sendable(exc) if remote else exc
    if analysing is None:
        return Loaded(embedding)
    from explorer import analysis

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context = analysis.table_context(embedding.matrix, analysing.resolution, embedding=embedding,
                                         options=analysing.options)
        progress = None if remote else (lambda name: console.step(f"analysing {embedding.label}: {name}"))
        results = analysis.analyze_context(context, analyses=registry.analyses, term=embedding.term,
                                           progress=progress)
    values, memo = dict(results), context.memos()
    if remote:
        kept = _picklable(values)
        for name in values.keys() - kept.keys():
            warnings.warn(f"analysis {name!r} gives a result that cannot be sent between processes; it is left out "
                          f"of {embedding.label} with --jobs and --executor", stacklevel=1)
        values, memo = kept, _picklable(memo)
    return Loaded(embedding, values, memo, [(w.category, str(w.message)) for w in caught])


def run_jobs(requests: Sequence[Request], registry: Registry | None = None, *, keep_going: bool = False,
             analysing: Analysing | None = None, pool: Executor | None = None) -> tuple[list[Loaded], list[Failure]]:
    """Every request's ``table_job``, through ``pool`` (``explorer.runtime.executor``; None: in this process, one
    after the other); the tables in the order requested, and the failures.

    A failing request stops the run, a ``PosembedError`` naming its spec (through a pool, the first failure in the
    requested order among those done): unless ``keep_going``, which leaves it out and returns it among the
    failures. Progress: ``loading k/n`` (and ``analysing``) on one line for the whole set.
    """
    from explorer.plugins.registry import get_registry
    from explorer.runtime.executor import each

    registry = get_registry() if registry is None else registry  # built here, once
    total = len(requests)
    what = "loading" if analysing is None else "loading and analysing"
    console.step(f"loading {requests[0].spec}" if total == 1 else f"{what} {total} tables")
    progress = None if total == 1 else (lambda done: console.count(what, done, total))
    with console.one_line_for_a_set() if total > 1 else nullcontext():
        outcomes = each(pool, table_job, [r.spec for r in requests], analysing, None if pool else registry,
                        done=progress, stop=lambda o: isinstance(o, PosembedError) and not keep_going)
    failures = [Failure(r, o) for r, o in zip(requests, outcomes) if isinstance(o, PosembedError)]
    if failures and not keep_going:
        first = failures[0]
        raise _naming(first) from first.error
    return [o for o in outcomes if not isinstance(o, PosembedError)], failures


def load_many(requests: Sequence[Request], registry: Registry | None = None, *, keep_going: bool = False,
              pool: Executor | None = None) -> tuple[list[PositionEmbedding], list[Failure]]:
    """Load every request (``run_jobs`` without analyses): the tables in the order requested, and the failures."""
    loaded, failures = run_jobs(requests, registry, keep_going=keep_going, pool=pool)
    return [item.embedding for item in loaded], failures
