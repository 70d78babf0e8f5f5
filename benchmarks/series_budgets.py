"""Many tables: the cost of 12, 24 and 100 tables of 1024 x 768 (issue 22, item 2), measured as whole processes.

    python benchmarks/series_budgets.py                 # 12 and 24 tables, analyse and report; 100 analysed
    python benchmarks/series_budgets.py --report-100    # also the single-file report of 100 tables (slow)
    python benchmarks/series_budgets.py --jobs 2        # also the 12 tables through a local pool of 2
    python benchmarks/series_budgets.py --write         # rewrite the section of docs/performance.md

The tables are distinct sinusoids of 1024 x 768 (``sinusoidal,base=B,layout=L``, bases spread geometrically from
100 to 100,000, both layouts), listed in a ``--specs`` file; no network. Every command is a fresh process
(``python -m explorer -q ...``, built-in plugins only); its CPU time is user + sys of it and of every process it
starts (``getrusage`` of the reaped children: a pool's workers count), its peak memory the largest ``ru_maxrss``.
Three figures split the cost: ``analyze --json`` (loading, every table's analyses and every pair), the report
(that plus building and writing the page), and the page alone (their difference). For each report the Bokeh
models per table (objects in the page's document, counted in its JSON) and the bytes per table are given.
Budgets (issue 22): 12 tables at most 15 s, 24 tables at most 2.2x the CPU of 12, 100 tables at most 150 s and
2 GB. Exits non-zero when a budget measured here is missed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "performance.md"
BEGIN, END = "<!-- benchmarks/series_budgets.py -->", "<!-- /benchmarks/series_budgets.py -->"
GB = 1024**3


def specs(count: int) -> list[str]:
    """``count`` distinct 1024 x 768 sinusoids: bases spread geometrically from 100 to 100,000, both layouts."""
    per_layout = (count + 1) // 2
    bases = [round(100 * 1000 ** (k / max(per_layout - 1, 1))) for k in range(per_layout)]
    return [f"sinusoidal,base={b},layout={layout}" for layout in ("interleaved", "split") for b in bases][:count]


def measure(args: list[str]) -> dict:
    """CPU seconds (user + sys) and peak RSS of ``posembed -q ARGS`` in a fresh process, from ``os.wait4``: the
    process's own and every process it started and reaped (a pool's workers)."""
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-m", "explorer", "-q", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"posembed {' '.join(args)} failed: {errors.read().decode(errors='replace').strip()}")
    return {"cpu": usage.ru_utime + usage.ru_stime, "peak_gb": usage.ru_maxrss * 1024 / GB}


def models_in(page: Path) -> int:
    """Bokeh models in a page: each is serialised once as an object with its class name and id."""
    return len(re.findall(r'"type":"object","name":"[A-Za-z]+","id":', page.read_text(encoding="utf-8")))


def run(count: int, folder: Path, report: bool, jobs: int = 1) -> dict:
    spec_file = folder / f"specs-{count}.txt"
    spec_file.write_text("\n".join(specs(count)) + "\n")
    extra = ["--jobs", str(jobs)] if jobs > 1 else []
    row = {"tables": count, "jobs": jobs, "load": os.getloadavg()[0]}
    analysed = measure(["analyze", "--specs", str(spec_file), "--json", "--resolution", "384", *extra])
    row.update(analyze_cpu=analysed["cpu"], analyze_peak_gb=analysed["peak_gb"])
    if report:
        page = folder / f"atlas-{count}.html"
        written = measure(["report", "--specs", str(spec_file), "-o", str(page), *extra])
        row.update(report_cpu=written["cpu"], report_peak_gb=written["peak_gb"],
                   page_cpu=written["cpu"] - analysed["cpu"], bytes_per_table=page.stat().st_size / count,
                   models_per_table=models_in(page) / count)
    print(row, file=sys.stderr, flush=True)
    return row


def render(rows: list[dict], command: str) -> str:
    lines = [BEGIN, "### 12, 24 and 100 tables of 1024 x 768 (`benchmarks/series_budgets.py`)", "",
             "<!-- This section is rewritten by benchmarks/series_budgets.py --write; the rest of the page is not. -->",
             "", f"Measured on {datetime.date.today().isoformat()} with `{command}` (2 shared cores; load average "
             "before each row). CPU is user + sys of the command and every process it starts. `analyze` is loading, "
             "every table's analyses and every pair (resolution 384, the atlas's); the page is the report's CPU "
             "minus that.", "",
             "| tables | jobs | analyze CPU | analyze peak | report CPU | page CPU | report peak | models / table "
             "| bytes / table | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        page = (f"{r['report_cpu']:.1f} s | {r['page_cpu']:.1f} s | {r['report_peak_gb']:.2f} GB | "
                f"{r['models_per_table']:.0f} | {r['bytes_per_table'] / 1e6:.2f} MB") if "report_cpu" in r else \
            "- | - | - | - | -"
        lines.append(f"| {r['tables']} | {r['jobs']} | {r['analyze_cpu']:.1f} s | {r['analyze_peak_gb']:.2f} GB | "
                     f"{page} | {r['load']:.1f} |")
    return "\n".join([*lines, "", END])


def write_doc(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Put ``section`` between ``begin`` and ``end`` in docs/performance.md (at its end the first time)."""
    text = DOC.read_text(encoding="utf-8")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-100", action="store_true", help="also write the single-file report of 100 tables")
    parser.add_argument("--jobs", type=int, default=1, help="also measure the 12 tables through a pool of this many")
    parser.add_argument("--write", action="store_true", help="rewrite this script's section of docs/performance.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posembed-series-") as folder:
        rows = [run(12, Path(folder), True), run(24, Path(folder), True)]
        if args.jobs > 1:
            rows.append(run(12, Path(folder), True, args.jobs))
        rows.append(run(100, Path(folder), args.report_100))
    twelve, twenty_four, hundred = rows[0], rows[1], rows[-1]
    checks = {
        "12 tables: analyses and pairs at most 15 s": twelve["analyze_cpu"] <= 15,
        "12 tables: the report at most 15 s": twelve["report_cpu"] <= 15,
        "24 tables at most 2.2x the CPU of 12 (analyses and pairs)":
            twenty_four["analyze_cpu"] <= 2.2 * twelve["analyze_cpu"],
        "24 tables at most 2.2x the CPU of 12 (report)": twenty_four["report_cpu"] <= 2.2 * twelve["report_cpu"],
        "100 tables: analyses and pairs at most 150 s and 2 GB":
            hundred["analyze_cpu"] <= 150 and hundred["analyze_peak_gb"] <= 2,
    }
    if "report_cpu" in hundred:
        checks["100 tables: the report at most 150 s and 2 GB"] = (hundred["report_cpu"] <= 150
                                                                    and hundred["report_peak_gb"] <= 2)
    section = render(rows, "python benchmarks/series_budgets.py " + " ".join(sys.argv[1:]))
    print(section)
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")
    if args.write:
        write_doc(section)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
