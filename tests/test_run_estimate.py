"""A run's memory is estimated from each table's expected shape before any is loaded (``explorer.loading.shapes``):
built-in providers say it from their options, a local folder's config.json or a file's header; what cannot tell
counts as 1024 x 768. Many small tables run within the limit; a header claiming terabytes is refused in one line,
before anything is loaded, and never allocated."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_run import assert_one_error_line, run_cli

import explorer
from explorer.loading.shapes import expected_shape
from explorer.plugins.registry import get_registry
from explorer.runtime import limits


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    for name in (limits.ENV, limits.RUN_ENV, limits.TABLES_ENV):
        monkeypatch.delenv(name, raising=False)


def _files(tmp: Path) -> list[str]:
    """Specs of tables in files, each format posembed reads a header of."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    np.save(tmp / "t.npy", rng.normal(size=(21, 6)).astype(np.float32))
    np.savez(tmp / "t.npz", wpe=rng.normal(size=(13, 5)).astype(np.float32), other=np.zeros(3))
    save_file({"pos_embed": rng.normal(size=(1, 17, 8)).astype(np.float32)}, str(tmp / "vit.safetensors"))
    save_file({"a": np.zeros((9, 4), np.float32), "b": np.zeros((7, 4), np.float32)}, str(tmp / "two.safetensors"))
    return [f"file:{tmp}/t.npy", f"file:{tmp}/t.npy,offset=3", f"file:{tmp}/t.npz,key=wpe", f"file:{tmp}/t.npz",
            f"file:{tmp}/vit.safetensors", f"file:{tmp}/two.safetensors,key=b"]


def _models(tmp: Path) -> list[str]:
    """Specs of local model folders: GPT-2 (hf: and gpt2:) and a T5's encoder and decoder biases."""
    pytest.importorskip("transformers")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5Model

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_positions=24, n_embd=8, n_layer=1, n_head=2, vocab_size=32)).save_pretrained(
        tmp / "gpt2")
    T5Model(T5Config(d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=3, vocab_size=32,
                     relative_attention_num_buckets=8, relative_attention_max_distance=10)).save_pretrained(tmp / "t5")
    return [f"hf:{tmp}/gpt2", f"gpt2:{tmp}/gpt2", f"t5:{tmp}/t5", f"t5:{tmp}/t5,table=decoder",
            f"t5:{tmp}/t5,positions=7"]


FORMULAS = ["sinusoidal", "sinusoidal,positions=40,dim=12", "sinusoidal2d,grid=3x5,dim=8", "alibi",
            "alibi,heads=4,positions=30,scheme=falcon"]


def test_each_builtin_provider_expects_the_shape_it_loads(tmp_path):
    registry = get_registry()
    for spec in FORMULAS + _files(tmp_path) + _models(tmp_path):
        assert expected_shape(spec, registry) == explorer.load(spec).matrix.shape, spec


def test_what_cannot_be_told_before_loading_is_unknown(tmp_path):
    import torch

    torch.save({"wpe": torch.zeros(4, 3)}, tmp_path / "t.pt")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    registry = get_registry()
    for spec in ["gpt2", "hf:openai-community/gpt2", "alibi:bigscience/bloom-560m", f"file:{tmp_path}/t.pt",
                 f"file:{tmp_path}/bad.npy", "file:/nonexistent/a.npy", "nosuchprovider", "sinusoidal,dim=x"]:
        assert expected_shape(spec, registry) is None, spec  # counted as limits.DEFAULT_SHAPE; loading says why


def test_the_estimate_follows_the_shapes():
    tiny = limits.run_bytes([(16, 4)] * 300, 1024)
    assert tiny < 1e9  # was 12.9 GB when every table counted as 1024 x 768
    assert limits.run_bytes([None] * 300, 1024) > 12 * tiny
    assert limits.run_bytes([None] * 100, 384) == limits.run_bytes([(1024, 768)] * 100, 384)
    assert limits.run_bytes([(2048, 768)] * 3, 384) > limits.run_bytes([(1024, 768)] * 3, 384)


def test_300_tiny_tables_of_a_spec_file_run_within_a_limit_under_a_gigabyte(tmp_path, monkeypatch):
    specs = tmp_path / "specs.txt"
    specs.write_text("".join(f"sinusoidal,positions=16,dim=4,base={100 + k}\n" for k in range(300)))
    monkeypatch.setenv(limits.RUN_ENV, "1e9")
    result = run_cli(["analyze", "--specs", str(specs), "--resolution", "16", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["tables"]) == 300 and len(data["comparisons"]) == 300 * 299 // 2


def _claiming_npy(path: Path, shape: tuple[int, ...]) -> Path:
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + b"\0" * 16)
    return path


def test_a_table_claiming_terabytes_is_refused_in_one_line_before_any_table_is_loaded(tmp_path):
    claims = _claiming_npy(tmp_path / "claims.npy", (1_000_000, 1_000_000))
    result = run_cli(["report", "file:/nonexistent/first.npy", "sinusoidal,positions=8,dim=4", f"file:{claims}",
                      "-o", str(tmp_path / "r.html")])
    line = assert_one_error_line(result, f"'file:{claims}': a table of 1000000 x 1000000 needs 4 TB")
    assert "first.npy" not in line and not (tmp_path / "r.html").exists()  # the first spec was never loaded


def test_a_run_too_large_names_its_largest_table(tmp_path, monkeypatch):
    claims = _claiming_npy(tmp_path / "claims.npy", (20_000, 768))  # 61 MB: within one array's limit
    monkeypatch.setenv(limits.RUN_ENV, "2e8")
    result = run_cli(["analyze", "sinusoidal,positions=8,dim=4", f"file:{claims}", "sinusoidal,positions=9,dim=4"])
    need = limits.run_bytes([(8, 4), (20_000, 768), (9, 4)], 1024)
    largest = limits.table_bytes((20_000, 768), 1024)
    assert 3e8 < need < 4e8 and largest > 0.99 * need
    assert_one_error_line(result, f"3 tables at resolution 1024 need about {limits.human(need)}; the largest, "
                                  f"'file:{claims}' (20000 x 768), {limits.human(largest)}, more than the 200 MB a "
                                  f"run may take")


def test_claimed_shapes_are_multiplied_never_allocated(tmp_path):
    registry = get_registry()
    claims = _claiming_npy(tmp_path / "claims.npy", (10**12, 10**12))
    archive = tmp_path / "claims.npz"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("wpe.npy", claims.read_bytes())
    tracemalloc.start()
    try:
        shapes = [expected_shape(f"file:{claims}", registry), expected_shape(f"file:{archive}", registry)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert shapes == [(10**12, 10**12)] * 2 and peak < 5_000_000
    with pytest.raises(explorer.errors.SizeLimitError, match="needs 4e\\+12 PB|needs 4e\\+09 PB|PB"):
        limits.check_run(shapes, 1024, [f"file:{claims}", f"file:{archive}"])
