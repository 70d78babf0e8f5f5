"""Reports in a real browser: headless Chromium renders them with no console error, Bokeh goes idle,
the screenshot is not blank, and the pickers, mirrored images and linked selection work in the static file."""

import numpy as np
import pytest
from browser import CANDIDATES, Chromium, blankness, find_chromium  # tests/browser.py, on pytest's pythonpath
from page_oracle import fine_colour_codes, unpack_lower  # tests/page_oracle.py

import explorer
from explorer.analysis import cosine_image, fine_codes, matrix_image
from explorer.reporting import encoding

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
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # the built-in sections only: their plots are counted
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
    assert drawn == [1, 23, 23]  # 11 views per table (raw and centred cosines one figure, the PC pairs one) and
    # the overlaid offset profiles
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
    assert drawn == [1, 23, 23]
    # every packed image is whole by the time the page says it is ready
    whole = browser.evaluate("""(() => {
      const names = ['cosine_positions_image', 'cosine_dimensions_centred_image'];
      return [...Bokeh.documents[0].all_models].filter((m) => names.includes(m.name)).map((image) => {
        const img = image.data_source.data.image[0], n = Math.round(Math.sqrt(img.length));
        let asym = 0, sum = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
          sum += img[i * n + j]; if (img[i * n + j] !== img[j * n + i]) asym++;
        }
        return [image.name, asym, sum > 0];
      });
    })()""")
    assert sorted(whole) == [["cosine_dimensions_centred_image", 0, True]] * 2 + [["cosine_positions_image", 0, True]] * 2


def test_dimension_picker_redraws_from_the_fine_codes(browser, small_report):
    browser.open(small_report)
    shown = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0];
      doc.get_model_by_name('dimension_picker').value = ['5', '40'];
      await new Promise((resolve) => setTimeout(resolve, 200));  // CustomJS callbacks run asynchronously
      const fig = doc.get_model_by_name('dimension_traces');
      const lines = fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data);
      return {label: lines.data.label, y: Array.from(lines.data.ys[1])};
    })()""")
    x = explorer.load(SMALL).matrix
    expected = fine_codes(matrix_image(x)).decoded()[40]
    assert shown["label"] == ["dimension 5", "dimension 40"]
    assert np.allclose(shown["y"], expected, atol=1e-6)
    assert np.abs(np.array(shown["y"]) - x[:, 40]).max() <= 0.001 * np.ptp(x[:, 40])


def test_position_picker_shows_the_chosen_column(browser, small_report):
    browser.open(small_report)
    y = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0];
      doc.get_model_by_name('position_picker').value = ['100'];
      await new Promise((resolve) => setTimeout(resolve, 200));
      const fig = doc.get_model_by_name('position_vectors');
      const dots = fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data);
      return Array.from(dots.data.y);
    })()""")
    x = explorer.load(SMALL).matrix
    assert len(y) == 64 and np.all(np.abs(y - x[100]) <= 0.001 * np.ptp(x, axis=0))


def test_cosine_images_are_mirrored_whole_in_the_browser(browser, small_report):
    browser.open(small_report)
    stats = browser.evaluate("""(() => {
      const img = Bokeh.documents[0].get_model_by_name('cosine_positions_centred_image').data_source.data.image[0];
      let sum = 0, asym = 0;
      for (let i = 0; i < 256; i++) for (let j = 0; j < 256; j++) {
        sum += img[i * 256 + j]; if (img[i * 256 + j] !== img[j * 256 + i]) asym++;
      }
      return [sum, asym];
    })()""")
    codes = encoding.quantise(cosine_image(explorer.load(SMALL).matrix, centred=True).values, encoding.COSINE)
    assert stats == [int(unpack_lower(encoding.pack_lower(codes), 256).sum()), 0]


