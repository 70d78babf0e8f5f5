"""The report's HTML, parsed: standalone, every view with a caption, compact, float32 at most, escaped."""

import html as html_module
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import explorer
import explorer.api
from explorer.core.embedding import PositionEmbedding

VIEWS = (
    "provenance", "matrix", "dimension_traces", "dimension_picker", "position_vectors", "position_picker",
    "cosine_positions", "cosine_positions_switch", "cosine_positions_image", "cosine_positions_centred_image",
    "cosine_dimensions", "cosine_dimensions_switch", "cosine_dimensions_image", "cosine_dimensions_centred_image",
    "offset_profile", "row_norms", "pca_explained", "pca_scores", "pca_pair", "singular_values",
    "dimension_frequencies", "probes",
)


class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.scripts, self.title, self._in_title = [], "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def document(html):
    """The Bokeh document JSON embedded in the page."""
    match = re.search(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', html, re.S)
    assert match, "no embedded Bokeh document"
    docs = json.loads(html_module.unescape(match.group(1)))  # as BokehJS reads it
    return next(iter(docs.values()))


def walk(node):
    """Every dict in a JSON tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def named_models(doc):
    found = {}
    for node in walk(doc):
        attrs = node.get("attributes", {})
        if isinstance(attrs, dict) and isinstance(attrs.get("name"), str):
            found.setdefault(attrs["name"], []).append(node)
    return found


def models_by_id(doc):
    return {node["id"]: node for node in walk(doc) if node.get("type") == "object" and "id" in node}


def ref(node, key):
    value = node["attributes"][key]
    return value.get("id") if isinstance(value, dict) else value


def div_texts(doc):
    return [n["attributes"]["text"] for n in walk(doc)
            if n.get("name") == "Div" and isinstance(n.get("attributes", {}).get("text"), str)]


@pytest.fixture(scope="module")
def default_html():
    return explorer.report(explorer.load("sinusoidal"))


@pytest.fixture(scope="module")
def comparison_html():
    return explorer.report([explorer.load("sinusoidal,positions=300,dim=32"),
                            explorer.load("sinusoidal,positions=200,dim=32,layout=split,base=500")])


def test_default_report_is_standalone(default_html):
    page = Page(default_html)
    assert page.scripts, "no scripts at all"
    assert not [s for s in page.scripts if s.get("src", "").startswith(("http:", "https:", "//"))]
    assert "Bokeh" in default_html  # the library itself is inline


def test_default_report_has_every_view(default_html):
    names = named_models(document(default_html))
    missing = [view for view in VIEWS if view not in names]
    assert not missing


def test_every_view_has_a_caption_saying_how_it_is_computed(default_html):
    text = " ".join(div_texts(document(default_html)))
    for phrase in ("cos(p_i, p_j) = p_i", "m(k) = mean over i of cos(p_i, p_i+k)", "Pearson correlation",
                   "Euclidean length", "PCA of the position vectors", "Effective rank exp(H(p))",
                   "dominant frequency", "ridge regression", "drawn in the browser from the table",
                   "Position vectors:", "exactly 0",
                   "colour range is linear and symmetric", "labelled at both ends"):
        assert phrase in text, phrase


def test_no_float64_and_no_float16_in_the_document(default_html):
    dtypes = {n["dtype"] for n in walk(document(default_html)) if n.get("type") in ("ndarray", "typed_array")}
    assert "uint8" in dtypes and "uint16" in dtypes  # colour codes and the fine codes
    assert dtypes <= {"uint8", "uint16", "int32", "float32"}, dtypes


def test_default_report_is_within_its_4_mb_budget(default_html):
    assert len(default_html.encode("utf-8")) <= 4_000_000


def test_cosine_images_ship_half_and_are_mirrored_on_load(default_html):
    doc = document(default_html)
    callbacks = [n for n in walk(doc) if n.get("name") == "CustomJS"
                 and "image[j * n + i]" in n.get("attributes", {}).get("code", "")]
    assert len(callbacks) == 1  # one for the whole page
    packed = [n for c in callbacks for n in walk(c["attributes"]["args"])
              if n.get("type") == "ndarray" and n["dtype"] == "uint8"]
    assert sorted(p["shape"][0] for p in packed) == [768 * 769 // 2] * 2 + [1024 * 1025 // 2] * 2


def test_pca_pairs_share_one_source_so_selection_is_linked(default_html):
    doc = document(default_html)
    names, ids = named_models(doc), models_by_id(doc)
    [fig] = names["pca_scores"]
    renderers = [ids.get(r["id"], r) for r in fig["attributes"]["renderers"]]
    assert len(renderers) == 2  # PC1/PC2 and PC2/PC3, one shown at a time
    assert len({ref(renderer, "data_source") for renderer in renderers}) == 1
    assert [r["attributes"].get("visible", True) for r in renderers] == [True, False]


def test_raw_and_centred_cosines_are_one_figure_each_with_its_switch(default_html):
    doc = document(default_html)
    names, ids = named_models(doc), models_by_id(doc)
    for axis in ("positions", "dimensions"):
        [fig] = names[f"cosine_{axis}"]
        images = [ids.get(r["id"], r) for r in fig["attributes"]["renderers"]]
        assert [i["attributes"]["name"] for i in images] == [f"cosine_{axis}_image", f"cosine_{axis}_centred_image"]
        assert [i["attributes"].get("visible", True) for i in images] == [True, False]
        glyphs = [ids.get(ref(i, "glyph"), i["attributes"]["glyph"]) for i in images]
        assert len({ref(g, "color_mapper") for g in glyphs}) == 1  # one mapper, one colour bar
        [switch] = names[f"cosine_{axis}_switch"]
        assert switch["attributes"]["labels"] == ["raw", "centred"]


def test_switch_refuses_views_without_a_title_each_and_needs_no_axes_without_labels():
    from explorer.reporting import figures

    fig = figures.figure("no axes", x_axis_location=None, y_axis_location=None)
    a, b = fig.line([0, 1], [0, 1]), fig.line([0, 1], [1, 0])
    buttons = figures.switch(fig, {"a": [a], "b": [b]}, ["A", "B"])  # a plugin's figure may have no axes
    assert buttons.labels == ["a", "b"] and (a.visible, b.visible) == (True, False)
    for views, titles, labels in (({}, [], None), ({"a": [a], "b": [b]}, ["A"], None),
                                  ({"a": [a], "b": [b]}, ["A", "B"], [("x", "y")])):
        with pytest.raises(ValueError, match="as many titles"):
            figures.switch(fig, views, titles, axis_labels=labels)


def test_position_axes_are_linked_within_a_page(default_html):
    doc = document(default_html)
    names = named_models(doc)
    ranges = {ref(names[v][0], "x_range") for v in ("matrix", "dimension_traces", "row_norms", "cosine_positions")}
    assert len(ranges) == 1


def test_comparison_shows_tables_side_by_side_with_shared_scales(comparison_html):
    doc = document(comparison_html)
    names, ids = named_models(doc), models_by_id(doc)
    assert len(names["matrix"]) == 2 and len(names["provenance"]) == 2
    assert len({ref(m, "x_range") for m in names["matrix"] + names["cosine_positions"] + names["row_norms"]}) == 1
    # one colour scale: both heatmaps' mappers and hover decoders say the same thing
    mappers = []
    for fig in names["matrix"]:
        image = next(ids.get(r["id"], r) for r in fig["attributes"]["renderers"])
        glyph = ids.get(ref(image, "glyph"), image["attributes"]["glyph"])
        mapper = glyph["attributes"]["color_mapper"]
        mapper = ids.get(mapper["id"], mapper)
        mappers.append((mapper["attributes"]["low"], mapper["attributes"]["high"]))
    assert mappers[0] == mappers[1]


def test_comparison_has_the_pairwise_numbers_and_overlaid_offsets(comparison_html):
    doc = document(comparison_html)
    names = named_models(doc)
    table = names["comparison"][0]["attributes"]["text"]
    assert "linear CKA" in table and "similarity correlation" in table and "<td" in table
    overlay = names["offset_overlay"][0]
    assert len(overlay["attributes"]["renderers"]) == 2


def test_comparison_numbers_match_the_api(comparison_html):
    a = explorer.load("sinusoidal,positions=300,dim=32")
    b = explorer.load("sinusoidal,positions=200,dim=32,layout=split,base=500")
    c = explorer.api.compare(a, b).comparison
    table = named_models(document(comparison_html))["comparison"][0]["attributes"]["text"]
    assert f">{c.cka:.4g}<" in table and f">{c.similarity_correlation:.4g}<" in table and ">200<" in table


EVIL = '<script>alert(1)</script>"\'</title>&amp;'


def test_strings_from_providers_configs_and_plugins_are_escaped():
    emb = PositionEmbedding(np.eye(4), provider=EVIL, source=EVIL, description=EVIL, tensor=EVIL, revision=EVIL,
                            params={"name": EVIL}, kind=EVIL)
    html = explorer.report(emb, title=EVIL)
    assert "<script>alert(1)</script>" not in html and EVIL not in html
    assert Page(html).title == EVIL  # the title survives as text, not markup
    texts = " ".join(div_texts(document(html)))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&lt;/title&gt;&amp;amp;" in texts


def test_comparison_pages_escape_labels_in_tables_and_legends():
    tables = [PositionEmbedding(np.eye(6)[:, :3] + 0.1 * (k + 1), provider=EVIL, source=f"{EVIL}{k}") for k in range(2)]
    html = explorer.report(tables)
    assert "<script>alert(1)</script>" not in html
    comparison = named_models(document(html))["comparison"][0]["attributes"]["text"]
    assert "&lt;script&gt;" in comparison and "<script>" not in comparison


def test_cdn_resources_reference_bokeh_online(tmp_path):
    html = explorer.report(explorer.load("sinusoidal,positions=8,dim=4"), resources="cdn")
    assert any(s.get("src", "").startswith("https://cdn.bokeh.org") for s in Page(html).scripts)


def test_unknown_resources_are_refused():
    from explorer.errors import OutputError

    with pytest.raises(OutputError, match="inline, cdn"):
        explorer.report(explorer.load("sinusoidal,positions=8,dim=4"), resources="local")


def test_tiny_tables_still_render_every_section():
    html = explorer.report(PositionEmbedding(np.array([[1.0], [3.0]]), provider="tiny", source="tiny"))
    names = named_models(document(html))
    assert "matrix" in names and "probes" not in names  # probes need more positions; the caption says so
    assert "Probes: not run" in " ".join(div_texts(document(html)))


def test_report_is_written_atomically_and_returned(tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")
    html = explorer.report(explorer.load("sinusoidal,positions=8,dim=4"), out)
    assert out.read_text(encoding="utf-8") == html
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind


def test_the_command_builds_one_document_of_unique_ids_in_one_process(cli_comparison_report):
    path, stderr = cli_comparison_report
    assert stderr == ""
    doc = document(path.read_text(encoding="utf-8"))
    assert len(doc["roots"]) == 1
    defined = [n["id"] for n in walk(doc) if n.get("type") == "object" and "name" in n]
    assert len(defined) == len(set(defined)), "a model id is defined twice"
    names = {n["attributes"].get("name") for n in walk(doc) if n.get("type") == "object" and "attributes" in n}
    assert {"matrix", "offset_profile", "cosine_dimensions", "probes", "comparison"} <= names


def test_the_document_passes_bokehs_integrity_checks():
    from bokeh.core.validation.check import check_integrity

    from explorer.reporting.page import build_document

    embeddings = [explorer.load("sinusoidal,positions=64,dim=16"), explorer.load("sinusoidal,positions=64,dim=8")]
    results = [explorer.analyze(e) for e in embeddings]
    doc = build_document(embeddings, results, [(0, 1, explorer.api.compare(*embeddings))])
    issues = check_integrity(list(doc.models))
    assert not issues.error, issues.error
    assert not issues.warning, issues.warning


def test_gpt2_report_is_within_its_6_mb_budget_with_a_symlog_scale(gpt2_wpe):
    emb = PositionEmbedding(gpt2_wpe, provider="gpt2", source="openai-community/gpt2", kind="learned")
    html = explorer.report(emb)
    assert len(html.encode("utf-8")) <= 6_000_000
    texts = " ".join(div_texts(document(html)))
    assert "symmetric log scale" in texts and "the four dimensions with the largest spread" in texts
