"""`report -o DIR/` writes a folder site: an index with the atlas and the dynamics view, a page per table linked from
it, BokehJS once by relative path; written as a whole, never outside DIR; its links work in Chromium."""

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import explorer
from cli_run import assert_one_error_line, run_cli
from explorer.errors import OutputError
from explorer.runtime.output import FOLDER_MARK, FolderWriter

SPECS = ["sinusoidal,positions=48,dim=16,base=100|1000|10000"]


class Sources(HTMLParser):
    """Every script src and link href of a page."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for key, value in attrs if key in ("src", "href") and value]


def urls_of(page: Path) -> list[str]:
    parser = Sources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site") / "atlas"
    result = run_cli(["report", *SPECS, "-o", f"{folder}/"])
    assert result.exit_code == 0, result.stderr
    return folder


def test_the_site_is_an_index_a_page_per_table_and_bokehjs_once(site):
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert "index.html" in names and FOLDER_MARK in names
    assert [n for n in names if n.startswith("tables/")] == ["tables/001.html", "tables/002.html", "tables/003.html"]
    scripts = [n for n in names if n.endswith(".js")]
    assert "bokeh/js/bokeh.min.js" in scripts and len(scripts) == len(set(Path(n).name for n in scripts))
    bokeh = (site / "bokeh/js/bokeh.min.js").stat().st_size
    for page in ["index.html", "tables/001.html"]:  # BokehJS is not inside any page
        assert (site / page).stat().st_size < bokeh


def test_every_url_of_every_page_is_relative_and_stays_inside_the_site(site):
    for page in site.rglob("*.html"):
        urls = urls_of(page)
        assert urls, page
        for url in urls:
            assert not re.match(r"^[a-z]+:", url) and not url.startswith("/"), (page, url)
            target = (page.parent / url).resolve()
            assert target.is_relative_to(site.resolve()) and target.is_file(), (page, url)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert all(f"tables/00{k}.html" in index for k in (1, 2, 3))


def test_the_index_holds_the_atlas_and_the_dynamics_but_no_tables_sections(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert '"atlas"' in index and '"dynamics"' in index and '"dynamics_slider"' in index
    assert '"drill_0"' not in index and '"traces"' not in index
    table = (site / "tables/002.html").read_text(encoding="utf-8")
    assert '"dynamics"' not in table and "../index.html" in table


def test_a_site_is_rewritten_whole_and_an_earlier_one_replaced(tmp_path):
    folder = tmp_path / "s"
    assert run_cli(["report", *SPECS, "-o", f"{folder}/"]).exit_code == 0
    (folder / "tables" / "999.html").write_text("left over")
    assert run_cli(["report", "sinusoidal,positions=32,dim=8,base=10|100|1000|10000", "-o", str(folder)]).exit_code == 0
    assert sorted(p.name for p in (folder / "tables").iterdir()) == ["001.html", "002.html", "003.html", "004.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary sibling left


def test_a_site_of_fewer_than_three_tables_is_refused_before_any_work(tmp_path):
    assert_one_error_line(run_cli(["report", "sinusoidal", "gpt2:/nowhere", "-o", f"{tmp_path}/s/"]),
                          "needs at least 3 tables")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setup,reason", [
    ("foreign", "files that posembed did not write"),
    ("file", "not a folder"),
    ("input", "an input of this command"),
])
def test_a_folder_that_is_not_ours_to_replace_is_refused_and_left_alone(tmp_path, setup, reason):
    folder = tmp_path / "out"
    specs = list(SPECS)
    if setup == "foreign":
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
    elif setup == "file":
        folder.write_text("a file")
    else:  # a site folder holding the command's own input
        folder.mkdir()
        (folder / FOLDER_MARK).write_text("")
        np.save(folder / "table.npy", np.eye(8, dtype=np.float32))
        specs = [f"file:{folder}/table.npy", *SPECS]
    before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else folder.read_text()
    assert_one_error_line(run_cli(["report", *specs, "-o", f"{folder}/"]), reason)
    after = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else folder.read_text()
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupted_site_leaves_the_earlier_one_and_no_temporary_folder(tmp_path):
    folder = tmp_path / "site"
    with FolderWriter(folder) as writer:
        writer.write("index.html", "old")
    with pytest.raises(KeyboardInterrupt):
        with FolderWriter(folder) as writer:
            writer.write("index.html", "new")
            writer.write("tables/001.html", "half")
            raise KeyboardInterrupt
    assert (folder / "index.html").read_text() == "old" and not (folder / "tables").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


@pytest.mark.parametrize("name", ["../escape.html", "/etc/x", "a/../../b", "", "a//b"])
def test_a_site_never_writes_outside_its_folder(tmp_path, name):
    with pytest.raises(OutputError, match="not a plain relative name"):
        with FolderWriter(tmp_path / "site") as writer:
            writer.write(name, "x")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_an_index_of_100_tables_is_at_most_20_mb(tmp_path):
    """The index's size grows with the table count, not with the tables' own sections (which are on their pages):
    100 tables, each with the results of a 1024 x 768 table and every pair with a real pair's (the sizes the
    index holds; analysing 100 such tables is benchmarks' work)."""
    from explorer.reporting.page import build_document
    from explorer.reporting.site import _render, _resources, table_pages

    tables = [explorer.load(f"sinusoidal,base={100 + k}") for k in range(2)]
    results, pairs = explorer.api.analyze_all(tables, explorer.api.ATLAS_RESOLUTION)
    many = [explorer.load(f"sinusoidal,base={100 + k},positions=8,dim=4") for k in range(100)]
    pair = pairs[0][2]
    links = table_pages(100)
    document = build_document(many, [results[k % 2] for k in range(100)],
                              [(i, j, pair) for i in range(100) for j in range(i + 1, 100)], links=links)
    html = _render(document, _resources("inline", "index.html", tmp_path))
    size = len(html.encode("utf-8"))
    assert size <= 20e6, size


