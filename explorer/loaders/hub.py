"""Hugging Face hub checkpoints read by the byte: small files whole, tensors by HTTP range, all cached by posembed.

What a remote read costs: ``config.json`` (and, for sharded models, the index) whole; the safetensors
header by one or two range requests; and exactly the position tensor's bytes by one more. Everything
fetched is kept in ``$HF_HOME/posembed/`` (or ``$POSEMBED_CACHE``) under the resolved commit, so a
second run, or any run with ``HF_HUB_OFFLINE=1``, needs no network. Files a transformers download left
in the shared cache (``HF_HUB_CACHE``) are read from there, never written. A repository whose only
weights are a pickled ``pytorch_model.bin`` is the one case downloaded whole (then loaded with
``weights_only=True``).

Every GET goes through ``explorer.loaders.exchange`` (why not huggingface_hub's downloads: see there):
each exchange ends within ``POSEMBED_HUB_DEADLINE`` seconds (default 120) and each read waits at most
``POSEMBED_HUB_TIMEOUT`` (default huggingface_hub's download timeout); looking up the host's name waits at
most what the deadline leaves, connecting at most ``CONNECT_TIMEOUT``, and a hub that cannot be reached is
one line at once, no retries. Transient faults (a 429 or 5xx answer, a read timeout, a body cut short)
are retried ``POSEMBED_HUB_RETRIES`` times (0 to 10, default 3), after ``POSEMBED_HUB_RETRY_WAIT`` seconds
(0 to 60, default 1) doubling up to a minute, or after the server's ``Retry-After`` when that is at most
``MAX_RETRY_AFTER`` seconds (a longer one fails at once). A 206 answer whose ``Content-Range`` is not the
range asked for is refused, and a slice is cached only once its size is right.

What the server sends never chooses a path: the revision is checked to be a branch, tag or commit name
(``revision_name``), the commit a server names must be 40 hex digits, ETags are not used, and every
cache path is built by ``_cache_path`` from these checked parts. Sizes are checked before a download:
``config.json`` at most 10 MB, an index at most 50 MB, a tensor or whole checkpoint at most
``explorer.runtime.limits.max_download_bytes()`` (``POSEMBED_MAX_DOWNLOAD_MB``).

The user's conventions hold: ``HF_TOKEN`` or the saved login (``huggingface_hub.get_token``; not sent with
``HF_HUB_DISABLE_IMPLICIT_TOKEN=1``), ``HF_ENDPOINT``,
``HF_HOME``, ``HF_HUB_OFFLINE`` and ``revision``. They are read when a checkpoint is opened, not when
huggingface_hub was imported. huggingface_hub is imported here only, inside functions.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from explorer.errors import OutputError, PosembedWarning, ProviderError, SpecError
from explorer.loaders import exchange
from explorer.loaders import safetensors_io as st
from explorer.loaders.checkpoints import (BIN_FILE, BIN_INDEX_FILE, CONFIG_FILE, MAX_CONFIG_BYTES, Checkpoint,
                                          load_torch_file, parse_config, read_config, state_dict_of,
                                          torch_to_numpy)
from explorer.runtime import environment, limits
from explorer.runtime.console import Progress, info

#: The first header read; most safetensors headers fit (huggingface_hub makes the same bet).
HEADER_FIRST_READ = 100_000
#: Downloads at least this large show progress on stderr.
PROGRESS_MIN_BYTES = 4_000_000
#: The longest back-off between two attempts: doubling from POSEMBED_HUB_RETRY_WAIT stops here.
MAX_RETRY_WAIT = 60.0
#: The longest ``Retry-After`` obeyed; a server asking for more is one error line at once.
MAX_RETRY_AFTER = 10.0
#: Seconds to wait for a connection (at most POSEMBED_HUB_TIMEOUT): an unreachable hub fails fast.
CONNECT_TIMEOUT = 5.0
DEFAULT_ENDPOINT = "https://huggingface.co"
#: How to carry on without a network, said whenever the hub cannot be reached.
OFFLINE_HINT = ("to work without a network, set HF_HUB_OFFLINE=1 to use what is cached, or read a local copy "
                "with file:PATH or hf:FOLDER")
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: Characters git refuses in a ref name, and control characters.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{|^[/.-]|/\.|[/.]$|\.lock$|\.lock/")
_MAX_REF = 255


def endpoint() -> str:
    """The hub's base URL: ``HF_ENDPOINT`` now (an http(s) URL, else one error), else the public hub."""
    return environment.url("HF_ENDPOINT", DEFAULT_ENDPOINT)


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now, or as huggingface_hub saw it at import."""
    from huggingface_hub import constants

    # huggingface_hub's precedence: HF_HUB_OFFLINE when set, else TRANSFORMERS_OFFLINE
    name = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    return environment.flag(name) or constants.is_offline_mode()


def hf_home() -> Path:
    """``HF_HOME`` as huggingface_hub computes it, read now."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                           "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("HF_HOME", default))))


