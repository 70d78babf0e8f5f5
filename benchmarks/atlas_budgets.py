"""The atlas's budgets, measured: 12 tables of 1024 x 768 in one page.

    python benchmarks/atlas_budgets.py               # one run of the 12-table atlas, and the pair cost
    python benchmarks/atlas_budgets.py --json out.json

The atlas is written by the real command (``posembed report SPEC x 12 -o FILE``, inline resources) from twelve
1024 x 768 tables made here: the sinusoid at six bases in both layouts (``sinusoidal,base=B,layout=L``); no
network. Budgets: at most 12 MB of HTML, 60 s of CPU time (user + sys of the command and every process it
starts, from ``getrusage`` of the reaped children: work moved to other processes still counts) and 2 GB peak
resident memory (the largest ``ru_maxrss`` of them).

The cost per pair: the pair analysis (``explorer.api.compare``) of two tables timed at 1024 x 768 and at
8192 x 768 (eight times the positions); at display resolution 512 its cost must grow at most linearly with the
positions (it reads each table once; its images stay R x R), so the ratio must stay under 8 x 1.5.
Exits non-zero when a budget is missed. Results: docs/performance.md.
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
SIZE_BUDGET, CPU_BUDGET, MEMORY_BUDGET = 12 * MB, 60.0, 2 * 1024 ** 3
BASES = (100, 1000, 3000, 10000, 30000, 100000)
SPECS = [f"sinusoidal,base={base},layout={layout}" for layout in ("interleaved", "split") for base in BASES]


def measure_atlas(folder: Path) -> dict:
    """Size, CPU seconds, wall seconds and peak RSS of the 12-table atlas written by the command."""
    out = folder / "atlas.html"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*posembed(), "-q", "report", *SPECS, "-o", str(out)], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"tables": len(SPECS), "bytes": out.stat().st_size, "cpu_seconds": round(cpu, 2),
            "wall_seconds": round(wall, 2), "peak_rss_bytes": after.ru_maxrss * 1024}


def measure_pair_cost() -> dict:
    """CPU seconds of one pair analysis at 1024 and at 8192 positions (resolution 512), best of three."""
    from explorer.api import compare, load

    times = {}
    for positions in (1024, 8192):
        a = load(f"sinusoidal,positions={positions},base=1000")
        b = load(f"sinusoidal,positions={positions},base=10000")
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            compare(a, b, resolution=512)
            best = min(best, time.process_time() - start)
        times[positions] = best
    return {"pair_seconds_1024": round(times[1024], 3), "pair_seconds_8192": round(times[8192], 3),
            "ratio": round(times[8192] / times[1024], 2)}


def main() -> int:
    """Measure, print, and exit non-zero when a budget is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        atlas = measure_atlas(Path(folder))
    pair = measure_pair_cost()
    checks = {
        "size": atlas["bytes"] <= SIZE_BUDGET,
        "cpu": atlas["cpu_seconds"] <= CPU_BUDGET,
        "memory": atlas["peak_rss_bytes"] <= MEMORY_BUDGET,
        "pair cost linear in positions": pair["ratio"] <= 8 * 1.5,
    }
    print(f"atlas of {atlas['tables']} tables of 1024 x 768: {atlas['bytes'] / MB:.2f} MB (budget 12), "
          f"{atlas['cpu_seconds']:.1f} s CPU (budget 60; wall {atlas['wall_seconds']:.1f} s), "
          f"peak RSS {atlas['peak_rss_bytes'] / 1024 ** 3:.2f} GB (budget 2)")
    print(f"one pair at resolution 512: {pair['pair_seconds_1024']:.3f} s CPU at 1024 positions, "
          f"{pair['pair_seconds_8192']:.3f} s at 8192 ({pair['ratio']:.1f}x for 8x the positions)")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({"atlas": atlas, "pair": pair, "checks": checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
