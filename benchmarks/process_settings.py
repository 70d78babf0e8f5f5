"""Why the command line sets two process-wide knobs (``explorer.runtime.environment.command_process``): each measured
with and without, in fresh processes.

    python benchmarks/process_settings.py [--runs 5] [--positions 65536]

- BLAS threads: ``posembed analyze sinusoidal,positions=N,dim=128`` with ``OPENBLAS_NUM_THREADS=1`` (what
  ``command_process`` sets when the user set nothing) against ``=2``;
- the garbage collector: ``posembed report`` (the default table) through ``cli.main`` as shipped against it
  with ``gc.set_threshold`` and ``gc.freeze`` made no-ops.

Runs alternate; the medians of CPU time (user + sys of the child) and wall time are printed. The figures in
``command_process``'s docstring come from this script; rerun it after changing either knob.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPORT = "import sys; sys.argv[1:] = ['report', '-o', sys.argv[1]]; {patch}from explorer import cli; cli.main()"
NO_GC_TUNING = "import gc; gc.set_threshold = lambda *a: None; gc.freeze = lambda: None; "


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU seconds (user + sys) and wall seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--positions", type=int, default=65536)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        page = os.path.join(folder, "report.html")
        analyze = ["-m", "explorer", "analyze", f"sinusoidal,positions={options.positions},dim=128"]
        variants = {
            "analyze, 1 BLAS thread": (analyze, {"OPENBLAS_NUM_THREADS": "1"}),
            "analyze, 2 BLAS threads": (analyze, {"OPENBLAS_NUM_THREADS": "2"}),
            "report, gc tuned (as shipped)": (["-c", REPORT.format(patch=""), page], {"OPENBLAS_NUM_THREADS": "1"}),
            "report, gc untouched": (["-c", REPORT.format(patch=NO_GC_TUNING), page], {"OPENBLAS_NUM_THREADS": "1"}),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(options.runs):
            for name, (args, env) in variants.items():
                times[name].append(measure(args, env))
    print(f"load average {os.getloadavg()[0]:.1f}, {options.runs} runs each")
    for name, runs in times.items():
        print(f"{name:32s} CPU {statistics.median(c for c, _ in runs):6.2f} s   "
              f"wall {statistics.median(w for _, w in runs):6.2f} s")


if __name__ == "__main__":
    main()
