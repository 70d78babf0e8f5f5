"""Hostile inputs, round three (issue 24, items 1, 2 and 6): the ``hf:`` route, the ``--specs`` file and degenerate
tables.

Every row of ``CASES`` runs ``posembed`` in-process and must give exactly one ``posembed: error:`` line holding the
row's fragment, the row's exit code and no traceback. The other tests are the classes whose promise is not one
error line; their docstrings say what is promised. ``docs/reliability.md`` lists both (``docs/make_reliability.py``).
"""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from cli_run import Case, assert_one_error_line, installed, run_case
from cli_run import run_cli as run

import explorer
from explorer.errors import SpecError
from explorer.loading import series

ROTARY = "posembed-rotary"
LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
         "intermediate_size": 128, "vocab_size": 32, "max_position_embeddings": 128}
SMALL = "sinusoidal,positions=8,dim=4"


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")


def _model(tmp: Path, config: dict, name: str = "model") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _hf(config: dict) -> Callable[[Path], list[str]]:
    return lambda tmp: ["info", f"hf:{_model(tmp, config)}"]


def _specs_file(content: bytes | str, name: str = "specs.txt") -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["analyze", "--specs", str(path)]
    return build


def _sparse(tmp: Path) -> list[str]:
    path = tmp / "sparse.txt"
    with open(path, "wb") as handle:
        handle.truncate(3 * 10**9)  # 3 GB that take no disk
    return ["analyze", "--specs", str(path)]


def _fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "specs.fifo")
    return ["analyze", "--specs", str(tmp / "specs.fifo")]


def _nested_torch(tmp: Path) -> list[str]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the prototype-stage warning
        nested = torch.nested.nested_tensor([torch.zeros(2, 4), torch.zeros(3, 4)])
    torch.save({"wpe.weight": nested, "bias": torch.zeros(4)}, tmp / "nested.pt")
    return ["info", f"file:{tmp / 'nested.pt'}"]


