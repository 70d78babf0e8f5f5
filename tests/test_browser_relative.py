"""A relative term's page in a real browser: it renders without console errors, and the head picker redraws the
query x key matrix from the chosen head's values in the static file."""

import pytest

import explorer

from browser import CANDIDATES, Chromium, blankness, find_chromium  # tests/browser.py, on pytest's pythonpath

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason=f"no Chromium found (looked for $CHROMIUM, {', '.join(CANDIDATES)})"),
]


def test_head_picker_redraws_the_query_key_matrix_of_the_chosen_head(tmp_path):
    term = explorer.load("alibi,heads=12,positions=40")
    path = tmp_path / "alibi.html"
    explorer.report(term, path)
    with Chromium(width=1400, height=1100) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        inked, colours = blankness(result.screenshot)
        assert inked > 0.05 and colours > 50
        since = browser.mark()
        picked = browser.evaluate("""(async () => {
          const models = [...Bokeh.documents[0].all_models];
          const select = models.find((m) => m.name === 'head_picker');
          select.value = 'head 9';
          await new Promise((resolve) => setTimeout(resolve, 200));  // CustomJS callbacks may run asynchronously
          const fig = models.find((m) => m.name === 'relative_matrix');
          const image = fig.renderers[0].data_source.data.image[0];
          return [fig.title.text, image[39 * 40 + 0], image[39 * 40 + 39], Number.isNaN(image[0 * 40 + 1])];
        })()""")
        errors, _ = browser.console(since)
    assert errors == [], errors
    assert picked[0] == "query \u00d7 key bias, head 9"
    assert picked[1] == pytest.approx(float(term.value_at(-39)[9]), rel=1e-6)  # query 39, key 0: k = -39
    assert picked[2] == 0 and picked[3] is True  # the diagonal is k = 0; a causal term is empty above it
