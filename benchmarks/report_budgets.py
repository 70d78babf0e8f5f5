"""The report's budgets, measured: file sizes and the CPU time of ``posembed report``.

    python benchmarks/report_budgets.py              # every budget, 5 timing repetitions
    python benchmarks/report_budgets.py --runs 9 --json results.json
    python benchmarks/report_budgets.py --skip-sizes # the timing only

Sizes: each report is written by the real command (``posembed report ... -o FILE``, inline resources)
and its bytes counted, with the Bokeh models its page holds:

- a 1024 x 768 report: the built-in default (sinusoidal) and, when ``../shared/data`` holds it, GPT-2's real
  table through the ``file`` provider: at most 6 MB each;
- a two-provider comparison (GPT-2 against the sinusoid; two sinusoid layouts when GPT-2 is absent): 8 MB;
- a 131,072-position table's report (``sinusoidal,positions=131072,dim=128``): 8 MB.

Time: the CPU time (user + sys of the process and of every process it starts, from ``getrusage`` of the
reaped children) of ``posembed report -o FILE`` on the default against that of
``python -c "import numpy, bokeh.plotting"``, alternating A/B after one untimed warm-up of each, ``--runs``
repetitions, with a third command beside them: Bokeh alone building and writing as many plain plots as the default
page holds (``bokeh_alone``), what a page of that many plots costs before any analysis, and a fourth: the analyses
alone, no page (``analyses_alone``); their sum less one baseline is the least any page of that many plots over these
analyses can cost; the page's models and plots are printed too; with the explorer package's bytecode written first (``compile_bytecode``); the medians and their
ratio are reported against the 2.0x budget, and the wall times beside them. CPU time is the measure because
work moved to other processes or cores still costs it. Results: docs/report.md.
Exits non-zero when a budget is missed or a command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPT2 = HERE.parent.parent / "shared" / "data" / "gpt2-small-wpe.npy"
MB = 1_000_000
BASELINE = [sys.executable, "-c", "import numpy, bokeh.plotting"]
#: Issue 25: the default report at most this many times the import floor's CPU time.
TIME_BUDGET = 2.0


def posembed() -> list[str]:
    """The installed console script beside this Python, else ``python -m explorer``."""
    script = Path(sys.executable).with_name("posembed")
    if script.exists():
        return [str(script)]
    found = shutil.which("posembed")
    return [found] if found else [sys.executable, "-m", "explorer"]


def run(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process and everything it started; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr.strip()}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), elapsed


def size_cases() -> list[tuple[str, list[str], float]]:
    """(name, specs, budget in bytes) of every size budget."""
    gpt2 = f"file:{GPT2},kind=learned" if GPT2.exists() else None
    cases = [("1024 x 768 default (sinusoidal)", [], 6 * MB)]
    if gpt2:
        cases.append(("1024 x 768 GPT-2 (real table)", [gpt2], 6 * MB))
        cases.append(("comparison: GPT-2 vs sinusoidal", [gpt2, "sinusoidal"], 8 * MB))
    else:
        print(f"note: {GPT2} not found; the comparison uses two sinusoid layouts", file=sys.stderr)
        cases.append(("comparison: sinusoidal interleaved vs split", ["sinusoidal", "sinusoidal,layout=split"],
                      8 * MB))
    cases.append(("131,072 x 128 (sinusoidal)", ["sinusoidal,positions=131072,dim=128"], 8 * MB))
    return cases


def measure_sizes(folder: Path) -> list[dict]:
    rows = []
    for k, (name, specs, budget) in enumerate(size_cases()):
        out = folder / f"size{k}.html"
        seconds = run([*posembed(), "report", *specs, "-o", str(out)])[1]
        size = out.stat().st_size
        models = plots_per_page(specs)[0]
        rows.append({"case": name, "specs": specs, "bytes": size, "budget_bytes": budget, "seconds": seconds,
                     "models": models, "ok": size <= budget})
        print(f"{name:<40} {size / MB:6.2f} MB  (budget {budget / MB:.0f} MB, {seconds:.1f} s), {models} models  "
              f"{'ok' if size <= budget else 'OVER'}", flush=True)
    return rows


def compile_bytecode() -> None:
    """Write the explorer package's bytecode, as ``pip install`` does and as numpy's and Bokeh's already is.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on the project's machines) an editable checkout would otherwise
    be compiled from source on every run, while the baseline's modules never are.
    """
    import compileall
    import importlib.util

    for folder in importlib.util.find_spec("explorer").submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)


def plots_per_page(specs: list[str]) -> tuple[int, int]:
    """(Bokeh models, plots) of the page of ``specs``."""
    import explorer
    from bokeh.models import Plot

    from explorer.api import document

    models = list(document([explorer.load(spec) for spec in specs or ["sinusoidal"]]).models)
    return len(models), sum(isinstance(m, Plot) for m in models)


def bokeh_alone(plots: int) -> list[str]:
    """A command that builds ``plots`` plain figures (one 1024-point line each, the house's tools, no data to
    speak of) in one column and writes them with ``file_html``, as the report does: what Bokeh alone costs for a
    page with that many plots, beyond the import floor."""
    code = ("import numpy as np, sys\n"
            "from bokeh.plotting import figure\nfrom bokeh.layouts import column\nfrom bokeh.embed import file_html\n"
            "from bokeh.resources import INLINE\n"
            "x = np.arange(1024, dtype=np.float32)\nfigs = []\n"
            f"for k in range({plots}):\n"
            "    f = figure(title=str(k), tools='pan,wheel_zoom,box_zoom,reset,save,hover', sizing_mode='stretch_width',"
            " height=340)\n"
            "    f.line(x, np.sin(x / (k + 1)))\n    figs.append(f)\n"
            "sys.stdout.write(file_html(column(*figs, sizing_mode='stretch_width'), INLINE)[:0])\n")
    return [sys.executable, "-c", code]


def analyses_alone() -> list[str]:
    """A command that imports numpy and Bokeh, as the baseline does, and runs every registered analysis on the default
    table as the report does (one BLAS thread, as the command sets), building no page: what the analyses cost
    beyond the import floor."""
    code = ("import os\nos.environ.setdefault('OPENBLAS_NUM_THREADS', '1')\n"
            "import numpy, bokeh.plotting, explorer\nfrom explorer.api import analyze_all\n"
            "analyze_all([explorer.load('sinusoidal')])\n")
    return [sys.executable, "-c", code]


def measure_time(folder: Path, runs: int) -> dict:
    report = [*posembed(), "report", "-o", str(folder / "default.html")]
    compile_bytecode()
    models, plots = plots_per_page([])
    alone, analyses = bokeh_alone(plots), analyses_alone()
    run(BASELINE)
    run(report)  # warm-up: page cache
    run(alone)
    run(analyses)
    base, ours, bokeh, work, base_wall, ours_wall = [], [], [], [], [], []
    for k in range(runs):
        cpu, wall = run(BASELINE)
        base.append(cpu)
        base_wall.append(wall)
        cpu, wall = run(report)
        ours.append(cpu)
        ours_wall.append(wall)
        bokeh.append(run(alone)[0])
        work.append(run(analyses)[0])
        print(f"  run {k + 1}: baseline {base[-1]:.2f} s CPU ({base_wall[-1]:.2f} s wall), "
              f"posembed report {ours[-1]:.2f} s CPU ({ours_wall[-1]:.2f} s wall), "
              f"Bokeh alone ({plots} plots) {bokeh[-1]:.2f} s CPU, analyses alone {work[-1]:.2f} s CPU", flush=True)
    a, b, c, d = statistics.median(base), statistics.median(ours), statistics.median(bokeh), statistics.median(work)
    floor = c + d - a  # the import floor once, Bokeh's plots and the analyses each beyond it
    result = {"baseline_command": " ".join(BASELINE), "report_command": " ".join(report), "runs": runs,
              "baseline_cpu_s": base, "report_cpu_s": ours, "baseline_wall_s": base_wall, "report_wall_s": ours_wall,
              "baseline_median_cpu_s": a, "report_median_cpu_s": b, "ratio": b / a, "budget_ratio": TIME_BUDGET,
              "wall_ratio": statistics.median(ours_wall) / statistics.median(base_wall), "ok": b / a <= TIME_BUDGET,
              "models": models, "plots": plots, "bokeh_alone_cpu_s": bokeh, "bokeh_alone_ratio": c / a,
              "analyses_alone_cpu_s": work, "analyses_alone_ratio": d / a, "page_floor_ratio": floor / a}
    print(f"the default page: {models} Bokeh models, {plots} plots")
    print(f"median CPU: baseline {a:.2f} s, posembed report {b:.2f} s, ratio {b / a:.2f} (budget {TIME_BUDGET:g}x)  "
          f"{'ok' if result['ok'] else 'OVER'}; wall ratio {result['wall_ratio']:.2f}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"Bokeh alone, {plots} plain plots built and written (no analyses, no data): {c:.2f} s CPU, "
          f"{c / a:.2f}x the baseline")
    print(f"the analyses alone (every registered one on the default table, no page): {d:.2f} s CPU, {d / a:.2f}x the "
          f"baseline")
    print(f"so no page of {plots} plots over these analyses costs less than {floor:.2f} s CPU (Bokeh alone + the "
          f"analyses alone - the baseline): {floor / a:.2f}x the baseline")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timing repetitions (A/B pairs)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-time", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} cpus; "
          f"load average {os.getloadavg()[0]:.2f}")
    results: dict = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="posembed-budgets-") as tmp:
        if not args.skip_sizes:
            results["sizes"] = measure_sizes(Path(tmp))
        if not args.skip_time:
            results["time"] = measure_time(Path(tmp), args.runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r["ok"] for r in results.get("sizes", [])) and results.get("time", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
