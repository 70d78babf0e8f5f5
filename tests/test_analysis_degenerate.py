"""Degenerate tables: zero rows, one position, one dimension, constant columns, and random input."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from explorer.analysis import analyze, compare, scalars
from explorer.analysis.offset import offset_mean
from explorer.errors import EmbeddingError, PosembedError, PosembedWarning


def test_zero_row_gives_nan_cosines_one_warning_and_no_crash():
    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    x[7] = 0
    with pytest.warns(PosembedWarning, match="zero position") as record:
        result = analyze(x)
    assert len([w for w in record if "zero position" in str(w.message)]) == 1  # once, not once per analysis
    assert np.isnan(result.cosine_positions.values[7]).all()
    # the offset profile averages the defined pairs only
    assert result.offset.pairs[1] == 29 - 2 and np.isfinite(result.offset.mean).all()
    assert np.isfinite(result.translation_invariance)
    assert result.norms.min == 0.0


def test_zero_row_is_left_out_of_the_offset_profile():
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    x[3] = 0
    with pytest.warns(PosembedWarning):
        mean = offset_mean(x)
    keep = np.ones(20, bool)
    keep[3] = False
    unit = x / np.where(keep, np.linalg.norm(x, axis=1), 1)[:, None]
    c = unit @ unit.T
    expected = [np.mean([c[i, i + k] for i in range(20 - k) if keep[i] and keep[i + k]]) for k in range(20)]
    np.testing.assert_allclose(mean, expected, atol=1e-6)


def test_all_zero_table_is_nan_not_an_error():
    with pytest.warns(PosembedWarning):
        result = analyze(np.zeros((12, 3), np.float32))
    assert np.isnan(result.translation_invariance) and np.isnan(result.spectrum.effective_rank)
    assert np.isnan(result.pca.explained).all() and np.isnan(result.frequencies.frequency).all()


def test_single_position():
    with warnings.catch_warnings(record=True):  # centring leaves the only row at zero: NaN centred cosines
        warnings.simplefilter("always")
        result = analyze(np.array([[1.0, 2.0, 3.0]], np.float32))
    assert result.translation_invariance == pytest.approx(1.0)
    assert result.offset.lag.tolist() == [0] and result.offset.mean[0] == pytest.approx(1.0)
    assert result.probes is None and np.isnan(result.frequencies.frequency).all()
    assert result.pca.scores.shape == (1, 3) and not result.pca.scores.any()
    assert len(result.spectrum.singular_values) == 1


def test_single_dimension():
    x = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]  # signs flip once: cosines are +1 or -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosembedWarning)  # the row at 0 (if any) has no direction
        result = analyze(x)
    assert set(np.unique(result.cosine_positions.values[np.isfinite(result.cosine_positions.values)])) <= {-1.0, 1.0}
    assert result.pca.explained.tolist() == [1.0] and result.spectrum.effective_rank == pytest.approx(1.0)
    assert result.probes.absolute_mae < 1  # the value is the position, linearly


def test_constant_columns_have_no_frequency_and_no_centred_direction():
    x = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    x[:, 2] = 0.5
    with pytest.warns(PosembedWarning, match="zero dimension"):
        result = analyze(x)
    assert np.isnan(result.frequencies.frequency[2]) and np.isfinite(result.frequencies.frequency[[0, 1, 3]]).all()
    assert np.isnan(result.cosine_dimensions_centred.values[2]).all()
    assert np.isfinite(result.cosine_dimensions.values).all()


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5), np.array([[1.0, np.nan]]), np.array([[np.inf]]),
                                 np.array([["a"]]), np.array([[1e300]])])
def test_unusable_input_is_refused_with_the_projects_error(bad):
    with pytest.raises(EmbeddingError):
        analyze(bad)


def test_bad_resolution_is_refused():
    with pytest.raises(EmbeddingError, match="resolution"):
        analyze(np.ones((3, 3), np.float32), resolution=0)


def test_every_float_array_is_float32():
    from explorer.analysis import arrays

    result = analyze(np.random.default_rng(3).normal(size=(50, 6)).astype(np.float32))
    floats = {k: v.dtype for k, v in arrays(result).items() if v.dtype.kind == "f"}
    assert floats and all(dtype == np.float32 for dtype in floats.values()), floats


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)  # the whole float32 range
tables = st.tuples(st.integers(1, 40), st.integers(1, 9)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=st.one_of(finite32, st.sampled_from([0.0, 1.0, -1e-40]))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables, st.integers(1, 50))
def test_random_tables_raise_nothing_but_the_projects_errors(x, resolution):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosembedWarning)
        warnings.simplefilter("error", RuntimeWarning)  # numpy overflow/invalid would mean a silent wrong number
        try:
            result = analyze(x, resolution)
            values = scalars(result)
            comparison = compare(x, x[::-1], resolution)
        except PosembedError:
            return
    assert result.cosine_positions.values.shape[0] <= resolution and len(result.offset.lag) <= min(resolution, len(x))
    assert all(isinstance(v, float) for v in values.values())
    if np.isfinite(result.translation_invariance):
        assert -1e-6 <= result.translation_invariance <= 1 + 1e-6
    assert comparison.positions == len(x)
