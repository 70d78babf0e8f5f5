"""Hostile output targets and hostile names (issue 13, items 1, 5 and 7).

The output path is a regular file or nothing: a device or FIFO is written in place and never replaced, a
symlink stays a symlink, an overwritten file keeps its mode, a command never overwrites its own input.
Every message is one line, whatever the file and tensor names hold, and libraries print none of their own.
``REFUSED`` rows become a table in ``docs/reliability.md`` (``docs/make_reliability.py``); so do the names
of the other tests.

Nothing here writes outside ``tmp_path``: device targets are reached through symlinks made in ``tmp_path``
(or ``/dev/fd/1``, under which no file can be created), so a wrong fix replaces a link of ours, never a
system file.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_run import Case as Refused  # one output or name that must be refused in one line
from cli_run import error_line
from cli_run import run_cli as run
from modules import by_path

from explorer.core.embedding import PositionEmbedding
from explorer.errors import SpecError
from explorer.plugins.registry import Registry
from explorer.plugins.provider import Param, Provider
from explorer.runtime.console import one_line
from explorer.runtime.output import check_writable

REPO = Path(__file__).resolve().parents[1]
SMALL = "sinusoidal,positions=8,dim=4"
FORGED = "x\nposembed: error: forged"


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")


def posembed(*args, stdout=subprocess.PIPE, preexec_fn=None, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    """``posembed ARGS`` in a fresh process, through the real entry point."""
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": ""}
    return subprocess.run([sys.executable, "-m", "explorer", *args], stdout=stdout, stderr=subprocess.PIPE,
                          preexec_fn=preexec_fn, cwd=cwd, env=env, timeout=120, **kwargs)


def assert_one_error_line(stderr: str, fragment: str, exit_code: int, got_code: int) -> str:
    """Exactly one ``posembed: error:`` line holding ``fragment``, nothing else on stderr, the exit code."""
    line = error_line(stderr, fragment)
    assert got_code == exit_code, (got_code, stderr)
    return line


def _table(path: Path) -> Path:
    np.save(path, np.arange(32, dtype=np.float32).reshape(8, 4))
    return path


def _socket(tmp: Path) -> Path:
    path = tmp / "sock.npy"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def _model_folder(tmp: Path) -> Path:
    import safetensors.numpy

    folder = tmp / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 8, "n_embd": 4}))
    safetensors.numpy.save_file({"wpe.weight": np.ones((8, 4), np.float32)}, str(folder / "model.safetensors"))
    return folder


def _two_tensors(tmp: Path) -> Path:
    import safetensors.numpy

    path = tmp / "two.safetensors"
    safetensors.numpy.save_file({FORGED + "\x1b[31m": np.ones((4, 2), np.float32), "b": np.ones((4, 2), np.float32)},
                                str(path))
    return path


def _link_to_input(tmp: Path) -> tuple[Path, Path]:
    table = _table(tmp / "t.npy")
    (tmp / "link.html").symlink_to(table)
    return table, tmp / "link.html"


INPUT = "it is an input of this command"
REFUSED = [
    Refused("output-is-a-socket", "`export -o` naming a Unix socket",
            lambda tmp: ["export", SMALL, "-o", str(_socket(tmp))], "it is a socket, not a regular file"),
    Refused("report-over-its-input", "`report file:t.npy -o t.npy`: the report would replace its own table",
            lambda tmp: ["report", f"file:{_table(tmp / 't.npy')}", "-o", str(tmp / "t.npy")], INPUT),
    Refused("report-over-its-input-by-a-link", "`report -o` a symlink to the input table",
            lambda tmp: ["report", f"file:{_link_to_input(tmp)[0]}", "-o", str(tmp / "link.html")], INPUT),
    Refused("report-over-its-model-folder", "`report hf:FOLDER -o FOLDER/model.safetensors`",
            lambda tmp: ["report", f"hf:{_model_folder(tmp)}", "-o", str(tmp / "model" / "model.safetensors")],
            INPUT),
    Refused("export-over-its-input", "`export file:t.npy -o t.npy --format csv`",
            lambda tmp: ["export", f"file:{_table(tmp / 't.npy')}", "-o", str(tmp / "t.npy"), "--format", "csv"],
            INPUT),
    Refused("analyze-npz-over-its-input", "`analyze file:t.npy --npz t.npy`",
            lambda tmp: ["analyze", f"file:{_table(tmp / 't.npy')}", "--npz", str(tmp / "t.npy")], INPUT),
    Refused("report-name-too-long", "`report -o` a 300-character file name",
            lambda tmp: ["report", SMALL, "-o", str(tmp / ("a" * 300 + ".html"))], "File name too long"),
    Refused("export-name-too-long", "`export -o` a 300-character file name",
            lambda tmp: ["export", SMALL, "-o", str(tmp / ("a" * 300 + ".npy"))], "File name too long"),
    Refused("export-path-too-long", "`export -o` a path of 5,000 characters",
            lambda tmp: ["export", SMALL, "-o", str(tmp / "/".join(["d" * 200] * 25)) + ".npy"],
            "File name too long"),
    Refused("newline-in-a-file-name", "a file name holding a newline and a forged `posembed: error:` line",
            lambda tmp: ["info", f"file:{tmp / FORGED}"], "x\\nposembed: error: forged"),
    Refused("escape-in-a-file-name", "a file name holding a terminal escape sequence (clear screen)",
            lambda tmp: ["info", f"file:{tmp}/\x1b[2J\x1b[Hx.npy"], "\\x1b[2J\\x1b[Hx.npy"),
    Refused("newline-in-a-tensor-name", "tensor names holding a newline, a forged line and a colour code",
            lambda tmp: ["info", f"file:{_two_tensors(tmp)}"], "x\\nposembed: error: forged\\x1b[31m"),
    Refused("newline-in-an-output-name", "`export -o` into a missing folder whose name holds a newline",
            lambda tmp: ["export", SMALL, "-o", str(tmp / FORGED / "t.npy")], "does not exist"),
    Refused("usage-bad-option-value", "`report --resolution x`: click's usage error",
            lambda tmp: ["report", "--resolution", "x"], "Invalid value for '--resolution'", 2),
    Refused("usage-no-such-command", "`posembed nosuch`",
            lambda tmp: ["nosuch"], "No such command 'nosuch'", 2),
    Refused("usage-no-such-option", "`posembed --bogus` (the group's own options)",
            lambda tmp: ["--bogus"], "No such option '--bogus'", 2),
    Refused("usage-missing-argument", "`posembed export` without a SPEC",
            lambda tmp: ["export"], "Missing argument 'SPEC'", 2),
    Refused("npz-and-json-on-stdout", "`analyze --npz - --json`: two results for one standard output",
            lambda tmp: ["analyze", SMALL, "--npz", "-", "--json"], "both want standard output", 2),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_hostile_output_or_name_gives_one_clear_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    result = run(case.argv(tmp_path))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_error_line(result.stderr, case.fragment, case.exit_code, result.exit_code)
    for path, data in before.items():  # inputs untouched
        assert path.read_bytes() == data, path
    assert not [p for p in tmp_path.rglob("*.part")]


# ---------------------------------------------------------------------------------------------------------------------
# where an output goes


def test_devices_and_fd_links_are_streams_and_never_replaced():
    """Classification only: nothing is written (a wrong answer here must not cost /dev/null)."""
    assert check_writable("/dev/null").kind == "stream"
    assert check_writable("/dev/fd/2").kind == "stream"
    assert check_writable("-").kind == "stdout"


def test_a_symlink_to_dev_null_stays_a_link_and_dev_null_a_device(tmp_path):
    link = tmp_path / "null.npy"
    link.symlink_to(os.devnull)
    done = posembed("export", SMALL, "-o", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null.npy"]


def test_a_fifo_is_streamed_to_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = posembed("export", SMALL, "-o", str(fifo))
    reader.join(30)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert np.load(io.BytesIO(received[0])).shape == (8, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.npy"]


@pytest.mark.parametrize("target", ["/dev/fd/1", "link"])
def test_export_to_a_link_to_standard_output_reaches_standard_output(target, tmp_path):
    link = tmp_path / "out.npy"
    link.symlink_to("/proc/self/fd/1")
    done = posembed("export", SMALL, "-o", str(link) if target == "link" else target, "--format", "npy")
    assert done.returncode == 0, done.stderr
    assert np.load(io.BytesIO(done.stdout)).shape == (8, 4)
    assert link.is_symlink()


def test_standard_output_redirected_to_a_file_is_written_like_the_shell_would(tmp_path):
    """``-o /dev/stdout >> file`` appends to the file the shell opened, instead of replacing it by name."""
    link = tmp_path / "stdout.npy"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "log.bin"
    log.write_bytes(b"kept\n")
    with open(log, "ab") as handle:
        done = posembed("export", SMALL, "-o", str(link), "--format", "npy", stdout=handle)
    assert done.returncode == 0, done.stderr
    data = log.read_bytes()
    assert data.startswith(b"kept\n") and np.load(io.BytesIO(data[5:])).shape == (8, 4)


def test_overwriting_keeps_the_files_mode_and_owner(tmp_path):
    target = _table(tmp_path / "t.npy")
    target.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(target, 1234, 1234)
    assert run(["export", SMALL, "-o", str(target)]).exit_code == 0
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and np.load(target).shape == (8, 4)
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (1234, 1234)


def test_a_symlink_to_a_file_stays_and_its_target_is_replaced(tmp_path):
    real = _table(tmp_path / "real.npy")
    link = tmp_path / "link.npy"
    link.symlink_to(real.name)
    assert run(["export", "sinusoidal,positions=5,dim=3", "-o", str(link)]).exit_code == 0
    assert link.is_symlink() and np.load(real).shape == (5, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npy", "real.npy"]


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_long_valid_name_is_not_refused_for_its_temporary_sibling(command, tmp_path):
    name = "a" * 250 + (".npy" if command == "export" else ".html")
    result = run([command, SMALL, "-o", str(tmp_path / name)])
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


# ---------------------------------------------------------------------------------------------------------------------
# standard output that is full, closed, or binary


STDOUT_COMMANDS = {
    "info": ["info", SMALL],
    "providers": ["providers"],
    "analyze-json": ["analyze", SMALL, "--json"],
    "export-stdout": ["export", SMALL, "-o", "-", "--format", "npy"],
    "report-stdout": ["report", SMALL, "-o", "-"],
}


@pytest.mark.parametrize("command", sorted(STDOUT_COMMANDS))
def test_full_standard_output_is_one_line(command, tmp_path):
    with open("/dev/full", "wb") as full:
        done = posembed(*STDOUT_COMMANDS[command], stdout=full, cwd=tmp_path)
    assert_one_error_line(done.stderr.decode(), "cannot write to standard output: No space left on device", 1,
                          done.returncode)


@pytest.mark.parametrize("command", sorted(STDOUT_COMMANDS))
def test_closed_standard_output_is_one_line(command, tmp_path):
    done = posembed(*STDOUT_COMMANDS[command], stdout=None, preexec_fn=lambda: os.close(1), cwd=tmp_path)
    assert_one_error_line(done.stderr.decode(), "cannot write to standard output: it is closed", 1, done.returncode)


@pytest.mark.parametrize("command", sorted(STDOUT_COMMANDS))
def test_a_pipe_whose_reader_has_gone_ends_the_command_quietly(command, tmp_path):
    """`posembed info gpt2 | head -1`: once the reader has gone (EPIPE), the command ends with nothing on stderr and
    the status a tool killed by SIGPIPE leaves (141), as cat does; no file is left behind."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        done = posembed(*STDOUT_COMMANDS[command], stdout=write_end, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr.decode()) == (141, "")
    assert not list(tmp_path.iterdir())


