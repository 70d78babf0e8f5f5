"""Bad input through the command line: one parametrised table, one clear line and an exit code per row.

Every row of ``CASES`` is run through ``posembed`` (click's CliRunner) and must give exactly one stderr
line starting ``posembed: error:``, holding the row's message fragment, the row's exit code and no
traceback. ``docs/reliability.md`` is generated from ``CASES`` (and ``NETWORK_CASES`` in
``tests/test_network_faults.py``) by ``docs/make_reliability.py``; ``test_reliability_doc_is_current``
fails when it is stale.
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from cli_run import assert_one_error_line
from cli_run import run_cli as run
from modules import by_path


REPO = Path(__file__).resolve().parents[1]


def _load_hub_helpers():
    """tests/providers/conftest.py (the fake hub and the hand-made safetensors writer), as a module."""
    return by_path(REPO / "tests" / "providers" / "conftest.py", "_posembed_fake_hub")


helpers = _load_hub_helpers()
FakeHub, write_safetensors = helpers.FakeHub, helpers.write_safetensors
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """The fake hub on 127.0.0.1 with the hub environment pointed at it (as tests/providers' ``hub``)."""
    fake = FakeHub().start()
    helpers.point_environment_at(monkeypatch, fake, tmp_path / "hf-home")
    monkeypatch.setenv("POSEMBED_HUB_TIMEOUT", "2")
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "0")
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")


# ---------------------------------------------------------------------------------------------------------------------
# bad files, built per case


def _safetensors_bytes(matrix: np.ndarray, name: str = "wpe.weight") -> bytes:
    header = json.dumps({name: {"dtype": "F32", "shape": list(matrix.shape),
                                "data_offsets": [0, matrix.nbytes]}}).encode()
    return struct.pack("<Q", len(header)) + header + matrix.astype("<f4").tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


TABLE = np.arange(32, dtype=np.float32).reshape(8, 4)
SMALL = "sinusoidal,positions=8,dim=4"


def _header_only(header: dict | bytes, tail: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + tail


def _tiny_llama(tmp: Path) -> Path:
    folder = tmp / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 40,
        "max_position_embeddings": 64, "rope_theta": 10000.0}))
    write_safetensors(folder / "model.safetensors", {"model.embed_tokens.weight": np.ones((40, 8), np.float32)})
    return folder


def _unreadable(tmp: Path) -> Path:
    path = _write(tmp / "locked.npy", b"")
    np.save(path, TABLE)
    path.chmod(0)
    return path


@dataclass(frozen=True)
class Case:
    """One row of bad input: what was tried, how to build it, what must come back."""

    id: str
    tried: str
    argv: Callable[[Path, "FakeHub | None"], list[str]]
    fragment: str
    exit_code: int
    needs_hub: bool = False
    skip_if_root: bool = False
    linux_only: bool = False


def _file(builder: Callable[[Path], Path]) -> Callable[[Path, object], list[str]]:
    return lambda tmp, hub: ["info", f"file:{builder(tmp)}"]


def _export_to(target: Callable[[Path], Path | str]) -> Callable[[Path, object], list[str]]:
    return lambda tmp, hub: ["export", SMALL, "-o", str(target(tmp))]


def _blocked_output(tmp: Path) -> Path:
    (tmp / "plain-file").write_text("x")
    return tmp / "plain-file" / "out.npy"


def _readonly_dir(tmp: Path) -> Path:
    folder = tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "out.npy"


