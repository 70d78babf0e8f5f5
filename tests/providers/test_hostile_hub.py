"""A hostile hub on 127.0.0.1: what a server sends never chooses a path, a size or a time posembed did not allow.

``HOSTILE_CASES`` is one table: each row makes the fake hub misbehave for one file (config.json, the
safetensors header or the table's bytes) and says what the user sees: one ``posembed: error:`` line
holding the fragment, exit code 1, within ``seconds``. After every row no file exists outside the
test's caches, and nothing half-fetched is cached. Deadlines are short (``POSEMBED_HUB_DEADLINE``,
``POSEMBED_HUB_TIMEOUT``) so the file stays fast; every server loop stops by itself.
``docs/reliability.md`` lists these rows too.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import pytest
from cli_run import assert_one_error_line as one_error_line
from cli_run import run_cli as cli
from modules import by_path

import explorer

REPO = Path(__file__).resolve().parents[2]


def _hub_helpers():
    """tests/providers/conftest.py as one module, shared with tests/test_bad_input.py."""
    return by_path(Path(__file__).with_name("conftest.py"), "_posembed_fake_hub")


FakeHub, point_environment_at, write_safetensors = (_hub_helpers().FakeHub, _hub_helpers().point_environment_at,
                                                    _hub_helpers().write_safetensors)
DEADLINE = 2.0  # POSEMBED_HUB_DEADLINE in these tests
TIMEOUT = 1.0  # POSEMBED_HUB_TIMEOUT: each read


class HostileHub(FakeHub):
    """The fake hub, plus ``tricks[target]``: a function answering that GET instead (target: config, header, slice)."""

    def __init__(self) -> None:
        super().__init__()
        self.tricks: dict[str, Callable] = {}
        self.extra_headers: dict[str, str] = {}

    def serve(self, handler, head: bool) -> None:
        name = handler.path.split("?")[0].rsplit("/", 1)[-1]
        wanted = handler.headers.get("Range") or ""
        target = ("config" if name == "config.json" else
                  "header" if wanted.startswith("bytes=0-") else "slice" if wanted else name)
        trick = self.tricks.get(target)
        with self.lock:
            self.requests.append({"method": handler.command, "path": handler.path, "range": wanted,
                                  "auth": None, "file": name})
        try:
            if trick is None:
                return super().serve(_Extra(handler, self.extra_headers), head)
            return trick(self, handler)
        except (BrokenPipeError, ConnectionResetError):
            return None


class _Extra:
    """A request handler whose answers carry extra headers (and whose own ETag/commit they may replace)."""

    def __init__(self, handler, extra: dict[str, str]) -> None:
        self._handler, self._extra = handler, extra

    def __getattr__(self, name):
        return getattr(self._handler, name)

    def send_header(self, key: str, value: str) -> None:
        if key not in self._extra:
            self._handler.send_header(key, value)

    def end_headers(self) -> None:
        for key, value in self._extra.items():
            self._handler.send_header(key, value)
        self._handler.end_headers()


def _answer(handler, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _file_bytes(hub: HostileHub, handler) -> bytes:
    [repo] = hub.repos.values()
    [files] = repo.commits.values()
    return files[handler.path.split("?")[0].rsplit("/", 1)[-1]].read_bytes()


def drip(hub, handler) -> None:
    """Headers, then one byte every 0.5 s; gives up by itself after 20 bytes."""
    handler.send_response(206)
    handler.send_header("Content-Length", "256")
    handler.send_header("Content-Range", handler.headers["Range"].replace("=", " ") + "/9999")
    handler.end_headers()
    for _ in range(20):
        handler.wfile.write(b"\0")
        handler.wfile.flush()
        time.sleep(0.5)


def drip_headers(hub, handler) -> None:
    """The status line, then one header byte every 0.5 s: no read ever waits long, the answer never ends."""
    handler.wfile.write(b"HTTP/1.0 200 OK\r\n")
    for _ in range(20):
        handler.wfile.write(b"X")
        handler.wfile.flush()
        time.sleep(0.5)


def gzipped_range(hub, handler) -> None:
    """A range answered gzip-encoded, although posembed asked for identity."""
    import gzip

    body = gzip.compress(b"\0" * 64)
    _answer(handler, 206, {"Content-Encoding": "gzip", "Content-Length": str(len(body)),
                           "Content-Range": handler.headers["Range"].replace("=", " ") + "/9999"}, body)


def retry_after(seconds: str) -> Callable:
    def trick(hub, handler) -> None:
        _answer(handler, 429, {"Retry-After": seconds, "Content-Length": "0"})
    return trick


def rate_limited(seconds: str) -> Callable:
    """HTTP 429 as the hub's resolvers send it past their quota: ``RateLimit`` says no request is left for T s."""
    def trick(hub, handler) -> None:
        _answer(handler, 429, {"RateLimit": f'"resolvers";r=0;t={seconds}', "Content-Length": "0",
                               "RateLimit-Policy": '"fixed window";"resolvers";q=3000;w=300'})
    return trick


