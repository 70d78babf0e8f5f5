"""Reports in a real browser: headless Chromium renders them with no console error, Bokeh goes idle,
the screenshot is not blank, and the pickers, mirrored images and linked selection work in the static file."""

import numpy as np
import pytest

import explorer
from explorer.analysis import cosine_image, matrix_image
from explorer.reporting import views
from explorer.reporting.browser import CANDIDATES, Chromium, blankness, find_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason=f"no Chromium found (looked for $CHROMIUM, {', '.join(CANDIDATES)}); "
                              ".ci/run installs Debian's chromium"),
]

SMALL = "sinusoidal,positions=256,dim=64"


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1400, height=1100) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def default_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "default.html"
    explorer.report(explorer.load("sinusoidal"), path)
    return path


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "small.html"
    explorer.report(explorer.load(SMALL), path)
    return path


def assert_rendered(result, tmp_path, name):
    (tmp_path / f"{name}.png").write_bytes(result.screenshot)  # kept for a look when a test fails
    assert result.errors == [], result.errors
    assert result.idle, "Bokeh never reported the document idle"
    inked, colours = blankness(result.screenshot)
    assert inked > 0.05 and colours > 100, f"screenshot looks blank: {inked:.1%} inked, {colours} colours"


def test_default_report_renders_without_errors(browser, default_report, tmp_path):
    assert_rendered(browser.open(default_report), tmp_path, "default")


def test_comparison_page_renders_without_errors(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # the built-in views only: the count below is theirs
    path = tmp_path / "cmp.html"
    explorer.report([explorer.load(SMALL), explorer.load("sinusoidal,positions=200,dim=64,layout=split")], path)
    result = browser.open(path)
    assert_rendered(result, tmp_path, "comparison")
    # one document with one root; every plot of both tables is drawn
    drawn = browser.evaluate("""(() => {
      const doc = Bokeh.documents[0];
      const plots = [...doc.all_models].filter((m) => m.toolbar !== undefined && m.renderers !== undefined);
      return [doc.roots().length, plots.length, plots.filter((p) => Bokeh.index.find_one(p) != null).length];
    })()""")
    assert drawn == [1, 29, 29]  # 14 views per table and the overlaid offset profiles
    # linked position axes: zooming one table's heatmap moves the other's
    moved = browser.evaluate("""(() => {
      const figs = [...Bokeh.documents[0].all_models].filter((m) => m.name === 'matrix');
      figs[0].x_range.start = 50; figs[0].x_range.end = 100;
      return [figs.length, figs[1].x_range.start, figs[1].x_range.end];
    })()""")
    assert moved == [2, 50, 100]


def test_the_page_the_command_writes_renders_whole(browser, cli_comparison_report, tmp_path):
    path, _ = cli_comparison_report
    assert_rendered(browser.open(path), tmp_path, "command")
    drawn = browser.evaluate("""(() => {
      const doc = Bokeh.documents[0];
      const plots = [...doc.all_models].filter((m) => m.toolbar !== undefined && m.renderers !== undefined);
      return [doc.roots().length, plots.length, plots.filter((p) => Bokeh.index.find_one(p) != null).length];
    })()""")
    assert drawn == [1, 29, 29]
    # every packed image is whole by the time the page says it is ready
    whole = browser.evaluate("""(() => {
      const names = ['cosine_positions', 'cosine_dimensions_centred'];
      return [...Bokeh.documents[0].all_models].filter((m) => names.includes(m.name)).map((fig) => {
        const img = fig.renderers[0].data_source.data.image[0], n = Math.round(Math.sqrt(img.length));
        let asym = 0, sum = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
          sum += img[i * n + j]; if (img[i * n + j] !== img[j * n + i]) asym++;
        }
        return [fig.name, asym, sum > 0];
      });
    })()""")
    assert sorted(whole) == [["cosine_dimensions_centred", 0, True]] * 2 + [["cosine_positions", 0, True]] * 2


def test_dimension_picker_redraws_from_the_heatmap_codes(browser, small_report):
    browser.open(small_report)
    shown = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0];
      doc.get_model_by_name('dimension_picker').value = ['5', '40'];
      await new Promise((resolve) => setTimeout(resolve, 200));  // CustomJS callbacks run asynchronously
      const fig = doc.get_model_by_name('dimension_traces');
      const lines = fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data);
      return {label: lines.data.label, y: Array.from(lines.data.ys[1])};
    })()""")
    img = matrix_image(explorer.load(SMALL).matrix)
    scale = views.matrix_scale([img])
    expected = views.decode(views.quantise(img.values, scale), scale)[40]
    assert shown["label"] == ["dimension 5", "dimension 40"]
    assert np.allclose(shown["y"], expected, atol=1e-6)
    assert np.allclose(shown["y"], img.values[40], atol=np.diff(scale.table).max())


def test_position_picker_shows_the_chosen_column(browser, small_report):
    browser.open(small_report)
    y = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0];
      doc.get_model_by_name('position_picker').value = ['100'];
      await new Promise((resolve) => setTimeout(resolve, 200));
      const fig = doc.get_model_by_name('position_vectors');
      const lines = fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data);
      return Array.from(lines.data.ys[0]);
    })()""")
    x = explorer.load(SMALL).matrix
    assert len(y) == 64 and np.allclose(y, x[100], atol=0.01)