def test_pca_buttons_show_the_other_pair_with_the_selection_kept(browser, small_report):
    browser.open(small_report)
    shown = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0], fig = doc.get_model_by_name('pca_scores');
      const [a, b] = fig.renderers;
      a.data_source.selected.indices = [3, 4, 5];
      doc.get_model_by_name('pca_pair').active = 1;
      await new Promise((resolve) => setTimeout(resolve, 200));
      const hover = fig.toolbar.tools.find((t) => t.tooltips !== undefined && t.renderers !== 'auto');
      return [a.visible, b.visible, b.data_source.selected.indices, fig.title.text, fig.below[0].axis_label,
              fig.left[0].axis_label, hover.renderers.map((r) => r.id === b.id)];
    })()""")
    assert shown == [False, True, [3, 4, 5], "PC2 / PC3", "PC2", "PC3", [True]]


def test_pca_buttons_fit_the_axes_to_the_pair_shown_even_after_a_pan(browser, small_report):
    """A pan or zoom stops a data range following its data (BokehJS's have_updated_interactively, set as the pan
    tool sets it): the switch resets the figure's data ranges, so the other pair is not drawn in the old window."""
    browser.open(small_report)
    shown = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0], fig = doc.get_model_by_name('pca_scores');
      for (const range of [fig.x_range, fig.y_range]) {
        range.have_updated_interactively = true;  // what a pan does, with the window moved far off
        range.setv({start: 100, end: 101});
      }
      doc.get_model_by_name('pca_pair').active = 1;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const data = fig.renderers[1].data_source.data;
      const span = (a) => [Math.min(...a), Math.max(...a)];
      return [[fig.x_range.start, fig.x_range.end], span(data.pc2), [fig.y_range.start, fig.y_range.end], span(data.pc3)];
    })()""")
    (x0, x1), (lo2, hi2), (y0, y1), (lo3, hi3) = shown
    assert x0 <= lo2 and hi2 <= x1 and y0 <= lo3 and hi3 <= y1, shown
    assert x1 - x0 < 2 * (hi2 - lo2) and y1 - y0 < 2 * (hi3 - lo3), shown  # fitted to the data, not grown


def test_cosine_buttons_show_the_centred_image(browser, small_report):
    browser.open(small_report)
    shown = browser.evaluate("""(async () => {
      const doc = Bokeh.documents[0], fig = doc.get_model_by_name('cosine_positions');
      const before = fig.renderers.map((r) => r.visible);
      doc.get_model_by_name('cosine_positions_switch').active = 1;
      await new Promise((resolve) => setTimeout(resolve, 200));
      return [before, fig.renderers.map((r) => r.visible), fig.title.text];
    })()""")
    assert shown == [[True, False], [False, True], "centred cosine over positions"]


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
      return [...new Set(fig.renderers.map((r) => r.data_source).find((s) => 'label' in s.data).data.label)];
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


# ---------------------------------------------------------------- what the page shows (issue 14)

#: The matrix heatmaps' colours as the browser has them: each image's codes (filled on load) and its mapper.
HEATMAP_COLOURS = """(() => [...Bokeh.documents[0].all_models].filter((m) => m.name === 'matrix').map((fig) => {
  const glyph = fig.renderers[0].glyph, img = fig.renderers[0].data_source.data.image[0];
  const mapper = glyph.color_mapper;
  return {codes: Array.from(img), low: mapper.low, high: mapper.high, palette: mapper.palette};
}))()"""


def heavy_tailed_table():
    """Most values tiny, a few dimensions at +-4 (as GPT-2): on one scale the sinusoid would saturate."""
    from explorer.core.embedding import PositionEmbedding

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, (256, 64)).astype(np.float32)
    x[:, 3] = 4.0 * np.sin(np.arange(256) / 20)
    return PositionEmbedding(x, provider="heavy", source="test", kind="learned")


def test_the_sinusoids_colours_on_a_comparison_page_match_its_single_report(browser, small_report, tmp_path):
    browser.open(small_report)
    [alone] = browser.evaluate(HEATMAP_COLOURS)
    pair = tmp_path / "pair.html"
    explorer.report([explorer.load(SMALL), heavy_tailed_table()], pair)
    assert_rendered(browser.open(pair), tmp_path, "pair")
    together = browser.evaluate(HEATMAP_COLOURS)
    assert together[0] == alone  # the same codes through the same colour mapper: the same colours
    assert together[1]["codes"] != alone["codes"]
    shared = tmp_path / "shared.html"
    explorer.report([explorer.load(SMALL), heavy_tailed_table()], shared, shared_scale=True)
    browser.open(shared)
    on_one_scale = browser.evaluate(HEATMAP_COLOURS)[0]
    assert on_one_scale["codes"] != alone["codes"]  # --shared-scale: the sinusoid saturates, as it did before
    x = explorer.load(SMALL).matrix
    scale = encoding.matrix_scale([matrix_image(x)])
    expected = fine_colour_codes(fine_codes(matrix_image(x)), scale).ravel()
    assert np.array_equal(np.array(alone["codes"]), expected)  # the browser colours what Python says it does


def read_trace_values(browser, picker, figure, picked):
    """Pick ``picked`` in the page's picker and read back the values the page drew."""
    return browser.evaluate(f"""(async () => {{
      const doc = Bokeh.documents[0];
      doc.get_model_by_name({picker!r}).value = {[str(p) for p in picked]!r};
      await new Promise((resolve) => setTimeout(resolve, 300));
      const source = doc.get_model_by_name({figure!r}).renderers.map((r) => r.data_source)
        .find((s) => 'label' in s.data);
      return 'ys' in source.data ? source.data.ys.map((y) => Array.from(y)) : Array.from(source.data.y);
    }})()""")