def refused_saying(message: str) -> Callable:
    """HTTP 403 whose ``X-Error-Message`` is the server's own text."""
    def trick(hub, handler) -> None:
        _answer(handler, 403, {"X-Error-Message": message, "Content-Length": "0"})
    return trick


def silent(hub, handler) -> None:
    """Accept the request, then say nothing for 20 s (the test's deadline ends it first)."""
    time.sleep(20)


def redirect_loop(hub, handler) -> None:
    """Redirect to itself, for ever."""
    _answer(handler, 302, {"Location": handler.path, "Content-Length": "0"})


def undecodable(hub, handler) -> None:
    """A body announced as brotli that is not."""
    _answer(handler, 200, {"Content-Encoding": "br", "Content-Length": "5", "X-Repo-Commit": "a" * 40}, b"\xff\xfe\0\1\2")


def bad_chunks(hub, handler) -> None:
    """A chunked body whose chunk size is not hexadecimal."""
    handler.protocol_version = "HTTP/1.1"
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("X-Repo-Commit", "a" * 40)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b"zz\r\n{}\r\n0\r\n\r\n")


def huge_config(hub, handler) -> None:
    """A 60 MB config.json announced by Content-Length (only the first MB is really sent)."""
    handler.send_response(200)
    handler.send_header("X-Repo-Commit", "a" * 40)
    handler.send_header("Content-Length", str(60_000_000))
    handler.end_headers()
    handler.wfile.write(b" " * 1_000_000)


def endless_config(hub, handler) -> None:
    """A config.json without Content-Length that goes on past any limit (stops itself after 12 MB)."""
    handler.send_response(200)
    handler.send_header("X-Repo-Commit", "a" * 40)
    handler.end_headers()
    for _ in range(12):
        handler.wfile.write(b" " * 1_000_000)


def config_with(body: bytes, commit: str = "a" * 40) -> Callable:
    def trick(hub, handler) -> None:
        _answer(handler, 200, {"X-Repo-Commit": commit, "Content-Length": str(len(body))}, body)
    return trick


def header_with(header: bytes) -> Callable:
    """A safetensors header of the given JSON bytes (with its length prefix)."""
    def trick(hub, handler) -> None:
        body = struct.pack("<Q", len(header)) + header
        _answer(handler, 206, {"Content-Length": str(len(body)),
                               "Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}"}, body)
    return trick


@dataclass(frozen=True)
class HostileCase:
    """One hostile answer: for which request, what the user sees, how long it may take."""

    id: str
    tried: str
    target: str
    trick: Callable
    fragment: str
    seconds: float = 5.0


