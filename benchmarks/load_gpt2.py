"""Whole process against whole process: the notebook way of getting GPT-2's position table vs posembed.

    python benchmarks/load_gpt2.py [--runs 5] [--json results.json]

Builds a full-size, randomly initialised ``GPT2Model`` (124M parameters, about 500 MB of float32)
with ``save_pretrained`` in a temporary folder, then alternately runs, each in a fresh Python process:

- notebook: ``GPT2Model.from_pretrained(dir).wpe.weight.detach().numpy()`` (saved with ``np.save``)
- posembed: ``python -m explorer export gpt2:DIR -o table.npy`` (the CLI, plugins and all)
- for reference, the floor: ``python -c "import numpy"``

After one untimed warm-up of each (so both read from a warm page cache), it reports the median wall
time, the ratio, and the median peak resident memory of each process (``ru_maxrss`` from ``wait4``),
and checks that both wrote the same table bit for bit. Peak memory includes the few MB of the
benchmark process itself, which every forked child inherits. Network is never used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = (
    "import sys, numpy as np\n"
    "from transformers import GPT2Model\n"
    "table = GPT2Model.from_pretrained(sys.argv[1]).wpe.weight.detach().numpy()\n"
    "np.save(sys.argv[2], table)\n"
)


BUILD = (
    "import sys, torch\n"
    "from transformers import GPT2Config, GPT2Model\n"
    "torch.manual_seed(0)\n"
    "GPT2Model(GPT2Config()).save_pretrained(sys.argv[1])\n"
)
#: The floor any Python tool that returns a numpy array pays: interpreter start plus ``import numpy``.
FLOOR = "import numpy\n"


def build_checkpoint(folder: Path) -> int:
    """Save a randomly initialised full-size GPT-2 (GPT2Config()) to ``folder``; returns its size in bytes.

    It runs in a child process: Linux carries a parent's peak RSS into every child it forks, so this
    process must stay small for the children's peak-memory figures to mean anything.
    """
    subprocess.run([sys.executable, "-c", BUILD, str(folder)], check=True, stderr=subprocess.DEVNULL)
    return sum(p.stat().st_size for p in folder.iterdir())


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process, which must succeed."""
    measured = usage(command)
    return measured["wall"], measured["peak_rss"]


def usage(command: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + sys) and peak RSS (bytes) of one child process, which must succeed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TRANSFORMERS_VERBOSITY": "error", "POSEMBED_LOAD_PLUGINS": ""}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    err = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(command)}\n{err}")
    return {"wall": elapsed, "cpu": rusage.ru_utime + rusage.ru_stime, "peak_rss": rusage.ru_maxrss * 1024}  # KiB


def main() -> None:
    """Build the checkpoint, time both ways, print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (after one warm-up)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="posembed-bench-") as tmp:
        tmp_path = Path(tmp)
        model_dir = tmp_path / "gpt2-random"
        size = build_checkpoint(model_dir)
        print(f"checkpoint: {model_dir} ({size / 1e6:.0f} MB)", file=sys.stderr)
        ways = {
            "notebook": [sys.executable, "-c", NOTEBOOK, str(model_dir), str(tmp_path / "notebook.npy")],
            "posembed": [sys.executable, "-m", "explorer", "export", f"gpt2:{model_dir}", "-o",
                         str(tmp_path / "posembed.npy")],
            "python + import numpy (floor)": [sys.executable, "-c", FLOOR],
        }
        figures: dict[str, dict[str, list[float]]] = {name: {"seconds": [], "peak_rss": []} for name in ways}
        for name, command in ways.items():
            run(command)  # warm-up: page cache, .pyc files
        for _ in range(args.runs):
            for name, command in ways.items():
                seconds, rss = run(command)
                figures[name]["seconds"].append(seconds)
                figures[name]["peak_rss"].append(rss)
        import numpy as np  # only now: see build_checkpoint

        same = np.load(tmp_path / "notebook.npy").tobytes() == np.load(tmp_path / "posembed.npy").tobytes()

    summary = {
        name: {"median_seconds": statistics.median(f["seconds"]),
               "median_peak_rss_mb": statistics.median(f["peak_rss"]) / 1e6, "seconds": f["seconds"]}
        for name, f in figures.items()
    }
    ratio = summary["notebook"]["median_seconds"] / summary["posembed"]["median_seconds"]
    memory = summary["notebook"]["median_peak_rss_mb"] / summary["posembed"]["median_peak_rss_mb"]
    result = {"checkpoint_mb": size / 1e6, "runs": args.runs, "identical_tables": same, "speedup": ratio,
              "memory_ratio": memory, "load_average": os.getloadavg(), **summary}
    print("| way | median time | peak memory |\n|---|---|---|")
    for name in ways:
        s = summary[name]
        print(f"| {name} | {s['median_seconds']:.3f} s | {s['median_peak_rss_mb']:.0f} MB |")
    print(f"\nposembed is {ratio:.1f}x faster with {memory:.1f}x less peak memory "
          f"({args.runs} runs each, {size / 1e6:.0f} MB checkpoint); identical tables: {same}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if not same:
        raise SystemExit("the two ways returned different tables")


if __name__ == "__main__":
    main()
