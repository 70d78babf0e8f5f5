"""The `file` provider and the safetensors reader: formats, keys, dtypes, offsets and hostile files."""

import json
import struct

import numpy as np
import pytest

import explorer
from explorer.loaders import safetensors_io as st
from explorer.errors import ProviderError


@pytest.fixture
def table():
    return np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)


def test_npy(tmp_path, table):
    np.save(tmp_path / "t.npy", table)
    emb = explorer.load(f"file:{tmp_path / 't.npy'}")
    np.testing.assert_array_equal(emb.matrix, table)
    assert emb.provider == "file" and emb.tensor is None and emb.dtype == "float32"


def test_npz_with_key_and_without_when_ambiguous(tmp_path, table):
    np.savez(tmp_path / "t.npz", wpe=table, wte=table * 2)
    np.testing.assert_array_equal(explorer.load(f"file:{tmp_path / 't.npz'},key=wte").matrix, table * 2)
    with pytest.raises(ProviderError, match="holds 2 2-D tables; choose one with key=NAME"):
        explorer.load(f"file:{tmp_path / 't.npz'}")
    with pytest.raises(ProviderError, match="no 'wpf'.*did you mean 'wpe'"):
        explorer.load(f"file:{tmp_path / 't.npz'},key=wpf")


def test_safetensors_by_tensor_name_reads_only_that_tensor(tmp_path, table, st_tools):
    ranges = st_tools.write(tmp_path / "m.safetensors", {"big": ("F32", (4096, 4096)), "wpe.weight": table})
    reads = []
    real = st.read_tensor_bytes
    st.read_tensor_bytes = lambda path, info: reads.append(info) or real(path, info)
    try:
        emb = explorer.load(f"file:{tmp_path / 'm.safetensors'},key=wpe.weight")
    finally:
        st.read_tensor_bytes = real
    np.testing.assert_array_equal(emb.matrix, table)
    assert [(r.start, r.stop) for r in reads] == [ranges["wpe.weight"]]
    assert emb.tensor == "wpe.weight"


def test_safetensors_picks_the_known_table_name_when_not_told(tmp_path, table, st_tools):
    st_tools.write(tmp_path / "m.safetensors", {"wte.weight": np.zeros((30, 5), np.float32),
                                                "transformer.wpe.weight": table})
    np.testing.assert_array_equal(explorer.load(f"file:{tmp_path / 'm.safetensors'}").matrix, table)


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_half_precision_safetensors_decode_exactly(tmp_path, table, st_tools, dtype):
    if dtype == "BF16":
        values = st_tools.round_to_bf16(table)
        st_tools.write(tmp_path / "h.safetensors", {"t": ("BF16", values)})
    else:
        values = table.astype(np.float16).astype(np.float32)
        st_tools.write(tmp_path / "h.safetensors", {"t": table.astype(np.float16)})
    emb = explorer.load(f"file:{tmp_path / 'h.safetensors'}")
    assert emb.matrix.tobytes() == values.tobytes()
    assert emb.dtype == {"BF16": "bfloat16", "F16": "float16"}[dtype]


def test_bf16_decoding_matches_torch_on_special_values():
    torch = pytest.importorskip("torch")
    values = torch.tensor([0.0, -0.0, 1.0, -2.5, 1e-40, 3.3e38, float("inf"), -float("inf"), 1 / 3, 65504.0],
                          dtype=torch.bfloat16)
    raw = values.view(torch.int16).numpy().astype("<i2").tobytes()
    decoded = st.decode(raw, "BF16", (10,), "test")
    assert decoded.tobytes() == values.float().numpy().tobytes()


def test_pt_state_dict_and_bare_tensor(tmp_path, table):
    torch = pytest.importorskip("torch")
    torch.save({"pos": torch.from_numpy(table), "bias": torch.zeros(5)}, tmp_path / "sd.pt")
    torch.save(torch.from_numpy(table), tmp_path / "bare.bin")
    np.testing.assert_array_equal(explorer.load(f"file:{tmp_path / 'sd.pt'},key=pos").matrix, table)
    np.testing.assert_array_equal(explorer.load(f"file:{tmp_path / 'sd.pt'}").matrix, table)  # the only 2-D one
    np.testing.assert_array_equal(explorer.load(f"file:{tmp_path / 'bare.bin'}").matrix, table)


class NotATensor:
    def __reduce__(self):  # what a malicious pickle does: call something on load
        return (print, ("this must never run",))


def test_pickles_are_loaded_with_weights_only(tmp_path, capfd):
    torch = pytest.importorskip("torch")
    torch.save({"pos": torch.zeros(3, 3), "evil": NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(ProviderError, match="weights_only=True"):
        explorer.load(f"file:{tmp_path / 'evil.pt'}")
    assert "this must never run" not in capfd.readouterr().out


def test_offset_and_kind_are_recorded(tmp_path, table):
    np.save(tmp_path / "t.npy", table)
    emb = explorer.load(f"file:{tmp_path / 't.npy'},offset=2,kind=learned")
    np.testing.assert_array_equal(emb.matrix, table[2:])
    assert emb.offset == 2 and emb.kind == "learned"


@pytest.mark.parametrize("name, content, message", [
    ("t.txt", b"1,2", "unsupported file type '.txt'"),
    ("v.npy", None, "not positions x dimensions"),
])
def test_unusable_files_are_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros(4, np.float32))
    else:
        path.write_bytes(content)
    with pytest.raises(ProviderError, match=message):
        explorer.load(f"file:{path}")


def test_missing_file():
    with pytest.raises(ProviderError, match="no such file"):
        explorer.load("file:/no/such/table.npy")


def _raw_safetensors(path, header: dict, data: bytes = b"", length: int | None = None):
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded) if length is None else length) + encoded + data)
    return path


@pytest.mark.parametrize("header, data, length, message", [
    ({}, b"", 10**9, "header length"),
    ({}, b"", 5000, "truncated safetensors file"),
    ({"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 8, None, "past the end of the file"),
    ({"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, b"\0" * 16, None, "do not hold F32"),
    ({"t": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}}, b"\0" * 16, None, "malformed"),
    ({"t": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 16, None, "not a floating-point"),
])
def test_hostile_or_broken_safetensors_files_are_refused(tmp_path, header, data, length, message):
    path = _raw_safetensors(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(ProviderError, match=message):
        explorer.load(f"file:{path},key=t" if header else f"file:{path}")


def test_index_refuses_shards_outside_the_folder():
    raw = json.dumps({"weight_map": {"a": "../../etc/passwd"}}).encode()
    with pytest.raises(ProviderError, match="leaves the model folder"):
        st.parse_index(raw, "index")
