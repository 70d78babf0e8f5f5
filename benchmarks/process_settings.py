"""Why the command line sets its process-wide knobs (``explorer.runtime.environment.command_process``): each measured
with and without, in fresh processes.

    python benchmarks/process_settings.py [--runs 5] [--positions 65536]

- BLAS threads: ``posembed analyze sinusoidal,positions=N,dim=128`` with ``OPENBLAS_NUM_THREADS=1`` (what
  ``command_process`` sets when the user set nothing) against ``=2``;
- the garbage collector: ``posembed report`` (the default table) through ``cli.main`` as shipped against it
  with ``gc.set_threshold`` and ``gc.freeze`` made no-ops;
- memory given back between a report's analyses and its page (``environment.give_back_memory``): the same report
  against it with ``give_back_memory`` made a no-op (glibc's default policy throughout).

Runs alternate; the medians of CPU time (user + sys of the child), wall time and peak memory (``ru_maxrss``) are
printed. The figures in
``command_process``'s docstring come from this script; rerun it after changing either knob.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPORT = "import sys; sys.argv[1:] = ['report', '-o', sys.argv[1]]; {patch}from explorer import cli; cli.main()"
NO_GC_TUNING = "import gc; gc.set_threshold = lambda *a: None; gc.freeze = lambda: None; "
NO_GIVE_BACK = "from explorer.runtime import environment; environment.give_back_memory = lambda: False; "


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """CPU seconds (user + sys), wall seconds and peak memory (MB, ``ru_maxrss``) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"benchmark run failed: {' '.join(args)}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024 / 1e6


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
            "report, memory not given back": (["-c", REPORT.format(patch=NO_GIVE_BACK), page],
                                              {"OPENBLAS_NUM_THREADS": "1"}),
        }
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
        for _ in range(options.runs):
            for name, (args, env) in variants.items():
                times[name].append(measure(args, env))
    print(f"load average {os.getloadavg()[0]:.1f}, {options.runs} runs each")
    for name, runs in times.items():
        print(f"{name:32s} CPU {statistics.median(c for c, _, _ in runs):6.2f} s   "
              f"wall {statistics.median(w for _, w, _ in runs):6.2f} s   peak {statistics.median(m for *_, m in runs):5.0f} MB")


if __name__ == "__main__":
    main()