def test_closed_standard_output_does_not_leak_into_the_output_file(tmp_path):
    """With descriptor 1 closed, the next file opened would get it, and every print would land in the table."""
    done = posembed("export", SMALL, "-o", "t.csv", stdout=None, preexec_fn=lambda: os.close(1), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.csv").read_text().startswith("position,d0")
    assert b"wrote t.csv" in done.stderr


def test_analyze_npz_to_standard_output_is_only_the_npz(tmp_path):
    done = posembed("analyze", SMALL, "--npz", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(io.BytesIO(done.stdout)) as saved:
        assert "0.offset.mean" in saved.files
    end = done.stdout.rfind(b"PK\x05\x06")  # the zip's last record (22 bytes, no comment) ends the stream
    assert end == len(done.stdout) - 22, done.stdout[end:][:200]
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------------
# names that are not UTF-8


def test_names_that_are_not_utf8_are_written_and_shown_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = os.fsdecode(b"\xff\xfe.npy")
    _table(tmp_path / table)
    for argv, written in [
        (["export", SMALL, "-o", os.fsdecode(b"out\xff.npy")], b"out\xff.npy"),
        (["export", f"file:{table}", "-o", "meta.safetensors"], b"meta.safetensors"),
        (["report", SMALL, "-o", os.fsdecode(b"r\xff.html")], b"r\xff.html"),
        (["report", SMALL, "-o", "title.html", "--title", os.fsdecode(b"T\xff\xfe")], b"title.html"),
        (["report", f"file:{table}", "-o", "source.html"], b"source.html"),
    ]:
        result = run(argv)
        assert result.exit_code == 0, (argv, result.stderr)
        assert "\\xff" in result.stderr or "\\x" not in result.stderr
        assert os.path.exists(written)
    for page in (b"title.html", b"source.html", b"r\xff.html"):
        html = Path(os.fsdecode(page)).read_bytes().decode("utf-8")  # valid UTF-8, the bad bytes escaped
        assert "\\xff\\xfe" in html or page == b"r\xff.html"


# ---------------------------------------------------------------------------------------------------------------------
# library warnings become posembed's; every line is one line


def test_library_warnings_and_log_records_become_posembed_warnings(monkeypatch):
    def load(n: int):
        warnings.warn("raw library\nwarning", UserWarning)
        warnings.warn("raw library\nwarning", UserWarning)  # once is enough
        logging.getLogger("somelibrary").warning("retrying \x1b[31min 1s")
        return PositionEmbedding(np.ones((n, 2), np.float32) + np.arange(n)[:, None], provider="noisy", source="x")

    from explorer.testing import installed, providing

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "noisy")
    with installed(providing(Provider("noisy", "warns", load, (Param("n", int, 4),)), name="posembed_noisy")):
        result = run(["info", "noisy"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == ["posembed: warning: raw library\\nwarning",
                                          "posembed: warning: retrying \\x1b[31min 1s"]


@pytest.mark.skipif(importlib.util.find_spec("posembed_rotary") is None, reason="posembed-rotary is not installed")
def test_transformers_prints_no_raw_line(tmp_path):
    """A config transformers complains about (an unknown rope_scaling key): its own ``[transformers]`` line is gone."""
    folder = _model_folder(tmp_path)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
        "max_position_embeddings": 16, "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0, "bogus_key": 3}}))
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "posembed-rotary"}
    done = subprocess.run([sys.executable, "-m", "explorer", "info", f"rotary:{folder}"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert all(line.startswith("posembed: ") for line in done.stderr.splitlines()), done.stderr


@pytest.mark.parametrize("text, shown", [
    ("plain é ✓ 中", "plain é ✓ 中"),
    ("a\nb\r\tc", "a\\nb\\r\\tc"),
    ("\x1b[2J\x07\x9b", "\\x1b[2J\\x07\\x9b"),
    ("right\u202eto left\u2028", "right\\u202eto left\\u2028"),
    (os.fsdecode(b"bad\xff"), "bad\\xff"),
])
def test_one_line_escapes_what_a_terminal_would_obey(text, shown):
    assert one_line(text) == shown
    assert one_line(text).isprintable()


# ---------------------------------------------------------------------------------------------------------------------
# plugins/posembed-random-walk


def test_random_walk_negative_seed_is_a_spec_error():
    """The plugin as it is in this checkout (not whatever copy is installed)."""
    path = REPO / "plugins" / "posembed-random-walk" / "posembed_random_walk.py"
    module = by_path(path, "_posembed_random_walk_here")
    registry = Registry()
    registry.add(module.PROVIDER, "posembed-random-walk")
    import explorer

    with pytest.raises(SpecError, match="'seed' must be >= 0, got -1"):
        explorer.load("random-walk,seed=-1,positions=4,dim=2", registry=registry)
    assert explorer.load("random-walk,seed=0,positions=4,dim=2", registry=registry).shape == (4, 2)
