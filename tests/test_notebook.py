"""``explorer.show`` in a real Jupyter notebook: executed by nbclient on an IPython kernel, with no network.

The outputs are read the way a notebook front end reads them: BokehJS's own source inline (or CDN URLs when
asked), the report's document with its plots and packed images, its document-ready callback, and no stray
text repr of a Bokeh model. One browser test renders the executed notebook's outputs as a page in headless Chromium.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.analysis import analyze
from explorer.reporting import encoding

# the one import of the headless-browser driver in this module
from browser import Chromium, blankness, find_chromium  # tests/browser.py, on pytest's pythonpath

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = "sinusoidal,positions=256,dim=64"
SPLIT = "sinusoidal,positions=200,dim=64,layout=split"
EXEC_MIME = "application/vnd.bokehjs_exec.v0+json"
PACKED = ("cosine_positions", "cosine_positions_centred", "cosine_dimensions", "cosine_dimensions_centred")

CELLS = [
    "import sys\nimport explorer\nprint(sys.executable)\nprint(explorer.__file__)",
    f"small = explorer.load({SMALL!r})\nsplit = explorer.load({SPLIT!r})",
    "explorer.show(small)",
    "explorer.show([small, split], title='two tables')",
    "from bokeh.io import curdoc\nmine = curdoc()",
    "explorer.show(small, resources='cdn')",
    "print(curdoc() is mine, len(mine.roots))",
]
SHOW_INLINE, SHOW_PAIR, SHOW_CDN = 2, 3, 5


@pytest.fixture(scope="module")
def notebook(run_notebook, tmp_path_factory):
    """The executed notebook of ``CELLS``."""
    return run_notebook(CELLS, cwd=tmp_path_factory.mktemp("notebook"))


def outputs(notebook, cell: int) -> list:
    return notebook.cells[cell].outputs


def loader(notebook, cell: int) -> str:
    """The output that loads BokehJS (the one that is not a document's exec output)."""
    [js] = [o.data["application/javascript"] for o in outputs(notebook, cell)
            if "application/javascript" in o.get("data", {}) and EXEC_MIME not in o.data]
    return js


def shown_document(notebook, cell: int) -> dict:
    """The serialised Bokeh document a cell's exec output embeds."""
    [js] = [o.data["application/javascript"] for o in outputs(notebook, cell) if EXEC_MIME in o.get("data", {})]
    docs = json.loads(re.search(r"const docs_json = (.*?);\n", js).group(1))
    [doc] = docs.values()
    return doc


def models(node, found: dict | None = None) -> dict[str, dict]:
    """Every model defined in a serialised document, by id."""
    found = {} if found is None else found
    if isinstance(node, dict):
        if node.get("type") == "object" and "id" in node:
            found[node["id"]] = node
        for value in node.values():
            models(value, found)
    elif isinstance(node, list):
        for value in node:
            models(value, found)
    return found


def ndarray(node: dict) -> np.ndarray:
    """A Bokeh-serialised ndarray (base64, gzip-compressed when Bokeh chose to)."""
    raw = base64.b64decode(node["array"]["data"])
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return np.frombuffer(raw, dtype=node["dtype"]).reshape(node["shape"])


def ready_callbacks(doc: dict) -> list[dict]:
    return [cb for event, cbs in doc.get("callbacks", {}).get("entries", []) if event == "document_ready" for cb in cbs]


def expected_packed(spec: str) -> list[bytes]:
    results = analyze(explorer.load(spec).matrix)
    return sorted(encoding.pack_lower(encoding.quantise(results[name].values, encoding.COSINE)).tobytes() for name in PACKED)


def test_the_kernel_runs_this_checkout_on_this_python(notebook):
    executable, module = outputs(notebook, 0)[0].text.split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(module).resolve().is_relative_to(REPO)


def test_show_puts_bokehjs_itself_inline_by_default(notebook):
    from bokeh.resources import INLINE

    js = loader(notebook, SHOW_INLINE)
    assert "const js_urls = [];" in js  # nothing to fetch
    bokeh_source = INLINE.js_raw[0]  # bokeh.min.js, which the notebook output carries line by line (indented)
    assert len(bokeh_source) > 500_000 and all(line.strip() in js for line in bokeh_source.splitlines())


def test_show_resources_cdn_links_bokehjs_instead(notebook):
    from bokeh import __version__

    js = loader(notebook, SHOW_CDN)
    assert f"https://cdn.bokeh.org/bokeh/release/bokeh-{__version__}.min.js" in js
    assert len(js) < 100_000 and "BEGIN bokeh.min.js" not in js
    assert {"roots", "callbacks"} <= set(shown_document(notebook, SHOW_CDN))  # the report itself is still inline


def test_shown_report_carries_its_plots_and_their_data(notebook):
    doc = shown_document(notebook, SHOW_INLINE)
    names = [m["attributes"].get("name") for m in models(doc["roots"]).values() if m["name"] == "Figure"]
    for name in ("matrix", "dimension_traces", "position_vectors", "cosine_positions", "cosine_dimensions", "pca_scores"):
        assert names.count(name) == 1, (name, names)
    [callback] = ready_callbacks(doc)
    packed = [item[1] for key, items in callback["attributes"]["args"]["entries"] if key == "items" for item in items]
    assert sorted(ndarray(p).tobytes() for p in packed) == expected_packed(SMALL)


def test_show_keeps_the_reports_document_ready_callback(notebook):
    seen: set[str] = set()
    for cell, tables in ((SHOW_INLINE, 1), (SHOW_PAIR, 2), (SHOW_CDN, 1)):
        doc = shown_document(notebook, cell)
        [callback] = ready_callbacks(doc)  # exactly one: no callback of an earlier cell comes along
        assert callback["name"] == "CustomJS" and "posembedReady" in callback["attributes"]["code"]
        [items] = [v for key, v in callback["attributes"]["args"]["entries"] if key == "items"]
        assert len(items) == len(PACKED) * tables
        sources = {item[0]["id"] for item in items}
        drawn = models(doc["roots"])  # what the page's layout holds, its plots' data sources among them
        assert sources <= set(drawn) and all(drawn[s]["name"] == "ColumnDataSource" for s in sources)
        defined = models(doc)
        assert not seen & set(defined), "a later cell's document carries an earlier cell's models"
        seen |= set(defined)


def test_a_cell_ending_in_show_prints_no_model_repr(notebook):
    for cell in (SHOW_INLINE, SHOW_PAIR, SHOW_CDN):
        kinds = [o.output_type for o in outputs(notebook, cell)]
        assert kinds == ["display_data"] * 3, kinds  # BokehJS, the report's div, the report's script
        plain = [o.data["text/plain"] for o in outputs(notebook, cell) if "text/plain" in o.get("data", {})]
        assert plain == []
        assert not any("Column(" in str(o.get("data", {}).get("text/html", "")) for o in outputs(notebook, cell))


def test_show_leaves_the_notebooks_current_document_alone(notebook):
    assert outputs(notebook, 6)[0].text.split() == ["True", "0"]


def page_of(cells) -> str:
    """The HTML page a notebook front end makes of these cells' outputs: HTML as it is, JavaScript run in order."""
    parts = []
    for cell in cells:
        parts.append(f"<pre>{html.escape(cell.source)}</pre>")
        for output in cell.outputs:
            data = output.get("data", {})
            if "application/javascript" in data:
                parts.append(f"<script>{data['application/javascript']}</script>")
            elif "text/html" in data:
                parts.append(data["text/html"])
            elif output.output_type == "stream":
                parts.append(f"<pre>{html.escape(output.text)}</pre>")
    return "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>notebook</title></head><body>\n" + \
        "\n".join(parts) + "\n</body></html>\n"


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
def test_the_executed_notebook_renders_offline_in_a_browser(notebook, tmp_path):
    page = tmp_path / "notebook.html"
    page.write_text(page_of(notebook.cells[: SHOW_PAIR + 1]), encoding="utf-8")  # the CDN cell needs the network
    with Chromium(width=1400, height=1100) as browser:
        result = browser.open(page, ready="window.Bokeh !== undefined && Bokeh.documents.length === 2")
        (tmp_path / "notebook.png").write_bytes(result.screenshot)
        assert result.errors == [], result.errors
        assert result.idle, "Bokeh never reported both documents idle"
        inked, colours = blankness(result.screenshot)
        assert inked > 0.05 and colours > 100, f"screenshot looks blank: {inked:.1%} inked, {colours} colours"
        drawn = browser.evaluate("""(() => Bokeh.documents.map((doc) => {
          const plots = [...doc.all_models].filter((m) => m.toolbar !== undefined && m.renderers !== undefined);
          return [doc.roots().length, plots.length, plots.filter((p) => Bokeh.index.find_one(p) != null).length];
        }))()""")
        assert drawn == [[1, 11, 11], [1, 23, 23]]
        whole = browser.evaluate("""(() => Bokeh.documents.map((doc) => [...doc.all_models]
          .filter((m) => m.name && m.name.startsWith('cosine_') && m.name.endsWith('_image')).map((image) => {
            const img = image.data_source.data.image[0], n = Math.round(Math.sqrt(img.length));
            let asym = 0, sum = 0;
            for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
              sum += img[i * n + j]; if (img[i * n + j] !== img[j * n + i]) asym++;
            }
            return asym === 0 && sum > 0;
          })))()""")
        assert whole == [[True] * 4, [True] * 8]  # every packed image mirrored whole: the callback ran
        assert browser.evaluate("document.documentElement.dataset.posembedReady") == "1"
