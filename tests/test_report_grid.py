"""Grid sections on the page: present, in their places, for a grid table; absent (and free) for a 1-D table."""

from __future__ import annotations

import explorer
from explorer.api import document

GRID_MODELS = ("patch_tiles", "patch_picked", "patch_codes", "grid_offset", "grid_pc1")


def names(doc) -> set[str]:
    return {model.name for model in doc.models if model.name}


def headings(doc) -> list[str]:
    """The section headings, top to bottom."""
    import re

    from bokeh.models import Div

    return [re.sub("<[^>]+>", "", child.text) for child in doc.roots[0].children
            if isinstance(child, Div) and child.name != "title" and child.text.startswith("<h")]


def test_a_one_dimensional_page_has_no_grid_section_and_no_grid_data(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    doc = document(explorer.load("sinusoidal,positions=196,dim=32"))
    assert not names(doc) & set(GRID_MODELS)
    assert not any("grid" in text for text in headings(doc))


def test_a_grid_page_shows_the_grid_sections_after_their_one_dimensional_neighbours(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    doc = document(explorer.load("sinusoidal2d,grid=6x5,dim=16"))
    assert set(GRID_MODELS) <= names(doc)
    shown = headings(doc)
    for before, grid_section in (("the matrix", "patch similarity (grid)"),
                                 ("offset profile and row norms", "2-D offset profile (grid)"),
                                 ("principal components", "principal components on the grid")):
        assert shown.index(grid_section) == shown.index(before) + 1, shown
    provenance = next(m for m in doc.models if m.name == "provenance")
    assert "6 x 5 (position r * 5 + c is row r, column c)" in provenance.text