def hub_cache_dir() -> Path:
    """The shared model cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub`` (posembed reads it, never writes it)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expanduser(explicit)) if explicit else hf_home() / "hub"


def slice_cache_dir() -> Path:
    """Where posembed keeps what it fetched: ``POSEMBED_CACHE``, else ``$HF_HOME/posembed``."""
    explicit = environment.text("POSEMBED_CACHE")
    return Path(os.path.expanduser(explicit)) if explicit else hf_home() / "posembed"


def revision_name(value: str) -> str:
    """``value`` when it can name a git branch, tag or commit (``main``, ``v1.0``, ``refs/pr/1``, a sha).

    It becomes part of URLs and is looked up in caches, so an absolute path, ``..``, a backslash or a
    control character is refused with one SpecError, by git's own rules for ref names.
    """
    if not value or len(value) > _MAX_REF or _BAD_REF.search(value):
        raise SpecError(f"revision={value!r} is not a branch, tag or commit name (no absolute paths, '..', "
                        f"spaces, backslashes or control characters)")
    return value


def _cache_component(text: str) -> str:
    """``text`` as one safe file name: percent-quoted when short and encodable, else a digest of it."""
    try:
        quoted = quote(text, safe="")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        quoted = ""
    if quoted and len(quoted) <= 200 and quoted not in (".", ".."):
        return quoted
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _NotFound(Exception):
    """A file the repository does not have (HTTP 404 EntryNotFound)."""


class _Transient(Exception):
    """A fault worth retrying: a 429 or 5xx answer, a read timeout, a body cut short."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _Unreachable(ProviderError):
    """The hub cannot be reached at all (no such host, its name not looked up in time, connection refused, no
    connection in time)."""


def timeout() -> float:
    """Seconds one read may wait for the hub: ``POSEMBED_HUB_TIMEOUT``, else huggingface_hub's download timeout."""
    from huggingface_hub import constants

    return environment.number("POSEMBED_HUB_TIMEOUT", float(constants.HF_HUB_DOWNLOAD_TIMEOUT), 0.1, 3600)


def deadline() -> float:
    """Seconds one whole exchange may take, headers and body: ``POSEMBED_HUB_DEADLINE`` (default 120)."""
    return environment.number("POSEMBED_HUB_DEADLINE", 120.0, 0.1, 86400)


def retries() -> int:
    """Extra attempts after a transient fault: ``POSEMBED_HUB_RETRIES`` (default 3)."""
    return environment.integer("POSEMBED_HUB_RETRIES", 3, 0, 10)