HOSTILE_CASES = [
    HostileCase("drip-body", "the table's bytes dripped, one byte every 0.5 s", "slice", drip,
                f"took longer than the deadline of {DEADLINE:g} s"),
    HostileCase("drip-headers", "the answer's header lines dripped, one byte every 0.5 s", "config", drip_headers,
                f"took longer than the deadline of {DEADLINE:g} s"),
    HostileCase("retry-after-hour", "HTTP 429 with `Retry-After: 3600`", "config", retry_after("3600"),
                f"asks to wait 3600 s; posembed waits at most {DEADLINE:g} s (POSEMBED_HUB_DEADLINE), so try again after "),
    HostileCase("ratelimit-120", 'HTTP 429 with `RateLimit: "resolvers";r=0;t=120` (no quick retries)', "config",
                rate_limited("120"), f"asks to wait 120 s; posembed waits at most {DEADLINE:g} s"),
    HostileCase("error-message-10kb", "a 403 whose `X-Error-Message` is a terminal escape and 10 kB more", "config",
                refused_saying("\x1b[2J" + "A" * 10_000), "A" * 196 + ")"),
    HostileCase("gzip-range", "a range request answered with `Content-Encoding: gzip`", "slice", gzipped_range,
                "Content-Encoding 'gzip' although posembed asked for identity"),
    HostileCase("redirect-loop", "config.json redirected to itself", "config", redirect_loop, "redirects in a loop"),
    HostileCase("undecodable-body", "config.json announced as brotli", "config", undecodable,
                "Content-Encoding 'br'"),
    HostileCase("malformed-chunks", "a chunked config.json whose chunk size is not hex (retried once)", "config",
                bad_chunks, "cut config.json short (IncompleteRead) (gave up after 2 attempts)"),
    HostileCase("config-60mb", "a config.json whose Content-Length says 60 MB", "config", huge_config,
                "announced 60000000 bytes, more than the 10000000-byte limit"),
    HostileCase("config-endless", "a config.json without Content-Length that never ends", "config", endless_config,
                "sent more than the 10000000-byte limit"),
    HostileCase("config-not-json", "a config.json of bytes that are not UTF-8", "config",
                config_with(b"\xff\xfe{}"), "config.json is not valid JSON"),
    HostileCase("config-deep-json", "a config.json nested 100,000 levels deep", "config",
                config_with(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nests more than 64 levels deep"),
    HostileCase("header-deep-json", "a safetensors header nested 45,000 levels deep", "header",
                header_with(b'{"__metadata__":' + b"[" * 45_000 + b"]" * 45_000 + b"}"),
                "nests more than 64 levels deep"),
    HostileCase("commit-is-a-path", "`X-Repo-Commit: ../../../../victim`", "config",
                config_with(b'{"model_type": "gpt2"}', "../../../../victim"), "which is not 40 hex digits"),
]


@pytest.fixture
def hostile(monkeypatch, tmp_path):
    """A HostileHub serving org/m (a GPT-2-like 16 x 4 table), the environment pointed at it, short deadlines."""
    fake = HostileHub().start()
    point_environment_at(monkeypatch, fake, tmp_path / "hf-home")
    monkeypatch.setenv("POSEMBED_HUB_DEADLINE", str(DEADLINE))
    monkeypatch.setenv("POSEMBED_HUB_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("POSEMBED_HUB_RETRIES", "1")
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "0")
    _hub_helpers().publish_small_gpt2(fake, tmp_path / "m", seed=3)
    fake.home = tmp_path / "hf-home"
    yield fake
    fake.stop()


def _outside(root: Path, home: Path) -> set[Path]:
    """Every path under ``root`` but outside the caches under ``home``."""
    return {p for p in root.rglob("*") if p != home and home not in p.parents}


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=[c.id for c in HOSTILE_CASES])
def test_hostile_answer(case, hostile, tmp_path):
    before = _outside(tmp_path, hostile.home)
    hostile.tricks[case.target] = case.trick
    started = time.monotonic()
    one_error_line(cli(["info", "hf:org/m"]), case.fragment)
    assert time.monotonic() - started < case.seconds
    assert _outside(tmp_path, hostile.home) == before  # nothing written outside the caches
    assert not list(hostile.home.rglob("*.part"))  # nor left half-fetched inside them
    hostile.tricks.clear()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)  # a clean run is right


@pytest.mark.parametrize("revision", ["/abs/victim", "../../victim", "main/../../x", "a\\b", "v1\nv2"])
def test_revision_must_be_a_branch_tag_or_commit_name(hostile, tmp_path, revision):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    spec = f"hf:org/m,revision={str(victim) if revision == '/abs/victim' else revision}"
    one_error_line(cli(["info", spec]), "is not a branch, tag or commit name", 2)
    assert victim.read_text() == "keep"
    assert hostile.requests == []