def test_decoded_traces_in_the_page_are_within_a_tenth_of_a_percent_of_the_table(browser, gpt2_wpe, tmp_path):
    from explorer.core.embedding import PositionEmbedding

    path = tmp_path / "gpt2.html"
    explorer.report(PositionEmbedding(gpt2_wpe, provider="gpt2", source="gpt2", kind="learned"), path)
    assert_rendered(browser.open(path), tmp_path, "gpt2")
    dims = [459, 361, 0, 138, 767]  # 459 and 361 showed 20-30-position plateaus when decoded from 8-bit colours
    traces = np.array(read_trace_values(browser, "dimension_picker", "dimension_traces", dims))
    column_range = np.ptp(gpt2_wpe, axis=0)
    errors = np.abs(traces - gpt2_wpe[:, dims].T).max(axis=1) / column_range[dims]
    assert traces.shape == (5, 1024) and np.all(errors <= 0.001), errors
    longest_flat = max(int(np.max(np.diff(np.flatnonzero(np.diff(t) != 0)))) for t in traces)
    assert longest_flat < 5  # no plateaus
    vectors = np.array(read_trace_values(browser, "position_picker", "position_vectors", [0, 511])).reshape(2, -1)
    errors = np.abs(vectors - gpt2_wpe[[0, 511]]) / column_range
    assert np.all(errors <= 0.001), errors.max()


#: [page width, viewport width, narrowest plot, the plots' names narrower than 300 px].
LAYOUT = """(() => {
  const widths = [...Bokeh.documents[0].all_models]
    .filter((m) => m.toolbar !== undefined && m.renderers !== undefined)
    .map((m) => [m.name, Bokeh.index.find_one(m)]).filter(([, v]) => v)
    .map(([name, v]) => [name, v.el.getBoundingClientRect().width])
    .filter(([, w]) => w > 0);  // an atlas's hidden panels (one table's sections are shown at a time)
  return [document.documentElement.scrollWidth, window.innerWidth, Math.min(...widths.map(([, w]) => w)),
          widths.filter(([, w]) => w < 300).map(([n]) => n)];
})()"""


@pytest.mark.parametrize("width,specs", [(1280, [SMALL]), (1920, [SMALL]),
                                         (1280, [SMALL, "sinusoidal,positions=200,dim=64,layout=split"]),
                                         (1920, [SMALL, "sinusoidal,positions=200,dim=64,layout=split"]),
                                         (1280, [SMALL, SMALL, "sinusoidal,positions=200,dim=64,layout=split"])])