CASES = [
    # -- the hf: route --
    Case("hf-model-type-list", '`hf:FOLDER` whose config.json has `"model_type": ["gpt2"]` (a regression)',
         _hf({"model_type": ["gpt2"]}), "config.json's model_type is ['gpt2'], not a string"),
    Case("hf-model-type-dict", '`hf:FOLDER` whose `model_type` is an object',
         _hf({"model_type": {"name": "gpt2"}}), "config.json's model_type is {'name': 'gpt2'}, not a string"),
    Case("rotary-model-type-list", "`rotary:FOLDER` whose `model_type` is a list",
         lambda tmp: ["info", f"rotary:{_model(tmp, {**LLAMA, 'model_type': ['llama']})}"],
         "config.json's model_type is ['llama'], not a string", plugin=ROTARY),
    Case("hf-rope-head-dim-odd", "`hf:FOLDER` of a llama with `head_dim: 7`, handed to the rotary plugin",
         _hf({**LLAMA, "head_dim": 7}), "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    Case("hf-rope-no-heads", "`hf:FOLDER` of a llama with `num_attention_heads: 0`",
         _hf({**LLAMA, "num_attention_heads": 0}), "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    Case("hf-rope-scaling-list", "`hf:FOLDER` of a llama with `rope_scaling` as a list",
         _hf({**LLAMA, "rope_scaling": [1, 2]}), "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    Case("hf-rope-scaling-string", "`hf:FOLDER` of a llama with `rope_scaling` as a string",
         _hf({**LLAMA, "rope_scaling": "linear"}), "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    Case("hf-rope-type-list", "`hf:FOLDER` of a llama whose `rope_type` is a list",
         _hf({**LLAMA, "rope_scaling": {"rope_type": ["linear"], "factor": 2.0}}),
         "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    Case("hf-rope-yarn-zero", "`hf:FOLDER` of a llama with yarn and `original_max_position_embeddings: 0`",
         _hf({**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 0}}),
         "provider 'rotary' (posembed-rotary", plugin=ROTARY),
    # -- the --specs file --
    Case("specs-fifo", "`--specs` naming a FIFO with no writer (blocked for ever before)",
         _fifo, "is a FIFO, not a regular file", 2, needs_fifo=True),
    Case("specs-dev-zero", "`--specs /dev/zero` (a MemoryError before)",
         lambda tmp: ["analyze", "--specs", "/dev/zero"], "is a character device, not a regular file", 2),
    Case("specs-sparse-3gb", "`--specs` naming a 3 GB sparse file (a MemoryError before)",
         _sparse, "it is larger than 1000000 bytes", 2),
    Case("specs-folder", "`--specs` naming a folder", lambda tmp: ["analyze", "--specs", str(tmp)],
         "is a folder, not a regular file", 2),
    Case("specs-long-line", "a spec file of one 900 kB line (39 s and 2.1 GB at 50 MB before)",
         _specs_file("sinusoidal,positions=" + "9" * 900_000 + "\n"),
         "line 1: 900021 characters, more than the 8192 a spec line may hold", 2),
    Case("specs-environ", "`--specs /proc/self/environ` (printed the whole environment before)",
         lambda tmp: ["analyze", "--specs", "/proc/self/environ"], "is not text: it holds NUL bytes", 2),
    Case("specs-secret-line", "a line holding a 200-character token: quoted only as a 60-character excerpt",
         _specs_file("sinusoidal\nHF_TOKEN=hf_" + "s" * 200 + "\n"), "... (212 characters)", 2),
    Case("specs-form-feed", "a form feed before a bad line 2 (said \"line 2\" of the wrong line before)",
         _specs_file(f"{SMALL}\n\x0cbad spec\n{SMALL}\n"), "line 2: bad provider spec 'bad spec'", 2),
    Case("specs-not-utf8", "a spec file whose line 3 is not UTF-8",
         _specs_file(b"# specs\nsinusoidal\n\xff\xfe\n"), "line 3: not UTF-8 text", 2),
    # -- degenerate tables --
    Case("torch-nested-no-key", "a .pt whose only table is a nested tensor, without key= (\"holds 0 2-D tables ... "
         "(e.g. none)\" before)", _nested_torch,
         "holds no 2-D table (it holds bias: shape 4; wpe.weight: a nested tensor (rows of different lengths))"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gives_one_clear_line(case, tmp_path, monkeypatch):
    line = run_case(case, tmp_path, monkeypatch)
    assert len(line) < 1000, line  # one short line: no file is ever repeated whole


def test_hf_hands_a_broken_rope_config_to_the_plugin_as_rotary_does(tmp_path, monkeypatch):
    """A broken RoPE config gives the same one line through `hf:` as through `rotary:`: hf:'s delegation goes through
    the door that names a plugin's error (before, hf: printed the plugin's traceback)."""
    if not installed(ROTARY):
        pytest.skip(f"{ROTARY} is not installed")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", ROTARY)
    folder = _model(tmp_path, {**LLAMA, "num_attention_heads": 0})
    through_hf = run(["info", f"hf:{folder}"])
    through_rotary = run(["info", f"rotary:{folder}"])
    assert through_hf.stderr == through_rotary.stderr and through_hf.exit_code == through_rotary.exit_code == 1
    assert "ZeroDivisionError" in through_hf.stderr and "Traceback" not in through_hf.stderr


def test_the_spec_file_is_an_input_no_output_may_overwrite(tmp_path, monkeypatch):
    """`analyze --specs F --npz F` and `report --specs F -o F` are refused before any work; F keeps its bytes
    (before, the spec file was replaced by the .npz)."""
    monkeypatch.chdir(tmp_path)
    specs = tmp_path / "specs.npz"
    specs.write_text(f"{SMALL}\n")
    for argv in (["analyze", "--specs", str(specs), "--npz", str(specs)],
                 ["report", "--specs", str(specs), "-o", str(specs)],
                 ["analyze", "--specs", "specs.npz", "--npz", str(specs)]):  # the same file by another name
        assert_one_error_line(run(argv), "it is an input of this command; choose another output name")
        assert specs.read_text() == f"{SMALL}\n"


def test_spec_file_lines_are_counted_as_a_person_counts_them(tmp_path):
    """Only a line feed ends a line: form feeds, vertical tabs and U+2028 inside a line do not move the count."""
    path = tmp_path / "specs.txt"
    path.write_text("# one\n\x0csinusoidal\v\n\u2028sinusoidal,dim=8\u2028\r\nsinusoidal,dim=4\n", encoding="utf-8")
    requests = series.read_spec_file(path)
    assert [r.origin.rsplit(", ", 1)[1] for r in requests] == ["line 2", "line 3", "line 4"]


def test_a_huge_spec_file_is_refused_before_it_is_read(tmp_path):
    """A spec file larger than the limit is refused from its first bytes past the limit: reading a 3 GB sparse file
    allocates about a megabyte, not gigabytes."""
    path = tmp_path / "sparse.txt"
    with open(path, "wb") as handle:
        handle.truncate(3 * 10**9)
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="larger than"):
            series.read_spec_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * series.MAX_SPEC_FILE_BYTES, peak