CASES = [
    Case("unknown-provider", "a provider name nobody registered (`nosuch`)",
         lambda tmp, hub: ["info", "nosuch"], "unknown provider 'nosuch'", 2),
    Case("unknown-parameter", "a parameter the provider does not declare (`sinusoidal,size=4`)",
         lambda tmp, hub: ["info", "sinusoidal,size=4"], "unknown parameter 'size'", 2),
    Case("bad-parameter-type", "a word where an int is expected (`positions=many`)",
         lambda tmp, hub: ["info", "sinusoidal,positions=many"], "expects int, got 'many'", 2),
    Case("bad-parameter-value", "a value below the minimum (`positions=-3`)",
         lambda tmp, hub: ["info", "sinusoidal,positions=-3"], "must be >= 1, got -3", 2),
    Case("bad-choice", "a value outside the choices (`file:x.npy,kind=banana`)",
         lambda tmp, hub: ["info", "file:x.npy,kind=banana"], "must be one of", 2),
    Case("malformed-spec", "a spec that is not NAME[:TARGET][,key=value] (`:gpt2`)",
         lambda tmp, hub: ["info", ":gpt2"], "must start with a provider name", 2),
    Case("unknown-model-id", "a model id the (fake) hub answers with 404",
         lambda tmp, hub: ["info", "hf:org/no-such-model"], "no such model on http://127.0.0.1", 1, needs_hub=True),
    Case("no-position-table", "a tiny Llama folder (rotary: no learned table)",
         lambda tmp, hub: ["info", f"hf:{_tiny_llama(tmp)}"], "llama has no position table", 1),
    Case("missing-path", "a local file that does not exist",
         lambda tmp, hub: ["info", f"file:{tmp / 'absent.npy'}"], "no such file", 1),
    Case("missing-model-folder", "a local folder without config.json",
         lambda tmp, hub: ["info", f"hf:{tmp}"], "no config.json", 1),
    Case("unreadable-path", "a file with mode 000",
         _file(_unreadable), "Permission denied", 1, skip_if_root=True),
    Case("not-a-npy", "a .npy file holding text",
         _file(lambda tmp: _write(tmp / "text.npy", b"hello, not numpy\n")), "not a .npy file", 1),
    Case("unsupported-suffix", "a file type no reader knows (.txt)",
         _file(lambda tmp: _write(tmp / "table.txt", b"1 2 3\n")), "unsupported file type '.txt'", 1),
    Case("pickle-with-code", "a .pt pickle whose payload would run code (refused by weights_only=True)",
         _file(lambda tmp: _evil_pickle(tmp)), "refused to unpickle anything but tensors", 1),
    Case("safetensors-too-short", "a .safetensors file of 5 bytes",
         _file(lambda tmp: _write(tmp / "short.safetensors", b"\x01\x02\x03\x04\x05")), "too short", 1),
    Case("safetensors-truncated", "a valid file cut in the middle of its tensor data",
         _file(lambda tmp: _write(tmp / "cut.safetensors", _safetensors_bytes(TABLE)[:-40])),
         "past the end of the file", 1),
    Case("safetensors-header-past-end", "a header length (10,000) larger than the file",
         _file(lambda tmp: _write(tmp / "long.safetensors", struct.pack("<Q", 10_000) + b'{"a": 1}')),
         "truncated safetensors file", 1),
    Case("safetensors-header-gigabytes", "a header length of 2**40 bytes (refused before allocating)",
         _file(lambda tmp: _write(tmp / "huge.safetensors", struct.pack("<Q", 2**40) + b"{}")),
         "header length 1099511627776", 1),
    Case("safetensors-tensor-gigabytes", "a header promising a 40 GB tensor in a 200-byte file",
         _file(lambda tmp: _write(tmp / "promise.safetensors", _header_only(
             {"wpe.weight": {"dtype": "F32", "shape": [100_000, 100_000], "data_offsets": [0, 40_000_000_000]}}))),
         "past the end of the file", 1),
    Case("safetensors-bad-json", "a header that is not JSON",
         _file(lambda tmp: _write(tmp / "json.safetensors", _header_only(b"{not json", b"\0" * 16))),
         "not valid JSON", 1),
    Case("safetensors-not-object", "a header that is a JSON list",
         _file(lambda tmp: _write(tmp / "list.safetensors", _header_only(b"[1, 2]"))), "not a JSON object", 1),
    Case("safetensors-offsets-mismatch", "offsets whose size does not match dtype x shape",
         _file(lambda tmp: _write(tmp / "lie.safetensors", _header_only(
             {"wpe.weight": {"dtype": "F32", "shape": [8, 4], "data_offsets": [0, 64]}}, b"\0" * 64))),
         "do not hold F32 of shape [8, 4]", 1),
    Case("safetensors-offsets-backwards", "offsets that run backwards",
         _file(lambda tmp: _write(tmp / "back.safetensors", _header_only(
             {"wpe.weight": {"dtype": "F32", "shape": [0], "data_offsets": [128, 0]}}, b"\0" * 128))),
         "run backwards", 1),
    Case("safetensors-offsets-negative", "a negative offset",
         _file(lambda tmp: _write(tmp / "neg.safetensors", _header_only(
             {"wpe.weight": {"dtype": "F32", "shape": [8, 4], "data_offsets": [-128, 0]}}, b"\0" * 128))),
         "malformed header entry", 1),
    Case("safetensors-int-table", "a table stored as I32",
         _file(lambda tmp: _write(tmp / "int.safetensors", _header_only(
             {"wpe.weight": {"dtype": "I32", "shape": [8, 4], "data_offsets": [0, 128]}}, b"\0" * 128))),
         "is not a floating-point table", 1),
    Case("nan-in-matrix", "a .npy table with a NaN",
         _file(lambda tmp: _save(tmp / "nan.npy", np.where(TABLE == 5, np.nan, TABLE))), "NaN", 1),
    Case("inf-in-matrix", "a .npy table with +Inf",
         _file(lambda tmp: _save(tmp / "inf.npy", np.where(TABLE == 5, np.inf, TABLE))), "Inf", 1),
    Case("empty-matrix", "a .npy table of shape (0, 4)",
         _file(lambda tmp: _save(tmp / "empty.npy", np.zeros((0, 4), np.float32))), "the table is empty", 1),
    Case("no-columns", "a .npy table of shape (8, 0)",
         _file(lambda tmp: _save(tmp / "narrow.npy", np.zeros((8, 0), np.float32))), "the table is empty", 1),
    Case("not-2d", "a .npy array of shape (2, 3, 4)",
         _file(lambda tmp: _save(tmp / "cube.npy", np.zeros((2, 3, 4), np.float32))), "not positions x dimensions", 1),
    Case("output-folder-missing", "`export -o` into a folder that does not exist",
         _export_to(lambda tmp: tmp / "no" / "such" / "out.npy"), "does not exist", 1),
    Case("output-parent-is-a-file", "`export -o` under a plain file (how root sees an unwritable folder)",
         _export_to(_blocked_output), "is a file, not a folder", 1),
    Case("output-folder-readonly", "`export -o` into a chmod 0o500 folder",
         _export_to(_readonly_dir), "is not writable", 1, skip_if_root=True),
    Case("output-folder-refuses-files", "`export -o /proc/out.npy`: os.access says yes, creating a file fails",
         _export_to(lambda tmp: "/proc/posembed-out.npy"), "cannot write '/proc/posembed-out.npy'", 1,
         linux_only=True),
    Case("output-is-a-folder", "`report -o` naming an existing folder (a folder site) for one table",
         lambda tmp, hub: ["report", SMALL, "-o", str(tmp)], "needs at least 3 tables", 1),
    Case("output-unknown-format", "`export -o table.xyz`",
         _export_to(lambda tmp: tmp / "table.xyz"), "cannot tell the export format", 1),
]


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, np.asarray(array, dtype=np.float32) if array.dtype.kind == "f" else array)
    return path


