"""How ``posembed analyze`` scales with the number of positions: wall time and peak memory per run.

Each measurement runs ``posembed analyze SPEC --json`` as a fresh subprocess and reads that child's own
resource usage (``os.wait4``: peak resident set size), so runs do not contaminate each other. The table
comes from the sinusoidal provider (no network, no files); its generation is included in the figures.

    python benchmarks/analyze_scaling.py            # the budget run, the million-row run and the sweep
    python benchmarks/analyze_scaling.py --quick    # the budget run only

Budget (issue 4): 131,072 x 128 in at most 15 s and 2 GB; 1,048,576 x 64 must complete. The budget run is
repeated (``--repeat``, default 3) and its median wall time and largest peak are judged, because the machines
are shared and a busy neighbour can stall multi-threaded BLAS (see docs/performance.md). Exits non-zero when
the budget is exceeded or a run fails. Each row also shows the 1-minute load average before the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

BUDGET = ("sinusoidal,positions=131072,dim=128", 15.0, 2.0)  # spec, seconds, GB
MILLION = "sinusoidal,positions=1048576,dim=64"
SWEEP = [f"sinusoidal,positions={n},dim=128" for n in (4096, 16384, 65536, 131072, 262144, 524288)]


def measure(spec: str) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in GB and exit status of one ``posembed analyze SPEC --json`` subprocess."""
    command = [sys.executable, "-m", "explorer", "analyze", spec, "--json"]
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": ""}  # built-in providers only: nothing else to import
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.stderr.write(child.stderr.read().decode(errors="replace"))
    child.stderr.close()
    return wall, usage.ru_maxrss * 1024 / 1e9, child.returncode  # ru_maxrss is in KiB on Linux


def row(spec: str) -> tuple[float, float, int]:
    load = os.getloadavg()[0]  # the machine is shared: a busy neighbour shows up here, not in our figures
    wall, peak, code = measure(spec)
    shape = spec.split(",", 1)[1].replace("positions=", "").replace(",dim=", " x ")
    print(f"| {shape:>16} | {wall:8.2f} | {peak:7.3f} | {load:4.1f} | {'ok' if code == 0 else f'exit {code}'} |",
          flush=True)
    return wall, peak, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 131,072 x 128 budget run")
    parser.add_argument("--repeat", type=int, default=3, help="budget runs; the median wall time is judged")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}")
    print("| positions x dim  | wall (s) | peak GB | load before | status |\n|---|---|---|---|---|")
    spec, seconds, gigabytes = BUDGET
    runs = [row(spec) for _ in range(args.repeat)]
    wall = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    failed = any(r[2] for r in runs) or wall > seconds or peak > gigabytes
    if not args.quick:
        failed |= row(MILLION)[2] != 0
        for spec in SWEEP:
            failed |= row(spec)[2] != 0
    print(f"budget run, median of {len(runs)}: {wall:.2f} s (limit {seconds:g}), peak {peak:.3f} GB "
          f"(limit {gigabytes:g}): "
          f"{'FAIL' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