def arrived(chromium, url: str, seconds: float = 10.0) -> bool:
    """Whether the browser's page is ``url`` within ``seconds`` (a click navigates asynchronously)."""
    browser = pytest.importorskip("browser")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if chromium.evaluate("location.href") == url:
                return True
        except browser.BrowserError as error:  # asked while the page navigates: ask again
            if "navigated or closed" not in str(error):
                raise
        time.sleep(0.1)
    return False


def click(chromium, element: str) -> None:
    """Click ``element`` (a JavaScript expression) after the evaluation returns: a click that navigates inside
    the evaluation can end it with "Inspected target navigated or closed" (seen under load)."""
    chromium.evaluate(f"(() => {{ const el = {element}; setTimeout(() => el.click(), 0); }})()")


@pytest.mark.browser
def test_the_links_work_in_chromium(site):
    browser = pytest.importorskip("browser")
    if browser.find_chromium() is None:
        pytest.skip("no Chromium")
    find = """(() => { const out = []; const walk = (node) => { for (const el of node.querySelectorAll('*')) {
        if (el.matches('a.%s')) out.push(el); if (el.shadowRoot) walk(el.shadowRoot); } };
        walk(document); return out; })()"""
    with browser.Chromium(width=1280, height=1000) as chromium:
        result = chromium.open(site / "index.html", idle_timeout=60)
        assert result.idle and not result.errors, result.errors
        links = chromium.evaluate(find % "posembed-table-link" + ".map((a) => a.href)")
        assert links == [(site / f"tables/00{k}.html").as_uri() for k in (1, 2, 3)]
        click(chromium, find % "posembed-table-link" + "[1]")
        assert arrived(chromium, links[1])
        page = chromium.open(site / "tables/002.html", idle_timeout=60)  # BokehJS from ../bokeh/js: offline
        assert page.idle and not page.errors, page.errors
        assert chromium.evaluate("typeof window.Bokeh") == "object"
        back = chromium.evaluate(find % "posembed-index-link" + ".map((a) => a.href)")
        assert back == [(site / "index.html").as_uri()]
        click(chromium, find % "posembed-index-link" + "[0]")
        assert arrived(chromium, back[0])


def _site_documents(folder: Path) -> dict[str, list]:
    """Every page's embedded Bokeh documents, by page (Bokeh's ids are counted in order, so equal builds are equal)."""
    import json

    found = {}
    for page in sorted(folder.rglob("*.html")):
        scripts = re.findall(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>',
                             page.read_text(encoding="utf-8"), re.S)
        found[str(page.relative_to(folder))] = [list(json.loads(s).values()) for s in scripts]
    return found


def test_a_site_through_a_process_pool_is_the_serial_site(tmp_path):
    from test_many_tables import _posembed

    sites = {}
    for name, extra in (("serial", ()), ("pool", ("--jobs", "2"))):
        done = _posembed("-q", "report", *SPECS, "-o", f"{tmp_path / name}/", *extra)
        assert done.returncode == 0, done.stderr
        sites[name] = _site_documents(tmp_path / name)
    assert len(sites["pool"]) == 4 and all(sites["pool"].values())  # the index and three table pages
    assert sites["pool"] == sites["serial"]  # every number of every page


def test_a_site_loads_and_analyses_through_the_runs_executor(tmp_path):
    pytest.importorskip("distributed")
    from test_many_tables import _posembed

    done = _posembed("report", *SPECS, "-o", f"{tmp_path / 'site'}/", "--executor", "tcp://127.0.0.1:9",
                     env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("posembed: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")
    assert not (tmp_path / "site").exists()


def test_with_a_shared_scale_every_table_page_is_on_the_sites_one_scale(tmp_path):
    from test_report_fidelity import bar_labels, heavy_table
    from test_report_html import div_texts, document

    tables = [explorer.load("sinusoidal,positions=256,dim=48"), heavy_table(),
              explorer.load("sinusoidal,positions=256,dim=48,base=100")]
    labels, notes = {}, {}
    for shared in (False, True):
        folder = tmp_path / f"shared-{shared}"
        explorer.api.site(tables, folder, shared_scale=shared, resolution=64)
        docs = [document((folder / f"tables/00{k}.html").read_text(encoding="utf-8")) for k in (1, 2, 3)]
        labels[shared] = [bar_labels(doc) for doc in docs]
        notes[shared] = [" ".join(div_texts(doc)) for doc in docs]
    assert labels[False][0] != labels[False][1]  # each its own: the sinusoid's scale is not the heavy table's
    assert labels[True][0] == labels[True][1] == labels[True][2]  # one scale, on every table's page
    assert labels[True][0] != labels[False][0]
    assert all("every table of the site shares (--shared-scale)" in text for text in notes[True])
    assert not any("--shared-scale)" in text and "site shares" in text for text in notes[False])
