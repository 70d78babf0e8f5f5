"""Analyses and report sections are declared units, pluggable like providers: a plugin's analysis reaches
``analyze --json`` and ``--npz``, its section reaches the page, and a broken one costs one warning line."""

from __future__ import annotations

import json
import os
import re
import types

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer import Analysis, Section, hookimpl
from explorer.cli import cli
from explorer.errors import PosembedWarning
from explorer.plugins.manager import get_plugin_manager
from explorer.plugins.registry import get_registry
from explorer.plugins.units import SectionContext
from explorer.reporting.sections import builtin_sections

SMALL = "sinusoidal,positions=48,dim=8"


def plugin_module(name: str, analyses=(), sections=()) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def register_analyses(register):
        for unit in analyses:
            register(unit)

    @hookimpl
    def register_sections(register):
        for section in sections:
            register(section)

    module.register_analyses, module.register_sections = register_analyses, register_sections
    return module


def mean_abs(context):
    return np.abs(context.matrix).mean(axis=1)  # one number per position


MEAN_ABS = Analysis("mean_abs", "mean |value| of each position", run=mean_abs,
                    scalars=lambda values: {"mean_abs_max": float(values.max())},
                    arrays=lambda values: {"values": values})


def mean_abs_section(context: SectionContext):
    from explorer.reporting.views import caption

    return caption(f"mean |value| peaks at {float(context.results['mean_abs'].max()):.6f} for {context.embedding.label}")


MEAN_ABS_SECTION = Section("mean_abs", "mean absolute value", mean_abs_section, order=15, needs=("mean_abs",))


def boom(*args):
    raise RuntimeError("boom")


@pytest.fixture
def registry_with(monkeypatch):
    """A registry of the built-ins plus one in-memory plugin module."""
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")

    def make(module):
        pm = get_plugin_manager()
        pm.register(module, name=module.__name__)
        return get_registry(pm)
    return make


def div_texts(doc) -> str:
    return " ".join(m.text for m in doc.models if type(m).__name__ == "Div")


def test_builtin_analyses_and_sections_come_through_the_hooks(registry_with):
    registry = registry_with(plugin_module("nothing"))
    names = [a.name for a in registry.analyses]
    assert names[:3] == ["summary", "matrix", "traces"] and "comparison" in names and "probes" in names
    assert all(a.plugin is None for a in registry.analyses)  # built in: not isolated
    from explorer.reporting.sections import builtin_sections

    assert [s.name for s in registry.sections] == [s.name for s in builtin_sections()]  # the page's order
    orders = [s.order for s in registry.sections]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_the_fine_codes_are_the_pages_encoding_not_an_analysis(registry_with, tmp_path):
    """The heatmap, traces and vectors read fine codes the page computes once per table from the matrix result:
    no analysis of that name, so none in ``posembed plugins``, ``analyze --json`` or ``--npz``."""
    from explorer.analysis import fine_codes
    from explorer.plugins.units import SectionContext
    from explorer.reporting.page import Page
    from explorer.reporting.sections.matrix import fine_codes_of

    registry = registry_with(plugin_module("nothing"))
    assert "fine_codes" not in [a.name for a in registry.analyses]
    assert not [s.name for s in registry.sections if "fine_codes" in s.needs]
    table = tmp_path / "arrays.npz"
    result = CliRunner().invoke(cli, ["analyze", SMALL, "--json", "--npz", str(table)], catch_exceptions=False)
    assert result.exit_code == 0 and "fine_codes" not in result.stdout
    assert not [name for name in np.load(table).files if "fine_codes" in name]
    assert "fine_codes" not in CliRunner().invoke(cli, ["plugins"], catch_exceptions=False).stdout
    embedding = explorer.load(SMALL)
    results = explorer.analyze(embedding)
    context = SectionContext(Page([embedding], [results]), embedding, results, 0, {})
    codes = fine_codes_of(context)
    assert fine_codes_of(context) is codes  # computed once per table
    assert np.array_equal(codes.codes, fine_codes(results["matrix"]).codes)


