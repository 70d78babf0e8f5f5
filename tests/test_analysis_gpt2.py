"""Properties of GPT-2 small's real learned table (skipped when ../shared/data is absent)."""

import numpy as np
import pytest

from explorer.analysis import analyze, compare, scalars, translation_invariance
from explorer.providers.sinusoidal import sinusoidal_table


_ANALYSES = {}


@pytest.fixture
def gpt2_wpe_analysis(gpt2_wpe):
    """The analysis of the real table, computed once for the module (the table fixture is per test)."""
    if "gpt2" not in _ANALYSES:
        _ANALYSES["gpt2"] = analyze(gpt2_wpe)
    return _ANALYSES["gpt2"]


def test_neighbouring_positions_are_nearly_parallel(gpt2_wpe_analysis):
    result = gpt2_wpe_analysis
    assert result.summary["neighbour_cosine_mean"] > 0.99  # measured 0.9974
    assert result.offset.mean[1] > 0.99 and result.offset.mean[0] == pytest.approx(1.0)
    # similarity falls with distance: far-apart positions are much less alike than neighbours
    assert result.offset.mean[512] < result.offset.mean[1] - 0.3


def test_three_components_carry_most_of_the_variance_the_helix(gpt2_wpe_analysis):
    explained = gpt2_wpe_analysis.pca.explained
    assert explained[:3].sum() > 0.85  # measured 0.904
    assert explained[3] < 0.05 and np.all(np.diff(explained) <= 0)


def test_learned_table_is_far_less_translation_invariant_than_the_sinusoid(gpt2_wpe_analysis):
    assert 0.3 < gpt2_wpe_analysis.translation_invariance < 0.8  # measured 0.556
    assert translation_invariance(sinusoidal_table(1024, 768)) == pytest.approx(1.0, abs=1e-5)


def test_position_is_linearly_readable(gpt2_wpe_analysis):
    probes = gpt2_wpe_analysis.probes
    assert probes.absolute_mae < 10  # measured 4.5 positions, against 256 for guessing the mean
    assert probes.absolute_mae < 0.05 * probes.absolute_baseline
    assert probes.interpolation_mae < 5  # measured 1.6
    assert probes.order_error < 0.15  # measured 0.079


def test_effective_rank_is_far_below_the_width(gpt2_wpe_analysis):
    assert 10 < gpt2_wpe_analysis.spectrum.effective_rank < 200  # measured 38.8 of 768


def test_gpt2_and_sinusoid_share_little_structure(gpt2_wpe):
    result = compare(gpt2_wpe, sinusoidal_table(1024, 768))
    assert result.positions == 1024
    assert 0.3 < result.cka < 0.9  # measured 0.68
    assert 0.3 < result.similarity_correlation < 0.9  # measured 0.66
    assert all(np.isfinite(v) for v in scalars(analyze(gpt2_wpe[:64])).values())
