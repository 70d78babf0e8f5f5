"""The dynamics view of a series: its x axis and lines, CKA to the first and last member, the pairwise matrix in
series order, every scalar (plugins' too) against the member, and the player; checked in the document and in
Chromium."""

from types import SimpleNamespace

import numpy as np
import pytest
from bokeh.models import Div

import explorer
from explorer.api import analyze_all
from explorer.loading.series import expand_series
from explorer.plugins.units import Analysis
from explorer.reporting.members import series_axis
from explorer.reporting.page import build_document, render
from explorer.testing import registry_with
from test_units import plugin_module


def member(source, **params):
    return SimpleNamespace(source=source, params=params, label=source)


def test_checkpoint_folders_are_one_line_on_their_steps():
    axis = series_axis([member(f"runs/out/checkpoint-{s}", model=f"runs/out/checkpoint-{s}") for s in (500, 1000)])
    assert axis.x.tolist() == [500, 1000] and axis.x_name == "step" and axis.lines == ["", ""]
    assert axis.names == ["checkpoint-500", "checkpoint-1000"]


def test_seed_folders_by_checkpoints_draw_one_line_per_seed():
    items = [member(f"runs/seed-{a}/checkpoint-{s}") for a in (1, 2) for s in (10, 20, 30)]
    axis = series_axis(items)
    assert axis.x.tolist() == [10, 20, 30] * 2 and axis.x_name == "step"
    assert axis.line_names == ["seed-1", "seed-2"]


def test_multiberts_names_hold_seed_and_step_in_one_word():
    axis = series_axis([member(f"google/multiberts-seed_{a}-step_{s}k") for a in (0, 1) for s in (0, 20, 40)])
    assert axis.x.tolist() == [0, 20000, 40000] * 2
    assert len(axis.line_names) == 2 and "seed_0" in axis.line_names[0]


def test_two_swept_options_draw_one_line_per_value_of_the_first():
    axis = series_axis([member("formula", base=b, dim=d) for b in (100.0, 1e4) for d in (8, 16, 32)])
    assert axis.x_name == "dim" and axis.x.tolist() == [8, 16, 32] * 2
    assert axis.line_names == ["base=100.0", "base=10000.0"]


def test_revisions_without_a_step_each_fall_back_to_their_place():
    axis = series_axis([member("org/m", revision=r) for r in ("step1000", "step2000", "main")])
    assert axis.x.tolist() == [1, 2, 3] and axis.x_name == "member"
    assert series_axis([member("org/m", revision=r) for r in ("step1000", "step2000")]).x.tolist() == [1000, 2000]


def test_unrelated_tables_are_one_line_in_their_order():
    axis = series_axis([member("gpt2"), member("formula", base=1), member("x/y", model="x/y")], ["a", "b", "c"])
    assert axis.x.tolist() == [1, 2, 3] and axis.lines == ["", "", ""]


def PLUGIN_SCALAR(context):
    return float(np.abs(context.matrix).sum())


@pytest.fixture(scope="module")
def sweep():
    """Two bases x three widths of a small sinusoid, with a plugin's scalar, and the document built from them."""
    registry = registry_with(plugin_module("posembed_total", analyses=[
        Analysis("total", "sum of |values|", run=PLUGIN_SCALAR, scalars=lambda v: {"total_abs": v})]))
    specs = expand_series("sinusoidal,positions=48,base=100|10000,dim=8|16|32")
    tables = [explorer.load(s, registry=registry) for s in specs]
    results, pairs = analyze_all(tables, 64, registry)
    document = build_document(tables, results, pairs, sections=registry.sections)
    return SimpleNamespace(tables=tables, results=results, pairs=pairs, document=document)


def model(document, name):
    return document.select_one({"name": name})


def test_every_scalar_built_in_or_plugin_is_a_column_against_the_member(sweep):
    members = model(sweep.document, "dynamics_members").data
    picker = model(sweep.document, "dynamics_scalar_picker")
    assert "total_abs" in picker.options and "effective_rank" in picker.options
    for k, name in enumerate(picker.options):
        expected = [r.scalars().get(name, np.nan) for r in sweep.results]
        np.testing.assert_allclose(members[f"scalar_{k}"], expected, rtol=1e-12)
    assert list(members["x"]) == [8, 16, 32] * 2
    cells = model(sweep.document, "dynamics_scalar_cells").data
    assert len(cells["scalar"]) == len(picker.options) * 6


