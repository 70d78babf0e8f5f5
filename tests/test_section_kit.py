"""The public kit for report sections: the house-style figure, the page-wide shared ranges, the Page attributes
sections may read (declared and documented), and the helpers plugins import from ``explorer``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.reporting import figures
from explorer.reporting.page import Page

REPO = Path(__file__).resolve().parents[1]
#: The modules a plugin may import from (docs/plugins.md, "API version").
PUBLIC = {"explorer", "explorer.errors", "explorer.testing", "explorer.reporting.figures"}


def small_page(tables: int = 1) -> Page:
    embeddings = [explorer.load(f"sinusoidal,positions={8 + 4 * k},dim=8") for k in range(tables)]
    return Page(embeddings, [explorer.analyze(e) for e in embeddings])


def test_the_house_figure_has_no_logo_the_house_tools_on_the_right_and_stretches_no_narrower_than_min_width():
    fig = figures.figure("t", "n")
    assert fig.toolbar.logo is None and fig.toolbar_location == "right"
    assert [type(t).__name__ for t in fig.toolbar.tools] == ["PanTool", "WheelZoomTool", "BoxZoomTool", "ResetTool",
                                                            "SaveTool"]
    assert fig.sizing_mode == "stretch_width" and fig.min_width == figures.MIN_WIDTH and fig.height == figures.SIZE - 80


def test_the_house_figure_keeps_a_fixed_size_and_can_go_without_tools():
    fig = figures.figure("t", width=150, height=120, tools=None)
    assert fig.width == 150 and fig.height == 120 and fig.sizing_mode is None
    assert fig.toolbar_location is None and not fig.toolbar.tools and fig.toolbar.logo is None
    assert fig.styles["flex"] == "0 0 auto"  # a flex row wraps it rather than squeeze it (ViT's tiles were 179 px)


def test_captioned_puts_the_escaped_caption_under_the_view():
    fig = figures.figure("t")
    block = figures.captioned(fig, "a <b> c")
    assert block.children[0] is fig and "a &lt;b&gt; c" in block.children[1].text


def test_no_module_of_the_house_or_its_plugins_styles_a_toolbar_itself():
    """The house style lives in one place: sections call ``figures.figure`` rather than repeat it."""
    styled = [path.relative_to(REPO).as_posix() for root in ("explorer", "plugins") for path in (REPO / root).rglob("*.py")
              if "toolbar.logo" in path.read_text(encoding="utf-8")]
    assert styled == ["explorer/reporting/figures.py"]


def test_a_shared_range_is_one_range_per_key_widened_to_every_call():
    page = small_page()
    first = page.shared_range("k", 0, 10)
    assert page.shared_range("k", 2, 30) is first and (first.start, first.end) == (0, 30)
    assert page.shared_range("other", 0, 5) is not first
    down = page.shared_range("down", 10, 0)
    page.shared_range("down", 0, 40)
    assert (down.start, down.end) == (40, 0)  # the first call's direction is kept


def test_every_page_api_name_exists_and_hooks_md_documents_it():
    page = small_page(2)
    hooks = (REPO / "docs" / "hooks.md").read_text(encoding="utf-8")
    for name in Page.API:
        assert hasattr(page, name), name
        assert re.search(rf"`{name}[`(]", hooks), f"docs/hooks.md does not document Page.{name}"


def test_the_kits_documented_names_exist():
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    listed = re.search(r"`explorer\.reporting\.figures` \(([^)]*)\)", text)[1]
    for name in re.findall(r"`(\w+)`", listed):
        assert hasattr(figures, name), name


def test_block_sums_block_bounds_and_read_config_are_exported(tmp_path):
    bounds = explorer.block_bounds(10, 3)
    assert bounds.tolist() == [0, 3, 7, 10]
    sums = explorer.block_sums(np.arange(10, dtype=np.float32)[:, None], bounds)
    assert sums.ravel().tolist() == [3.0, 18.0, 24.0]
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    assert explorer.read_config(tmp_path / "config.json", "x") == {"model_type": "gpt2"}
    with pytest.raises(explorer.PosembedError, match="^x: "):
        explorer.read_config(tmp_path / "missing.json", "x")


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "plugins").glob("*/*.py")), ids=lambda p: p.parent.name)
def test_the_tutorial_plugins_import_only_the_public_api(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
            and node.module.split(".")[0] == "explorer"}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
             if alias.name.split(".")[0] == "explorer"}
    assert used <= PUBLIC, used - PUBLIC


def test_the_provenance_tables_label_column_does_not_wrap():
    from explorer.api import document

    for spec in ("sinusoidal,positions=16,dim=8", "alibi,heads=2,positions=8"):
        doc = document([explorer.load(spec)])
        [div] = [m for m in doc.models if getattr(m, "name", None) in ("provenance", "relative_provenance")]
        headers = re.findall(r"<th style='([^']*)'>", div.text)
        assert headers and all("white-space:nowrap" in style for style in headers)