class _Marker:
    """Unpickling this would create a marker file: the payload ``torch.load(weights_only=True)`` must refuse."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _evil_pickle(tmp: Path) -> Path:
    import torch

    path = tmp / "evil.pt"
    torch.save({"wpe.weight": torch.zeros(4, 2), "payload": _Marker(str(tmp / "PWNED"))}, path)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line_and_an_exit_code(case, tmp_path, request, monkeypatch):
    if case.skip_if_root and IS_ROOT:
        pytest.skip("running as root: permission bits do not stop root (see output-parent-is-a-file)")
    if case.linux_only and not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    monkeypatch.chdir(tmp_path)
    hub = request.getfixturevalue("fake_hub") if case.needs_hub else None
    argv = case.argv(tmp_path, hub)
    result = run(argv)
    assert_one_error_line(result, case.fragment, case.exit_code)
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------------------------------------------------------------
# an interrupt while writing


def _interrupt_fsync(monkeypatch):
    """Raise KeyboardInterrupt after the bytes went to the temporary file, before the rename."""
    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)


INTERRUPT_COMMANDS = {
    "export-npy": lambda out: ["export", SMALL, "-o", str(out / "table.npy")],
    "report": lambda out: ["report", SMALL, "-o", str(out / "report.html")],
    "analyze-npz": lambda out: ["analyze", SMALL, "--npz", str(out / "results.npz")],
}


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
@pytest.mark.parametrize("command", sorted(INTERRUPT_COMMANDS))
def test_interrupt_while_writing_leaves_nothing_behind(command, existing, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    argv = INTERRUPT_COMMANDS[command](out)
    target = Path(argv[argv.index("-o") + 1] if "-o" in argv else argv[-1])
    if existing:
        target.write_bytes(b"the user's old file")
    _interrupt_fsync(monkeypatch)
    result = run(argv)
    assert_one_error_line(result, "interrupted; nothing was written", 130)
    left = sorted(p.name for p in out.iterdir())
    if existing:
        assert left == [target.name] and target.read_bytes() == b"the user's old file"
    else:
        assert left == []  # no partial file, no temporary sibling


def test_write_failure_midway_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "table.npy"
    target.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert_one_error_line(run(["export", SMALL, "-o", str(target)]), "No space left on device", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.npy"] and target.read_bytes() == b"old"


# ---------------------------------------------------------------------------------------------------------------------
# limits that must hold before memory is spent


def test_gigabyte_claims_are_refused_before_allocating(tmp_path):
    import explorer

    from explorer.errors import ProviderError

    claims = [
        _write(tmp_path / "a.safetensors", struct.pack("<Q", 2**40) + b"{}"),
        _write(tmp_path / "b.safetensors", struct.pack("<Q", 90_000_000) + b"{}"),  # under the limit, past the end
        _write(tmp_path / "c.safetensors", _header_only(
            {"wpe.weight": {"dtype": "F32", "shape": [100_000, 100_000], "data_offsets": [0, 40_000_000_000]}})),
    ]
    for path in claims:
        tracemalloc.start()
        try:
            with pytest.raises(ProviderError):
                explorer.load(f"file:{path}")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000, (path.name, peak)


def test_reliability_doc_is_current():
    module = by_path(REPO / "docs" / "make_reliability.py", "_make_reliability")
    doc = REPO / "docs" / "reliability.md"
    assert doc.exists() and doc.read_text(encoding="utf-8") == module.render(), (
        "docs/reliability.md is stale: run python docs/make_reliability.py")
