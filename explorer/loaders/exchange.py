"""One HTTP GET to the hub, bounded in every way: a total deadline, a byte limit, a few redirects, no decoding.

Why not huggingface_hub's HTTP (``get_session``, ``hf_hub_download``, ``parse_safetensors_file_metadata``;
read in its 2.4 source, and the table in docs/architecture.md): its httpx2 client has connect, read, write
and pool timeouts but no total one, so a server dripping a byte every half second (headers included) is
never cut off, and its name lookup waits as long as the system's resolver; ``parse_safetensors_file_metadata``
reads ``response.content`` whole, so a server ignoring the Range header sends the whole checkpoint into
memory; its downloads name blob files after the server's ETag. This adapter uses the standard library's
``http.client``: a host name is looked up within the exchange's deadline (``getaddrinfo`` heeds no socket
timeout), every socket read (headers included) waits at most the time left before that deadline, a
status line is printed every ``STATUS_EVERY`` seconds while an exchange lasts, the body stops at a limit
known before it arrives, a body with a ``Content-Encoding`` is refused (posembed asks for ``identity``),
and redirects are followed at most ``MAX_REDIRECTS`` times, never in a loop, dropping the
``Authorization`` header when they leave the first URL's origin for one that is not the hub's. What it takes
from huggingface_hub's stack: the TLS context its session uses (the system's trust store, ``SSL_CERT_FILE``)
and its reading of ``RateLimit`` headers. Proxies come from the usual ``*_proxy`` variables.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import ipaddress
import math
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, Callable
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

MAX_REDIRECTS = 5
CHUNK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)
#: Seconds between two status lines while one exchange lasts (a hub dripping bytes is never silent for longer); the
#: first comes after half of it, so even with start-up before the exchange it is within 10 s of the command.
STATUS_EVERY = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ExchangeError(Exception):
    """An exchange that failed; ``kind`` says how: ``timeout`` or ``cut`` (worth retrying), ``unreachable``, or ``""``."""

    def __init__(self, message: str, kind: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.kind, self.detail = kind, detail

    @property
    def transient(self) -> bool:
        """Whether trying again may help: a read that timed out, a body cut short."""
        return self.kind in ("timeout", "cut")

    @property
    def unreachable(self) -> bool:
        """Whether no connection could be made at all."""
        return self.kind == "unreachable"


@dataclass
class Answer:
    """The final answer of an exchange: status, headers, body (unless streamed to a file), the URL chain."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes = b""
    urls: list[str] = field(default_factory=list)
    first_headers: list[http.client.HTTPMessage] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first value of ``name`` in any answer of the chain, the first answer first (the hub's own)."""
        for headers in self.first_headers:
            if headers.get(name) is not None:
                return headers.get(name)
        return None


class Deadline:
    """The moment an exchange must be over, how long the next socket operation may wait for it, and the status
    lines: ``note(seconds, bytes_received)`` is called every ``STATUS_EVERY`` seconds while the exchange lasts."""

    def __init__(self, seconds: float, per_read: float, note: Callable[[float, int], None] | None = None) -> None:
        self.seconds, self.per_read, self.note = seconds, per_read, note
        self.start = time.monotonic()
        self.end, self.next_note = self.start + seconds, self.start + STATUS_EVERY / 2
        self.received = 0

    def wait(self, cap: float | None = None) -> float:
        """Seconds the next read or connect may block; ExchangeError when the deadline has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise ExchangeError(f"took longer than the deadline of {self.seconds:g} s")
        return min(left, self.per_read, cap if cap is not None else self.per_read)

    def until_note(self) -> float:
        """Seconds until the next status line is due (no limit without a ``note``)."""
        return max(self.next_note - time.monotonic(), 0.01) if self.note else math.inf

    def tick(self) -> None:
        """Print the status line when it is due."""
        now = time.monotonic()
        if self.note is not None and now >= self.next_note:
            self.next_note = now + STATUS_EVERY
            self.note(now - self.start, self.received)


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read waiting at most what the deadline leaves (so headers are bounded too)."""

    def __init__(self, sock: socket.socket, deadline: Deadline, plain: BinaryIO) -> None:
        # ``plain`` is the makefile() reader http.client opened: while it is open, closing the connection
        # leaves the socket to us (socket.close waits for its readers), so it is closed with this one.
        self.sock, self.deadline, self.plain = sock, deadline, plain

    def close(self) -> None:
        """Close this reader and the plain one it stands in for."""
        super().close()
        self.plain.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        deadline, began = self.deadline, time.monotonic()
        while True:  # woken for each status line that falls due while this read waits
            waited = time.monotonic() - began
            if waited >= deadline.per_read:
                raise TimeoutError
            self.sock.settimeout(deadline.wait(min(deadline.per_read - waited, deadline.until_note())))
            try:
                count = self.sock.recv_into(buffer)
            except TimeoutError:
                deadline.wait()  # raises when it was the deadline, not one read's timeout, that ran out
                deadline.tick()
                continue
            deadline.received += count
            deadline.tick()
            return count


class _Response(http.client.HTTPResponse):
    """``http.client``'s response reading through a :class:`_DeadlineReader`."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None,
                 *, deadline: Deadline) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline, self.fp))  # every read bounded by the deadline


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    """The proxy the ``*_proxy`` variables choose for ``scheme://host``, with its auth header; None: go direct."""
    proxy = getproxies_environment().get(scheme)
    if not proxy or proxy_bypass_environment(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return parts.hostname or "", parts.port or 80, headers


def _lookup(host: str, port: int, deadline: Deadline) -> list:
    """``getaddrinfo`` for ``host``, in a daemon thread waited for at most what the deadline leaves (an IP needs
    none)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    found: list = []

    def look() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=look, name=f"posembed-lookup-{host}", daemon=True)
    thread.start()
    while not found and time.monotonic() < deadline.end:
        thread.join(max(min(deadline.end - time.monotonic(), deadline.until_note()), 0))
        deadline.tick()
    if not found:  # the thread is left to the resolver; being a daemon, it never holds the process up
        raise OSError(f"looking up {host} took longer than the deadline of {deadline.seconds:g} s")
    if isinstance(found[0], OSError):
        raise found[0]
    return found[0]


def _open_socket(address: tuple[str, int], timeout: float, source_address: tuple | None = None, *,
                 deadline: Deadline) -> socket.socket:
    """``socket.create_connection`` with the name looked up by :func:`_lookup`, each connect within the deadline.

    It stands in for ``http.client``'s, so the connection keeps the host's name: TLS checks the certificate
    against it (SNI too), and through a proxy it is the proxy's name that is looked up here.
    """
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in _lookup(address[0], address[1], deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.wait(timeout))
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):
                raise
            error = error or exc
    raise error or OSError(f"no address for {address[0]}")


def _connect(url: str, deadline: Deadline, connect_timeout: float) -> tuple[http.client.HTTPConnection, str, dict]:
    """A connection for ``url`` (through a proxy when one is set) and the request target to send."""
    parts = urlsplit(url)
    # the port always given: http.client would read one out of a bare IPv6 address (::1 as host ":", port 1)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    wait = deadline.wait(connect_timeout)
    proxy = _proxy_for(parts.scheme, host)
    extra: dict[str, str] = {}
    if parts.scheme == "https":
        context = tls_context()
        if proxy:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=wait,
                                                                          context=context)
            conn.set_tunnel(host, port, headers=proxy[2])
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=wait, context=context)
    elif proxy:
        conn, target, extra = http.client.HTTPConnection(proxy[0], proxy[1], timeout=wait), url, proxy[2]
    else:
        conn = http.client.HTTPConnection(host, port, timeout=wait)
    # http.client's socket factory: the one hook through which the name lookup and each connect are bounded
    conn._create_connection = partial(_open_socket, deadline=deadline)  # type: ignore[attr-defined]
    conn.response_class = partial(_Response, deadline=deadline)  # type: ignore[assignment]
    return conn, target, extra


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context huggingface_hub's own session uses (``httpx2.create_ssl_context``): ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set, the system's trust store on macOS and Windows (truststore), OpenSSL's paths on
    Linux; so a company CA or a python.org macOS build works for posembed where it works for transformers.
    Without httpx2 (huggingface_hub before 2.0), Python's default context."""
    try:
        from httpx2 import create_ssl_context
    except ImportError:
        return ssl.create_default_context()
    return create_ssl_context()


def _describe(exc: BaseException) -> str:
    """An OS or protocol error in a few words (``Connection refused``, ``Name or service not known``)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def same_origin(url: str, origin: str) -> bool:
    """Whether ``url`` has ``origin``'s scheme, host and port (``host`` and ``host:443`` are one https origin): where
    a redirect may take the user's token (not to another host, nor from https down to http on the same one)."""
    return _origin(url) == _origin(origin)


def asked_wait(status: int, headers: http.client.HTTPMessage) -> float | None:
    """Seconds a 429 or 5xx answer asks the client to wait: the hub's ``RateLimit`` header when no request is left
    (read by huggingface_hub's ``parse_ratelimit_headers``), else ``Retry-After`` in seconds (an HTTP date is not
    read, as huggingface_hub reads none); None when it says nothing."""
    from huggingface_hub.utils import parse_ratelimit_headers

    limit = parse_ratelimit_headers(dict(headers.items())) if status == 429 else None
    if limit is not None and limit.remaining == 0:
        return float(limit.reset_in_seconds)
    value = (headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def check_content_range(value: str | None, start: int, stop: int, exact: bool, where: str) -> None:
    """Refuse a 206 answer whose ``Content-Range`` is not the range asked for (a cache must never hold it)."""
    from explorer.errors import ProviderError

    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise ProviderError(f"{where}: the server answered a range request without a valid Content-Range "
                            f"({value!r})")
    first, last = int(match.group(1)), int(match.group(2))
    if first != start or last > stop - 1 or (exact and last != stop - 1):
        raise ProviderError(f"{where}: asked for bytes {start}-{stop - 1}, the server sent {first}-{last}")


def get(url: str, headers: dict[str, str], *, limit: int, deadline: Deadline, connect_timeout: float,
        sink: BinaryIO | None = None, on_bytes: Callable[[int, int | None], None] | None = None,
        stop_at: int | None = None, trusted: tuple[str, ...] = ()) -> Answer:
    """GET ``url``: the final answer with at most ``limit`` body bytes (read into memory, or into ``sink``).

    An error answer (4xx, 5xx) is returned with its (bounded) body for the caller to judge. ``stop_at``
    stops reading after that many bytes (a range longer than wanted); a body beyond ``limit`` is refused.
    The ``Authorization`` header goes to ``url``'s origin and to the ``trusted`` ones (the hub's own hosts); from
    the first redirect anywhere else (a CDN's signed URL) on, it is dropped.
    """
    headers = {**headers, "Accept-Encoding": "identity"}
    seen: list[str] = []
    firsts: list[http.client.HTTPMessage] = []
    origin = url
    while True:
        if url in seen:
            raise ExchangeError(f"redirects in a loop ({' -> '.join(seen + [url])})")
        if len(seen) > MAX_REDIRECTS:
            raise ExchangeError(f"more than {MAX_REDIRECTS} redirects (last to {url})")
        seen.append(url)
        if not any(same_origin(url, keeper) for keeper in (origin, *trusted)):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        conn = None
        try:
            try:
                conn, target, extra = _connect(url, deadline, connect_timeout)
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:
                why = "no connection within the time allowed" if isinstance(exc, TimeoutError) else _describe(exc)
                where = urlsplit(url)
                raise ExchangeError(f"cannot reach {where.scheme}://{where.netloc} ({why})", "unreachable") from None
            conn.putrequest("GET", target, skip_accept_encoding=True)
            for name, value in {**headers, **extra}.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            firsts.append(response.msg)
            if response.status in REDIRECTS and response.getheader("Location"):
                location = urljoin(url, response.getheader("Location", ""))
                if urlsplit(location).scheme not in ("http", "https"):
                    raise ExchangeError(f"redirected to {location!r}, which is not an http(s) URL")
                url = location
                continue
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding != "identity":
                raise ExchangeError(f"answered with Content-Encoding {encoding!r} although posembed asked for "
                                    f"identity; refusing to decode it")
            if response.status >= 300:  # an error's body is only read for its message
                return Answer(response.status, response.msg, _read_body(response, 65536, None, None, 65536),
                              seen, firsts)
            length = response.getheader("Content-Length")
            announced = int(length) if length is not None and length.strip().isdigit() else None
            if announced is not None and announced > limit and (stop_at is None or stop_at > limit):
                raise ExchangeError(f"announced {announced} bytes, more than the {limit}-byte limit")
            body = _read_body(response, limit, sink, partial(on_bytes, announced=announced) if on_bytes else None,
                              stop_at)
            return Answer(response.status, response.msg, body, seen, firsts)
        except ExchangeError:
            raise
        except TimeoutError:
            raise ExchangeError(f"no answer within {deadline.per_read:g} s", "timeout") from None
        except (http.client.IncompleteRead, ConnectionError) as exc:
            raise ExchangeError(f"cut the answer short ({type(exc).__name__})", "cut", type(exc).__name__) from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise ExchangeError(f"sent a malformed answer ({type(exc).__name__}: {_describe(exc)})") from None
        finally:
            if conn is not None:
                conn.close()


def _read_body(response: http.client.HTTPResponse, limit: int, sink: BinaryIO | None,
               on_bytes: Callable[[int], None] | None, stop_at: int | None) -> bytes:
    """The body, chunk by chunk, never more than ``limit`` bytes (nor past ``stop_at``)."""
    data = bytearray()
    total = 0
    want = limit if stop_at is None else min(limit, stop_at)
    while True:
        chunk = response.read(min(CHUNK, want + 1 - total))
        if not chunk:
            break
        if stop_at is not None:
            chunk = chunk[: stop_at - total]
        total += len(chunk)
        if total > limit:
            raise ExchangeError(f"sent more than the {limit}-byte limit")
        if sink is not None:
            sink.write(chunk)
        else:
            data += chunk
        if on_bytes:
            on_bytes(total)
        if stop_at is not None and total >= stop_at:
            return bytes(data)
    if response.length:  # http.client's read(n) ends quietly where the connection did
        missing = f"{response.length} promised bytes missing"
        raise ExchangeError(f"cut the answer short ({missing})", "cut", missing)
    return bytes(data)
