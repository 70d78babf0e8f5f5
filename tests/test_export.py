"""`posembed export`: .npy, .safetensors with provenance, .csv; exact values; atomic, one-line errors."""

import csv
import json

import numpy as np
import pytest

import explorer
from explorer.errors import OutputError
from explorer.export import PROVENANCE_KEY, TENSOR_NAME, encode, export

SPEC = "sinusoidal,positions=50,dim=12,base=77,layout=split"


@pytest.fixture
def emb():
    return explorer.load(SPEC)


def test_npy_round_trips_bit_for_bit(run, emb, tmp_path):
    out = tmp_path / "t.npy"
    result = run("export", SPEC, "-o", str(out))
    assert result.exit_code == 0 and "50 x 12 npy" in result.stderr
    loaded = np.load(out)
    assert loaded.dtype == np.float32 and loaded.tobytes() == emb.matrix.tobytes()


def test_safetensors_carries_the_provenance(run, emb, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "t.safetensors"
    assert run("export", SPEC, "-o", str(out)).exit_code == 0
    with safe_open(str(out), "np") as handle:
        metadata = handle.metadata()
        assert handle.get_tensor(TENSOR_NAME).tobytes() == emb.matrix.tobytes()
    assert json.loads(metadata[PROVENANCE_KEY]) == json.loads(json.dumps(emb.provenance()))
    assert metadata["posembed.provider"] == "sinusoidal" and metadata["posembed.kind"] == "formula"
    # and posembed reads its own export back
    assert explorer.load(f"file:{out}").matrix.tobytes() == emb.matrix.tobytes()


def test_csv_has_a_header_and_round_trips_float32_exactly(emb, tmp_path):
    out = tmp_path / "t.csv"
    export(emb, out)
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["position"] + [f"d{j}" for j in range(12)]
    assert [int(r[0]) for r in rows[1:]] == list(range(50))
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32)
    assert values.tobytes() == emb.matrix.tobytes()


def test_real_gpt2_table_exports_exactly(gpt2_wpe, tmp_path):
    np.save(tmp_path / "wpe.npy", gpt2_wpe)
    emb = explorer.load(f"file:{tmp_path / 'wpe.npy'}")
    restored = np.loadtxt(encode(emb, "csv").decode().splitlines(), delimiter=",", skiprows=1, dtype=np.float64)
    assert restored[:, 1:].astype(np.float32).tobytes() == gpt2_wpe.astype(np.float32).tobytes()


def test_stdout_needs_a_format(run):
    result = run("export", SPEC, "-o", "-", "--format", "csv")
    assert result.exit_code == 0 and result.stdout.startswith("position,d0,")
    bad = run("export", SPEC, "-o", "-")
    assert bad.exit_code == 1 and "cannot tell the export format" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["-o", "table.txt"], "cannot tell the export format of 'table.txt'"),
    (["-o", "/nonexistent-folder/t.npy"], "folder '/nonexistent-folder' does not exist"),
])
def test_bad_outputs_fail_in_one_line_before_loading(run, args, message, monkeypatch):
    from explorer import Provider
    from explorer.testing import installed, providing

    def load():
        pytest.fail("loaded before checking the output")

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "never")
    with installed(providing(Provider("never", "fails the test when loaded", load)), name="never"):
        result = run("export", "never", *args)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and message in line


def test_failed_write_leaves_the_old_file_untouched(emb, tmp_path, monkeypatch):
    out = tmp_path / "t.npy"
    out.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("explorer.runtime.output.os.fsync", broken_fsync)
    with pytest.raises(OutputError, match="No space left"):
        export(emb, out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["t.npy"]