def test_cosine_images_are_mirrored_whole_in_the_browser(browser, small_report):
    browser.open(small_report)
    stats = browser.evaluate("""(() => {
      const fig = Bokeh.documents[0].get_model_by_name('cosine_positions_centred');
      const img = fig.renderers[0].data_source.data.image[0];
      let sum = 0, asym = 0;
      for (let i = 0; i < 256; i++) for (let j = 0; j < 256; j++) {
        sum += img[i * 256 + j]; if (img[i * 256 + j] !== img[j * 256 + i]) asym++;
      }
      return [sum, asym];
    })()""")
    codes = views.quantise(cosine_image(explorer.load(SMALL).matrix, centred=True).values, views.COSINE)
    assert stats == [int(views.unpack_lower(views.pack_lower(codes), 256).sum()), 0]


def test_pca_selection_is_linked_between_scatters(browser, small_report):
    browser.open(small_report)
    selected = browser.evaluate("""(() => {
      const doc = Bokeh.documents[0];
      const [a, b] = ['pca_pc1_pc2', 'pca_pc2_pc3'].map((n) => doc.get_model_by_name(n).renderers[0].data_source);
      a.selected.indices = [3, 4, 5];
      return b.selected.indices;
    })()""")
    assert selected == [3, 4, 5]


def test_the_harness_sees_errors_and_blank_pages(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); null.x;</script></body></html>")
    result = browser.open(broken, idle_timeout=0.5)
    assert any("boom" in e for e in result.errors) and len(result.errors) == 2
    assert not result.idle  # no Bokeh document at all
    assert blankness(result.screenshot)[0] < 0.01


def test_long_tables_render_their_block_means(browser, tmp_path):
    path = tmp_path / "long.html"
    spec = "sinusoidal,positions=6000,dim=40"
    explorer.report(explorer.load(spec), path, resolution=256)
    result = browser.open(path)
    assert_rendered(result, tmp_path, "long")
    labels = browser.evaluate("""(async () => {
      const picker = Bokeh.documents[0].get_model_by_name('position_picker');
      picker.value = ['10'];
      await new Promise((resolve) => setTimeout(resolve, 200));
      const fig = Bokeh.documents[0].get_model_by_name('position_vectors');
      return fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data).data.label;
    })()""")
    assert labels == ["positions 234-257"]  # block 10 of 256 over 6000 positions


def hover(browser, name, fx, fy):
    """Move the mouse over the model called ``name`` at fractions (fx, fy) of its box; the tooltip's values."""
    import time

    left, top, width, height = browser.evaluate(f"""(() => {{
      const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name({name!r}));
      view.el.scrollIntoView();
      const r = view.el.getBoundingClientRect();
      return [r.left, r.top, r.width, r.height];
    }})()""")
    for step in range(4):  # a few moves: Bokeh needs motion to show a tooltip
        browser.call("Input.dispatchMouseEvent", session=browser.session, type="mouseMoved",
                     x=left + width * fx + step, y=top + height * fy)
        time.sleep(0.05)
    time.sleep(0.3)
    return browser.evaluate("""(() => {
      const out = [];
      const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
          if (el.shadowRoot) walk(el.shadowRoot);
          if (String(el.className).includes('bk-tooltip-row-value')) out.push(el.textContent.trim());
        }
      };
      walk(document);
      return out;
    })()""")


def test_heatmap_hover_decodes_the_value_under_the_mouse(browser, small_report):
    import re

    since = browser.mark()
    browser.open(small_report)
    position, dimension, value = hover(browser, "matrix", 0.4, 0.5)
    match = re.fullmatch(r"(-?\d+\.\d+) \u00b1 (\d\.?\d*(?:e-?\d+)?)", value)
    assert match, value
    x = explorer.load(SMALL).matrix
    assert abs(float(match.group(1)) - x[int(position), int(dimension)]) <= float(match.group(2)) + 1e-4
    i, j, cosine = hover(browser, "cosine_positions", 0.3, 0.6)
    assert int(i) > int(j)  # below the diagonal: y is i, counted downwards
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert abs(float(cosine.split(" ")[0]) - unit[int(i)] @ unit[int(j)]) <= 0.005
    errors, _ = browser.console(since)
    assert errors == []  # hover formatters run only on hover: their errors would show only now