def test_the_page_fills_the_window_without_horizontal_scrolling(browser, tmp_path, monkeypatch, width, specs):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # the built-in views (a plugin's fixed-width figure is its own)
    path = tmp_path / "page.html"
    explorer.report([explorer.load(s) for s in specs], path)
    try:
        browser.resize(width, 1100)
        assert_rendered(browser.open(path), tmp_path, f"layout-{width}")
        page, viewport, narrowest, narrow = browser.evaluate(LAYOUT)
        heatmaps = browser.evaluate("""(() => [...Bokeh.documents[0].all_models].filter((m) => m.name === 'matrix')
          .map((m) => Bokeh.index.find_one(m)).filter((v) => v).map((v) => v.el.getBoundingClientRect())
          .filter((r) => r.width > 0).map((r) => [r.left, r.width]))()""")
    finally:
        browser.resize(1400, 1100)
    assert page <= viewport == width  # nothing sticks out: no horizontal scroll bar
    # an atlas's thumbnails and pair heatmaps are small by design; every full-size plot is at least 300 px
    # (a comparison's pairs and triples of plots wrap under each other where its column is too narrow)
    narrow = [n for n in narrow if not str(n).startswith(("thumb_", "atlas_"))]
    assert narrow == []
    columns = 2 if len(specs) == 2 else 1  # two side by side, three or more: an atlas, one table at a time
    assert len(heatmaps) == columns  # an atlas shows one table's sections
    for _, heatmap in heatmaps:
        assert heatmap >= 0.8 * width / columns  # fills its column, not a fixed 840 px
    if columns == 2:  # still two columns at 1280 px: the second table's heatmap starts right of the first's
        (left_a, width_a), (left_b, width_b) = sorted(heatmaps)
        assert left_b >= left_a + width_a and abs(width_a - width_b) <= 1


def test_toolbars_are_where_the_subtitle_says_and_legends_outside_the_data(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # the built-in views (a plugin's figure places its own)
    path = tmp_path / "builtin.html"
    explorer.report([explorer.load(SMALL), explorer.load(SMALL)], path)
    browser.open(path)
    places = browser.evaluate("""(() => [...Bokeh.documents[0].all_models]
      .filter((m) => m.toolbar !== undefined && m.renderers !== undefined)
      .map((m) => [m.name, m.toolbar_location, m.center.filter((r) => r.type === 'Legend' ||
                   String(r.constructor.name) === 'Legend').length]))()""")
    subtitle = browser.evaluate("document.body.innerText.includes('the tools to the right of each plot')") or \
        browser.evaluate("""(() => [...Bokeh.documents[0].all_models].some((m) => m.name === 'title' &&
          m.text.includes('the tools to the right of each plot')))()""")
    assert subtitle
    assert places and all(loc == "right" and legends_inside == 0 for _, loc, legends_inside in places), places


def test_a_cdn_page_says_so_when_bokehjs_cannot_load(browser, tmp_path):
    path = tmp_path / "cdn.html"
    explorer.report(explorer.load("sinusoidal,positions=32,dim=8"), path, resources="cdn")
    browser.open(path, idle_timeout=1.0)  # the test browser has no network: exactly the failing case
    shown = browser.evaluate("""(() => {
      const el = document.getElementById('posembed-no-bokeh');
      const box = el.getBoundingClientRect();
      return [typeof window.Bokeh, getComputedStyle(el).display, box.width > 200 && box.height > 30, el.innerText];
    })()""")
    assert shown[:3] == ["undefined", "block", True]
    assert "could not load BokehJS" in shown[3] and "--resources inline" in shown[3]
    inked, _ = blankness(browser.screenshot())
    assert inked > 0.01  # not a blank white page


def click_at(browser, left: float, top: float) -> None:
    """A left click (press and release) at page coordinates."""
    import time

    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", session=browser.session, type=kind, x=left, y=top,
                     button="left", clickCount=1)
    time.sleep(0.4)


