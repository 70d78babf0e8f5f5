"""Many tables (issue 22, items 1, 6, 7, 8; issue 24, item 3): pairs reuse each table's work and equal a naive
reference, the numbers through ``--jobs`` and a Dask ``LocalCluster`` equal the serial run's, the table cap and
the memory estimate refuse in one line before anything is loaded, and progress counts the stages. (A signal
during a series from a slow hub: tests/test_signals.py.)"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_run import assert_one_error_line, run_cli

import explorer
import explorer.testing
from explorer import api
from explorer.analysis.offset import offset_profile
from explorer.analysis.similarity import cosine_image
from explorer.runtime import console

compare_module = importlib.import_module("explorer.analysis.compare")  # the name alone is the function

REPO = Path(__file__).resolve().parents[1]
SERIES = "sinusoidal,positions=96,dim=24,base=100|1000|10000"
OTHERS = ("sinusoidal,positions=80,dim=12,layout=split", "sinusoidal,positions=96,dim=40,base=300")


def naive_comparison(a: np.ndarray, b: np.ndarray, resolution: int) -> dict:
    """The pair's numbers as the code before issue 22 computed them, from scratch: CKA from the centred tables'
    kernel form, Pearson's r over the images' upper triangles, both offset profiles on the common rows."""
    n = min(len(a), len(b))
    x, y = a[:n].astype(np.float64), b[:n].astype(np.float64)
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    k, l = x @ x.T, y @ y.T
    cka = float(np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l)))
    image_a, image_b = cosine_image(a[:n], resolution).values, cosine_image(b[:n], resolution).values
    upper = np.triu_indices(len(image_a), k=1)
    u, v = image_a[upper].astype(np.float64), image_b[upper].astype(np.float64)
    u, v = u - u.mean(), v - v.mean()
    return {"cka": cka, "similarity_correlation": float(np.sum(u * v) / np.sqrt(np.sum(u * u) * np.sum(v * v))),
            "offset_a": offset_profile(a[:n], resolution).mean, "offset_b": offset_profile(b[:n], resolution).mean}


def distinct_tables(gpt2_wpe=None) -> list[explorer.PositionEmbedding]:
    """Realistic distinct tables: sinusoids of several bases, widths and lengths, and (when it is there) GPT-2's
    real table cut to 160 rows, perturbed and rotated: wider than long and longer than wide both occur."""
    tables = [explorer.load(s) for s in ("sinusoidal,positions=160,dim=64,base=100", "sinusoidal,positions=160,dim=32",
                                         "sinusoidal,positions=120,dim=96,layout=split",
                                         "sinusoidal,positions=200,dim=16,base=500")]
    if gpt2_wpe is not None:
        rng = np.random.default_rng(0)
        rotation, _ = np.linalg.qr(rng.standard_normal((768, 768)))
        cut = gpt2_wpe[:160] + 0.01 * rng.standard_normal((160, 768))
        tables.append(explorer.PositionEmbedding((cut @ rotation).astype(np.float32), provider="test", source="gpt2"))
    return tables


def test_pairs_equal_the_naive_reference_within_1e_6(gpt2_wpe):
    tables = distinct_tables(gpt2_wpe)
    _, pairs = api.analyze_all(tables, resolution=64)
    assert len(pairs) == len(tables) * (len(tables) - 1) // 2
    for i, j, results in pairs:
        got, want = results.comparison, naive_comparison(tables[i].matrix, tables[j].matrix, 64)
        assert got.positions == min(tables[i].positions, tables[j].positions)
        assert got.cka == pytest.approx(want["cka"], abs=1e-6)
        assert got.similarity_correlation == pytest.approx(want["similarity_correlation"], abs=1e-6)
        np.testing.assert_allclose(got.offset_a, want["offset_a"], atol=1e-6)
        np.testing.assert_allclose(got.offset_b, want["offset_b"], atol=1e-6)


def test_each_table_is_worked_on_once_however_many_pairs_it_is_in(monkeypatch):
    calls = {"offset": 0, "cosine": 0, "cka": 0}

    def counted(name, function):
        def call(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return call

    from explorer.analysis import offset, similarity
    monkeypatch.setattr(offset, "offset_analysis", counted("offset", offset.offset_analysis))
    monkeypatch.setattr(similarity, "cosine_image", counted("cosine", similarity.cosine_image))
    monkeypatch.setattr(compare_module, "cka_term", counted("cka", compare_module.cka_term))
    tables = [explorer.load(f"sinusoidal,positions=64,dim=16,base={100 * (k + 1)}") for k in range(6)]
    before = dict(calls)
    api.analyze_all(tables, resolution=32, registry=explorer.testing.registry_with())
    # 6 tables, 15 pairs: one offset profile and one CKA term a table; the 4 cosine images each table's own
    # analyses draw (positions, dimensions, both centred), none more for the pairs
    assert calls["offset"] - before["offset"] == 6
    assert calls["cka"] - before["cka"] == 6
    assert calls["cosine"] - before["cosine"] == 6 * 4


def test_tables_of_different_lengths_share_each_lengths_work_once(monkeypatch):
    calls = []
    from explorer.analysis import offset
    real = offset.offset_analysis
    monkeypatch.setattr(offset, "offset_analysis", lambda x, *a, **k: calls.append(len(x)) or real(x, *a, **k))
    tables = [explorer.load(f"sinusoidal,positions={n},dim=8") for n in (40, 30, 40, 30, 20)]
    api.analyze_all(tables, resolution=16, registry=explorer.testing.registry_with())
    # each table once at its own length, then once per shorter length it is compared on (not once per pair)
    assert sorted(calls) == sorted([40, 30, 40, 30, 20] + [30, 30] + [20] * 4)


def test_a_plugin_pair_unit_receives_the_contexts_the_tables_analyses_filled():
    seen = []

    def pair(a, b):
        seen.append((a.memo("offset_analysis", lambda: None), b.memo("offset_analysis", lambda: None)))
        return 1.0

    class PairPlugin:
        @explorer.hookimpl
        def register_analyses(self, register):
            register(explorer.Analysis("pair_probe", "reads the shared work", run=pair, pair=True,
                                       scalars=lambda v: {"pair_probe": v}))

    tables = [explorer.load(f"sinusoidal,positions=32,dim=8,base={b}") for b in (10, 100, 1000)]
    results, pairs = api.analyze_all(tables, resolution=16, registry=explorer.testing.registry_with(PairPlugin()))
    assert len(seen) == 3 and all(a is not None and b is not None for a, b in seen)
    assert seen[0][0][0] is results[0].offset  # the very profile table 0's own analysis computed
    assert all(p.scalars()["pair_probe"] == 1.0 for _, _, p in pairs)


def test_linear_cka_is_the_same_for_wide_and_long_tables():
    rng = np.random.default_rng(1)
    for n, d in ((30, 40), (300, 20)):  # the kernel form (n <= 2 D) and the feature form
        x, y = rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((n, d // 2)).astype(np.float32)
        xc, yc = x - x.mean(0, dtype=np.float64), y - y.mean(0, dtype=np.float64)
        want = np.sum((yc.T @ xc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
        assert compare_module.linear_cka(x, y) == pytest.approx(want, abs=1e-9)
        assert (compare_module.cka_term(x).gram is None) == (n > 2 * d)


def _posembed(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """This checkout's command in a fresh process (its workers import this checkout too)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "POSEMBED_LOAD_PLUGINS": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kwargs)