def test_every_json_output_writes_nan_and_inf_as_null(tmp_path):
    """`info --json` on an all-zero table (a freshly initialised DeiT or ViT-MAE, step 0 of a training series) is
    valid JSON with null where a cosine is undefined, by the one rule `analyze --json` uses; an exported file's
    provenance follows it too."""
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((16, 8), np.float32))
    info = run(["info", "--json", f"file:{zeros}"])
    assert info.exit_code == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["summary"]["neighbour_cosine_mean"] is None and data["summary"]["value_max"] == 0.0
    analyzed = run(["analyze", "--json", f"file:{zeros}"])
    assert analyzed.exit_code == 0 and json.loads(analyzed.stdout)["tables"][0]["scalars"]["effective_rank"] is None
    from explorer.export import json_text

    assert json_text({"a": float("nan"), "b": [np.float32("-inf"), np.float64(1.5)], "c": np.int64(2)}) == \
        '{"a": null, "b": [null, 1.5], "c": 2}'


def test_values_near_float32s_maximum_give_exact_arrays_and_no_numpy_warning(tmp_path):
    """A table near float32's maximum: row norms, PCA scores and singular values past float32's range are stored
    as float64 (exact, not Inf), and no raw numpy RuntimeWarning escapes the analyses, `--npz` or the report."""
    rng = np.random.default_rng(0)
    table = (rng.uniform(-1, 1, (64, 16)) * 0.9 * float(np.finfo(np.float32).max)).astype(np.float32)
    path = tmp_path / "huge.npy"
    np.save(path, table)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = run(["analyze", f"file:{path}", "--npz", str(tmp_path / "out.npz")])
        assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
        report = run(["report", f"file:{path}", "-o", str(tmp_path / "r.html")])
        assert report.exit_code == 0 and "warning" not in report.stderr, report.stderr
    saved = np.load(tmp_path / "out.npz")
    norms = np.sqrt(np.einsum("ij,ij->i", table.astype(np.float64), table.astype(np.float64)))
    for key in ("0.norms.low", "0.norms.high", "0.pca.scores", "0.spectrum.singular_values"):
        assert np.isfinite(saved[key]).all(), key
        assert saved[key].dtype == np.float64, key
    np.testing.assert_allclose(saved["0.norms.high"], norms, rtol=1e-12)
    singular = np.linalg.svd(table.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(saved["0.spectrum.singular_values"], singular, rtol=1e-6)
    ordinary = explorer.analyze(explorer.load(SMALL))  # an ordinary table keeps float32 arrays
    assert ordinary.norms.high.dtype == np.float32 and ordinary.spectrum.singular_values.dtype == np.float32
