"""A folder site for big atlases (``posembed report ... -o DIR/``): it opens offline from ``file://``.

```
DIR/index.html          the atlas and the series' dynamics: every page section, no table's own sections
DIR/tables/001.html     each table's full sections, linked from the index (its thumbnails, its numbers row)
DIR/bokeh/js/*.js       BokehJS, written once, loaded by every page by relative path
```

Each page is rendered by Bokeh's ``file_html`` with ``Resources(mode="relative")`` whose ``base_dir`` is the
site's own copy of BokehJS (``--resources cdn``: the CDN, and no copy). The folder is written as a whole
(``explorer.runtime.output.FolderWriter``): into a temporary sibling that replaces ``DIR`` only once every page
is written, so an interrupted run leaves the old site (or none), never half of a new one, and nothing is written
outside ``DIR``. A folder that holds anything but an earlier site is refused.
"""

from __future__ import annotations

import html
import os
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from bokeh.embed import file_html
from bokeh.resources import Resources

from explorer.core.embedding import PositionEmbedding
from explorer.plugins.units import Results, Section
from explorer.reporting import figures
from explorer.reporting.page import CDN_TEMPLATE, build_document, shared_matrix_scale
from explorer.runtime import console
from explorer.runtime.console import utf8_text
from explorer.runtime.output import FolderWriter

INDEX = "index.html"
TABLES = "tables"
BOKEH = "bokeh"


def table_pages(count: int) -> list[str]:
    """Each table's page, relative to the index: ``tables/001.html`` ... (as many digits as the count needs)."""
    digits = max(3, len(str(count)))
    return [f"{TABLES}/{k + 1:0{digits}d}.html" for k in range(count)]


def _resources(kind: str, page: str, root: Path) -> Resources | str:
    """Bokeh's resources for ``page`` (a path inside the site): BokehJS from the site's copy by relative path."""
    if kind == "cdn":
        return "cdn"
    folder = (root / PurePosixPath(page)).parent
    return Resources(mode="relative", root_dir=folder, base_dir=root / BOKEH)


def _render(document, resources: Resources | str) -> str:
    if resources == "cdn":
        from bokeh.resources import CDN

        return utf8_text(file_html(document, CDN, title=document.title, template=CDN_TEMPLATE))
    return utf8_text(file_html(document, resources, title=document.title))


def _copy_bokehjs(writer: FolderWriter) -> None:
    """BokehJS's files (every component a page may need), once, under ``bokeh/js/``."""
    for source in Resources(mode="absolute").js_files:
        path = Path(source)
        writer.write(f"{BOKEH}/js/{path.name}", path.read_bytes())


def write_site(folder: str | Path, embeddings: Sequence[PositionEmbedding], results: Sequence[Results],
               pairs: Sequence[tuple[int, int, Results]], *, sections: Sequence[Section], title: str | None = None,
               resources: str = "inline", shared_scale: bool = False, scale: str = "auto",
               vmax: float | None = None, inputs: Iterable[object] = ()) -> dict[str, int]:
    """Write the site of these tables into ``folder`` as a whole; returns the bytes of each file written."""
    links = table_pages(len(embeddings))
    sizes: dict[str, int] = {}
    writer = FolderWriter(folder, inputs)
    with writer:
        root = writer.target  # pages name BokehJS relative to where they will stand

        def write(name: str, text: str) -> None:
            before = writer.written
            writer.write(name, text)
            sizes[name] = writer.written - before

        if resources != "cdn":
            _copy_bokehjs(writer)
        console.step("writing the index")
        index = build_document(embeddings, results, pairs, title=title, sections=sections,
                               shared_scale=shared_scale, scale=scale, vmax=vmax, links=links)
        write(INDEX, _render(index, _resources(resources, INDEX, root)))
        back = os.path.relpath(INDEX, os.path.dirname(links[0]))
        shared = shared_matrix_scale(results, scale, vmax) if shared_scale else None  # as on the index
        for k, (embedding, result, link) in enumerate(zip(embeddings, results, links)):
            console.step(f"writing table {k + 1} of {len(links)}")
            document = build_document([embedding], [result], [], title=f"{k + 1}. {embedding.label}",
                                      sections=sections, scale=scale, vmax=vmax, matrix_scale=shared)
            shared_note = (" &middot; its matrix is on the one colour scale every table of the site shares "
                           "(--shared-scale)" if shared is not None else "")
            document.roots[0].children.insert(0, figures.div(
                f"<a href='{html.escape(back, quote=True)}' class='posembed-index-link'>&larr; "
                f"{html.escape(index.title)}</a>{shared_note}", name="site_index_link"))
            write(link, _render(document, _resources(resources, link, root)))
    return sizes