def box_of(browser, name: str) -> list[float]:
    """The on-screen box of the model called ``name``, scrolled into view."""
    return browser.evaluate(f"""(() => {{
      const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name({name!r}));
      view.el.scrollIntoView({{block: 'center'}});
      const r = view.el.getBoundingClientRect();
      return [r.left, r.top, r.width, r.height];
    }})()""")


VISIBLE_PANELS = """(() => Bokeh.documents[0].get_model_by_name('atlas_drill').children.map((m) => m.name))()"""

#: The first column's text of the numbers table's rows, top to bottom as displayed.
DISPLAYED_ROWS = """(() => {
  const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('atlas_numbers'));
  const rows = [...view.shadow_el.querySelectorAll('.slick-row')];
  rows.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
  return rows.map((r) => r.querySelector('.slick-cell').textContent.trim());
})()"""


def test_the_atlas_draws_thumbnails_and_a_choice_reveals_that_tables_sections(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    path = tmp_path / "atlas.html"
    specs = [f"sinusoidal,positions=256,dim=64,base={b}" for b in (100, 10000, 30)] + [SMALL]
    explorer.report([explorer.load(s) for s in specs], path)
    since = browser.mark()
    result = browser.open(path)
    assert_rendered(result, tmp_path, "atlas")
    for k in range(4):
        for kind in ("matrix", "cosine", "pca"):
            left, top, width, height = box_of(browser, f"thumb_{kind}_{k}")
            assert width >= 100 and height >= 100  # drawn, not collapsed
    assert browser.evaluate(VISIBLE_PANELS) == ["drill_0"]
    left, top, width, height = box_of(browser, "thumb_cosine_2")
    click_at(browser, left + width / 2, top + height / 2)
    assert browser.evaluate(VISIBLE_PANELS) == ["drill_2"]
    assert browser.evaluate("""(() => Bokeh.documents[0].get_model_by_name('atlas_chosen').text)()""").find("3. ") >= 0
    import time

    time.sleep(1.0)  # its views are built when it is shown
    width_of_its_matrix = browser.evaluate("""(() => {
      const shown = [...Bokeh.documents[0].all_models].filter((m) => m.name === 'matrix' && Bokeh.index.find_one(m));
      if (shown.length !== 1) { return -shown.length; }  // only the chosen table's sections have views
      const view = Bokeh.index.find_one(shown[0]);
      return view ? view.el.getBoundingClientRect().width : 0;
    })()""")
    assert width_of_its_matrix > 300  # its full sections are drawn once shown
    # a row of the table chooses too
    browser.evaluate("""(() => { Bokeh.documents[0].get_model_by_name('atlas_numbers').source.selected.indices = [1];
                                 return 0; })()""")
    assert browser.evaluate(VISIBLE_PANELS) == ["drill_1"]
    # the sort: clicking the header of "effective rank" orders the rows by it
    before = browser.evaluate(DISPLAYED_ROWS)
    header = browser.evaluate("""(() => {
      const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('atlas_numbers'));
      view.el.scrollIntoView({block: 'center'});
      const h = [...view.shadow_el.querySelectorAll('.slick-header-column')]
        .find((e) => e.textContent.trim() === 'effective rank');
      const r = h.getBoundingClientRect();
      return [r.left + r.width / 2, r.top + r.height / 2];
    })()""")
    click_at(browser, *header)
    after = browser.evaluate(DISPLAYED_ROWS)
    source = browser.evaluate("""(() => { const d = Bokeh.documents[0].get_model_by_name('atlas_numbers_source').data;
                                         return [d.table, d.effective_rank]; })()""")
    by_rank = [label for _, label in sorted(zip(source[1], source[0]))]
    assert after == by_rank and after != before
    errors, _ = browser.console(since)
    assert errors == []  # no console error or uncaught exception from any of it
