"""Grid pages in a real browser: a grid table beside a 1-D table renders with no console error, and the patch
picker redraws any patch's cosine image from the quantised unit rows."""

import numpy as np
import pytest

import explorer
from explorer.analysis.grid import patch_similarity, quantised_cosines

from browser import CANDIDATES, Chromium, blankness, find_chromium  # tests/browser.py, on pytest's pythonpath

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason=f"no Chromium found (looked for $CHROMIUM, {', '.join(CANDIDATES)})"),
]


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1400, height=1100) as chromium:
        yield chromium


def learned_grid(height=6, width=5, dim=24):
    """A table shaped like a learned ViT one: smooth in row and column plus noise."""
    rng = np.random.default_rng(4)
    rows, cols = np.divmod(np.arange(height * width), width)
    smooth = np.outer(rows, rng.normal(size=dim)) + np.outer(cols, rng.normal(size=dim))
    return explorer.PositionEmbedding((smooth + rng.normal(size=(height * width, dim))).astype(np.float32),
                                      provider="learned", source="test", grid=(height, width))


def test_comparison_of_a_grid_table_and_a_one_dimensional_table_renders_without_errors(browser, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # the built-in sections only
    path = tmp_path / "grid-vs-1d.html"
    explorer.report([explorer.load("sinusoidal2d,grid=37x37,dim=64"), explorer.load("sinusoidal,positions=196,dim=64")],
                    path)
    browser.resize(1920, 1100)  # two tables side by side need 1920 px, as for 1-D pages
    result = browser.open(path)
    (tmp_path / "grid.png").write_bytes(result.screenshot)
    assert result.errors == [], result.errors
    assert result.idle
    inked, colours = blankness(result.screenshot)
    assert inked > 0.05 and colours > 100
    names = browser.evaluate("""Bokeh.documents[0].all_models.size > 0 && ['patch_tiles', 'patch_picked',
      'grid_offset', 'grid_pc1'].map((n) => Bokeh.documents[0].get_model_by_name(n) !== null)""")
    assert names == [True, True, True, True]
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no horizontal scroll
    browser.resize(1400, 1100)


PICK = """(async () => {
  const doc = Bokeh.documents[0];
  for (const [name, value] of Object.entries(%s)) doc.get_model_by_name(name).value = value;
  await new Promise((resolve) => setTimeout(resolve, 200));  // CustomJS callbacks run asynchronously
  const fig = doc.get_model_by_name('patch_picked');
  const marker = doc.get_model_by_name('patch_marker').data;
  return [fig.title.text, Array.from(fig.renderers[0].data_source.data.image[0]), marker.x[0], marker.y[0]];
})()"""


def pick(browser, **sliders):
    """Set the picker's sliders and read back the picked image's title, values and marker (x, y)."""
    import json

    return browser.evaluate(PICK % json.dumps(sliders))


def test_patch_picker_redraws_the_chosen_patchs_cosines(browser, tmp_path):
    emb = learned_grid()
    path = tmp_path / "picker.html"
    explorer.report(emb, path)
    browser.resize(1280, 1100)  # one table fits 1280 px
    browser.open(path)
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    browser.resize(1400, 1100)
    image = pick(browser, patch_row=4, patch_column=1)
    codes = patch_similarity(emb.matrix, emb.grid).codes
    unit = emb.matrix / np.linalg.norm(emb.matrix, axis=1, keepdims=True)
    assert image[0] == "cosine with patch (row 4, col 1)"
    np.testing.assert_allclose(image[1], quantised_cosines(codes, 4 * 5 + 1), atol=1e-6)
    assert np.abs(np.array(image[1]) - unit @ unit[21]).max() < 0.02
    assert (image[2], image[3]) == (1.5, 4.5)


def test_on_a_video_grid_the_picker_redraws_a_strip_of_every_frame(browser, tmp_path):
    from explorer.reporting.grid_views import Strip

    rng = np.random.default_rng(6)
    grid = (5, 3, 4)
    emb = explorer.PositionEmbedding(rng.normal(size=(60, 16)).astype(np.float32), provider="learned", source="video",
                                     grid=grid)
    path = tmp_path / "video.html"
    explorer.report(emb, path)
    for width in (1280, 1920):
        browser.resize(width, 1100)
        result = browser.open(path)
        assert result.errors == [] and result.idle
        assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    browser.resize(1400, 1100)
    image = pick(browser, patch_frame=3, patch_row=1, patch_column=2)
    codes = patch_similarity(emb.matrix, grid).codes
    picked = (3 * 3 + 1) * 4 + 2
    strip = Strip.of(*grid)
    expected = strip.mosaic(quantised_cosines(codes, picked).reshape(grid))
    assert image[0] == "cosine with patch (frame 3, row 1, col 2)"
    shown = np.array(image[1], dtype=np.float64).reshape(strip.shape)
    np.testing.assert_allclose(shown[np.isfinite(expected)], expected[np.isfinite(expected)], atol=1e-6)
    assert np.isnan(shown[~np.isfinite(expected)]).all()  # the gaps between frames stay blank
    y, x = strip.corner(3)
    assert (image[2], image[3]) == (x + 2.5, y + 1.5)


#: For every plot on the page: its name and how many pixels of its canvas's first two pixel columns hold anything but
#: the white border fill (a plot starts with white margin: nothing of its own is drawn there).
FIRST_COLUMNS_INK = """(() => {
  const out = [];
  for (const model of Bokeh.documents[0].all_models) {
    if (model.type !== 'Figure' && !(model.constructor && model.constructor.__name__ === 'Figure')) continue;
    const view = Bokeh.index.find_one(model);
    if (view == null) continue;
    const canvas = view.canvas_view.primary.canvas;
    const column = canvas.getContext('2d').getImageData(0, 0, 2, canvas.height).data;
    let ink = 0;
    for (let i = 0; i < column.length; i += 4) {
      if (column[i] + column[i + 1] + column[i + 2] < 3 * 250) ink++;
    }
    out.push([model.name, ink]);
  }
  return out;
})()"""


@pytest.mark.parametrize("specs", [["sinusoidal2d,grid=14x14,dim=32"],
                                   ["sinusoidal2d,grid=6x5,dim=16", "sinusoidal,positions=30,dim=16",
                                    "sinusoidal2d,grid=5x6,dim=16"]], ids=["grid", "atlas"])
def test_no_sliver_left_of_fixed_size_plots_once_the_window_was_narrower_than_them(browser, tmp_path, monkeypatch,
                                                                                 specs):
    """A window narrower than a fixed-size plot (or a full-page capture, which lays the page out 1 px wide) used to
    squeeze it and paint its image and title from a negative x; BokehJS's next paint clears from half a pixel in, so
    their first pixel column stayed on screen: a 1 px strip of colour left of each fixed-size image."""
    import time

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    path = tmp_path / "page.html"
    explorer.report([explorer.load(spec) for spec in specs], path)
    browser.resize(1280, 1100)
    browser.open(path)
    browser.resize(1, 1)  # what Page.captureScreenshot's captureBeyondViewport does, as a narrow window would
    time.sleep(0.5)
    browser.resize(1280, 1100)
    time.sleep(0.5)
    inked = browser.evaluate(FIRST_COLUMNS_INK)
    fixed = [name for name, _ in inked if name and name.startswith(("patch_", "grid_", "thumb_", "atlas_"))]
    assert len(fixed) >= (3 if len(specs) == 1 else 8), inked  # the fixed-size plots are among those read
    assert [(name, ink) for name, ink in inked if ink] == []
    browser.screenshot(full_page=True)  # the capture itself leaves no sliver either
    assert [(name, ink) for name, ink in browser.evaluate(FIRST_COLUMNS_INK) if ink] == []
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no horizontal scroll


@pytest.mark.parametrize("width", [1280, 1920])
def test_a_vit_against_sinusoidal2d_fits_the_window_with_no_sliver(browser, tmp_path, monkeypatch, width):
    """A real (tiny, random) ViT checkpoint read through hf:, beside the 2-D sinusoid: no horizontal scroll at 1280
    or 1920 px, before or after a full-page capture, and nothing left of any plot."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                                    image_size=224, patch_size=16)  # ViT-B/16's 14 x 14 patch grid
    transformers.ViTModel(config).save_pretrained(tmp_path / "vit")
    path = tmp_path / "vit.html"
    explorer.report([explorer.load(f"hf:{tmp_path / 'vit'}"), explorer.load("sinusoidal2d")], path)
    browser.resize(width, 1100)
    try:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        assert browser.evaluate("[document.documentElement.scrollWidth, window.innerWidth]") == [width, width]
        browser.screenshot(full_page=True)
        assert browser.evaluate("[document.documentElement.scrollWidth, window.innerWidth]") == [width, width]
        assert [(name, ink) for name, ink in browser.evaluate(FIRST_COLUMNS_INK) if ink] == []
    finally:
        browser.resize(1400, 1100)
