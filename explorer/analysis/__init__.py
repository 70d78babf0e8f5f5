"""Pure analyses: numpy arrays in, small result objects out; no I/O, no plotting.

``analyze(matrix)`` runs the whole set that the report shows; each piece is also a
function of its own (see ``docs/analyses.md`` for the formulas). ``compare(a, b)`` sets two
tables side by side; ``scalars`` and ``arrays`` flatten the results for JSON and ``.npz``.

Memory stays O(N D + R^2) for an N x D table at display resolution R: nothing N x N is formed.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from explorer.analysis.compare import Comparison, linear_cka, similarity_correlation
from explorer.analysis.compare import compare as _compare
from explorer.analysis.decomposition import PCA, CentredEigen, Spectrum, centred_eigen, effective_rank, pca, spectrum
from explorer.analysis.frequencies import DimensionFrequencies, dimension_frequencies
from explorer.analysis.norms import RowNorms, norm_profile, row_norms
from explorer.analysis.offset import (OffsetProfile, offset_analysis, offset_mean, offset_moments, offset_profile,
                                      offset_spread, translation_invariance)
from explorer.analysis.probes import Probes, probes
from explorer.analysis.resample import block_mean, envelope
from explorer.analysis.similarity import SimilarityImage, cosine_image
from explorer.analysis.summary import summarize
from explorer.analysis.table import as_table, check_resolution

#: Default display resolution R: images are at most R x R, series at most 2R points.
RESOLUTION = 1024

# Note: the functions ``compare``, ``pca``, ``spectrum`` and ``probes`` share their names with submodules;
# ``explorer.analysis.probes`` is the function. Import from the submodule path for anything else in it.
__all__ = [
    "RESOLUTION", "Analysis", "CentredEigen", "Comparison", "DimensionFrequencies", "MatrixImage", "OffsetProfile", "PCA", "Probes",
    "RowNorms", "SimilarityImage", "Spectrum", "Traces", "analyze", "arrays", "as_table", "block_mean",
    "centred_eigen", "check_resolution", "compare", "comparison_scalars", "cosine_image", "default_trace_dims", "dimension_frequencies",
    "dimension_traces", "effective_rank", "envelope", "linear_cka", "matrix_image", "norm_profile", "offset_analysis",
    "offset_mean", "offset_moments", "offset_profile", "offset_spread", "pca", "probes", "row_norms", "scalars",
    "similarity_correlation", "spectrum", "summarize", "translation_invariance",
]


@dataclass(frozen=True)
class MatrixImage:
    """The table reduced to display resolution by block means (positions on axis 1)."""

    values: np.ndarray  # dims x positions, float32
    position_bounds: np.ndarray
    dimension_bounds: np.ndarray


@dataclass(frozen=True)
class Traces:
    """Chosen dimensions' values across positions, min/max-decimated for long tables."""

    dims: np.ndarray
    index: np.ndarray  # first position of each block
    low: np.ndarray  # dims x blocks
    high: np.ndarray


@dataclass(frozen=True)
class Analysis:
    """Every result the report draws for one table."""

    summary: dict[str, float]
    matrix: MatrixImage
    positions: SimilarityImage
    dimensions: SimilarityImage
    traces: Traces
    positions_centred: SimilarityImage
    dimensions_centred: SimilarityImage
    offset: OffsetProfile
    translation_invariance: float
    norms: RowNorms
    pca: PCA
    spectrum: Spectrum
    frequencies: DimensionFrequencies
    probes: Probes | None
    """None when the table has fewer than ``probes.MIN_POSITIONS`` positions."""


def matrix_image(x: np.ndarray, resolution: int = RESOLUTION) -> MatrixImage:
    """``x`` transposed to dims x positions and block-averaged to at most ``resolution`` on each axis."""
    values, dimension_bounds, position_bounds = block_mean(x.T, resolution, resolution)
    return MatrixImage(values, position_bounds, dimension_bounds)


def default_trace_dims(dim: int, count: int = 4) -> np.ndarray:
    """``count`` dimensions spread evenly over ``range(dim)``, starting at 0."""
    return np.unique(np.linspace(0, dim, min(count, dim), endpoint=False).astype(np.int64))


