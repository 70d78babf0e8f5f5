"""What a plugin registers besides providers: an ``Analysis`` and a report ``Section``.

Both are declared units, registered through the hooks ``register_analyses`` and ``register_sections``
exactly as the built-in ones are (``explorer/analysis/builtin.py``, ``explorer/reporting/sections/``):

- an ``Analysis`` says what it computes (``run``, from a ``TableContext`` to any result object), which
  numbers of its result ``posembed analyze --json`` prints (``scalars``) and which arrays ``--npz`` saves
  (``arrays``; by default every numpy array in a dataclass result);
- a ``Section`` is one part of the report page: its heading, where it goes (``order``), the analyses it
  needs, and ``build``, from a ``SectionContext`` to a Bokeh model with its captions next to its figures.

Both declare the kinds of position term they take (``terms``): ``"absolute"`` (the default), a table of
positions x dimensions, ``"relative"``, a ``RelativePositionTerm`` of heads x distances (``t5``, ``alibi``),
``"window"``, a ``WindowBias`` of heads x 2-D offsets (``window``: Swin, BEiT), or ``"conv"``, a ``ConvKernel`` of
groups x kernel weights (``conv``: Wav2Vec2, HuBERT, WavLM).
This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from explorer.plugins.checks import check_array, real_number
from explorer.runtime.console import warn

if TYPE_CHECKING:
    import numpy as np

    from explorer.core.embedding import PositionEmbedding

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Where a section scoped to one table puts its block: side by side with the other tables' blocks.
TABLE, PAGE = "table", "page"


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise TypeError(f"{kind} name {name!r} must be lower-case letters, digits and '_', starting with a letter")


@dataclass(frozen=True)
class Analysis:
    """One analysis of a position table: a name, a one-line description and ``run(context) -> result``.

    ``pair=True`` declares an analysis of two tables (``run(a, b)`` with two contexts, for comparison pages).
    ``run`` may return ``None`` when the analysis does not apply (the probes on too few positions): the result
    is then ``None``, with no scalars and no arrays, and a section that needs it receives ``None`` (to say why).
    """

    name: str
    description: str
    run: Callable[..., Any]
    scalars: Callable[[Any], Mapping[str, float]] | None = None
    """The result's numbers for ``analyze --json`` (keys unique across analyses); default: none."""
    arrays: Callable[[Any], Mapping[str, "np.ndarray"]] | None = None
    """The result's arrays for ``analyze --npz``, keyed by field; default: every array field of a dataclass."""
    terms: tuple[str, ...] = ("absolute",)
    pair: bool = False
    order: float = 1000.0
    """Where it runs, and where its numbers come in ``posembed analyze``: ascending (the built-ins use 10 to 133)."""
    plugin: str | None = None
    """Set by the registry to the registering plugin's name for third-party analyses (None: built in)."""
    origin: str | None = None
    """Set by the registry with ``plugin``: that plugin's distribution and version (``posembed-vit 0.1.0``)."""

    def __post_init__(self) -> None:
        _check_name("analysis", self.name)
        if not callable(self.run):
            raise TypeError(f"analysis {self.name!r}: run must be callable")

    def scalars_of(self, result: Any) -> dict[str, float]:
        """The declared scalars of ``result`` as plain floats: a mapping of names to real numbers (an int becomes a
        float; NaN stays NaN, and JSON writes it as null); anything else is a TypeError naming the key."""
        if result is None or self.scalars is None:
            return {}
        given = self.scalars(result)
        if not isinstance(given, Mapping):
            raise TypeError(f"it returned {type(given).__name__}, not a mapping of names to numbers")
        return {str(key): real_number(key, value) for key, value in given.items()}

    def arrays_of(self, result: Any, max_elements: int | None = None) -> dict[str, "np.ndarray"]:
        """The declared arrays of ``result``, keyed ``field`` (``name.field`` once collected), each checked against
        the shape rule (``check_array``: numeric, at most ``max_elements`` elements) before it is kept."""
        import numpy as np

        if result is None:
            return {}
        if self.arrays is not None:
            given = self.arrays(result)
            if not isinstance(given, Mapping):
                raise TypeError(f"it returned {type(given).__name__}, not a mapping of names to arrays")
            items = [(str(k), v) for k, v in given.items()]
        elif isinstance(result, np.ndarray):
            items = [("", result)]
        elif dataclasses.is_dataclass(result):
            items = [(f.name, getattr(result, f.name)) for f in dataclasses.fields(result)
                     if isinstance(getattr(result, f.name), np.ndarray)]
        else:
            items = []
        return {key: check_array(key, value, max_elements) for key, value in items}