def retry_wait() -> float:
    """The first back-off in seconds, doubled on each retry: ``POSEMBED_HUB_RETRY_WAIT`` (default 1)."""
    return environment.number("POSEMBED_HUB_RETRY_WAIT", 1.0, 0, MAX_RETRY_WAIT)


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _check_content_range(value: str | None, start: int, stop: int, exact: bool, where: str) -> None:
    """Refuse a 206 answer whose ``Content-Range`` is not the range asked for (a cache must never hold it)."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise ProviderError(f"{where}: the server answered a range request without a valid Content-Range "
                            f"({value!r})")
    first, last = int(match.group(1)), int(match.group(2))
    if first != start or last > stop - 1 or (exact and last != stop - 1):
        raise ProviderError(f"{where}: asked for bytes {start}-{stop - 1}, the server sent {first}-{last}")



def request_headers() -> dict[str, str]:
    """Every hub request's headers: posembed's user agent, and the user's token (``HF_TOKEN`` or the saved login,
    unless ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` is set) as a bearer token.

    Built here, not by huggingface_hub's ``build_hf_headers``, which also fetches the hub's agent registry through
    its own client (once a process, unless telemetry is off): a request outside the exchange's deadline, whose
    name lookup nothing bounds."""
    import platform

    from huggingface_hub import __version__ as hub_version
    from huggingface_hub import get_token

    from explorer import __version__
    from explorer.runtime import environment

    headers = {"user-agent": f"posembed-explorer/{__version__}; hf_hub/{hub_version}; "
                             f"python/{platform.python_version()}"}
    # huggingface_hub's reading of its own variable: 1/on/yes/true in any case turns it on, anything else off
    implicit_off = (environment.text("HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").strip().upper()
    token = None if implicit_off in ("1", "ON", "YES", "TRUE") else get_token()
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


class RemoteCheckpoint(Checkpoint):
    """A model repository on the hub, read by byte range into posembed's own cache."""

    def __init__(self, repo_id: str, revision: str | None = None) -> None:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(repo_id)
        except ValueError:
            raise ProviderError(f"{repo_id!r} is neither a local folder nor a Hugging Face model id") from None
        self.repo_id = self.source = repo_id
        self.requested = revision_name(revision or "main")
        self.endpoint = endpoint()
        self.offline = is_offline()
        self.home = slice_cache_dir() / f"models--{repo_id.replace('/', '--')}"
        self.revision, config, self.config_dir = self._resolve()
        self.cache = self.home / self.revision
        self.snapshot = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots" / self.revision
        self.config = config
        self._layout: str | None = None
        self._headers: dict[str, st.Header] = {}
        self._weight_map: dict[str, str] | None = None
        self._torch: dict[str, dict[str, Any]] = {}

    # -- the commit and config.json --------------------------------------------------------------------------------

    def _resolve(self) -> tuple[str, dict[str, Any], Path | None]:
        """The commit the revision names, its config and a folder holding its ``config.json``.

        From the hub when online (a commit already cached needs no request); from the caches when offline
        or when the hub cannot be reached, as huggingface_hub does.
        """
        cached = self._cached_config()
        if cached is not None and (self.offline or _COMMIT.fullmatch(self.requested)):
            return cached[0], read_config(cached[1], self.repo_id), cached[1].parent
        if self.offline:
            raise self._not_cached(CONFIG_FILE)
        try:
            answer = self._get(CONFIG_FILE, revision=self.requested, limit=MAX_CONFIG_BYTES)
        except _Unreachable:
            if cached is None:
                raise
            return cached[0], read_config(cached[1], self.repo_id), cached[1].parent
        except _NotFound:
            raise ProviderError(f"{self.repo_id}: the repository has no {CONFIG_FILE}") from None
        commit = self._commit_of(answer)
        config = parse_config(answer.body, self.repo_id)
        path = self._cache_path(commit, CONFIG_FILE)
        written = self._cache_write(path, answer.body)
        if written and commit != self.requested:
            self._cache_write(self._cache_path("refs", self.requested), commit.encode())
        return commit, config, path.parent if written else None

    def _cached_config(self) -> tuple[str, Path] | None:
        """(commit, path of config.json) for the requested revision from posembed's cache or the shared one."""
        commit = self.requested
        if not _COMMIT.fullmatch(commit):
            try:
                commit = self._cache_path("refs", self.requested).read_text(encoding="ascii").strip()
            except (OSError, ValueError):
                commit = ""
        if _COMMIT.fullmatch(commit) and self._cache_path(commit, CONFIG_FILE).is_file():
            return commit, self._cache_path(commit, CONFIG_FILE)
        from huggingface_hub import try_to_load_from_cache

        try:
            shared = try_to_load_from_cache(self.repo_id, CONFIG_FILE, cache_dir=hub_cache_dir(),
                                            revision=self.requested)
        except (OSError, ValueError):
            return None
        if isinstance(shared, str) and _COMMIT.fullmatch(Path(shared).parent.name):
            return Path(shared).parent.name, Path(shared)
        return None

    def _commit_of(self, answer: exchange.Answer) -> str:
        """The commit the hub says it answered from; checked, since it names a cache folder."""
        commit = answer.header("X-Repo-Commit")
        if commit is None and _COMMIT.fullmatch(self.requested):
            return self.requested
        if commit is None:
            raise ProviderError(f"{self.repo_id}: {self.endpoint} did not say which commit revision "
                                f"{self.requested!r} is (no X-Repo-Commit header)")
        commit = commit.strip()
        if not _COMMIT.fullmatch(commit):
            raise ProviderError(f"{self.repo_id}: {self.endpoint} named the commit {commit[:80]!r}, which is not "
                                f"40 hex digits; refusing it")
        return commit

    # -- errors ----------------------------------------------------------------------------------------------------

    def _not_cached(self, what: str) -> ProviderError:
        if self.offline:
            return ProviderError(f"{self.repo_id}: {what} is not in the cache ({slice_cache_dir()}) and "
                                 f"HF_HUB_OFFLINE is set; run once with network access first")
        return ProviderError(f"{self.repo_id}: cannot reach {self.endpoint} and {what} is not in the cache")

    def _status_error(self, answer: exchange.Answer, what: str) -> Exception:
        """The error for a 4xx answer: no such model, revision or file, gated, refused access."""
        status, code = answer.status, answer.headers.get("X-Error-Code") or ""
        if code == "GatedRepo":
            return ProviderError(f"{self.repo_id} is gated: accept its terms on the hub and set HF_TOKEN")
        if code == "RepoNotFound":
            return ProviderError(f"{self.repo_id}: no such model on {self.endpoint} (if it is private, set HF_TOKEN)")
        if code == "RevisionNotFound":
            return ProviderError(f"{self.repo_id}: no revision {self.requested!r}")
        if code == "EntryNotFound":
            return _NotFound(what)
        if status in (401, 403):
            return ProviderError(f"{self.repo_id}: {self.endpoint} refused access to {what} (HTTP {status}); "
                                 f"if the model is private or gated, set HF_TOKEN to a token that may read it")
        if status == 404:
            return ProviderError(f"{self.repo_id}: {self.endpoint} has no {what} (HTTP 404)")
        return ProviderError(f"{self.repo_id}: {self.endpoint} answered HTTP {status} for {what}")

    # -- every GET -------------------------------------------------------------------------------------------------

    def _get(self, filename: str, *, revision: str | None = None, start: int | None = None, stop: int = 0,
             exact: bool = True, limit: int, label: str = "", sink: Any = None) -> exchange.Answer:
        """One file of the repository, or bytes ``[start, stop)`` of it, with the user's auth headers.

        Transient faults are retried ``retries()`` times with a short back-off (or the server's short
        ``Retry-After``); anything else (4xx, an unreachable hub, a wrong ``Content-Range``, a deadline
        passed) fails at once.
        """
        attempts = retries() + 1
        for attempt in range(attempts):
            if sink is not None:
                sink.seek(0)
                sink.truncate()
            try:
                return self._get_once(filename, revision or self.revision, start, stop, exact, limit, label, sink)
            except _Transient as exc:
                if attempt + 1 == attempts:
                    raise ProviderError(f"{self.repo_id}: {exc} (gave up after {attempts} attempts)") from None
                time.sleep(exc.wait if exc.wait is not None else min(retry_wait() * (2 ** attempt), MAX_RETRY_WAIT))
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, filename: str, revision: str, start: int | None, stop: int, exact: bool, limit: int,
                  label: str, sink: Any) -> exchange.Answer:
        from huggingface_hub import hf_hub_url

        if self.offline:
            raise self._not_cached(label or filename)
        headers = request_headers()
        want = None if start is None else stop - start
        if start is not None:
            headers["Range"] = f"bytes={start}-{stop - 1}"
        url = hf_hub_url(self.repo_id, filename, revision=revision, endpoint=self.endpoint)
        size = want if want is not None else limit if sink is not None else 0
        progress = Progress(label or filename, size) if size >= PROGRESS_MIN_BYTES else None
        try:
            answer = exchange.get(url, headers, limit=limit if want is None else min(limit, stop),
                                  deadline=exchange.Deadline(deadline(), timeout()),
                                  connect_timeout=min(timeout(), CONNECT_TIMEOUT), sink=sink,
                                  on_bytes=progress.update if progress else None, stop_at=want)
        except exchange.ExchangeError as exc:
            if exc.unreachable:
                raise _Unreachable(f"{self.repo_id}: {exc} and {filename} is not in the cache; {OFFLINE_HINT}") from None
            if exc.transient:
                words = f"timed out sending {filename} (after {timeout():g} s)" if exc.kind == "timeout" else \
                    f"cut {filename} short ({exc.detail})"
                raise _Transient(f"{self.endpoint} {words}") from None
            raise ProviderError(f"{self.repo_id}: {self.endpoint} {exc} (fetching {filename})") from None
        finally:
            if progress:
                progress.close()
        if answer.status == 429 or answer.status >= 500:
            wait = _retry_after(answer.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise ProviderError(f"{self.repo_id}: {self.endpoint} answered HTTP {answer.status} for {filename} "
                                    f"and asks to wait {wait:.0f} s; posembed waits at most {MAX_RETRY_AFTER:g} s, "
                                    f"so try again later")
            raise _Transient(f"{self.endpoint} answered HTTP {answer.status} for {filename}", wait)
        if answer.status >= 400:
            raise self._status_error(answer, filename)
        if start is not None:
            if answer.status != 206 and start != 0:
                raise ProviderError(f"{self.repo_id}: {self.endpoint} ignored the byte-range request for "
                                    f"{filename}; refusing to download the whole file")
            if answer.status == 206:
                _check_content_range(answer.headers.get("Content-Range"), start, stop, exact,
                                     f"{self.repo_id}: {filename}")
            if exact and len(answer.body) != want:
                raise _Transient(f"{filename} sent {len(answer.body)} of the {want} bytes asked for")
        return answer

    def _get_range(self, filename: str, start: int, stop: int, exact: bool = True, label: str = "") -> bytes:
        """Bytes ``[start, stop)`` of a remote file by HTTP range requests."""
        return self._get(filename, start=start, stop=stop, exact=exact, limit=stop - start, label=label).body

    # -- the posembed cache ----------------------------------------------------------------------------------------

    def _cache_path(self, *parts: str, suffix: str = "") -> Path:
        """The one place that names a cache file: each part (commit, file name, tensor name) one safe component."""
        return self.home.joinpath(*(_cache_component(part) for part in parts)).with_name(
            _cache_component(parts[-1]) + suffix)

    def _cache_write(self, path: Path, data: bytes) -> bool:
        """Cache ``data`` atomically; a cache that cannot be written is a warning, not an error."""
        from explorer.runtime.output import write_atomic

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            return True
        except (OSError, OutputError) as exc:
            warnings.warn(PosembedWarning(f"could not cache {path.name} in {path.parent}: {exc}"), stacklevel=3)
            return False

    def _file(self, filename: str, limit: int) -> Path | None:
        """A whole file of this commit: from the shared cache, posembed's, or fetched into posembed's; None: absent."""
        path = self._cache_path(self.revision, filename)
        for found in (self.snapshot / filename, path):
            if found.is_file():
                return found
        if self.offline:
            raise self._not_cached(filename)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".part")
        except OSError as exc:
            raise ProviderError(f"{self.repo_id}: cannot store {filename} in {path.parent}: "
                                f"{exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w+b") as sink:
                self._get(filename, limit=limit, sink=sink, label=filename)
            os.replace(part, path)  # whole and checked, or not there at all
        except _NotFound:
            return None
        except OSError as exc:
            raise ProviderError(f"{self.repo_id}: cannot store {filename} in {path.parent}: "
                                f"{exc.strerror or exc}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)
        return path

    # -- Checkpoint ------------------------------------------------------------------------------------------------

    def _header(self, filename: str) -> st.Header:
        if filename in self._headers:
            return self._headers[filename]
        local, cached = self.snapshot / filename, self._cache_path(self.revision, filename, suffix=".header.json")
        if local.is_file():  # the whole file is in the shared cache already
            header = st.read_header(local)
        elif cached.is_file() and (header := self._cached_header(cached)) is not None:
            pass
        else:
            where = f"{self.repo_id}/{filename}"
            first = self._get_range(filename, 0, HEADER_FIRST_READ, exact=False)
            length = st.header_length(first, where)
            raw = first[8:8 + length] if len(first) >= 8 + length else self._get_range(filename, 8, 8 + length)
            header = st.parse_header(raw, where)
            self._cache_write(cached, raw)
        self._headers[filename] = header
        return header

    def _cached_header(self, cached: Path) -> st.Header | None:
        """A header from the posembed cache, or None (and the entry removed) when it no longer parses."""
        try:
            return st.parse_header(cached.read_bytes(), str(cached))
        except (ProviderError, OSError):
            cached.unlink(missing_ok=True)
            return None

    def _find_layout(self) -> str:
        if self._layout is not None:
            return self._layout
        snap = self.snapshot
        if ((snap / st.SINGLE_FILE).is_file()
                or self._cache_path(self.revision, st.SINGLE_FILE, suffix=".header.json").is_file()):
            self._layout = st.SINGLE_FILE
        else:
            for name in (st.INDEX_FILE, BIN_INDEX_FILE, BIN_FILE):
                if (snap / name).is_file() or self._cache_path(self.revision, name).is_file():
                    self._layout = name
                    return name
            if self.offline:
                raise self._not_cached("the weights")
            try:
                self._header(st.SINGLE_FILE)
                self._layout = st.SINGLE_FILE
            except _NotFound:
                for name in (st.INDEX_FILE, BIN_INDEX_FILE):
                    if self._file(name, st.MAX_INDEX_BYTES) is not None:
                        self._layout = name
                        break
                else:
                    self._layout = BIN_FILE
        return self._layout

    def _map(self) -> dict[str, str]:
        if self._weight_map is None:
            path = self._file(self._find_layout(), st.MAX_INDEX_BYTES)
            if path is None:
                raise ProviderError(f"{self.repo_id}: {self._layout} disappeared from the repository")
            self._weight_map = st.parse_index(path.read_bytes(), f"{self.repo_id}/{self._layout}")
        return self._weight_map

    def _state_dict(self, filename: str) -> dict[str, Any]:
        if filename not in self._torch:
            local = self.snapshot / filename
            if not local.is_file():
                info(f"posembed: {self.repo_id} has no safetensors weights, only pickled {filename}: "
                     f"downloading it whole")
                local = self._file(filename, limits.max_download_bytes())
                if local is None:
                    raise ProviderError(f"{self.repo_id}: no weights found ({st.SINGLE_FILE}, {st.INDEX_FILE} "
                                        f"or {BIN_FILE})")
            self._torch[filename] = state_dict_of(load_torch_file(local), f"{self.repo_id}/{filename}")
        return self._torch[filename]

    def names(self) -> list[str]:
        """Every tensor name, from the (cached) header or index; never reads tensor data."""
        layout = self._find_layout()
        if layout == st.SINGLE_FILE:
            return list(self._header(layout).tensors)
        if layout in (st.INDEX_FILE, BIN_INDEX_FILE):
            return list(self._map())
        return list(self._state_dict(BIN_FILE))

    def read(self, name: str) -> tuple[np.ndarray, str]:
        """One tensor: from a whole cached file, from the posembed cache, or by one range request."""
        layout = self._find_layout()
        filename = self._map().get(name, "") if layout in (st.INDEX_FILE, BIN_INDEX_FILE) else layout
        if not filename:
            raise ProviderError(f"{self.repo_id}: no tensor {name!r} in {layout}")
        if not filename.endswith(".safetensors"):
            tensors = self._state_dict(filename)
            if name not in tensors:
                raise ProviderError(f"{self.repo_id}: no tensor {name!r} in {filename}")
            return torch_to_numpy(tensors[name])
        tensor = self._header(filename).get(name, f"{self.repo_id}/{filename}")
        where = f"{self.repo_id}: {name!r}"
        local = self.snapshot / filename
        cached = self._cache_path(self.revision, filename, name, suffix=".bin")
        if local.is_file():
            raw = st.read_tensor_bytes(local, tensor)
        elif cached.is_file() and cached.stat().st_size == tensor.nbytes:
            raw = cached.read_bytes()
        else:
            _check_download_size(tensor, where)
            raw = self._get_range(filename, tensor.start, tensor.stop, label=f"{name} from {self.repo_id}")
            self._cache_write(cached, raw)  # its size was checked against the header by _get_range
        return st.decode(raw, tensor.dtype, tensor.shape, where), st.DTYPE_NAMES[tensor.dtype]


def _check_download_size(tensor: st.TensorInfo, where: str) -> None:
    """Refuse, before any request, a tensor whose bytes or float32 copy exceed the download limit."""
    need = max(tensor.nbytes, math.prod(tensor.shape) * 4)
    limit = limits.max_download_bytes()
    if need > limit:
        raise ProviderError(f"{where} would take {need / limits.MB:.0f} MB, more than the {limit / limits.MB:g} MB "
                            f"one download may bring (set POSEMBED_MAX_DOWNLOAD_MB to allow more)")