def test_branch_tag_and_pr_names_are_accepted(hostile):
    from explorer.loaders.hub import revision_name

    for name in ("main", "v1.0", "refs/pr/1", "release-2024_01", "a" * 40):
        assert revision_name(name) == name


def test_server_etag_and_linked_etag_choose_no_path(hostile, tmp_path):
    victim = tmp_path / "etag-victim"
    hostile.extra_headers = {"ETag": f'"{victim}"', "X-Linked-Etag": f'"{victim}"'}
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)
    assert not victim.exists() and not Path(f"{victim}.lock").exists()
    assert not (tmp_path / "hf-home" / "hub").exists()  # posembed writes only its own cache


def test_endless_chain_of_new_redirects_stops_after_the_limit(hostile, monkeypatch):
    from explorer.loaders import exchange

    monkeypatch.setattr(exchange, "MAX_REDIRECTS", 2)
    hops = iter(range(100))

    def onwards(hub, handler):
        _answer(handler, 307, {"Location": f"{handler.path.split('?')[0]}?hop={next(hops)}", "Content-Length": "0"})

    hostile.tricks["config"] = onwards
    one_error_line(cli(["info", "hf:org/m"]), "more than 2 redirects")


def test_remote_table_larger_than_the_download_limit_is_refused_before_downloading(hostile, tmp_path, monkeypatch):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 218_000, "n_embd": 770}))
    write_safetensors(folder / "model.safetensors", {"wpe.weight": ("F32", (218_000, 770))})  # 671 MB, sparse
    hostile.add("org/big", folder)
    line = one_error_line(cli(["info", "hf:org/big"]), "would take 671 MB, more than the")
    assert "POSEMBED_MAX_DOWNLOAD_MB" in line
    assert hostile.bytes_sent < 200_000 and not list((tmp_path / "hf-home").rglob("*.bin"))
    monkeypatch.setenv("POSEMBED_MAX_DOWNLOAD_MB", "0.00001")
    one_error_line(cli(["info", "hf:org/m"]), "more than the 1e-05 MB one download may bring")
    monkeypatch.setenv("POSEMBED_MAX_DOWNLOAD_MB", "1")
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)


def test_default_download_limit_comes_from_available_memory(monkeypatch):
    from explorer.runtime import limits

    monkeypatch.delenv("POSEMBED_MAX_DOWNLOAD_MB", raising=False)
    monkeypatch.setattr(limits, "available_memory", lambda: 800_000_000)
    assert limits.max_download_bytes() == 100_000_000
    monkeypatch.setattr(limits, "available_memory", lambda: 64_000_000_000)
    assert limits.max_download_bytes() == limits.DOWNLOAD_CAP_MB * limits.MB


def test_short_retry_after_is_obeyed(hostile):
    answers = iter([retry_after("1")])

    def once(hub, handler):
        trick = next(answers, None)
        if trick is None:
            return FakeHub.serve(hub, handler, False)
        return trick(hub, handler)

    hostile.tricks["slice"] = once
    started = time.monotonic()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)
    assert 1.0 <= time.monotonic() - started < 5


def test_lone_surrogates_in_remote_tensor_names_are_one_line(hostile, tmp_path):
    """A header naming a tensor with a JSON escape of a lone surrogate is refused whole, as the safetensors
    library refuses it (and as a local header is): one line, nothing cached under that name."""
    folder = tmp_path / "surrogate"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 4, "n_embd": 2}))
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    write_safetensors(folder / "model.safetensors", {"wpe.weight": table, "h.\udc80.w": np.ones((2, 2), np.float32)})
    hostile.add("org/surrogate", folder)
    one_error_line(cli(["info", "hf:org/surrogate"]), "tensor name 'h.\\udc80.w' holds a lone surrogate")
    assert not list((tmp_path / "hf-home").rglob("*.bin"))