def test_cka_to_the_first_and_last_member_of_each_line_and_the_matrix_in_order(sweep):
    cka = np.eye(6)
    for i, j, pair in sweep.pairs:
        cka[i, j] = cka[j, i] = pair["comparison"].cka
    members = model(sweep.document, "dynamics_members").data
    for line in ((0, 1, 2), (3, 4, 5)):  # one line per base
        np.testing.assert_allclose(np.asarray(members["to_first"])[list(line)], cka[list(line), line[0]])
        np.testing.assert_allclose(np.asarray(members["to_last"])[list(line)], cka[list(line), line[-1]])
    [image] = model(sweep.document, "dynamics_cka_matrix").renderers[0].data_source.data["image"]
    np.testing.assert_allclose(image, cka.astype(np.float32))


def test_the_player_holds_every_members_thumbnails(sweep):
    frames = model(sweep.document, "dynamics_frames").data
    assert len(frames["matrix"]) == len(frames["cosine"]) == 6
    assert model(sweep.document, "dynamics_slider").end == 6
    assert not np.array_equal(frames["matrix"][0], frames["matrix"][2])  # dims 8 and 32 differ


def dynamics_models(count):
    tables = [explorer.load(f"sinusoidal,positions=32,dim=8,base={10 ** (k + 2)}") for k in range(count)]
    results, pairs = analyze_all(tables, 32)
    return len(list(model(build_document(tables, results, pairs), "dynamics").references()))


def test_the_views_models_do_not_grow_with_the_tables():
    assert dynamics_models(3) == dynamics_models(7)


@pytest.mark.browser
def test_the_slider_and_the_picker_change_the_view_in_chromium(sweep, tmp_path):
    browser = pytest.importorskip("browser")
    if browser.find_chromium() is None:
        pytest.skip("no Chromium")
    path = tmp_path / "sweep.html"
    path.write_text(render(sweep.document), encoding="utf-8")
    with browser.Chromium(width=1280, height=1200) as chromium:
        result = chromium.open(path, idle_timeout=60)
        assert result.idle and not result.errors, result.errors
        state = chromium.evaluate("""(async () => {
          const doc = Bokeh.documents[0], find = (n) => doc.get_model_by_name(n);
          const later = () => new Promise((resolve) => setTimeout(resolve, 200));  // callbacks run asynchronously
          find('dynamics_slider').value = 3;
          await later();
          const frame = find('dynamics_frame').data.matrix[0], third = find('dynamics_frames').data.matrix[2];
          find('dynamics_scalar_picker').value = 'total_abs';
          await later();
          const members = find('dynamics_members').data;
          const flat = (a) => Array.from(a.flat ? a.flat(Infinity) : a).join(',');
          return {same: flat(frame) === flat(third) && flat(frame) !== flat(find('dynamics_frames').data.matrix[0]), note: find('dynamics_member').text, y: Array.from(members.y),
                  total: Array.from(members[Object.keys(members).find((c) => c.startsWith('scalar_') &&
                          find('dynamics_scalar_picker').options[+c.slice(7)] === 'total_abs')])};
        })()""")
    assert state["same"]
    assert "3. " in state["note"] and "dim 32" in state["note"]
    assert state["y"] == state["total"]
    np.testing.assert_allclose(state["y"], [r.scalars()["total_abs"] for r in sweep.results], rtol=1e-6)


@pytest.mark.parametrize("values,log", [
    ([10, 100, 1000, 10000, 100000], True),  # a swept base: four of five would bunch at the left
    ([2 ** k for k in range(11)], True),  # steps 1, 2, 4, ... 1024
    ([500 * k for k in range(1, 101)], False),  # evenly spaced steps, two decades: linear
    ([0, 10, 100, 1000, 10000], False),  # step 0 has no place on a log axis
    ([8, 16, 32], False),  # within a decade
])
def test_the_x_axis_is_logarithmic_only_where_a_linear_one_would_bunch_the_members(values, log):
    axis = series_axis([member("formula", base=v) for v in values])
    assert axis.x.tolist() == values and axis.log_scale is log


def _intro(document) -> str:
    return " ".join(d.text for d in document.select({"type": Div}) if "as one series" in d.text)


def test_a_sweep_over_decades_is_drawn_on_a_log_axis_and_the_caption_says_so():
    from bokeh.models import LinearScale, LogScale

    tables = [explorer.load(s) for s in expand_series("sinusoidal,positions=64,dim=16,base=10|100|1000|10000|100000")]
    document = build_document(tables, *analyze_all(tables, 32))
    for name in ("dynamics_cka_ends", "dynamics_scalar"):
        assert isinstance(model(document, name).x_scale, LogScale), name
        assert model(document, name).xaxis[0].axis_label == "base (log scale)"
    assert "on a log scale (its values span 4.0 decades" in _intro(document)
    tables = [explorer.load(s) for s in expand_series("sinusoidal,positions=64,dim=16,base=100|200|300")]
    document = build_document(tables, *analyze_all(tables, 32))
    assert isinstance(model(document, "dynamics_cka_ends").x_scale, LinearScale)
    assert "log scale" not in _intro(document)