class Results(Mapping[str, Any]):
    """The result of every analysis that ran on one table (or pair), by name, in the order they ran.

    ``results["offset"]`` and ``results.offset`` are the same; ``scalars()`` and ``arrays()`` flatten what the
    analyses declared for ``analyze --json`` and ``--npz``.
    """

    def __init__(self, values: Mapping[str, Any], analyses: Mapping[str, Analysis],
                 max_elements: int | None = None) -> None:
        self._values = dict(values)
        self._analyses = dict(analyses)
        self._max_elements = max_elements
        #: Set on a page or command of several tables: the table these results are of, named in their warnings.
        self.about: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no analysis {name!r} in these results (have: {', '.join(self._values)})") from None

    def __repr__(self) -> str:
        return f"Results({', '.join(self._values)})"

    def scalars(self) -> dict[str, float]:
        """Every declared scalar as a plain float (NaN where undefined).

        A key that an earlier analysis already gave is kept from that one, with a warning naming both.
        """
        out: dict[str, float] = {}
        given_by: dict[str, str] = {}
        with warnings_about(self.about):
            for name, value in self._values.items():
                unit = self._analyses[name]
                given = guarded(unit, lambda: unit.scalars_of(value), "scalars()")
                for key, number in ({} if isinstance(given, Failed) else given).items():
                    if key in out:
                        warn(f"analysis {name!r} gives the scalar {key!r}, which analysis {given_by[key]!r} "
                             f"already gives; keeping the first")
                        continue
                    out[key], given_by[key] = number, name
        return out

    def arrays(self, prefix: str = "") -> dict[str, "np.ndarray"]:
        """Every declared array, keyed ``prefix + "analysis.field"``; an array breaking the shape rule
        (``check_array``) is refused with its analysis's other arrays, before anything is written."""
        out = {}
        with warnings_about(self.about):
            for name, value in self._values.items():
                unit = self._analyses[name]
                given = guarded(unit, lambda: unit.arrays_of(value, self._max_elements), "arrays()")
                for key, array in ({} if isinstance(given, Failed) else given).items():
                    out[f"{prefix}{name}.{key}" if key else f"{prefix}{name}"] = array
        return out


@dataclass(frozen=True)
class Section:
    """One part of the report page: a heading, its place, what it needs and how to build it.

    ``build(context)`` returns a Bokeh model (a figure, or a layout of figures with their captions), or
    ``None`` to leave the section out for that table. With ``scope="table"`` it is called once per table and
    the blocks of several tables stand side by side under one heading; with ``scope="page"`` it is called once
    for the page (``context.embedding`` is then ``None``) when the page has at least ``min_tables`` tables.
    Sections are laid out by ascending ``order`` (the built-ins use 10, 20, ... 110).
    """

    name: str
    title: str | None
    build: Callable[["SectionContext"], Any]
    order: float = 1000.0
    needs: tuple[str, ...] = ()
    """Analyses whose results ``build`` reads; a table without one of them gets no block."""
    terms: tuple[str, ...] = ("absolute",)
    scope: str = TABLE
    min_tables: int = 1
    plugin: str | None = None
    """Set by the registry to the registering plugin's name for third-party sections (None: built in)."""
    origin: str | None = None
    """Set by the registry with ``plugin``: that plugin's distribution and version (``posembed-vit 0.1.0``)."""

    def __post_init__(self) -> None:
        _check_name("section", self.name)
        if self.scope not in (TABLE, PAGE):
            raise TypeError(f"section {self.name!r}: scope must be {TABLE!r} or {PAGE!r}, got {self.scope!r}")
        if not callable(self.build):
            raise TypeError(f"section {self.name!r}: build must be callable")


