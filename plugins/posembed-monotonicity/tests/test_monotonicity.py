import json
import tracemalloc
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.api import document
from explorer.cli import cli
from posembed_monotonicity import indicators


def naive(x, max_offset):
    """The definitions read literally, from the full N x N cosine matrix: M(k), S(k), M and S."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = unit.astype(np.float64) @ unit.T.astype(np.float64)
    n, size = len(x), min(len(x) - 1, max_offset)
    wins, triples, cross, energy = np.zeros(size + 1), np.zeros(size + 1), np.zeros(size + 1), np.zeros(size + 1)
    for i in range(n):
        for k in range(1, size + 1):
            for step in (1, -1):
                if 0 <= i + step * k < n:
                    for nearer in range(1, k):
                        a, b = cos[i, i + step * nearer], cos[i, i + step * k]
                        wins[k] += 1.0 if a > b else 0.5 if a == b else 0.0
                        triples[k] += 1
            if 0 <= i - k and i + k < n:
                f, g = cos[i, i + k], cos[i, i - k]
                cross[k] += 2 * f * g
                energy[k] += f * f + g * g
    with np.errstate(invalid="ignore"):
        return wins[1:] / triples[1:], cross[1:] / energy[1:], wins.sum() / triples.sum(), cross.sum() / energy.sum()


def rotation(n):
    """A strictly monotone table: row i is the unit vector at angle i * theta, with (n - 1) * theta < pi."""
    angle = np.arange(n) * (3.0 / n)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)


def test_the_sinusoid_is_monotone_over_short_offsets_and_symmetric():
    sinusoid = explorer.load("sinusoidal,positions=1024,dim=768").matrix
    short = indicators(sinusoid, max_offset=32)
    assert short.overall_monotonicity == 1.0
    assert short.overall_symmetry > 0.999999  # cos(p_i, p_i+k) depends on k alone: ahead = behind
    assert indicators(sinusoid).overall_monotonicity < 1.0  # far apart, its cosines oscillate


def test_a_random_table_is_near_chance():
    found = indicators(np.random.default_rng(0).normal(size=(1024, 256)).astype(np.float32))
    assert abs(found.overall_monotonicity - 0.5) < 0.01
    assert abs(found.overall_symmetry) < 0.02


def test_a_strictly_monotone_table_scores_one():
    found = indicators(rotation(200), max_offset=64)
    assert found.overall_monotonicity == 1.0
    np.testing.assert_array_equal(found.monotonicity[1:], 1.0)
    assert np.isnan(found.monotonicity[0])  # at k = 1 there is no nearer offset to compare with


def test_reversing_the_table_leaves_both_indicators_unchanged():
    walk = np.cumsum(np.random.default_rng(1).normal(size=(120, 16)), axis=0).astype(np.float32)
    found, reversed_ = indicators(walk, max_offset=30), indicators(walk[::-1], max_offset=30)
    np.testing.assert_allclose(reversed_.monotonicity, found.monotonicity, rtol=1e-6)
    np.testing.assert_allclose(reversed_.symmetry, found.symmetry, rtol=1e-6)


def test_symmetry_sees_what_lies_ahead_differ_from_what_lies_behind():
    """Rows in equal pairs, pairs orthogonal: each position's twin is ahead or behind, never both."""
    pairs = np.repeat(np.eye(50, dtype=np.float32), 2, axis=0)
    found = indicators(pairs, max_offset=4)
    assert found.symmetry[0] == 0.0  # k = 1: one side is the twin (cosine 1), the other orthogonal (0)


def test_the_fast_indicators_equal_the_naive_definitions():
    walk = np.cumsum(np.random.default_rng(2).normal(size=(90, 8)), axis=0).astype(np.float32)
    found = indicators(walk, max_offset=25)  # 90 positions: every position is an anchor
    m, s, overall_m, overall_s = naive(walk, 25)
    np.testing.assert_allclose(found.monotonicity, m, rtol=1e-6)
    np.testing.assert_allclose(found.symmetry, s, rtol=1e-5)
    assert found.overall_monotonicity == pytest.approx(overall_m, rel=1e-12)
    assert found.overall_symmetry == pytest.approx(overall_s, rel=1e-9)


def test_a_long_table_is_estimated_from_sampled_anchors_close_to_the_exact_value():
    walk = np.cumsum(np.random.default_rng(3).normal(size=(1500, 8)), axis=0).astype(np.float32)
    found = indicators(walk, max_offset=12)
    assert found.anchors == 256
    exact_m, exact_s = naive(walk, 12)[2:]
    assert found.overall_monotonicity == pytest.approx(exact_m, abs=0.02)
    assert found.overall_symmetry == pytest.approx(exact_s, abs=0.02)


def test_the_same_seed_gives_the_same_estimate():
    table = np.random.default_rng(4).normal(size=(3000, 32)).astype(np.float32)
    first, again, other = indicators(table, seed=1), indicators(table, seed=1), indicators(table, seed=2)
    np.testing.assert_array_equal(first.symmetry, again.symmetry)
    assert first.overall_monotonicity == again.overall_monotonicity != other.overall_monotonicity


def test_memory_grows_with_the_table_not_its_square():
    table = np.random.default_rng(5).normal(size=(20_000, 64)).astype(np.float32)  # N x N float64: 3.2 GB
    tracemalloc.start()
    indicators(table)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 25e6  # ~ one float64 copy of the table (10 MB); N x N would be 3.2 GB


def test_posembed_analyze_prints_the_scalars(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "monotonicity")  # this plugin only, through its entry point
    spec = "sinusoidal,positions=256,dim=64"
    result = CliRunner().invoke(cli, ["analyze", spec, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scalars = json.loads(result.stdout)["tables"][0]["scalars"]
    expected = indicators(explorer.load(spec).matrix)
    assert scalars["monotonicity"] == pytest.approx(expected.overall_monotonicity)
    assert scalars["symmetry"] == pytest.approx(expected.overall_symmetry)


def test_the_report_shows_the_section_with_its_numbers(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "monotonicity")
    table = explorer.load("sinusoidal,positions=256,dim=64")
    page = document(table)  # the report's Bokeh document, before it is written as HTML
    texts = " ".join(model.text for model in page.models if type(model).__name__ == "Div")
    assert "monotonicity and symmetry (Wang et al. 2021)" in texts
    expected = indicators(table.matrix)
    assert f"monotonicity M = {expected.overall_monotonicity:.3f}" in texts
    assert page.select_one({"name": "monotonicity"}) is not None  # the figure


def test_a_table_too_short_for_a_triple_gets_no_section(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "monotonicity")
    table = explorer.PositionEmbedding(np.array([[1.0, 0.0], [0.0, 1.0]]), provider="tiny", source="two rows")
    assert indicators(table.matrix) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the section leaves itself out; it does not fail and get skipped
        page = document(table)
    assert page.select_one({"name": "monotonicity"}) is None and page.select_one({"name": "matrix"}) is not None
