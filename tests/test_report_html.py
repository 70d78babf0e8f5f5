"""The report's HTML, parsed: standalone, with the expected views, compact and escaped."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import explorer
from explorer.embedding import PositionEmbedding


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
    docs = json.loads(match.group(1))
    return next(iter(docs.values()))


def named_models(doc):
    found = {}

    def walk(node):
        if isinstance(node, dict):
            attrs = node.get("attributes", {})
            if isinstance(attrs, dict) and isinstance(attrs.get("name"), str):
                found[attrs["name"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


@pytest.fixture(scope="module")
def default_html():
    return explorer.report(explorer.load("sinusoidal"))


def test_default_report_is_standalone(default_html):
    page = Page(default_html)
    assert page.scripts, "no scripts at all"
    assert not [s for s in page.scripts if s.get("src", "").startswith(("http:", "https:", "//"))]
    assert "Bokeh" in default_html  # the library itself is inline


def test_default_report_has_every_view(default_html):
    names = named_models(document(default_html))
    for view in ("provenance", "matrix", "cosine_positions", "cosine_dimensions", "dimension_traces"):
        assert view in names, view


def test_images_travel_as_uint8_binary(default_html):
    doc = json.dumps(document(default_html))
    dtypes = re.findall(r'"dtype": "(\w+)"', doc)
    assert "uint8" in dtypes
    assert "float16" not in dtypes
    assert '"type": "ndarray"' in doc


def test_default_report_is_under_6_mb(default_html):
    assert len(default_html.encode("utf-8")) <= 6_000_000


def test_strings_from_providers_are_escaped():
    evil = '<script>alert(1)</script>"</title>'
    emb = PositionEmbedding(np.eye(4), provider=evil, source=evil, description=evil)
    html = explorer.report(emb, title=evil)
    assert "<script>alert(1)</script>" not in html
    assert Page(html).title == evil  # the title survives as text, not markup


def test_cdn_resources_reference_bokeh_online(tmp_path):
    html = explorer.report(explorer.load("sinusoidal,positions=8,dim=4"), resources="cdn")
    assert any(s.get("src", "").startswith("https://cdn.bokeh.org") for s in Page(html).scripts)
