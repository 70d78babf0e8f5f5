"""The report's value codes: what the browser decodes is within half a code step of the truth."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from page_oracle import unpack_lower  # tests/page_oracle.py

from explorer.analysis import matrix_image
from explorer.reporting import encoding


def half_step_at(scale, codes):
    table = scale.table.astype(np.float64)
    gaps = np.diff(table)
    left = np.concatenate([[0.0], gaps])[codes]
    right = np.concatenate([gaps, [0.0]])[codes]
    return np.maximum(left, right) / 2


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 10), st.floats(1.0, 50), st.lists(st.floats(-1, 1), min_size=1, max_size=50))
def test_symmetric_codes_decode_within_half_a_step(limit, stretch, unit):
    scale = encoding.symmetric_scale(limit, limit * stretch)
    values = np.array(unit) * limit * stretch
    codes = encoding.quantise(values, scale)
    error = np.abs(encoding.decode(codes, scale) - values)
    assert np.all(error <= half_step_at(scale, codes) * 1.0001 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-4, 0.1), st.floats(2, 1e4), st.lists(st.floats(-1, 1), min_size=1, max_size=50))
def test_symlog_codes_keep_relative_precision(linthresh, ratio, unit):
    scale = encoding.symlog_scale(linthresh, linthresh * ratio)
    values = np.array(unit) * linthresh * ratio
    decoded = encoding.decode(encoding.quantise(values, scale), scale)
    step = np.exp(np.log(ratio) / (encoding.LEVELS // 2 - 16)) - 1
    bound = np.maximum(np.abs(values) * step / 2, linthresh / 16) * 1.01 + 1e-7
    assert np.all(np.abs(decoded - values) <= bound)


def test_codes_are_monotone_and_nan_is_neutral():
    scale = encoding.symmetric_scale(1.0, 5.0)
    assert np.all(np.diff(scale.table) > 0) and scale.saturates
    codes = encoding.quantise(np.array([-5, -1, 0, 1, 5, np.nan]), scale)
    assert list(codes[:2]) == [0, scale.low_code] and list(codes[3:5]) == [scale.high_code, 255]
    assert abs(encoding.decode(codes[5:], scale)[0]) <= np.diff(scale.table).max()


def test_lower_triangle_packing_round_trips_a_symmetric_image():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (7, 7), dtype=np.uint8)
    sym = np.tril(a) + np.tril(a, -1).T
    packed = encoding.pack_lower(sym)
    assert packed.shape == (28,) and packed.dtype == np.uint8
    assert np.array_equal(unpack_lower(packed, 7), sym)


def test_heavy_tailed_tables_get_a_symlog_scale(gpt2_wpe):
    scale = encoding.matrix_scale([matrix_image(gpt2_wpe)])
    assert scale.kind == "symlog" and scale.extreme == pytest.approx(4.538, abs=1e-3)
    assert 0.001 < scale.linthresh < 0.01  # the median |value|: most of GPT-2's cells are tiny
    labels = scale.ticks()
    assert "0" in labels.values() and "0.1" in labels.values() and "-0.1" in labels.values()


def test_even_tables_get_a_linear_robust_range():
    x = np.sin(np.linspace(0, 40, 4000)).reshape(100, 40).astype(np.float32)
    x[3, 5] = 30.0  # one outlier must not wash out the colours
    scale = encoding.matrix_scale([matrix_image(x)])
    assert scale.kind == "linear" and scale.saturates
    assert scale.limit < 1.01 and scale.extreme == pytest.approx(30.0)


def test_comparison_scale_covers_every_table():
    a = matrix_image(np.full((4, 3), 0.5, np.float32))
    b = matrix_image(np.full((4, 3), -2.0, np.float32))
    scale = encoding.matrix_scale([a, b])
    assert scale.table[0] <= -2.0 and scale.table[-1] >= 2.0
