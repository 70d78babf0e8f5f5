"""A folder site's budget, measured: ``index.html`` of 100 tables at most 20 MB.

    python benchmarks/site_budgets.py               # both measurements
    python benchmarks/site_budgets.py --json out.json

(a) A real 100-member series written by the command: ``posembed report 'sinusoidal,positions=256,dim=64,
    base=B1|...|B100' -o DIR/`` (inline resources, the atlas's default resolution): the index's bytes, every
    file's, the CPU seconds (user + sys of the command and every process it starts) and the peak resident memory.
(b) The index of 100 tables of 1024 x 768: each table's results are those of a real 1024 x 768 sinusoid at the
    atlas's resolution, each of the 4,950 pairs a real pair's, so the index holds what 100 such tables would put
    in it (analysing 100 of them is the many-table benchmark's work, not this one's); rendered as the site
    renders it.

Exits non-zero when an index is over 20 MB. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report_budgets import posembed  # noqa: E402  (the same command the report's budgets run)

MB = 1_000_000
INDEX_BUDGET = 20 * MB
TABLES = 100


def measure_series(folder: Path) -> dict:
    """The command's site of a 100-member series of 256 x 64 sinusoids."""
    out = folder / "site"
    bases = "|".join(str(100 + 37 * k) for k in range(TABLES))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*posembed(), "-q", "report", f"sinusoidal,positions=256,dim=64,base={bases}", "-o", f"{out}/"],
                   check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    files = [p for p in out.rglob("*") if p.is_file()]
    return {"tables": TABLES, "index_bytes": (out / "index.html").stat().st_size,
            "site_bytes": sum(p.stat().st_size for p in files), "files": len(files),
            "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            "wall_seconds": round(wall, 2), "peak_rss_bytes": after.ru_maxrss * 1024}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posembed-site-") as tmp:
        figures = {"series": measure_series(Path(tmp)), "index_1024x768": measure_big_index(Path(tmp))}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    over = [name for name, f in figures.items() if f["index_bytes"] > INDEX_BUDGET]
    for name in over:
        print(f"over budget: {name} index.html is {figures[name]['index_bytes'] / MB:.1f} MB > 20 MB", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
