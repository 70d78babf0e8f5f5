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
                                 ("offset profile and row norms", "offset profile on the grid"),
                                 ("principal components", "principal components on the grid")):
        assert shown.index(grid_section) == shown.index(before) + 1, shown
    provenance = next(m for m in doc.models if m.name == "provenance")
    assert "6 x 5 (position r * 5 + c is row r, column c)" in provenance.text


def test_grid_images_wrap_in_their_column_rather_than_overflow_or_squeeze():
    """Fixed-size grid images in a row that wraps: two tables at 1280 px leave 596 px a column, less than two
    principal-component images and the tiles beside the picker (they overlapped the next column, or were
    squeezed to 179 px)."""
    from explorer.api import document

    doc = document([explorer.load("sinusoidal2d,grid=6x6,dim=32")])
    rows = [m for m in doc.models if type(m).__name__ == "Row"
            and any(getattr(c, "name", "") in ("grid_pc1", "patch_tiles") for c in m.children)]
    assert len(rows) == 2 and all(r.styles.get("flex-wrap") == "wrap" for r in rows)
    pcs = next(r for r in rows if r.children[0].name == "grid_pc1")
    assert [c.name for c in pcs.children] == [f"grid_pc{k}" for k in range(1, len(pcs.children) + 1)]
