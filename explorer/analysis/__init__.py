"""Pure analyses: numpy arrays in, small result objects out; no I/O, no plotting.

Each analysis is a declared unit (``explorer.Analysis``) in the module that computes it (its ``ANALYSES``);
``analyze(matrix)`` loops over the registered ones (default: the built-ins, ``builtin.py``) and returns their
``Results``; each piece is also a function of its own (see ``docs/analyses.md`` for the formulas).
``analyze_pair(a, b)`` runs the pair analyses (``compare``); ``scalars`` and ``arrays`` flatten results for
JSON and ``.npz``.

Memory stays O(N D + R^2) for an N x D table at display resolution R: nothing N x N is formed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from explorer.analysis.builtin import builtin_analyses
from explorer.analysis.compare import Comparison, compare, linear_cka, similarity_correlation
from explorer.analysis.context import TableContext
from explorer.analysis.decomposition import PCA, CentredEigen, Spectrum, centred_eigen, effective_rank, pca, spectrum
from explorer.analysis.frequencies import DimensionFrequencies, dimension_frequencies
from explorer.analysis.matrix import MatrixImage, matrix_image
from explorer.analysis.norms import RowNorms, norm_profile, row_norms
from explorer.analysis.offset import (OffsetProfile, offset_analysis, offset_mean, offset_moments, offset_profile,
                                      offset_spread, translation_invariance)
from explorer.analysis.probes import Probes, probes
from explorer.analysis.resample import block_mean, envelope
from explorer.analysis.similarity import SimilarityImage, cosine_image
from explorer.analysis.summary import summarize
from explorer.analysis.table import as_table, check_resolution
from explorer.analysis.traces import FineCodes, Traces, default_trace_dims, dimension_traces, fine_codes, trace_dims
from explorer.plugins.checks import array_budget
from explorer.plugins.units import Analysis, Failed, Results, guarded

if TYPE_CHECKING:
    from explorer.core.embedding import PositionEmbedding

#: Default display resolution R: images are at most R x R, series at most 2R points.
RESOLUTION = 1024

# Note: the functions ``compare``, ``pca``, ``spectrum`` and ``probes`` share their names with submodules;
# ``explorer.analysis.probes`` is the function. Import from the submodule path for anything else in it.
__all__ = [
    "RESOLUTION", "CentredEigen", "Comparison", "DimensionFrequencies", "FineCodes", "MatrixImage", "OffsetProfile", "PCA",
    "Probes", "Results", "RowNorms", "SimilarityImage", "Spectrum", "Traces", "analyze", "analyze_pair", "arrays",
    "as_table", "block_mean", "builtin_analyses", "centred_eigen", "check_resolution", "compare", "cosine_image",
    "default_trace_dims", "dimension_frequencies", "dimension_traces", "effective_rank", "envelope", "fine_codes", "linear_cka",
    "matrix_image", "norm_profile", "offset_analysis", "offset_mean", "offset_moments", "offset_profile",
    "offset_spread", "pca", "probes", "row_norms", "scalars", "similarity_correlation", "spectrum", "summarize",
    "trace_dims", "translation_invariance",
]


def _run(analyses: Sequence[Analysis], call: Callable[[Analysis], Any],
         progress: Callable[[str], None] | None = None, max_elements: int | None = None) -> Results:
    """Each analysis's result, by name; a plugin's failure is one warning and leaves its result out.

    Each warning (e.g. zero rows, whose cosines are NaN) is issued once, however many analyses meet it.
    ``progress(name)`` is called before each analysis runs (the caller decides what to show: this layer has
    no terminal).
    """
    values: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for unit in analyses:
            if progress is not None:
                progress(unit.name)
            value = guarded(unit, lambda: call(unit))
            if not isinstance(value, Failed):
                values[unit.name] = value
    seen = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return Results(values, {unit.name: unit for unit in analyses}, max_elements)


def analyze(x: np.ndarray, resolution: int = RESOLUTION, *, seed: int = 0,
            analyses: Sequence[Analysis] | None = None, term: str = "absolute",
            embedding: PositionEmbedding | None = None, progress: Callable[[str], None] | None = None,
            options: Mapping[str, Any] | None = None) -> Results:
    """Run the analyses (default: the built-in ones) that take ``term`` on the table ``x`` (positions x dims).

    ``embedding`` is the ``PositionEmbedding`` ``x`` came from, when there is one (analyses may read its
    provenance). ``progress(name)`` is called before each analysis; ``options`` are the run's settings, which
    the analyses read from ``TableContext.options`` (``probe_protocol``: ``ridge`` or ``wang-chen``). Memory stays O(N D + R^2): no analysis forms an
    N x N matrix.
    """
    context = TableContext(as_table(x), check_resolution(resolution), seed, embedding, options)
    chosen = [a for a in (builtin_analyses() if analyses is None else analyses) if not a.pair and term in a.terms]
    return _run(chosen, lambda unit: unit.run(context), progress,
                array_budget([context.matrix.shape], context.resolution))


def analyze_pair(a: np.ndarray, b: np.ndarray, resolution: int = RESOLUTION, *,
                 analyses: Sequence[Analysis] | None = None, term: str = "absolute",
                 embeddings: tuple[PositionEmbedding, PositionEmbedding] | None = None,
                 progress: Callable[[str], None] | None = None) -> Results:
    """Run the pair analyses (default: the built-in ``comparison``) on two tables."""
    resolution = check_resolution(resolution)
    first_embedding, second_embedding = embeddings or (None, None)
    first = TableContext(as_table(a), resolution, embedding=first_embedding)
    second = TableContext(as_table(b), resolution, embedding=second_embedding)
    chosen = [u for u in (builtin_analyses() if analyses is None else analyses) if u.pair and term in u.terms]
    return _run(chosen, lambda unit: unit.run(first, second), progress,
                array_budget([first.matrix.shape, second.matrix.shape], resolution))


def scalars(results: Results) -> dict[str, float]:
    """Every scalar the analyses declared, as plain floats (NaN where undefined): ``posembed analyze --json``."""
    return results.scalars()


def arrays(results: Results, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array the analyses declared, keyed ``prefix + "analysis.field"``: ``posembed analyze --npz``."""
    return results.arrays(prefix)
