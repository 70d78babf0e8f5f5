"""Network faults through the fake hub on 127.0.0.1: clear errors, bounded retries, never a corrupt cache entry.

``NETWORK_CASES`` is one table: each row injects faults into the GET requests for the position tensor's
bytes (or the safetensors header, or config.json), says whether the load must still succeed (after
retries) or fail with a message fragment, and how many requests that may take. After every row the
faults are lifted and the same model is loaded again: it must give the exact table, which proves that
nothing corrupt was cached. Timeouts are short (``POSEMBED_HUB_TIMEOUT``) and back-off is zero
(``POSEMBED_HUB_RETRY_WAIT``) so the file stays fast. ``docs/reliability.md`` lists these rows too.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.errors import PosembedError, SettingError
from modules import by_path



def _bad_input_module():
    return by_path(Path(__file__).with_name("test_bad_input.py"), "_posembed_test_bad_input")


_bad = _bad_input_module()
FakeHub, assert_one_error_line, run, write_safetensors = (_bad.FakeHub, _bad.assert_one_error_line, _bad.run,
                                                          _bad.write_safetensors)
point_environment_at = _bad.helpers.point_environment_at

TIMEOUT = 1.0  # generous enough for a loaded 2-core machine; the faults sleep 3x longer
RETRIES = 2


class FaultyHub(FakeHub):
    """The fake hub, plus faults consumed one per matching GET: ``faults[target]`` is a list of actions.

    Targets: ``slice`` (a range GET not starting at byte 0 of model.safetensors), ``header`` (the range GET at
    byte 0), ``config`` (config.json). Actions: ``("status", code)``, ``("cut", n)`` (promise the whole body,
    send ``n`` bytes, hang up), ``("sleep", seconds)``, ``("shift", k)`` (answer a range moved by ``k`` bytes
    with a matching, wrong, Content-Range).
    """

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[str, list[tuple[str, float]]] = {}
        self.arrived: dict[str, int] = {}

    def gets(self, target: str) -> int:
        """GETs of ``target`` received (counted on arrival, so a request still being answered counts)."""
        return self.arrived.get(target, 0)

    def serve(self, handler, head: bool) -> None:
        record = {"method": handler.command, "path": handler.path, "range": handler.headers.get("Range")}
        record["file"] = handler.path.split("?")[0].rsplit("/", 1)[-1]
        target = _target(record)
        action = None
        if not head and target:
            with self.lock:
                self.arrived[target] = self.arrived.get(target, 0) + 1
                queue = self.faults.get(target) or []
                action = queue.pop(0) if queue else None
        if action is None:
            return super().serve(handler, head)
        kind, value = action
        if kind == "sleep":  # then answer normally (super().serve records the request)
            time.sleep(value)
            try:
                return super().serve(handler, head)
            except (BrokenPipeError, ConnectionResetError):
                return None
        with self.lock:
            self.requests.append(record)
        try:
            if kind == "status":
                return self.error(handler, int(value), "Boom")
            path = self._path(handler)
            first, _, last = record["range"].removeprefix("bytes=").partition("-")
            start, stop = int(first), int(last) + 1
            if kind == "shift":
                start, stop = start + int(value), stop + int(value)
            size = path.stat().st_size
            stop = min(stop, size)
            body = path.read_bytes()[start:stop]
            handler.send_response(206)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            handler.end_headers()
            handler.wfile.write(body[: int(value)] if kind == "cut" else body)
            handler.wfile.flush()
            handler.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _path(self, handler) -> Path:
        [repo] = self.repos.values()
        [files] = repo.commits.values()
        return files[handler.path.split("?")[0].rsplit("/", 1)[-1]]


def _target(record: dict) -> str | None:
    if record.get("file") == "config.json":
        return "config"
    if record.get("file") == "model.safetensors" and record.get("range"):
        return "header" if record["range"].startswith("bytes=0-") else "slice"
    return None


@pytest.fixture
def faulty(monkeypatch, tmp_path):
    """A FaultyHub serving org/m (a GPT-2-like 16 x 4 table), the environment pointed at it."""
    fake = FaultyHub().start()
    point_environment_at(monkeypatch, fake, tmp_path / "hf-home")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("POSEMBED_HUB_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("POSEMBED_HUB_RETRIES", str(RETRIES))
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "0")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 16, "n_embd": 4}))
    table = np.random.default_rng(7).normal(size=(16, 4)).astype(np.float32)
    write_safetensors(folder / "model.safetensors", {"wte.weight": np.ones((10, 4), np.float32),
                                                     "wpe.weight": table})
    fake.add("org/m", folder)
    fake.table = table
    yield fake
    fake.stop()


@dataclass(frozen=True)
class NetCase:
    """One network fault: where it strikes, what the user sees, how many GETs of the target it may cost."""

    id: str
    tried: str
    target: str
    faults: list = field(default_factory=list)
    fragment: str | None = None  # None: the load succeeds (after retries)
    gets: int = 1
    retried: str = "no"


NETWORK_CASES = [
    NetCase("401-tensor", "HTTP 401 for the tensor's bytes", "slice", [("status", 401)],
            "refused access to model.safetensors (HTTP 401); if the model is private or gated, set HF_TOKEN", 1,
            "no (the answer will not change)"),
    NetCase("404-tensor", "HTTP 404 for the tensor's bytes (file vanished)", "slice", [("status", 404)],
            "has no model.safetensors (HTTP 404)", 1, "no"),
    NetCase("404-repo", "HTTP 404 for config.json (no such model)", "config", [("status", 404)] * 5,
            "has no config.json (HTTP 404)", 1, "no"),
    NetCase("500-once", "HTTP 500 once, then a good answer", "slice", [("status", 500)], None, 2, "yes"),
    NetCase("500-always", "HTTP 500 on every attempt", "slice", [("status", 500)] * 9,
            "answered HTTP 500 for model.safetensors (gave up after 3 attempts)", 3, "yes, 2 retries"),
    NetCase("503-header", "HTTP 503 for the safetensors header, then a good answer", "header", [("status", 503)],
            None, 2, "yes"),
    NetCase("timeout-once", f"no answer within {TIMEOUT} s once, then a good answer", "slice",
            [("sleep", TIMEOUT * 3)], None, 2, "yes"),
    NetCase("timeout-always", f"no answer within {TIMEOUT} s on every attempt", "slice",
            [("sleep", TIMEOUT * 3)] * 9, "timed out sending model.safetensors", 3, "yes, 2 retries"),
    NetCase("cut-once", "a body cut short after 10 bytes, then a good answer", "slice", [("cut", 10)], None, 2,
            "yes"),
    NetCase("cut-always", "a body cut short on every attempt", "slice", [("cut", 10)] * 9,
            "cut model.safetensors short", 3, "yes, 2 retries"),
    NetCase("wrong-content-range", "a 206 answer for bytes 4 further on, saying so in Content-Range", "slice",
            [("shift", 4)], "the server sent", 1, "no (a server bug)"),
    NetCase("wrong-content-range-header", "the header range answered from byte 8", "header",
            [("shift", 8)], "the server sent", 1, "no"),
]


def _slices(home: Path) -> list[Path]:
    return sorted((home / "posembed").rglob("*.bin"))


@pytest.mark.parametrize("case", NETWORK_CASES, ids=[c.id for c in NETWORK_CASES])
def test_network_fault(case, faulty, tmp_path):
    faulty.faults[case.target] = list(case.faults)
    if case.fragment is None:
        np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, faulty.table)
    else:
        result = run(["info", "hf:org/m"])
        assert_one_error_line(result, case.fragment, 1)
    assert faulty.gets(case.target) == case.gets
    for path in _slices(tmp_path / "hf-home"):  # whatever was cached holds exactly the tensor's bytes
        assert path.read_bytes() == faulty.table.tobytes()
    faulty.faults.clear()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, faulty.table)  # and a clean run is right


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_from_the_start(faulty, monkeypatch):
    """A hub that refuses connections is one clear line at once: no retry, no back-off slept (huggingface_hub would
    retry config.json 5 times, 1 + 2 + 4 + 8 + 8 s; posembed sends every request through its own exchange)."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "5")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    assert_one_error_line(run(["info", "hf:org/m"]), "cannot reach http://127.0.0.1:", 1)
    assert slept == [] and time.monotonic() - started < 5


def test_connection_refused_after_the_config_was_cached(faulty, monkeypatch, tmp_path):
    faulty.faults["slice"] = [("status", 404)]
    with pytest.raises(PosembedError):
        explorer.load("hf:org/m")  # config.json and the header are cached now, the slice is not
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    line = assert_one_error_line(run(["info", "hf:org/m"]), "org/m", 1)
    assert "cannot reach http://127.0.0.1:" in line
    assert _slices(tmp_path / "hf-home") == []


def test_corrupt_cached_header_is_fetched_again(faulty, tmp_path):
    explorer.load("hf:org/m")
    [header] = (tmp_path / "hf-home" / "posembed").rglob("*.header.json")
    header.write_bytes(b'{"wpe.weight": {"dtype": "F3')  # cut by a crash, say
    for path in _slices(tmp_path / "hf-home"):
        path.unlink()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, faulty.table)
    assert json.loads(header.read_bytes())["wpe.weight"]["dtype"] == "F32"


def test_bad_timeout_setting_is_one_clear_error(faulty, monkeypatch):
    monkeypatch.setenv("POSEMBED_HUB_TIMEOUT", "soon")
    with pytest.raises(SettingError, match="POSEMBED_HUB_TIMEOUT"):
        explorer.load("hf:org/m")
