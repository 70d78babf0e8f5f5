"""Would a process pool help a page of several tables? The analyses of K tables, serially in one process
against ``concurrent.futures.ProcessPoolExecutor`` (2 workers, the ``spawn`` start method), measured.

    python benchmarks/analysis_pool.py              # K = 2, 4, 8 tables of 1024 x 768, 3 runs each
    python benchmarks/analysis_pool.py --tables 2 12 --runs 5

Each measurement is a whole process (``python benchmarks/analysis_pool.py --inner MODE K``), so the CPU time
(user + sys from ``getrusage`` of the reaped children) counts the pool's workers, their imports and the
pickling of results; serial and pool runs alternate. The report analyses one table per process itself and
uses no pool (docs/performance.md says why, with these figures).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time


def analyse(spec: str) -> dict:
    """One table's results as a plain dict (an ``explorer.Results`` holds its analyses' functions)."""
    import explorer

    return dict(explorer.analyze(explorer.load(spec)))


def inner(mode: str, tables: int) -> None:
    """Analyse ``tables`` sinusoids of 1024 x 768 (different bases) serially or through the pool."""
    specs = [f"sinusoidal,base={1000 * (k + 1)}" for k in range(tables)]
    if mode == "serial":
        results = [analyse(s) for s in specs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(analyse, specs))
    assert len(results) == tables


def measure(mode: str, tables: int) -> tuple[float, float]:
    """(CPU seconds of the process and its workers, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, __file__, "--inner", mode, str(tables)], check=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inner", nargs=2, metavar=("MODE", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.inner[0], int(args.inner[1]))
        return 0
    print(f"{os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
    for k in args.tables:
        runs: dict[str, list[tuple[float, float]]] = {"serial": [], "pool": []}
        for _ in range(args.runs):
            for mode in runs:
                runs[mode].append(measure(mode, k))
        (sc, sw), (pc, pw) = ((statistics.median(c for c, _ in runs[m]), statistics.median(w for _, w in runs[m]))
                              for m in ("serial", "pool"))
        print(f"{k:>3} tables: serial {sc:.2f} s CPU, {sw:.2f} s wall; pool {pc:.2f} s CPU, {pw:.2f} s wall; "
              f"pool/serial CPU {pc / sc:.2f}x, wall {pw / sw:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
