"""The Python API: the same path the command line takes, callable from a notebook.

spec -> provider -> ``PositionEmbedding`` -> ``analyze`` -> ``report`` (or ``show`` in Jupyter).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

from explorer.errors import EmbeddingError, OutputError, ProviderError
from explorer.loading.load import DEFAULT_SPEC, load
from explorer.plugins.registry import Registry, get_registry
from explorer.runtime import console

if TYPE_CHECKING:
    import numpy as np

    from explorer.analysis.context import TableContext
    from explorer.core.embedding import PositionEmbedding
    from explorer.loaders.model_tensors import ModelTensors
    from explorer.loading.series import Analysing, Loaded, Request
    from explorer.plugins.units import Results

from explorer.core.choices import PROBE_PROTOCOL, SCALES
#: This many tables or more make an atlas page (``explorer/reporting/sections/atlas.py``).
ATLAS_TABLES = 3
#: An atlas's default display resolution: every table's full sections are in the one file (12 tables of
#: 1024 x 768 at 1024 would be about 24 MB; at 384 about 9 MB, inside the 12 MB budget, benchmarks/atlas_budgets.py).
ATLAS_RESOLUTION = 384


def load_many(specs: Sequence[str] = (), registry: Registry | None = None, *, spec_file: str | Path | None = None,
              keep_going: bool = False, jobs: int = 1, executor: str | None = None,
              ) -> tuple[list[PositionEmbedding], list[str]]:
    """Load many tables: each spec (a revision series ``revision=a|b`` is one spec per revision), then the spec
    file's (one a line); the tables in that order and one line per failure.

    One at a time in this process by default; ``jobs=N`` loads through N local worker processes, ``executor`` through
    a Dask scheduler at that address (``explorer.runtime.executor``; workers use their own registry: the installed
    plugins). A failure raises (a ``PosembedError`` naming its spec) unless ``keep_going``, which leaves it out.
    """
    from explorer.loading.series import load_many as load_requests
    from explorer.loading.series import requests_of
    from explorer.runtime.executor import executor as open_executor
    from explorer.runtime.limits import check_tables

    requests = requests_of(specs, spec_file)
    check_tables(len(requests))
    with open_executor(jobs, executor) as pool:
        tables, failures = load_requests(requests, registry, keep_going=keep_going, pool=pool)
    return tables, [failure.line() for failure in failures]


class StoredTensor(NamedTuple):
    """What ``read_tensor`` returns: the array as float32 and the dtype it was stored in."""

    array: "np.ndarray"
    dtype: str
    """``float32``, ``float16``, ``bfloat16``, ``float64``, ... as stored in the file."""


def read_tensor(path: str | Path, key: str | None = None) -> StoredTensor:
    """One array of a ``.safetensors``, ``.npz``, ``.npy`` or PyTorch ``.pt``/``.pth``/``.bin`` file, read exactly as
    the ``file`` provider reads it, as C-contiguous float32 with the dtype it was stored in.

    ``key`` names the tensor (or ``.npz`` array); without it the file's only 2-D array is read, or the only one
    named like a position table. Every check of the ``file`` provider holds: safetensors headers are validated and
    only the tensor's bytes are read, BF16 and F16 are decoded exactly, pickles load with ``weights_only=True``,
    ``.npy``/``.npz`` never unpickle. Any number of dimensions is returned (a ViT's ``1 x 197 x 768`` too); a
    non-numeric array is a ``ProviderError``, as is every fault of the file.
    """
    import numpy as np

    from explorer.providers.files import read

    array, dtype, name = read(str(path), key)
    array = np.asarray(array)
    if array.dtype.kind not in "fiub":
        raise ProviderError(f"{path}: {name or 'the array'} has dtype {array.dtype}, expected numbers")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, as in every table
        return StoredTensor(np.ascontiguousarray(array, dtype=np.float32), str(dtype))


def open_model(model: str, revision: str | None = None) -> ModelTensors:
    """A model's ``config.json`` and tensors, read one at a time: a local folder, or a hub repository read by range.

    ``model`` is what ``hf:`` takes (``ORG/NAME`` on the hub, or a folder with ``config.json``). Nothing but the
    config is read until a tensor is asked for; then only that tensor's bytes, with every limit and check a table
    read has (``explorer.loaders.model_tensors``). A fault is a ``ProviderError``::

        model = explorer.open_model("openai-community/gpt2")
        names = model.names(layer=0)          # layer 0's tensors
        q = model.tensor("h.0.attn.c_attn.weight", shape=(768, 2304))
    """
    from explorer.loaders.model_tensors import ModelTensors
    from explorer.providers.huggingface import open_checkpoint

    return ModelTensors(open_checkpoint(model, revision))


def _options(probe_protocol: str) -> dict[str, Any]:
    """The settings every analysis of a run reads (``TableContext.options``), checked (``OutputError``)."""
    from explorer.analysis.probes import check_protocol

    return {"probe_protocol": check_protocol(probe_protocol)}


def _resolution(resolution: int | None) -> int:
    from explorer.analysis import RESOLUTION, check_resolution

    return RESOLUTION if resolution is None else check_resolution(resolution)


def analyze(embedding: PositionEmbedding, resolution: int | None = None, registry: Registry | None = None,
            progress: Callable[[str], None] | None = None, probe_protocol: str = PROBE_PROTOCOL) -> Results:
    """Every registered analysis of one table (built-ins and plugins'), by name; see ``explorer.analysis``.

    ``progress(name)`` is called before each analysis runs (default: a status line on a terminal's stderr).
    ``probe_protocol``: ``ridge`` (the project's) or ``wang-chen`` (the paper's code; docs/analyses.md).
    """
    from explorer import analysis

    analyses = (get_registry() if registry is None else registry).analyses
    if progress is None:
        progress = lambda name: console.step(f"analysing {embedding.label}: {name}")  # noqa: E731
    return analysis.analyze(embedding.matrix, _resolution(resolution), analyses=analyses, term=embedding.term,
                            embedding=embedding, progress=progress, options=_options(probe_protocol))


def _comparable(a: PositionEmbedding, b: PositionEmbedding) -> bool:
    """Terms of one kind whose rows stand for the same things (a pair analysis compares them row by row)."""
    return a.term == b.term and getattr(a, "rows", None) == getattr(b, "rows", None)


def compare(a: PositionEmbedding, b: PositionEmbedding, resolution: int | None = None,
            registry: Registry | None = None) -> Results:
    """Every registered pair analysis of two tables (built in: ``comparison``, with CKA and similarity correlation).

    Terms of different kinds (an absolute table and a relative term), and tables whose rows stand for different
    things (positions against DeBERTa's distance buckets: ``PositionEmbedding.rows``), share no pair analysis: the
    result is empty.
    """
    from explorer import analysis
    from explorer.plugins.units import Results

    if not _comparable(a, b):
        return Results({}, {})

    analyses = (get_registry() if registry is None else registry).analyses
    return analysis.analyze_pair(a.matrix, b.matrix, _resolution(resolution), analyses=analyses, term=a.term,
                                 embeddings=(a, b),
                                 progress=lambda name: console.step(f"comparing {a.label} and {b.label}: {name}"))


def compare_all(items: Sequence[PositionEmbedding], contexts: Sequence[TableContext],
                registry: Registry | None = None) -> list[tuple[int, int, Results]]:
    """Every pair's results (``(i, j, results)`` for i < j) from the tables' analysed contexts: each pair unit
    receives the two contexts the tables' analyses filled, so what a pair needs of a table is computed once.

    Pairs are taken in order of their common rows (tables of different lengths compare on the shorter one's),
    so each table's part for one length is computed once too.
    """
    from explorer import analysis
    from explorer.plugins.units import Results, warnings_about

    analyses = (get_registry() if registry is None else registry).analyses
    pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
    rows = [len(context.matrix) for context in contexts]
    found: dict[tuple[int, int], Results] = {}
    for done, (i, j) in enumerate(sorted(pairs, key=lambda p: min(rows[p[0]], rows[p[1]])), start=1):
        a, b = items[i], items[j]
        with warnings_about(f"tables {i + 1} and {j + 1}"):
            found[i, j] = (analysis.analyze_pair(contexts[i], contexts[j], analyses=analyses, term=a.term)
                           if _comparable(a, b) else Results({}, {}))
        found[i, j].about = f"tables {i + 1} and {j + 1}"
        console.count("pairs", done, len(pairs))
    return [(i, j, found[i, j]) for i, j in pairs]


def analyze_all(items: Sequence[PositionEmbedding], resolution: int | None = None,
                registry: Registry | None = None, probe_protocol: str = PROBE_PROTOCOL,
                ) -> tuple[list[Results], list[tuple[int, int, Results]]]:
    """Every table's results and every pair's (``(i, j, results)`` for i < j): what a report shows.

    Each table is analysed once; its pairs reuse what its analyses computed (``compare_all``).
    """
    from explorer import analysis
    from explorer.plugins.units import warnings_about

    registry = get_registry() if registry is None else registry
    many = len(items) > 1  # then each warning names its table (table 2 (label)), here and in scalars() and arrays()
    results, contexts = [], []
    for k, embedding in enumerate(items, start=1):
        context = analysis.table_context(embedding.matrix, _resolution(resolution), embedding=embedding,
                                         options=_options(probe_protocol))
        progress = None if many else (lambda name, e=embedding: console.step(f"analysing {e.label}: {name}"))
        with warnings_about(f"table {k} ({embedding.label})" if many else None):
            results.append(analysis.analyze_context(context, analyses=registry.analyses, term=embedding.term,
                                                    progress=progress))
        results[-1].about = f"table {k} ({embedding.label})" if many else None
        contexts.append(context)
        if many:
            console.count("analysing", k, len(items))
    return results, compare_all(items, contexts, registry)


def bind(loaded: Sequence[Loaded], analysing: Analysing, registry: Registry | None = None,
         ) -> tuple[list[PositionEmbedding], list[Results], list[tuple[int, int, Results]]]:
    """The tables, results and pairs of tables loaded and analysed by ``table_job`` (in this process or another):
    each table's plain results bound to this process's analyses, its warnings given here, and its pairs computed
    from the shared work its job sent back."""
    import warnings

    from explorer.analysis.context import TableContext
    from explorer.plugins.checks import array_budget
    from explorer.plugins.units import Results

    from explorer.plugins.units import warnings_about

    registry = get_registry() if registry is None else registry
    units = {unit.name: unit for unit in registry.analyses}
    many = len(loaded) > 1
    embeddings, results, contexts = [], [], []
    for k, item in enumerate(loaded, start=1):
        about = f"table {k} ({item.embedding.label})" if many else None
        with warnings_about(about):
            for category, message in item.warnings:
                warnings.warn(message, category, stacklevel=2)
        values = item.values or {}
        embeddings.append(item.embedding)
        results.append(Results({k: v for k, v in values.items() if k in units}, units,
                               array_budget([item.embedding.matrix.shape], analysing.resolution)))
        results[-1].about = about
        contexts.append(TableContext(item.embedding.matrix, analysing.resolution, embedding=item.embedding,
                                     options=analysing.options, memo=item.memo))
    return embeddings, results, compare_all(embeddings, contexts, registry)


def analyze_requests(requests: Sequence[Request], registry: Registry | None = None, *, resolution: int,
                     probe_protocol: str = PROBE_PROTOCOL, keep_going: bool = False, jobs: int = 1,
                     executor: str | None = None,
                     ) -> tuple[list[PositionEmbedding], tuple[str, ...], list[Results], list[tuple[int, int, Results]]]:
    """What the command line runs on many tables: the table count and the memory the run needs (from each spec's
    expected shape, ``explorer.loading.shapes``) checked before anything is loaded, each table loaded and analysed as one job through the run's executor
    (``explorer.runtime.executor``), then the pairs. The tables, their specs, their results and the pairs'; with
    ``keep_going`` each failure is one warning and left out."""
    import warnings

    from explorer.errors import PosembedWarning, SpecError
    from explorer.loading.series import Analysing, run_jobs
    from explorer.loading.shapes import expected_shapes
    from explorer.runtime.executor import executor as open_executor
    from explorer.runtime.limits import check_run

    registry = get_registry() if registry is None else registry
    check_run(expected_shapes([r.spec for r in requests], registry), resolution, [r.named() for r in requests])
    analysing = Analysing(resolution, _options(probe_protocol))
    with open_executor(jobs, executor) as pool:
        loaded, failures = run_jobs(requests, registry, keep_going=keep_going, analysing=analysing, pool=pool)
    for failure in failures:
        warnings.warn(PosembedWarning(f"left out: {failure.line()}"), stacklevel=2)
    if not loaded:
        raise SpecError("every spec failed to load; nothing was written")
    failed = {id(f.request) for f in failures}
    embeddings, results, pairs = bind(loaded, analysing, registry)
    return embeddings, tuple(r.spec for r in requests if id(r) not in failed), results, pairs


def requested_document(requests: Sequence[Request], registry: Registry | None = None, *, resolution: int,
                       probe_protocol: str = PROBE_PROTOCOL, keep_going: bool = False, jobs: int = 1,
                       executor: str | None = None, **page: Any) -> tuple[Any, list[Any]]:
    """What ``posembed report -o FILE`` writes, as a Bokeh document (``document``; ``page``: its keywords) of the tables
    ``analyze_requests`` loads and analyses; and what they were read from (``inputs_of``). The tables and their
    results go when this returns (the document holds its own encoded copy), so they are not alive while the HTML
    is made, the report's peak of memory (docs/performance.md, "A report is one process")."""
    from explorer.runtime.environment import give_back_memory

    embeddings, _, results, pairs = analyze_requests(requests, registry, resolution=resolution, jobs=jobs,
                                                     probe_protocol=probe_protocol, keep_going=keep_going,
                                                     executor=executor)
    give_back_memory()  # in posembed's process only: what the analyses' temporaries left in the heap, before the page
    return (document(embeddings, resolution=resolution, registry=registry, probe_protocol=probe_protocol,
                     analysed=(results, pairs), **page), inputs_of(embeddings))


def _analysed(items: Sequence[PositionEmbedding], resolution: int | None, registry: Registry, probe_protocol: str):
    """``analyze_all`` at the page's resolution: an atlas's default is ``ATLAS_RESOLUTION``."""
    if resolution is None and len(items) >= ATLAS_TABLES:
        resolution = ATLAS_RESOLUTION
    return analyze_all(items, resolution, registry, probe_protocol)


def _tables(embeddings: PositionEmbedding | Sequence[PositionEmbedding], what: str) -> list[PositionEmbedding]:
    from explorer.core.embedding import PositionEmbedding
    from explorer.core.relative import RelativePositionTerm
    from explorer.core.conv import ConvKernel
    from explorer.core.window import WindowBias

    single = isinstance(embeddings, (PositionEmbedding, RelativePositionTerm, WindowBias, ConvKernel))
    items = [embeddings] if single else list(embeddings)
    if not items:
        raise EmbeddingError(f"{what} needs at least one table")
    return items


def check_scale(scale: str = "auto", vmax: float | None = None) -> None:
    """Refuse an unknown colour scale or a ``vmax`` that is not a positive number (``OutputError``)."""
    import math

    if scale not in SCALES:
        raise OutputError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if vmax is not None and not (isinstance(vmax, (int, float)) and math.isfinite(vmax) and vmax > 0):
        raise OutputError(f"vmax must be a positive number, got {vmax!r}")


def document(embeddings: PositionEmbedding | Sequence[PositionEmbedding], *, title: str | None = None,
             resolution: int | None = None, registry: Registry | None = None, shared_scale: bool = False,
             scale: str = "auto", vmax: float | None = None, probe_protocol: str = PROBE_PROTOCOL,
             analysed: tuple[list[Results], list[tuple[int, int, Results]]] | None = None):
    """The report as a Bokeh ``Document`` (analyses, then every registered section), for embedding elsewhere.

    The matrix colour scale: each table its own (``shared_scale=True``: one for all), ``scale`` ``auto``
    (symlog for heavy-tailed tables, else linear), ``linear`` or ``symlog``, and ``vmax`` the end of its range.
    Three or more tables make an atlas, whose default resolution is ``ATLAS_RESOLUTION`` (docs/report.md).
    ``probe_protocol``: ``ridge`` or ``wang-chen`` (docs/analyses.md). ``analysed``: the tables' results and
    pairs when they are already computed (``analyze_all``, ``bind``).
    """
    check_scale(scale, vmax)  # before any work
    _options(probe_protocol)
    items = _tables(embeddings, "a report")
    registry = get_registry() if registry is None else registry
    results, pairs = analysed or _analysed(items, resolution, registry, probe_protocol)
    console.step("building the page")
    from explorer.reporting.page import build_document  # imports Bokeh

    return build_document(items, results, pairs, title=title, sections=registry.sections,
                          shared_scale=shared_scale, scale=scale, vmax=vmax)


def report(
    embeddings: PositionEmbedding | Sequence[PositionEmbedding],
    path: str | Path | None = None,
    *,
    title: str | None = None,
    resources: str = "inline",
    resolution: int | None = None,
    registry: Registry | None = None,
    shared_scale: bool = False,
    scale: str = "auto",
    vmax: float | None = None,
    probe_protocol: str = PROBE_PROTOCOL,
    analysed: tuple[list[Results], list[tuple[int, int, Results]]] | None = None,
) -> str:
    """Build the standalone HTML report for one table (or several side by side).

    Returns the HTML; with ``path`` it is also written there atomically. ``shared_scale``, ``scale`` and
    ``vmax`` choose the matrix colour scale, ``analysed`` passes results already computed (see :func:`document`).
    """
    from explorer.reporting.page import bokeh_resources, write

    bokeh_resources(resources)  # a bad choice fails before any work
    with console.stage("preparing the report"):
        doc = document(embeddings, title=title, resolution=resolution, registry=registry, shared_scale=shared_scale,
                       scale=scale, vmax=vmax, probe_protocol=probe_protocol, analysed=analysed)
        console.step("writing the page")
        return write(doc, path, resources, inputs_of(_tables(embeddings, "a report")))


def inputs_of(embeddings: Sequence[PositionEmbedding]) -> list[Any]:
    """What the tables were read from (``PositionEmbedding.inputs``): files a report must not be written over."""
    return [value for embedding in embeddings for value in embedding.inputs()]


def site(
    embeddings: Sequence[PositionEmbedding],
    folder: str | Path,
    *,
    title: str | None = None,
    resources: str = "inline",
    resolution: int | None = None,
    registry: Registry | None = None,
    shared_scale: bool = False,
    scale: str = "auto",
    vmax: float | None = None,
    probe_protocol: str = PROBE_PROTOCOL,
    analysed: tuple[list[Results], list[tuple[int, int, Results]]] | None = None,
) -> dict[str, int]:
    """Write a folder site for many tables (``posembed report ... -o DIR/``): ``index.html`` with the atlas and the
    series' dynamics, one page per table linked from it, BokehJS once (``explorer.reporting.site``).

    The folder is replaced as a whole, or left as it was when anything fails; one that holds anything but an
    earlier site is refused. Returns the bytes of each file written, by its name inside the folder. The keywords
    are :func:`report`'s (``shared_scale`` holds on every table's page too).
    """
    from explorer.analysis.probes import check_protocol
    from explorer.reporting.page import bokeh_resources
    from explorer.runtime.output import check_folder

    bokeh_resources(resources)  # a bad choice fails before any work
    check_scale(scale, vmax)
    check_protocol(probe_protocol)
    items = _tables(embeddings, "a site")
    if len(items) < ATLAS_TABLES:
        raise OutputError(f"a folder site is an atlas's index and a page per table: it needs at least {ATLAS_TABLES} "
                          f"tables, got {len(items)}; write one file instead (-o report.html)")
    inputs = inputs_of(items)
    check_folder(folder, inputs)
    registry = registry or get_registry()
    with console.stage("preparing the site"):
        results, pairs = analysed or _analysed(items, resolution, registry, probe_protocol)
        console.step("building the pages")
        from explorer.reporting.site import write_site  # imports Bokeh

        return write_site(folder, items, results, pairs, sections=registry.sections, title=title,
                          resources=resources, shared_scale=shared_scale, scale=scale, vmax=vmax, inputs=inputs)


def show(
    embeddings: PositionEmbedding | Sequence[PositionEmbedding],
    *,
    title: str | None = None,
    resolution: int | None = None,
    resources: str = "inline",
    registry: Registry | None = None,
    shared_scale: bool = False,
    scale: str = "auto",
    vmax: float | None = None,
    probe_protocol: str = PROBE_PROTOCOL,
) -> None:
    """Show the report inline in Jupyter, through Bokeh's public notebook API (``output_notebook`` + ``show``).

    BokehJS goes into the notebook inline by default, so it works with no internet; ``resources="cdn"`` loads
    it from the CDN instead. What is shown is the report's own document, its ``document_ready`` callback
    included; the notebook's current Bokeh document is left as it was. Returns nothing, so a cell ending in
    ``show(...)`` prints no stray output; use :func:`document` for the Bokeh objects themselves.
    """
    from bokeh.io import output_notebook
    from bokeh.io import show as bokeh_show
    from bokeh.io.state import curstate

    from explorer.reporting.page import bokeh_resources

    kind = bokeh_resources(resources)  # a bad choice fails before any work
    doc = document(embeddings, title=title, resolution=resolution, registry=registry, shared_scale=shared_scale,
                   scale=scale, vmax=vmax, probe_protocol=probe_protocol)
    [layout] = doc.roots
    output_notebook(resources=kind, hide_banner=True)
    # In a notebook bokeh.io.show adds what it shows to the current document, then embeds a fresh copy that takes
    # only the current document's JS callbacks. Shown from its own document, the layout would be refused (a model
    # belongs to one document); moved into the notebook's, it would lose document_ready. So the report's document
    # is the current one while it is shown (bokeh.io.state's public State.document), and is put back after.
    state = curstate()
    previous = state.document
    state.document = doc
    try:
        bokeh_show(layout)
    finally:
        state.document = previous