def _numbers(output: str) -> dict:
    data = json.loads(output)
    return {"tables": [t["scalars"] for t in data["tables"]], "pairs": [c["scalars"] for c in data["comparisons"]]}


@pytest.fixture(scope="module")
def serial_numbers():
    done = _posembed("analyze", SERIES, *OTHERS, "--json", "--resolution", "32")
    assert done.returncode == 0, done.stderr
    return _numbers(done.stdout)


def test_a_local_process_pool_gives_the_serial_numbers(serial_numbers):
    done = _posembed("analyze", SERIES, *OTHERS, "--json", "--resolution", "32", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert _numbers(done.stdout) == serial_numbers
    assert len(serial_numbers["tables"]) == 5 and len(serial_numbers["pairs"]) == 10


def test_a_dask_local_cluster_gives_the_serial_numbers(serial_numbers):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        done = _posembed("analyze", SERIES, *OTHERS, "--json", "--resolution", "32",
                         "--executor", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    assert _numbers(done.stdout) == serial_numbers


def test_a_report_through_the_pool_is_the_serial_report(tmp_path):
    pages = {}
    for name, extra in (("serial", ()), ("pool", ("--jobs", "2"))):
        done = _posembed("-q", "report", SERIES, "-o", str(tmp_path / f"{name}.html"), *extra)
        assert done.returncode == 0, done.stderr
        pages[name] = (tmp_path / f"{name}.html").read_text(encoding="utf-8")
    assert "posembed atlas: 3 tables" in pages["pool"]
    assert len(pages["pool"]) == len(pages["serial"])  # the same page; only Bokeh's random ids differ


def test_an_unreachable_dask_scheduler_is_one_line():
    pytest.importorskip("distributed")
    done = _posembed("analyze", SERIES, "--executor", "tcp://127.0.0.1:9",
                     env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("posembed: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")


def test_jobs_and_executor_together_are_refused_in_one_line():
    result = run_cli(["analyze", SERIES, "--jobs", "2", "--executor", "tcp://127.0.0.1:9"])
    assert_one_error_line(result, "give one of them", exit_code=2)


def test_more_tables_than_the_cap_are_refused_before_any_is_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("POSEMBED_MAX_TABLES", "3")
    specs = tmp_path / "specs.txt"
    specs.write_text("file:/nonexistent/a.npy\nsinusoidal,base=100|200|300\n")
    result = run_cli(["report", "--specs", str(specs), "-o", str(tmp_path / "r.html")])
    line = assert_one_error_line(result, "4 tables asked for, more than the 3 a run may have")
    assert "POSEMBED_MAX_TABLES" in line and not (tmp_path / "r.html").exists()
    monkeypatch.setenv("POSEMBED_MAX_TABLES", "4")  # raised: the first spec is loaded (and fails, naming itself)
    result = run_cli(["report", "--specs", str(specs), "-o", str(tmp_path / "r.html")])
    assert_one_error_line(result, "file:/nonexistent/a.npy")


def test_the_cap_is_documented_with_its_variable():
    from explorer.runtime.limits import MAX_TABLES

    text = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "POSEMBED_MAX_TABLES" in text and f"{MAX_TABLES:,}" in text and "POSEMBED_MAX_RUN_BYTES" in text


def test_a_run_that_would_not_fit_in_memory_is_refused_before_any_table_is_loaded(monkeypatch):
    from explorer.runtime.limits import run_bytes

    need = run_bytes([(1024, 768)] * 3, 384)  # a missing file counts as GPT-2's 1024 x 768, as sinusoidal is
    monkeypatch.setenv("POSEMBED_MAX_RUN_BYTES", str(need - 1))
    result = run_cli(["analyze", "file:/nonexistent/a.npy", "sinusoidal", "sinusoidal,base=100", "--resolution", "384"])
    assert_one_error_line(result, "3 tables at resolution 384 need about")
    monkeypatch.setenv("POSEMBED_MAX_RUN_BYTES", str(need))
    result = run_cli(["analyze", "file:/nonexistent/a.npy", "sinusoidal", "sinusoidal,base=100", "--resolution", "384"])
    assert_one_error_line(result, "file:/nonexistent/a.npy")  # within the limit: loading starts
    assert run_bytes([None] * 24, 384) > 2 * run_bytes([None] * 12, 384)  # pairs count: it grows faster than T


def test_progress_counts_each_stage_on_a_line_of_its_own_off_a_terminal(monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "INTERVAL", 0.0)  # every step is "10 s after the last line"
    result = run_cli(["report", SERIES, "-o", "-"])
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line]
    for stage in ("loading and analysing 1/3", "loading and analysing 3/3", "pairs 3/3", "building the page",
                  "writing the page"):
        assert any(line.startswith(f"posembed: {stage} ... ") for line in lines), (stage, lines)
    assert "\r" not in result.stderr
    stages = [next(k for k, line in enumerate(lines) if stage in line) for stage in ("loading", "pairs", "writing")]
    assert stages == sorted(stages)
    quiet = run_cli(["-q", "report", SERIES, "-o", "-"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_progress_off_a_terminal_is_silent_for_a_short_run(monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    result = run_cli(["analyze", SERIES, "--resolution", "16"])
    assert result.exit_code == 0 and result.stderr == ""


def test_progress_on_a_terminal_is_one_line_redrawn(monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "_stderr_is_terminal", lambda: True)
    result = run_cli(["analyze", SERIES, "--resolution", "16"])
    assert result.exit_code == 0
    assert "\rposembed: loading and analysing 2/3 ... " in result.stderr
    assert "\rposembed: pairs 3/3 ... " in result.stderr
    assert "\n" not in result.stderr.replace("\r\033[K", "")[:-1]