def dimension_traces(x: np.ndarray, dims: np.ndarray, resolution: int = RESOLUTION) -> Traces:
    """Values of dimensions ``dims`` across positions, as min/max envelopes of at most ``resolution`` blocks."""
    dims = np.asarray(dims, dtype=np.int64)
    index, low, high = zip(*(envelope(x[:, d], resolution) for d in dims)) if len(dims) else ((), (), ())
    start = index[0] if index else np.zeros(0, np.int64)
    return Traces(dims, start, np.array(low, dtype=np.float32), np.array(high, dtype=np.float32))


def analyze(x: np.ndarray, resolution: int = RESOLUTION, *, seed: int = 0) -> Analysis:
    """Run every analysis the report shows on the table ``x`` (positions x dims).

    Each warning (e.g. zero rows, whose cosines are NaN) is issued once, however many analyses meet it.
    """
    resolution = check_resolution(resolution)
    x = as_table(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        offset, invariance = offset_analysis(x, resolution, seed=seed)
        eigen = centred_eigen(x)  # one eigen-decomposition, shared by PCA, the spectrum and the order probe
        result = Analysis(
            summary=summarize(x),
            matrix=matrix_image(x, resolution),
            positions=cosine_image(x, resolution, axis="positions"),
            dimensions=cosine_image(x, resolution, axis="dimensions"),
            traces=dimension_traces(x, default_trace_dims(x.shape[1]), resolution),
            positions_centred=cosine_image(x, resolution, centred=True, axis="positions"),
            dimensions_centred=cosine_image(x, resolution, centred=True, axis="dimensions"),
            offset=offset,
            translation_invariance=invariance,
            norms=norm_profile(x, resolution),
            pca=pca(x, eigen=eigen),
            spectrum=spectrum(x, eigen),
            frequencies=dimension_frequencies(x),
            probes=probes(x, seed=seed, eigen=eigen),
        )
    seen = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def compare(a: np.ndarray, b: np.ndarray, resolution: int = RESOLUTION) -> Comparison:
    """Linear CKA, similarity-image correlation and offset profiles of two tables on their common positions."""
    return _compare(a, b, resolution)


def scalars(analysis: Analysis) -> dict[str, float]:
    """Every scalar result of ``analysis`` as plain floats (NaN where undefined), for ``posembed analyze --json``."""
    out = {key: float(value) for key, value in analysis.summary.items()}
    out["translation_invariance"] = float(analysis.translation_invariance)
    explained = analysis.pca.explained.astype(np.float64)
    for k, share in enumerate(explained, start=1):
        out[f"pca_explained_{k}"] = float(share)
    out["pca_explained_top3"] = float(explained[:3].sum()) if len(explained) else float("nan")
    out["pca_mean_norm"] = analysis.pca.mean_norm
    singular = analysis.spectrum.singular_values
    out["singular_value_max"] = float(singular[0]) if len(singular) else float("nan")
    out["effective_rank"] = float(analysis.spectrum.effective_rank)
    out["offset_spread_max"] = float(np.nanmax(analysis.offset.std)) if np.isfinite(analysis.offset.std).any() \
        else float("nan")
    if analysis.probes is not None:
        for field in dataclasses.fields(analysis.probes):
            out[f"probe_{field.name}"] = float(getattr(analysis.probes, field.name))
    return out


def comparison_scalars(comparison: Comparison) -> dict[str, float]:
    """The scalar results of ``compare`` as plain floats."""
    return {"cka": comparison.cka, "similarity_correlation": comparison.similarity_correlation,
            "positions": float(comparison.positions)}


def arrays(result: Analysis | Comparison, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array in ``result`` (an ``Analysis`` or a ``Comparison``), keyed ``prefix + "view.field"``."""
    out: dict[str, np.ndarray] = {}

    def walk(obj, name: str) -> None:
        if isinstance(obj, np.ndarray):
            out[prefix + name] = obj
        elif dataclasses.is_dataclass(obj):
            for field in dataclasses.fields(obj):
                walk(getattr(obj, field.name), f"{name}.{field.name}" if name else field.name)

    walk(result, "")
    return out