def test_every_module_declaring_units_is_found_with_no_list_to_edit():
    from pathlib import Path

    from explorer.analysis.builtin import builtin_analyses
    from explorer.reporting.sections import builtin_sections

    for package, attribute, found in (("analysis", "ANALYSES", builtin_analyses()),
                                      ("reporting/sections", "SECTION", builtin_sections())):
        folder = Path(explorer.__file__).parent / package
        declaring = sorted(p.stem for p in folder.glob("*.py") if f"\n{attribute} = " in p.read_text(encoding="utf-8"))
        assert sorted({unit.run.__module__ if attribute == "ANALYSES" else unit.build.__module__
                       for unit in found}) >= [f"explorer.{package.replace('/', '.')}.{name}" for name in declaring]
        assert len(declaring) >= 10


def test_a_new_unit_module_is_discovered_and_a_shared_order_is_a_clear_error(tmp_path, monkeypatch):
    from explorer.plugins.discovery import check_orders, declared

    package = tmp_path / "posembed_discovered"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "helpers.py").write_text("X = 1\n", encoding="utf-8")  # declares nothing: passed over
    for name, order in (("first", 10), ("second", 20)):
        (package / f"{name}.py").write_text(
            f"from explorer import Section\nSECTION = Section({name!r}, {name!r}, lambda c: None, order={order})\n",
            encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = declared("posembed_discovered", "SECTION")
    assert [s.name for s in found] == ["first", "second"]
    check_orders(found, "section")
    (package / "third.py").write_text(
        "from explorer import Section\nSECTION = Section('third', 't', lambda c: None, order=10)\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^built-in sections 'first' and 'third' both have order 10: give each its "
                                         r"own"):
        check_orders(declared("posembed_discovered", "SECTION"), "section")


def test_a_plugins_analysis_reaches_the_results_the_json_and_the_npz(registry_with, tmp_path):
    registry = registry_with(plugin_module("posembed_mean_abs", analyses=[MEAN_ABS]))
    emb = explorer.load(SMALL)
    results = explorer.analyze(emb, registry=registry)
    expected = np.abs(emb.matrix).mean(axis=1)
    np.testing.assert_array_equal(results.mean_abs, expected)
    assert results.scalars()["mean_abs_max"] == pytest.approx(float(expected.max()))
    assert "mean_abs.values" in results.arrays() and "offset.mean" in results.arrays()


def test_a_plugins_section_is_built_in_its_declared_place(registry_with):
    from explorer.reporting.page import build_document

    registry = registry_with(plugin_module("posembed_mean_abs", [MEAN_ABS], [MEAN_ABS_SECTION]))
    emb = explorer.load(SMALL)
    doc = build_document([emb], [explorer.analyze(emb, registry=registry)], sections=registry.sections)
    texts = [m.text for m in doc.roots[0].children if type(m).__name__ == "Div"]
    headings = [re.sub("<[^>]+>", "", t) for t in texts if t.startswith("<h3")]
    assert headings[:2] == ["mean absolute value", "the matrix"]  # order 15: after provenance, before the matrix
    assert f"mean |value| peaks at {float(np.abs(emb.matrix).mean(axis=1).max()):.6f}" in div_texts(doc)


def test_a_section_whose_analysis_is_missing_is_left_out(registry_with):
    from explorer.reporting.page import build_document

    registry = registry_with(plugin_module("posembed_orphan", sections=[MEAN_ABS_SECTION]))
    emb = explorer.load(SMALL)
    doc = build_document([emb], [explorer.analyze(emb, registry=registry)], sections=registry.sections)
    assert "mean absolute value" not in div_texts(doc) and "the matrix" in div_texts(doc)


def test_a_broken_analysis_is_one_warning_and_the_rest_still_runs(registry_with):
    registry = registry_with(plugin_module("posembed_broken", analyses=[Analysis("broken", "raises", run=boom)]))
    with pytest.warns(PosembedWarning) as caught:
        results = explorer.analyze(explorer.load(SMALL), registry=registry)
    messages = [str(w.message) for w in caught]
    assert messages == ["analysis 'broken' of plugin 'posembed_broken' (unknown distribution) failed and is skipped: "
                        "RuntimeError: boom"]  # registered in memory: no distribution to name
    assert "broken" not in results and "offset" in results and "probes" in results


def test_a_broken_plugin_section_names_its_distribution_and_the_page_still_renders(entry_points, monkeypatch, tmp_path):
    module = plugin_module("posembed_broken_view", sections=[Section("broken_view", "broken view", boom, order=25)])
    entry_points("broken-view", module, dist="posembed-broken-view", version="0.3")
    with pytest.warns(PosembedWarning, match=r"^section 'broken_view' of plugin 'broken-view' \(posembed-broken-view "
                                             r"0\.3\) failed and is skipped: RuntimeError: boom$"):
        html = explorer.report(explorer.load(SMALL), tmp_path / "r.html")
    # the heading stays, with the warning's line as a visible note in its place; the rest of the page follows
    assert "broken view" in html and "failed and is skipped: RuntimeError: boom" in html and "dimension traces" in html


def test_debug_shows_a_broken_plugins_own_traceback(registry_with, monkeypatch):
    registry = registry_with(plugin_module("posembed_broken", analyses=[Analysis("broken", "raises", run=boom)]))
    from explorer.plugins.units import plugin_errors_raise

    with pytest.raises(RuntimeError, match="boom") as raised, plugin_errors_raise():
        explorer.analyze(explorer.load(SMALL), registry=registry)
    assert raised.traceback[-1].name == "boom"


def test_a_bug_in_a_builtin_analysis_keeps_its_own_frames(monkeypatch):
    """No process boundary: the traceback ends in the analysis that failed, not in the machinery."""
    from explorer.analysis import norms

    def broken_profile(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(norms, "norm_profile", broken_profile)
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    with pytest.raises(ZeroDivisionError) as raised:
        explorer.report(explorer.load(SMALL))
    assert raised.traceback[-1].name == "broken_profile"
    assert any(entry.name == "<lambda>" and "norms.py" in str(entry.path) for entry in raised.traceback)


def test_a_name_taken_twice_keeps_the_first(registry_with):
    clash = Analysis("offset", "another offset", run=boom)
    with pytest.warns(PosembedWarning, match=r"analysis 'offset' is registered by both plugin "
                                             r"'explorer.analysis.builtin' and plugin 'posembed_clash'"):
        registry = registry_with(plugin_module("posembed_clash", analyses=[clash]))
        analyses = registry.analyses
    assert [a.description for a in analyses if a.name == "offset"] == ["the offset profile m(k) with its spread s(k)"]


def test_registering_something_else_is_reported(registry_with):
    with pytest.warns(PosembedWarning, match=r"registered 'not a section', which is not an explorer.Section"):
        sections = registry_with(plugin_module("posembed_odd", sections=["not a section"])).sections
    assert len(sections) == len(builtin_sections())  # the odd registration left out, every built-in kept


@pytest.mark.parametrize("bad", ["Offset", "a-b", "", "1st"])
def test_unit_names_are_checked(bad):
    with pytest.raises(TypeError, match="must be lower-case"):
        Analysis(bad, "x", run=mean_abs)
    with pytest.raises(TypeError, match="must be lower-case"):
        Section(bad, "x", mean_abs_section)


def test_the_command_line_runs_an_installed_plugins_analysis(entry_points, tmp_path):
    entry_points("mean-abs", plugin_module("posembed_mean_abs_ep", [MEAN_ABS], [MEAN_ABS_SECTION]),
                 dist="posembed-mean-abs")
    target = tmp_path / "arrays.npz"
    result = CliRunner().invoke(cli, ["analyze", SMALL, "--json", "--npz", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scalars = json.loads(result.stdout)["tables"][0]["scalars"]
    assert scalars["mean_abs_max"] == pytest.approx(float(np.abs(explorer.load(SMALL).matrix).mean(axis=1).max()))
    assert "0.mean_abs.values" in np.load(target).files
    page = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["report", SMALL, "-o", str(page)], catch_exceptions=False)
    assert result.exit_code == 0 and "mean absolute value" in page.read_text(encoding="utf-8")


def test_results_read_by_name_and_attribute():
    results = explorer.analysis.analyze(np.arange(48, dtype=np.float32).reshape(12, 4) + 1)
    assert results["offset"] is results.offset and list(results)[0] == "summary"
    with pytest.raises(AttributeError, match="no analysis 'nothing'"):
        results.nothing


def test_the_command_line_names_a_broken_plugin_analysis_in_one_line_and_debug_raises(entry_points, tmp_path):
    broken = Analysis("broken", "raises", run=boom)
    entry_points("broken", plugin_module("posembed_broken_ep", analyses=[broken]), dist="posembed-broken")
    result = CliRunner().invoke(cli, ["analyze", SMALL, "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "posembed: warning: analysis 'broken' of plugin 'broken' (posembed-broken 1.0) failed and is skipped: "
        "RuntimeError: boom"]
    assert "offset_spread_max" in json.loads(result.stdout)["tables"][0]["scalars"]
    environment = dict(os.environ)
    with pytest.raises(RuntimeError, match="boom"):
        CliRunner().invoke(cli, ["--debug", "analyze", SMALL], catch_exceptions=False)
    assert dict(os.environ) == environment  # --debug is passed down, not put into the environment
    with pytest.warns(PosembedWarning, match="analysis 'broken' of plugin 'broken'"):  # the switch ended with it
        explorer.analyze(explorer.load(SMALL))


def test_an_analysis_sees_the_embedding_it_analyses(registry_with):
    seen = []
    spy = Analysis("spy", "records its context", run=lambda context: seen.append(context.embedding))
    registry = registry_with(plugin_module("posembed_spy", analyses=[spy]))
    emb = explorer.load(SMALL)
    explorer.analyze(emb, registry=registry)
    assert seen == [emb]


def test_a_scalar_key_given_twice_keeps_the_first_with_a_warning(registry_with):
    twin = Analysis("twin", "gives a built-in's key", run=lambda context: 1.0,
                    scalars=lambda value: {"effective_rank": value})
    registry = registry_with(plugin_module("posembed_twin", analyses=[twin]))
    results = explorer.analyze(explorer.load(SMALL), registry=registry)
    with pytest.warns(PosembedWarning, match="analysis 'twin' gives the scalar 'effective_rank', which analysis "
                                             "'spectrum' already gives"):
        numbers = results.scalars()
    assert numbers["effective_rank"] == pytest.approx(results.spectrum.effective_rank)


def test_a_plugins_broken_scalars_cost_only_its_own_numbers(registry_with):
    odd = Analysis("odd", "declares scalars that raise", run=lambda context: 1.0, scalars=boom, arrays=boom)
    registry = registry_with(plugin_module("posembed_odd", analyses=[odd]))
    results = explorer.analyze(explorer.load(SMALL), registry=registry)
    failed = r"^analysis 'odd' of plugin 'posembed_odd' \(unknown distribution\): {}\(\) failed and is skipped"
    with pytest.warns(PosembedWarning, match=failed.format("scalars")):  # named as the callback that failed
        numbers = results.scalars()
    with pytest.warns(PosembedWarning, match=failed.format("arrays")):
        arrays = results.arrays()
    assert "effective_rank" in numbers and "offset.mean" in arrays
