"""Relative position terms end to end: the type, the provider_for_config hook, the analyses, the CLI's
analyze --json / --npz and export, and mixed report pages."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer import hookimpl
from explorer.analysis.relative import ranks, head_stats
from explorer.cli import cli
from explorer.core.relative import RelativePositionTerm
from explorer.errors import EmbeddingError
from explorer.plugins.manager import get_plugin_manager
from explorer.plugins.registry import get_registry


def symmetric_term(heads: int = 3, positions: int = 6) -> RelativePositionTerm:
    k = np.arange(-(positions - 1), positions)
    values = np.stack([np.exp(-np.abs(k) / (h + 1)) for h in range(heads)]).astype(np.float32)
    return RelativePositionTerm(values, provider="test", source="decay")


# --- the type --------------------------------------------------------------------------------------------------

def test_relative_term_maps_columns_to_signed_distances_and_is_frozen():
    term = symmetric_term(positions=4)
    assert term.term == "relative" and term.positions == 4 and term.shape == (3, 7)
    np.testing.assert_array_equal(term.distances, np.arange(-3, 4))
    assert term.value_at(0).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        term.values[0, 0] = 5


def test_bidirectional_term_with_an_even_number_of_distances_is_refused():
    with pytest.raises(EmbeddingError, match="2L-1 distances"):
        RelativePositionTerm(np.zeros((2, 4), np.float32), provider="x", source="y")


@pytest.mark.parametrize("causal, column, distance", [(False, 2, 0), (False, 0, -2), (False, 4, 2), (True, 0, -3),
                                                      (True, 3, 0)])
def test_nan_in_a_term_is_named_by_its_head_and_distance(causal, column, distance):
    values = np.zeros((3, 4 if causal else 5), np.float32)
    values[1, column] = np.nan
    values[2, :] = np.inf  # later rows: the first bad value is named
    with pytest.raises(EmbeddingError, match=rf"^mine: the table holds {values.shape[1] + 1} NaN or Inf value\(s\) "
                                             rf"\(in float32\), the first at head 1, distance {distance}$"):
        RelativePositionTerm(values, provider="mine", source="x", causal=causal)


def test_a_term_of_more_heads_than_any_model_is_refused():
    RelativePositionTerm(np.zeros((1024, 1), np.float32), provider="x", source="y", causal=True)
    with pytest.raises(EmbeddingError, match="x: a relative term of 1025 heads; posembed takes at most 1024"):
        RelativePositionTerm(np.zeros((1025, 1), np.float32), provider="x", source="y", causal=True)


def test_query_key_matrix_is_constant_along_diagonals_and_masked_above_for_causal_terms():
    term = explorer.load("alibi,heads=2,positions=5")
    matrix = term.query_key(1)
    assert np.isnan(matrix[0, 1]) and matrix[3, 1] == term.value_at(-2)[1] == matrix[4, 2]


# --- the provider_for_config hook ------------------------------------------------------------------------------

def toy_plugin(answer):
    module = types.ModuleType("posembed_toy_claims")

    @hookimpl
    def provider_for_config(config):
        if callable(answer):
            return answer(config)
        return answer if config.get("model_type") == "toy" else None

    module.provider_for_config = provider_for_config
    return module


def registry_with(plugin, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    pm.register(plugin, name="toy")
    return get_registry(pm)


def test_a_plugin_claims_a_config_for_a_provider_and_built_ins_claim_t5_and_alibi(monkeypatch):
    registry = registry_with(toy_plugin("sinusoidal"), monkeypatch)
    assert registry.provider_for_config({"model_type": "toy"}) == "sinusoidal"
    assert registry.provider_for_config({"model_type": "mt5"}) == "t5"
    assert registry.provider_for_config({"model_type": "falcon", "alibi": True}) == "alibi"
    assert registry.provider_for_config({"model_type": "falcon"}) is None


def test_a_claim_that_raises_or_names_no_provider_is_one_warning_and_passed_over(monkeypatch):
    def broken(config):
        raise RuntimeError("boom")

    with pytest.warns(explorer.errors.PosembedWarning, match="failed in provider_for_config"):
        assert registry_with(toy_plugin(broken), monkeypatch).provider_for_config({"model_type": "toy"}) is None
    with pytest.warns(explorer.errors.PosembedWarning, match="not registered"):
        assert registry_with(toy_plugin("nope"), monkeypatch).provider_for_config({"model_type": "toy"}) is None


def _rotary_error(folder, monkeypatch, setting: str | None) -> str:
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64,
                                                    "num_attention_heads": 4, "rope_theta": 1e6}))
    if setting is not None:
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", setting)
    explorer.plugins.reset()
    result = CliRunner().invoke(cli, ["info", f"hf:{folder}"])
    explorer.plugins.reset()
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "has no position table" in line and "sinusoidal,base=1e+06,dim=16,layout=split" in line
    return line


@pytest.mark.parametrize("setting", [None, ""])
def test_hf_on_a_rotary_config_without_the_rotary_plugin_says_how_to_install_it(tmp_path, monkeypatch,
                                                                                  entry_points, setting):
    entry_points("monotonicity", "posembed_monotonicity", dist="posembed-monotonicity")  # installed, not rotary
    line = _rotary_error(tmp_path, monkeypatch, setting)
    assert "install the posembed-rotary plugin (pip install -e plugins/posembed-rotary" in line
    assert "POSEMBED_LOAD_PLUGINS" not in line


@pytest.mark.parametrize("setting", ["", "monotonicity", "posembed-monotonicity,"])
def test_hf_on_a_rotary_config_with_the_rotary_plugin_left_out_says_so(tmp_path, monkeypatch, entry_points, setting):
    entry_points("rotary", "posembed_rotary", dist="posembed-rotary")
    entry_points("monotonicity", "posembed_monotonicity", dist="posembed-monotonicity")
    line = _rotary_error(tmp_path, monkeypatch, setting)
    assert (f"; the posembed-rotary plugin, with which hf: reads its rotary table, is installed, but "
            f"POSEMBED_LOAD_PLUGINS={setting!r} leaves it out (add posembed-rotary to it)") in line
    assert "pip install" not in line


def test_hf_on_a_rotary_config_loads_the_rotary_plugin_through_the_hook(tmp_path):
    rotary = pytest.importorskip("posembed_rotary")
    if not hasattr(rotary, "provider_for_config"):
        pytest.skip("the installed posembed-rotary predates provider_for_config")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64,
                                                      "num_attention_heads": 4, "max_position_embeddings": 32,
                                                      "rope_theta": 10000.0}))
    explorer.plugins.reset()
    emb = explorer.load(f"hf:{tmp_path}")
    explorer.plugins.reset()
    assert emb.provider == "rotary" and emb.shape == (32, 16)


# --- analyses --------------------------------------------------------------------------------------------------

def test_alibi_heads_fall_steadily_and_decay_halfway_at_half_the_positions():
    term = explorer.load("alibi,heads=4,positions=9")
    results = explorer.analyze(term)
    assert set(results) == {"relative_profile", "relative_heads"}  # no absolute analysis ran on it
    stats = results["relative_heads"]
    np.testing.assert_array_equal(stats.monotonicity, -1.0)
    np.testing.assert_array_equal(stats.decay_distance, 4.0)  # b(-4) = -4m = b(0) - (8m) / 2
    assert np.isnan(stats.symmetry).all() and (stats.value_at_0 == 0).all()


def test_symmetric_term_has_symmetry_one_and_a_flat_head_no_decay_distance():
    term = symmetric_term()
    stats = head_stats(term.values, term.distances, term.causal)
    np.testing.assert_allclose(stats.symmetry, 1.0, atol=1e-6)
    flat = head_stats(np.ones((1, 5), np.float32), np.arange(-2, 3), False)
    assert np.isnan(flat.decay_distance[0])


def test_monotonicity_is_spearman_rho_with_mean_ranks_for_ties():
    values = np.array([[3.0, 1.0, 4.0, 1.0, 5.0]], np.float32)
    distances = np.arange(-2, 3)
    np.testing.assert_array_equal(ranks(np.array([1.0, 3.0, 1.0])), [1.5, 3.0, 1.5])
    a, b = ranks(values[0].astype(np.float64)), ranks(np.abs(distances).astype(np.float64))
    expected = np.corrcoef(a, b)[0, 1]
    assert head_stats(values, distances, False).monotonicity[0] == pytest.approx(expected, abs=1e-6)


def test_absolute_tables_run_no_relative_analysis_and_rotary_tables_get_the_rope_kernel():
    table = explorer.analyze(explorer.load("sinusoidal,positions=16,dim=8"))
    assert "relative_heads" not in table and table["rope_kernel"] is None


# --- the CLI ---------------------------------------------------------------------------------------------------

def test_analyze_json_prints_each_heads_numbers_and_npz_saves_the_curves(tmp_path):
    npz = tmp_path / "r.npz"
    result = CliRunner().invoke(cli, ["analyze", "--json", "--npz", str(npz), "alibi,heads=2,positions=8"])
    assert result.exit_code == 0, result.output
    [table] = json.loads(result.stdout)["tables"]
    assert table["term"] == "relative" and table["shape"] == [2, 8]
    scalars = table["scalars"]
    assert scalars["monotonicity_head1"] == -1.0 and scalars["value_at_0_head0"] == 0.0
    assert scalars["decay_distance_mean"] == 4.0 and scalars["symmetry_head0"] is None
    saved = np.load(npz)
    assert saved["0.relative_profile.values"].shape == (2, 8)
    np.testing.assert_array_equal(saved["0.relative_profile.distance"], np.arange(-7, 1))


def test_analyze_of_an_absolute_table_and_a_relative_term_makes_no_comparison():
    result = CliRunner().invoke(cli, ["analyze", "--json", "sinusoidal,positions=8,dim=4", "alibi,heads=2,positions=8"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["term"] for t in data["tables"]] == ["absolute", "relative"]
    assert data["comparisons"][0]["scalars"] == {}


@pytest.mark.parametrize("fmt", ["npy", "csv", "safetensors"])
def test_export_writes_a_relative_term_as_heads_by_distances(tmp_path, fmt):
    out = tmp_path / f"alibi.{fmt}"
    result = CliRunner().invoke(cli, ["export", "alibi,heads=2,positions=4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    term = explorer.load("alibi,heads=2,positions=4")
    if fmt == "npy":
        np.testing.assert_array_equal(np.load(out), term.values)
    elif fmt == "csv":
        lines = out.read_text().splitlines()
        assert lines[0] == "distance,h0,h1" and lines[1].startswith("-3,") and lines[-1] == "0,0,0"
    else:
        from safetensors import safe_open

        with safe_open(str(out), "np") as handle:
            np.testing.assert_array_equal(handle.get_tensor("relative_position_term"), term.values)
            np.testing.assert_array_equal(handle.get_tensor("distances"), np.arange(-3, 1))
            assert handle.metadata()["posembed.term"] == "relative"


def test_info_of_a_relative_term_shows_heads_and_distances():
    result = CliRunner().invoke(cli, ["info", "--json", "alibi,heads=3,positions=5"])
    data = json.loads(result.stdout)
    assert data["heads"] == 3 and data["distances"] == [-4, 0] and "row_norm_mean" not in data["summary"]


# --- pages -----------------------------------------------------------------------------------------------------

def _names(doc) -> set[str]:
    return {m.name for m in doc.models if getattr(m, "name", None)}


def test_a_relative_page_has_its_curves_head_picker_and_no_absolute_section():
    from explorer.api import document

    names = _names(document([explorer.load("alibi,heads=3,positions=20")]))
    assert {"relative_provenance", "relative_curves", "relative_matrix", "relative_heads"} <= names
    assert not names & {"matrix", "offset_profile", "distance_overlay"}


def test_a_mixed_page_gives_each_term_its_sections_and_overlays_the_distance_curves():
    from explorer.api import document

    doc = document([explorer.load("sinusoidal,positions=32,dim=8"), symmetric_term(positions=32)])
    names = _names(doc)
    assert {"provenance", "offset_profile", "relative_curves", "relative_matrix", "distance_overlay"} <= names
    [overlay] = [m for m in doc.models if getattr(m, "name", None) == "distance_overlay"]
    assert len(overlay.renderers) == 2
    captions = " ".join(m.text for m in doc.models if type(m).__name__ == "Div")
    assert "min-max normalised" in captions


def test_a_rotary_table_page_shows_the_rope_kernel_and_wavelengths():
    from explorer.analysis.rope import rope_kernel
    from explorer.api import document

    pytest.importorskip("posembed_rotary")
    emb = explorer.load("rotary,positions=64,dim=8,base=100")
    result = rope_kernel(emb.matrix)
    theta = 100.0 ** (-np.arange(0, 8, 2) / 8)
    np.testing.assert_allclose(result.kernel, np.cos(np.arange(64)[:, None] * theta).mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(result.wavelength, 2 * np.pi / theta, rtol=1e-5)
    assert {"rope_kernel", "rope_wavelengths"} <= _names(document([emb]))


def _model(doc, name):
    [found] = [m for m in doc.models if getattr(m, "name", None) == name]
    return found


def test_the_query_key_matrix_of_a_signed_term_is_blue_below_white_at_and_red_above_zero():
    from explorer.api import document
    from explorer.reporting.encoding import DIVERGING

    k = np.arange(-9, 10)
    signed = RelativePositionTerm(np.stack([np.sin(k / 3.0) + 0.3, -np.cos(k / 4.0)]).astype(np.float32),
                                  provider="test", source="signed")
    mapper = _model(document([signed]), "relative_matrix").renderers[0].glyph.color_mapper
    head0 = np.sin(k / 3.0) + 0.3
    assert mapper.low == pytest.approx(-np.abs(head0).max(), rel=1e-6) and mapper.high == -mapper.low
    assert tuple(mapper.palette) == DIVERGING and len(mapper.palette) >= 256
    assert mapper.palette[0] == DIVERGING[0] == "#053061"  # blue at the negative end, as every other heatmap


def test_a_one_signed_term_like_alibi_gets_a_sequential_palette_from_white_at_zero_and_says_so():
    from explorer.api import document

    doc = document([explorer.load("alibi,heads=4,positions=30")])
    mapper = _model(doc, "relative_matrix").renderers[0].glyph.color_mapper
    assert mapper.high == 0 and mapper.low < 0 and len(mapper.palette) >= 256
    assert mapper.palette[0] == "#053061" and mapper.palette[-1].lower() in ("#f7f7f7", "#f6f6f6", "#f8f8f8")
    captions = " ".join(m.text for m in doc.models if type(m).__name__ == "Div")
    assert "Every value of this term is &lt;= 0, so the palette is sequential" in captions


def test_the_heads_colour_bar_has_one_colour_per_head_ticked_at_whole_heads():
    from explorer.api import document

    bar = _model(document([symmetric_term(heads=5, positions=8)]), "head_colours")
    assert len(bar.color_mapper.palette) == 5 and (bar.color_mapper.low, bar.color_mapper.high) == (-0.5, 4.5)
    assert list(bar.ticker.ticks) == [0, 1, 2, 3, 4]
    many = _model(document([symmetric_term(heads=40, positions=8)]), "head_colours")
    assert all(float(t).is_integer() for t in many.ticker.ticks) and 10 <= len(many.ticker.ticks) <= 16
