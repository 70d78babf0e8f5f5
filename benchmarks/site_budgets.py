"""A folder site's budget, measured: ``index.html`` of 100 tables at most 20 MB.

    python benchmarks/site_budgets.py               # both measurements
    python benchmarks/site_budgets.py --json out.json
    python benchmarks/site_budgets.py --write       # rewrite the section of docs/performance.md

(a) A real 100-member series of 1024 x 768 tables written by the command: ``posembed report --specs FILE -o DIR/``
    (the 100 sinusoids of ``series_budgets.py``, inline resources, the atlas's default resolution 384, serial):
    the CPU seconds (user + sys of the command and every process it starts), the peak resident memory, the
    index's bytes, each table's page (mean and largest) and BokehJS's one copy.
(b) The index of 100 tables of 1024 x 768: each table's results are those of a real 1024 x 768 sinusoid at the
    atlas's resolution, each of the 4,950 pairs a real pair's, so the index holds what 100 such tables would put
    in it; rendered as the site renders it, in this process (its Bokeh models counted).

Exits non-zero when an index is over 20 MB. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from series_budgets import measure, models_in, specs, write_doc  # noqa: E402  (the same whole-process measure)

MB = 1_000_000
INDEX_BUDGET = 20 * MB
TABLES = 100
BEGIN, END = "<!-- benchmarks/site_budgets.py -->", "<!-- /benchmarks/site_budgets.py -->"


def measure_series(folder: Path, jobs: int = 1) -> dict:
    """The command's site of 100 sinusoids of 1024 x 768 (``series_budgets.specs``), as whole processes."""
    out = folder / "site"
    spec_file = folder / "specs.txt"
    spec_file.write_text("\n".join(specs(TABLES)) + "\n")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    used = measure(["report", "--specs", str(spec_file), "-o", f"{out}/", *(["--jobs", str(jobs)] if jobs > 1 else [])])
    wall = time.perf_counter() - start
    pages = sorted((out / "tables").glob("*.html"))
    scripts = list((out / "bokeh").rglob("*.js"))
    return {"tables": TABLES, "jobs": jobs, "load": round(load, 1), "cpu_seconds": round(used["cpu"], 1),
            "wall_seconds": round(wall, 1), "peak_gb": round(used["peak_gb"], 2),
            "index_bytes": (out / "index.html").stat().st_size, "index_models": models_in(out / "index.html"),
            "pages": len(pages), "page_bytes_mean": sum(p.stat().st_size for p in pages) / max(len(pages), 1),
            "page_bytes_max": max(p.stat().st_size for p in pages), "page_models": models_in(pages[0]),
            "bokehjs_bytes": sum(p.stat().st_size for p in scripts)}


def measure_big_index(folder: Path) -> dict:
    """The index of 100 tables carrying a 1024 x 768 table's results and a real pair's."""
    import explorer
    from explorer.api import ATLAS_RESOLUTION, analyze_all
    from explorer.reporting.page import build_document
    from explorer.reporting.site import _render, _resources, table_pages

    real = [explorer.load(f"sinusoidal,base={base}") for base in (1000, 10000)]
    results, pairs = analyze_all(real, ATLAS_RESOLUTION)
    tables = [explorer.load(f"sinusoidal,positions=8,dim=4,base={100 + k}") for k in range(TABLES)]
    start = time.process_time()
    document = build_document(tables, [results[k % 2] for k in range(TABLES)],
                              [(i, j, pairs[0][2]) for i in range(TABLES) for j in range(i + 1, TABLES)],
                              links=table_pages(TABLES))
    html = _render(document, _resources("inline", "index.html", folder))
    dynamics = document.select_one({"name": "dynamics"})
    return {"tables": TABLES, "index_bytes": len(html.encode("utf-8")), "models": len(document.models),
            "dynamics_models": len(list(dynamics.references())),
            "cpu_seconds_build_and_render": round(time.process_time() - start, 2)}


def render(figures: dict, command: str) -> str:
    """The generated section of docs/performance.md."""
    a, b = figures["series"], figures["index_1024x768"]
    return "\n".join([
        BEGIN, "### A folder site of 100 tables of 1024 x 768 (`benchmarks/site_budgets.py`)", "",
        "<!-- This section is rewritten by benchmarks/site_budgets.py --write; the rest of the page is not. -->", "",
        f"Measured on {datetime.date.today().isoformat()} with `{command}` (2 shared cores, load average "
        f"{a['load']} before (a)). CPU is user + sys of the command and every process it starts.", "",
        "| measure | budget | measured |", "| --- | --- | --- |",
        f"| (a) `report --specs FILE -o DIR/` of 100 tables: CPU, wall, peak | — | **{a['cpu_seconds']:.0f} s** CPU, "
        f"{a['wall_seconds']:.0f} s wall, {a['peak_gb']:.2f} GB |",
        f"| (a) its `index.html` | 20 MB | **{a['index_bytes'] / MB:.1f} MB** ({a['index_models']:,} Bokeh models) |",
        f"| (a) each table's page (`tables/001.html` ...) | — | {a['page_bytes_mean'] / MB:.2f} MB on average, "
        f"{a['page_bytes_max'] / MB:.2f} MB the largest ({a['page_models']:,} models) |",
        f"| (a) BokehJS, written once under `DIR/bokeh/js/` | — | {a['bokehjs_bytes'] / MB:.1f} MB |",
        f"| (b) the index of 100 tables carrying real 1024 x 768 results and 4,950 real pairs | 20 MB | "
        f"**{b['index_bytes'] / MB:.1f} MB** ({b['models']:,} Bokeh models) |",
        f"| (b) building and rendering that index, in one process | — | {b['cpu_seconds_build_and_render']:.1f} s CPU |",
        f"| (b) Bokeh models of the dynamics view | not growing with the tables | {b['dynamics_models']} |",
        "", END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--jobs", type=int, default=1, help="write the site of (a) through a pool of this many")
    parser.add_argument("--write", action="store_true", help="rewrite this script's section of docs/performance.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posembed-site-") as tmp:
        figures = {"series": measure_series(Path(tmp), args.jobs), "index_1024x768": measure_big_index(Path(tmp))}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    section = render(figures, "python benchmarks/site_budgets.py " + " ".join(sys.argv[1:]))
    print(section)
    if args.write:
        write_doc(section, BEGIN, END)
    over = [name for name, f in figures.items() if f["index_bytes"] > INDEX_BUDGET]
    for name in over:
        print(f"over budget: {name} index.html is {figures[name]['index_bytes'] / MB:.1f} MB > 20 MB", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