class SectionContext:
    """What a section's ``build`` receives: one table and its results (for table sections) and the page.

    ``page`` is the page being built (``explorer.reporting.page.Page``): every table and its results, the
    pairs' results, the position ranges linked across plots, colour scales and widths. ``memo(key, compute)``
    shares a value between the sections of one table (the matrix heatmap's codes, read by the pickers).
    """

    def __init__(self, page: Any, embedding: "PositionEmbedding | None" = None, results: Results | None = None,
                 index: int | None = None, memo: dict[str, Any] | None = None) -> None:
        self.page, self.embedding, self.results, self.index = page, embedding, results, index
        self._memo = memo if memo is not None else {}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time a section of this table asks for ``key``, the same value afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Failed:
    """What ``guarded`` returns when a plugin's unit failed: the warning line it gave (a page shows it in place)."""

    def __init__(self, message: str) -> None:
        self.message = message


#: Whether a plugin's failure raises with its own traceback instead of a warning (``posembed --debug``).
_RAISE_PLUGIN_ERRORS: ContextVar[bool] = ContextVar("posembed_raise_plugin_errors", default=False)


@contextmanager
def plugin_errors_raise() -> Iterator[None]:
    """Within the block, a plugin's failing analysis or section raises with its own traceback instead of being
    one warning line (``posembed --debug`` runs its command in this block)."""
    token = _RAISE_PLUGIN_ERRORS.set(True)
    try:
        yield
    finally:
        _RAISE_PLUGIN_ERRORS.reset(token)


def guarded(unit: Analysis | Section, call: Callable[[], Any], callback: str | None = None,
            table: str | None = None) -> Any:
    """``call()``, the code of ``unit``: a built-in unit's exception propagates (a bug keeps its own frames);
    a plugin's (``SystemExit`` too) becomes one warning line naming the unit, its plugin and where that came from,
    the ``callback`` that failed (``scalars()``, ``arrays()``; default: the unit itself) and the ``table`` when the
    page has several, and a ``Failed`` holding that line is returned (inside ``plugin_errors_raise``, it
    propagates too)."""
    if unit.plugin is None or _RAISE_PLUGIN_ERRORS.get():
        return call()
    try:
        return call()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - one broken plugin must not cost the rest of the page
        kind = "analysis" if isinstance(unit, Analysis) else "section"
        where = f"{unit.plugin!r} ({unit.origin})" if unit.origin else repr(unit.plugin)
        what = f": {callback}" if callback else ""
        message = " ".join(f"{table + ': ' if table else ''}{kind} {unit.name!r} of plugin {where}{what} failed and "
                           f"is skipped: {type(exc).__name__}: {exc}".split())
        warn(message)
        return Failed(message)


@contextmanager
def warnings_about(table: str | None) -> Iterator[None]:
    """Every posembed warning given in the block led by ``table: `` (None: as it is), so that on a page or command
    of several tables each warning names the table it is about."""
    import warnings

    from explorer.errors import PosembedWarning

    if table is None:
        yield
        return
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            message = w.message
            if isinstance(message, PosembedWarning) and not str(message).startswith(f"{table}: "):
                message = PosembedWarning(f"{table}: {message}")
            warnings.warn_explicit(message, w.category, w.filename, w.lineno)


def in_order(units: Sequence[Any]) -> list[Any]:
    """Sections (or analyses) by ascending ``order``, ties in registration order."""
    return sorted(units, key=lambda unit: unit.order)
