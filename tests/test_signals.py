"""SIGTERM and SIGHUP are handled like Ctrl-C (issue 13, item 6): no temporary file, nothing left running, 128 + n.

Each test starts the real command in its own session, sends the signal while it works (or while it writes,
with ``os.fsync`` slowed down so the temporary file is there to be left behind), and then checks the exit
code, the one line, the output folder and that no process of the session is still alive.
``SIGNALS`` becomes a table in ``docs/reliability.md`` (``docs/make_reliability.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: The signals handled, with the exit code each must give.
SIGNALS = {"SIGTERM": 143, "SIGHUP": 129, "SIGINT": 130}
#: A report that takes seconds, so the signal arrives while it works.
LONG_REPORT = "sinusoidal,positions=200000,dim=128"

_SLOW_WRITE = (
    "import os, sys, time\n"
    "os.fsync = lambda fd: time.sleep({seconds})  # the temporary file is written, the rename is that far away\n"
    "from explorer.cli import main\n"
    "sys.argv = ['posembed', *sys.argv[1:]]\n"
    "main()\n"
)


def _start(args: list[str], *, slow_write: float = 0, ignore: tuple[int, ...] = ()) -> subprocess.Popen:
    """The command in a session of its own; ``slow_write`` seconds between writing the temporary file and renaming it."""
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": ""}
    command = ([sys.executable, "-c", _SLOW_WRITE.format(seconds=slow_write), *args] if slow_write
               else [sys.executable, "-m", "explorer", *args])

    def prepare() -> None:
        for number in ignore:  # as nohup leaves SIGHUP
            signal.signal(number, signal.SIG_IGN)

    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=prepare)


def _session_alive(sid: int) -> list[int]:
    """Processes of session ``sid`` that still exist (children the command started and left behind)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    alive.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return alive


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=60)
    _wait_for(lambda: not _session_alive(process.pid), 10)
    return process.returncode, stderr


def _assert_interrupted(code: int, stderr: str, name: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == SIGNALS[name], (code, stderr)
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("posembed: error: interrupted") and "nothing was written" in lines[0]
    assert name == "SIGINT" or name in lines[0]


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_a_signal_while_working_leaves_nothing(name, tmp_path):
    process = _start(["report", LONG_REPORT, "-o", str(tmp_path / "r.html")])
    time.sleep(1.5)  # well into loading and analysing (the whole report takes several seconds)
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, getattr(signal, name))
    code, stderr = _finish(process)
    _assert_interrupted(code, stderr, name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_a_signal_while_writing_removes_the_temporary_file(name, existing, tmp_path):
    target = tmp_path / "t.npy"
    if existing:
        target.write_bytes(b"the user's old file")
    process = _start(["export", "sinusoidal,positions=64,dim=8", "-o", str(target)], slow_write=60)
    _wait_for(lambda: any(p.name.endswith(".part") for p in tmp_path.iterdir()))
    os.kill(process.pid, getattr(signal, name))
    code, stderr = _finish(process)
    _assert_interrupted(code, stderr, name)
    if existing:
        assert [p.name for p in tmp_path.iterdir()] == ["t.npy"] and target.read_bytes() == b"the user's old file"
    else:
        assert list(tmp_path.iterdir()) == []


def test_a_signal_while_waiting_for_a_fifo_reader_ends_the_wait(tmp_path):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    process = _start(["export", "sinusoidal,positions=8,dim=4", "-o", str(fifo)])
    time.sleep(1.5)  # blocked opening the FIFO: nobody reads it
    assert process.poll() is None
    os.kill(process.pid, signal.SIGTERM)
    code, stderr = _finish(process)
    _assert_interrupted(code, stderr, "SIGTERM")
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.npy"] and fifo.is_fifo()


def test_a_hangup_ignored_on_entry_stays_ignored(tmp_path):
    """Under ``nohup`` (SIGHUP ignored before posembed starts) a hangup does not stop the command."""
    target = tmp_path / "t.npy"
    process = _start(["export", "sinusoidal,positions=8,dim=4", "-o", str(target)], slow_write=1,
                     ignore=(signal.SIGHUP,))
    _wait_for(lambda: any(p.name.endswith(".part") for p in tmp_path.iterdir()))
    os.kill(process.pid, signal.SIGHUP)
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert [p.name for p in tmp_path.iterdir()] == ["t.npy"]


def _slow_hub():
    """The fake hub of tests/providers, every answer of which waits 20 s (``asked`` counts the requests)."""
    from modules import by_path

    helpers = by_path(Path(__file__).resolve().parent / "providers" / "conftest.py", "_posembed_fake_hub")

    class SlowHub(helpers.FakeHub):
        asked = 0

        def serve(self, handler, head):
            self.asked += 1
            time.sleep(20)
            super().serve(handler, head)

    return SlowHub().start()


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_series_from_a_slow_hub_within_2_s(name, jobs, tmp_path):
    """Issue 24, item 3: loading a revision series waits on a hub that answers nothing for 20 s; the signal ends
    the command within 2 s, serially and with --jobs 2 (whose workers are ended too), and nothing is written."""
    hub = _slow_hub()
    try:
        env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "POSEMBED_HUB_TIMEOUT": "60", "POSEMBED_HUB_DEADLINE": "120",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout, in the workers too
        for variable in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "POSEMBED_CACHE", "HF_TOKEN"):
            env.pop(variable, None)
        out = tmp_path / "series.html"
        process = subprocess.Popen([sys.executable, "-m", "explorer", "report", "--jobs", jobs,
                                    "hf:org/m,revision=a|b|c|d", "-o", str(out)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        _wait_for(lambda: hub.asked or process.poll() is not None)
        time.sleep(0.5)
        sent = time.monotonic()
        os.kill(process.pid, getattr(signal, name))
        _, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent
        _wait_for(lambda: not _session_alive(process.pid), 5)  # the workers, each in a 20 s wait, are ended
    finally:
        hub.stop()
    assert took <= 2.0, (took, stderr)
    _assert_interrupted(process.returncode, stderr, name)
    assert not out.exists()