def test_unusable_hf_endpoint_is_one_line(hostile, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://[::1")
    one_error_line(cli(["info", "hf:org/m"]), "HF_ENDPOINT='http://[::1' is not a usable URL", 2)
    monkeypatch.setenv("HF_ENDPOINT", "ftp://example")
    one_error_line(cli(["info", "hf:org/m"]), "HF_ENDPOINT='ftp://example' is not a usable URL", 2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("endpoint", ["closed-port", "no-such-host"])
def test_unreachable_hub_is_one_line_in_seconds_that_says_how_to_work_offline(tmp_path, endpoint):
    """A real process, so that a library's own log lines on the real stderr would show."""
    url = f"http://127.0.0.1:{_closed_port()}" if endpoint == "closed-port" else "http://no-such-host.invalid"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "POSEMBED_"))}
    env.update(HF_ENDPOINT=url, HF_HOME=str(tmp_path / "home"), POSEMBED_LOAD_PLUGINS="",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    for quiet in ([], ["--quiet"]):
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "explorer", *quiet, "info", "hf:org/m"], env=env,
                                capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("posembed: error: org/m: cannot reach http://"), lines[0]
        assert "HF_HUB_OFFLINE=1" in lines[0] and "file:" in lines[0]
        assert took < 8, took


class _Resolver:
    """``socket.getaddrinfo`` that answers for ``hub.test`` with 127.0.0.1, or not at all while ``hang`` is set
    (until the test ends); it records each name asked for and the thread that asked."""

    def __init__(self) -> None:
        self.hang, self.asked, self.released = False, [], threading.Event()

    def __call__(self, host, *args, **kwargs):
        self.asked.append((host, threading.current_thread().name))
        if host == "hub.test":
            if self.hang:
                self.released.wait(60)
            host = "127.0.0.1"
        return _GETADDRINFO(host, *args, **kwargs)


_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def resolver(monkeypatch):
    """A :class:`_Resolver` in place of ``socket.getaddrinfo``; a hung lookup is let go when the test ends."""
    fake = _Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.released.set()


def test_name_lookup_that_never_answers_ends_within_the_deadline(hostile, resolver, monkeypatch):
    """getaddrinfo heeds no socket timeout: it runs in a thread waited for at most what the deadline leaves."""
    from explorer.loaders import exchange

    monkeypatch.setenv("HF_ENDPOINT", hostile.url.replace("127.0.0.1", "hub.test"))
    cli(["info", "hf:org/x"])  # imports done, so the command below takes the deadline and little more
    resolver.hang = True
    started = time.monotonic()
    with pytest.raises(exchange.ExchangeError, match=r"looking up hub\.test took longer than the deadline of 0\.2 s"):
        exchange.get("http://hub.test/x", {}, limit=10, deadline=exchange.Deadline(0.2, 5), connect_timeout=5)
    assert 0.2 <= time.monotonic() - started < 0.2 + 0.5
    hostile.requests.clear()
    started = time.monotonic()
    line = one_error_line(cli(["info", "hf:org/m"]), f"(looking up hub.test took longer than the deadline of "
                                                      f"{DEADLINE:g} s)")
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 1.0
    assert line.startswith("posembed: error: org/m: cannot reach http://hub.test:") and "HF_HUB_OFFLINE=1" in line
    assert hostile.requests == []


def test_an_ipv6_literal_without_a_port_is_connected_on_its_schemes_port(monkeypatch):
    """http.client reads a port out of a bare IPv6 address (host "::1", port None: host ":", port 1)."""
    from explorer.loaders import exchange

    monkeypatch.setenv("no_proxy", "*")
    for url, port in (("http://[::1]/x", 80), ("https://[::1]/x", 443), ("http://[::1]:8080/x", 8080),
                      ("https://[2001:db8::1]/x", 443), ("http://hub.test/x", 80)):
        conn, _, _ = exchange._connect(url, exchange.Deadline(5, 5), 5)
        assert (conn.host, conn.port) == (urlsplit(url).hostname, port), url


