"""One entry point for the benchmarks: whole processes side by side, written up in docs/performance.md.

    pip install -e '.[bench]'          # matplotlib, for the notebook way
    python benchmarks/run.py           # everything, 3 repetitions, sweep 1k .. 1M positions
    python benchmarks/run.py --runs 5 --sweep 1024,16384,131072 --no-write

Three comparisons, each command a fresh subprocess whose wall time and peak resident memory
(``ru_maxrss`` from ``os.wait4``) and CPU time (user + sys) are read; A and B alternate (A, B, A, B, ...) after one untimed
warm-up of each, and medians and ratios are reported:

(a) the notebook way against ``posembed report gpt2:DIR``, on the same local checkpoint: a randomly
    initialised full-size GPT-2 (``GPT2Config()``, about 500 MB) saved with ``save_pretrained`` into a
    temporary folder (``load_gpt2.build_checkpoint``, in a child process). The notebook script does what
    one would type in Jupyter: ``GPT2Model.from_pretrained(dir)``, numpy cosine similarities, and
    matplotlib figures of the same views (the table, the cosine-similarity matrix, the mean similarity
    by offset, per-position norms, the first two principal components), saved as PNG.
(b) cold start: ``posembed --help`` against ``python -c "import click, pluggy"`` (the floor of any click
    + pluggy tool).
(c) a scaling sweep over N positions (``sinusoidal,positions=N,dim=64``): ``posembed analyze SPEC --json``
    (``analyze_scaling.measure``) and ``posembed report SPEC -o FILE``; ``--sweep-runs`` of each per N.

It then rewrites the section of docs/performance.md between the markers ``<!-- benchmarks/run.py -->`` and
``<!-- /benchmarks/run.py -->`` (appending it the first time), with the machine's description; the rest of
the page is left as it is. Network is never used. The machine may be shared: the 1-minute load average is
recorded before each part.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import analyze_scaling  # noqa: E402  (benchmarks/analyze_scaling.py)
import load_gpt2  # noqa: E402  (benchmarks/load_gpt2.py)

DOC = HERE.parent / "docs" / "performance.md"
BEGIN, END = "<!-- benchmarks/run.py -->", "<!-- /benchmarks/run.py -->"
DEFAULT_SWEEP = (1024, 16384, 131072, 1048576)
SWEEP_DIM = 64

#: The notebook way: what one would type in Jupyter to see the same views as the report.
NOTEBOOK = r'''
import sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from transformers import GPT2Model

model_dir, out = sys.argv[1], Path(sys.argv[2])
table = GPT2Model.from_pretrained(model_dir).wpe.weight.detach().numpy()      # (1024, 768)
unit = table / np.linalg.norm(table, axis=1, keepdims=True)
cosine = unit @ unit.T                                                       # position x position
n = len(table)
by_offset = np.array([np.diagonal(cosine, k).mean() for k in range(n)])      # mean similarity at each offset
centred = table - table.mean(axis=0)
_, _, vt = np.linalg.svd(centred, full_matrices=False)
pcs = centred @ vt[:2].T

fig, ax = plt.subplots(figsize=(8, 6)); im = ax.imshow(table, aspect="auto", cmap="RdBu_r")
ax.set(title="position embedding", xlabel="dimension", ylabel="position"); fig.colorbar(im); fig.savefig(out / "table.png")
fig, ax = plt.subplots(figsize=(7, 6)); im = ax.imshow(cosine, cmap="viridis", vmin=-1, vmax=1)
ax.set(title="cosine similarity", xlabel="position", ylabel="position"); fig.colorbar(im); fig.savefig(out / "cosine.png")
fig, ax = plt.subplots(figsize=(8, 4)); ax.plot(by_offset)
ax.set(title="mean cosine similarity by offset", xlabel="offset", ylabel="cosine"); fig.savefig(out / "offset.png")
fig, ax = plt.subplots(figsize=(8, 4)); ax.plot(np.linalg.norm(table, axis=1))
ax.set(title="norm by position", xlabel="position", ylabel="L2 norm"); fig.savefig(out / "norms.png")
fig, ax = plt.subplots(figsize=(6, 6)); sc = ax.scatter(pcs[:, 0], pcs[:, 1], c=np.arange(n), s=4)
ax.set(title="first two principal components", xlabel="PC1", ylabel="PC2"); fig.colorbar(sc); fig.savefig(out / "pca.png")
'''

CLICK_FLOOR = "import click, pluggy"
#: Issue 25's budgets for ``posembed report gpt2:DIR`` against the notebook way: at least this many times less CPU
#: time, and at least this many times less peak memory (at most a quarter of the notebook's).
NOTEBOOK_CPU_BUDGET, NOTEBOOK_MEMORY_BUDGET = 5.0, 4.0


def notebook_ok(result: dict) -> bool:
    """Whether ``posembed report`` met both budgets against the notebook way."""
    return result["cpu_ratio"] >= NOTEBOOK_CPU_BUDGET and result["memory_ratio"] >= NOTEBOOK_MEMORY_BUDGET


def posembed(*args: str) -> list[str]:
    """The ``posembed`` command line as a fresh interpreter runs it."""
    return [sys.executable, "-m", "explorer", "--quiet", *args]


def side_by_side(a: tuple[str, list[str]], b: tuple[str, list[str]], runs: int) -> dict:
    """One warm-up each, then ``runs`` alternations A, B; medians of wall time, CPU time and peak memory, and the
    ratios A / B."""
    ways = dict([a, b])
    for command in ways.values():
        load_gpt2.run(command)
    figures = {name: {"seconds": [], "cpu": [], "peak_mb": []} for name in ways}
    load = os.getloadavg()[0]
    for _ in range(runs):
        for name, command in ways.items():
            measured = load_gpt2.usage(command)
            figures[name]["seconds"].append(measured["wall"])
            figures[name]["cpu"].append(measured["cpu"])
            figures[name]["peak_mb"].append(measured["peak_rss"] / 1e6)
    for f in figures.values():
        f["median_seconds"] = statistics.median(f["seconds"])
        f["median_cpu"] = statistics.median(f["cpu"])
        f["median_peak_mb"] = statistics.median(f["peak_mb"])
    (na, fa), (nb, fb) = figures.items()
    return {"figures": figures, "time_ratio": fa["median_seconds"] / fb["median_seconds"],
            "cpu_ratio": fa["median_cpu"] / fb["median_cpu"],
            "memory_ratio": fa["median_peak_mb"] / fb["median_peak_mb"], "load_before": load, "runs": runs,
            "names": (na, nb)}


def sweep(sizes: list[int], runs: int, tmp: Path) -> list[dict]:
    """Time and peak memory of ``posembed analyze`` and ``posembed report`` at each N, alternating the two."""
    rows = []
    for n in sizes:
        spec = f"sinusoidal,positions={n},dim={SWEEP_DIM}"
        load = os.getloadavg()[0]
        analyze, report = [], []
        for _ in range(runs):
            wall, peak_gb, code = analyze_scaling.measure(spec)
            if code:
                raise SystemExit(f"posembed analyze {spec} failed (exit {code})")
            analyze.append((wall, peak_gb * 1e3))
            seconds, rss = load_gpt2.run(posembed("report", spec, "-o", str(tmp / f"sweep-{n}.html")))
            report.append((seconds, rss / 1e6))
        size_mb = (tmp / f"sweep-{n}.html").stat().st_size / 1e6
        rows.append({"positions": n, "dim": SWEEP_DIM, "load_before": load, "runs": runs,
                     "analyze_seconds": statistics.median(t for t, _ in analyze),
                     "analyze_peak_mb": statistics.median(m for _, m in analyze),
                     "report_seconds": statistics.median(t for t, _ in report),
                     "report_peak_mb": statistics.median(m for _, m in report), "report_mb": size_mb})
        r = rows[-1]
        print(f"  N={n}: analyze {r['analyze_seconds']:.2f} s {r['analyze_peak_mb']:.0f} MB, report "
              f"{r['report_seconds']:.2f} s {r['report_peak_mb']:.0f} MB ({size_mb:.1f} MB file)",
              file=sys.stderr, flush=True)
    return rows


def machine() -> dict[str, str]:
    """Cores, memory, CPU model and versions, without importing numpy or torch here (see load_gpt2)."""
    model, memory = platform.processor() or platform.machine(), "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
                break
    except OSError:
        pass
    versions = {}
    for dist in ("numpy", "torch", "transformers", "bokeh", "matplotlib", "click", "pluggy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {"cpu": model, "cores": str(os.cpu_count()), "memory": memory,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(), **versions}


def _pair_table(result: dict) -> list[str]:
    lines = ["| command | median CPU | median wall | median peak memory | all runs (CPU s) |", "|---|---|---|---|---|"]
    for name, f in result["figures"].items():
        runs = ", ".join(f"{s:.2f}" for s in f["cpu"])
        lines.append(f"| {name} | {f['median_cpu']:.2f} s | {f['median_seconds']:.2f} s | {f['median_peak_mb']:.0f} MB "
                     f"| {runs} |")
    return lines


def render(info: dict, notebook: dict, cold: dict, rows: list[dict], checkpoint_mb: float, command: str) -> str:
    na, nb = notebook["names"]
    ca, cb = cold["names"]
    lines = [
        BEGIN,
        "## Whole processes side by side (`benchmarks/run.py`)",
        "",
        "<!-- This section is rewritten by benchmarks/run.py; the rest of the page is not. -->",
        "",
        f"Measured on {datetime.date.today().isoformat()} with `{command}`. Each command is a fresh process; wall",
        "time and peak resident memory (`ru_maxrss` from `os.wait4`) are the medians over the runs, A and B",
        "alternating after one untimed warm-up of each (so both read a warm page cache). The machine was",
        "**shared with other work** (load average before each part is given), so single runs vary by tens of",
        "percent; compare the medians, not single runs. Every child runs with `HF_HUB_OFFLINE=1` and",
        "`POSEMBED_LOAD_PLUGINS=` (built-in providers only), the environment of `benchmarks/load_gpt2.py`'s `run`.",
        "",
        "Machine: " + f"{info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['os']}; Python "
        f"{info['python']}, numpy {info['numpy']}, torch {info['torch']}, transformers {info['transformers']}, "
        f"bokeh {info['bokeh']}, matplotlib {info['matplotlib']}, click {info['click']}, pluggy {info['pluggy']}.",
        "",
    ]
    if notebook['runs']:
        lines += [
            f"### The notebook way against `posembed report` (GPT-2, {checkpoint_mb:.0f} MB checkpoint)",
            "",
            "The notebook way: `GPT2Model.from_pretrained(dir)`, numpy cosine similarities, and five matplotlib",
            "figures of the same views (table, cosine matrix, similarity by offset, norms, first two principal",
            "components) saved as PNG (the script is `NOTEBOOK` in `benchmarks/run.py`). posembed: `posembed --quiet",
            "report gpt2:DIR -o FILE`, which reads only the `wpe` tensor's bytes and writes the interactive page with",
            "every analysis of docs/analyses.md.",
            "",
            *_pair_table(notebook),
            "",
            f"**The notebook way takes {notebook['cpu_ratio']:.2f}x {nb}'s CPU time** (budget: at least "
            f"{NOTEBOOK_CPU_BUDGET:g}x; {'met' if notebook_ok(notebook) else 'MISSED'}) and "
            f"{notebook['time_ratio']:.2f}x its wall time, **with {notebook['memory_ratio']:.1f}x {nb}'s peak memory** "
            f"(budget: at least {NOTEBOOK_MEMORY_BUDGET:g}x); {notebook['runs']} runs each, load average "
            f"{notebook['load_before']:.1f} before.",
            "",
        ]
    else:
        lines += ["### The notebook way against `posembed report`", "", "Skipped in this run (`--skip-notebook`).", ""]
    lines += [
        "### Cold start",
        "",
        *_pair_table(cold),
        "",
        f"`{ca}` takes {cold['time_ratio']:.2f}x the time of `{cb}` (the floor of any click + pluggy tool: "
        f"interpreter start and those two imports), {cold['runs']} runs each, load average "
        f"{cold['load_before']:.1f} before. `--help` imports neither numpy, torch, transformers nor bokeh.",
        "",
        f"### Scaling: `sinusoidal,positions=N,dim={SWEEP_DIM}`",
        "",
        "`posembed analyze SPEC --json` and `posembed --quiet report SPEC -o FILE`, each a fresh process; the",
        "figures include interpreter start-up and generating the table. Medians of the runs shown.",
        "",
        "| N | runs | analyze wall | analyze peak | report wall | report peak | report file | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['positions']:,} | {r['runs']} | {r['analyze_seconds']:.2f} s | {r['analyze_peak_mb']:.0f} MB "
                     f"| {r['report_seconds']:.2f} s | {r['report_peak_mb']:.0f} MB | {r['report_mb']:.1f} MB "
                     f"| {r['load_before']:.1f} |")
    lines += ["", END]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    """Replace this script's section of docs/performance.md, or append it; nothing else changes."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="alternations of A and B in (a) and (b)")
    parser.add_argument("--sweep", default=",".join(map(str, DEFAULT_SWEEP)),
                        help="comma-separated numbers of positions for (c); '' skips it")
    parser.add_argument("--sweep-runs", type=int, default=1, help="runs of analyze and report per N")
    parser.add_argument("--skip-notebook", action="store_true", help="skip (a), which builds a 500 MB checkpoint")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing the doc")
    args = parser.parse_args()
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    info = machine()
    print(f"machine: {info}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="posembed-bench-") as tmp:
        tmp_path = Path(tmp)
        notebook, checkpoint_mb = None, 0.0
        if not args.skip_notebook:
            model_dir = tmp_path / "gpt2-random"
            checkpoint_mb = load_gpt2.build_checkpoint(model_dir) / 1e6
            figures = tmp_path / "figures"
            figures.mkdir()
            print(f"(a) notebook way vs posembed report on {model_dir} ({checkpoint_mb:.0f} MB)", file=sys.stderr,
                  flush=True)
            notebook = side_by_side(
                ("notebook way (from_pretrained + numpy + matplotlib)",
                 [sys.executable, "-c", NOTEBOOK, str(model_dir), str(figures)]),
                ("posembed report gpt2:DIR", posembed("report", f"gpt2:{model_dir}", "-o", str(tmp_path / "g.html"))),
                args.runs)
        print("(b) cold start", file=sys.stderr, flush=True)
        cold = side_by_side(("posembed --help", [sys.executable, "-m", "explorer", "--help"]),
                            (f'python -c "{CLICK_FLOOR}"', [sys.executable, "-c", CLICK_FLOOR]), args.runs)
        sizes = [int(s) for s in args.sweep.split(",") if s.strip()]
        print(f"(c) sweep over N = {sizes}", file=sys.stderr, flush=True)
        rows = sweep(sizes, args.sweep_runs, tmp_path)

    if notebook is None:
        notebook = {"names": ("notebook way", "posembed"), "figures": {}, "time_ratio": float("nan"),
                    "cpu_ratio": float("nan"), "memory_ratio": float("nan"), "runs": 0, "load_before": float("nan")}
    section = render(info, notebook, cold, rows, checkpoint_mb, command.strip())
    if args.no_write:
        print(section)
    else:
        write_doc(section)
        print(section)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0 if not notebook["runs"] or notebook_ok(notebook) else 1


if __name__ == "__main__":
    sys.exit(main())