def test_looked_up_name_is_connected_by_address_and_kept_for_tls(hostile, resolver, monkeypatch):
    """An IP address is connected at once, a name by the address looked up in a thread; TLS still checks the name."""
    from explorer.loaders import exchange

    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)
    assert {who for host, who in resolver.asked} == {threading.current_thread().name}
    monkeypatch.setenv("HF_ENDPOINT", hostile.url.replace("127.0.0.1", "hub.test"))
    monkeypatch.setenv("HF_HOME", str(hostile.home.with_name("other-home")))
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, hostile.table)
    assert ("hub.test", "posembed-lookup-hub.test") in resolver.asked
    names = []

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        names.append(server_hostname)
        raise OSError("stopped before the handshake")

    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)
    with pytest.raises(exchange.ExchangeError, match="cannot reach https://hub.test:.*stopped before the handshake"):
        exchange.get(hostile.url.replace("http://127.0.0.1", "https://hub.test") + "/x", {}, limit=10,
                     deadline=exchange.Deadline(DEADLINE, TIMEOUT), connect_timeout=TIMEOUT)
    assert names == ["hub.test"]  # SNI and the certificate check use the name, not 127.0.0.1


def test_a_redirect_keeps_the_token_only_on_the_same_scheme_host_and_port():
    from explorer.loaders.exchange import same_origin

    assert same_origin("https://hub.test/a/b", "https://hub.test/x")
    assert not same_origin("http://hub.test/a", "https://hub.test/x")  # a downgrade would send it in the clear
    assert not same_origin("https://other.test/a", "https://hub.test/x")
    assert not same_origin("https://hub.test:8443/a", "https://hub.test/x")


@pytest.mark.parametrize("target, trick", [("slice", drip), ("config", drip_headers), ("config", silent)],
                         ids=["drip-body", "drip-headers", "silent"])
def test_a_slow_hub_gets_a_status_line_every_interval_naming_the_deadline(hostile, monkeypatch, target, trick):
    """No long silence: a status line within ``STATUS_EVERY`` (10 s) and one every ``STATUS_EVERY`` after, until the
    deadline; each names the deadline and the variable that sets it. The interval is shortened to keep this fast."""
    from explorer.loaders import exchange, hub

    assert exchange.STATUS_EVERY == 10
    monkeypatch.setattr(exchange, "STATUS_EVERY", 0.4)
    monkeypatch.setenv("POSEMBED_HUB_TIMEOUT", "30")  # only the deadline ends a silent server
    monkeypatch.setenv("POSEMBED_HUB_RETRIES", "0")
    explorer.load("hf:org/m")  # cached now; a second commit makes the next load fetch again
    hostile.requests.clear()
    notes: list[tuple[float, str]] = []
    monkeypatch.setattr(hub, "info", lambda line: notes.append((time.monotonic(), line)))
    hostile.tricks[target] = trick
    monkeypatch.setenv("HF_HOME", str(hostile.home.with_name("fresh-home")))
    started = time.monotonic()
    with pytest.raises(explorer.errors.ProviderError, match=f"took longer than the deadline of {DEADLINE:g} s"):
        explorer.load("hf:org/m")
    times = [started] + [when for when, line in notes]
    assert len(notes) >= 3, notes
    assert all(b - a < 0.4 + 0.35 for a, b in zip(times, times[1:])), times
    for _, line in notes:
        assert line.startswith("posembed: org/m: still fetching ") and f"gives up after {DEADLINE:g} s" in line
        assert "POSEMBED_HUB_DEADLINE" in line


def test_tls_uses_the_context_of_huggingface_hubs_own_session(hostile, resolver, monkeypatch):
    """huggingface_hub 2.x's client builds its TLS context with httpx2.create_ssl_context (the system trust store on
    macOS and Windows, SSL_CERT_FILE, OpenSSL's paths on Linux); posembed connects with that same context."""
    httpx2 = pytest.importorskip("httpx2")
    from explorer.loaders import exchange

    names = []

    class Recording(ssl.SSLContext):
        def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
            names.append(server_hostname)
            raise OSError("stopped before the handshake")

    monkeypatch.setattr(httpx2, "create_ssl_context", lambda: Recording(ssl.PROTOCOL_TLS_CLIENT))
    exchange.tls_context.cache_clear()
    try:
        with pytest.raises(exchange.ExchangeError, match="cannot reach https://hub.test:.*stopped before the handshake"):
            exchange.get(hostile.url.replace("http://127.0.0.1", "https://hub.test") + "/x", {}, limit=10,
                         deadline=exchange.Deadline(DEADLINE, TIMEOUT), connect_timeout=TIMEOUT)
    finally:
        exchange.tls_context.cache_clear()
    assert names == ["hub.test"]
