"""Hugging Face hub checkpoints read by the byte: small files whole, tensors by HTTP range, all cached by posembed.

What a remote read costs: ``config.json`` (and, for sharded models, the index) whole; the safetensors
header by one or two range requests; and exactly the position tensor's bytes by one more. Everything
fetched is kept in ``$HF_HOME/posembed/`` (or ``$POSEMBED_CACHE``) under the resolved commit, so a
second run, or any run with ``HF_HUB_OFFLINE=1``, needs no network. Files a transformers download left
in the shared cache (``HF_HUB_CACHE``) are read from there, never written; posembed's own cache is not in
huggingface_hub's layout, so its tools (``hf cache``, ``local_files_only``) do not see it. A repository
whose only weights are a pickled ``pytorch_model.bin`` is the one case downloaded whole (then loaded with
``weights_only=True``).

Every GET goes through ``explorer.loaders.exchange`` (why not huggingface_hub's HTTP: see there), with the
settings of ``explorer.loaders.hub_settings``: each exchange ends within ``POSEMBED_HUB_DEADLINE`` seconds
(default 120), printing a status line every 10 s while it lasts, and each read waits at most
``POSEMBED_HUB_TIMEOUT``; a hub that cannot be reached is one line at once, no retries. Transient faults (a
429 or 5xx answer, a read timeout, a body cut short) are retried ``POSEMBED_HUB_RETRIES`` times after
``POSEMBED_HUB_RETRY_WAIT`` seconds doubling up to a minute, or after the time the hub asks for
(``RateLimit``'s ``t`` when no request is left, else ``Retry-After``) when it fits ``POSEMBED_HUB_DEADLINE``;
a longer wait is one line saying when to try again. As huggingface_hub does, a commit already cached is
used when the hub is unreachable, busy or failing. A 206 answer whose ``Content-Range`` is not the range
asked for is refused, and a slice is cached only once its size is right.

What the server sends never chooses a path: the revision is checked to be a branch, tag or commit name
(``revision_name``), the commit a server names must be 40 hex digits, ETags are not used, and every
cache path is built by ``_cache_path`` from these checked parts. Sizes are checked before a download:
``config.json`` at most 10 MB, an index at most 50 MB, a tensor or whole checkpoint at most
``explorer.runtime.limits.max_download_bytes()`` (``POSEMBED_MAX_DOWNLOAD_MB``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from explorer.errors import OutputError, PosembedWarning, ProviderError
from explorer.loaders import exchange
from explorer.loaders import safetensors_io as st
from explorer.loaders.checkpoints import (BIN_FILE, BIN_INDEX_FILE, CONFIG_FILE, MAX_CONFIG_BYTES, Checkpoint,
                                          load_torch_file, missing_shard, parse_config, read_config, state_dict_of,
                                          torch_to_numpy)
from explorer.loaders.hub_settings import (CONNECT_TIMEOUT, HUB_ORIGINS, MAX_RETRY_WAIT, OFFLINE_HINT, deadline,
                                           endpoint, hub_cache_dir, is_offline, request_headers, retries, retry_wait,
                                           revision_name, slice_cache_dir, timeout)
from explorer.runtime import limits
from explorer.runtime.console import Progress, info

#: The first header read; most safetensors headers fit (huggingface_hub makes the same bet).
HEADER_FIRST_READ = 100_000
#: Downloads at least this large show progress on stderr.
PROGRESS_MIN_BYTES = 4_000_000
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: What the hub's X-Error-Message may add to a line (it is the server's text: cut short, escaped where printed).
_MAX_SAID = 200


def _cache_component(text: str) -> str:
    """``text`` as one safe file name: percent-quoted when short and encodable, else a digest of it."""
    try:
        quoted = quote(text, safe="")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        quoted = ""
    if quoted and len(quoted) <= 200 and quoted not in (".", ".."):
        return quoted
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _NotFound(ProviderError):
    """A file the repository does not have (HTTP 404 EntryNotFound); a ProviderError, so it is one line wherever
    a caller does not expect it."""


class _Transient(Exception):
    """A fault worth retrying: a 429 or 5xx answer, a read timeout, a body cut short."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _GaveUp(ProviderError):
    """The hub is busy or failing (429, 5xx, timeouts) past what posembed waits for: a cached copy may stand in."""


class _Unreachable(ProviderError):
    """The hub cannot be reached at all (no such host, its name not looked up in time, connection refused, no
    connection in time)."""


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
        try:  # with a cached commit to fall back on, one attempt: a busy hub costs no quota and no waiting
            answer = self._get(CONFIG_FILE, revision=self.requested, limit=MAX_CONFIG_BYTES,
                               attempts=1 if cached else None)
        except (_Unreachable, _GaveUp) as exc:
            if cached is None:
                raise
            if isinstance(exc, _GaveUp):  # an unreachable hub is the usual offline case: quiet, as before
                info(f"posembed: {self.repo_id}: using the cached commit {cached[0][:12]} for {self.requested!r}: "
                     f"{str(exc).removeprefix(f'{self.repo_id}: ')}")
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

    def _status_error(self, answer: exchange.Answer, what: str, token_sent: bool) -> ProviderError:
        """The error for a 4xx answer (no such model, revision or file, gated, refused access), with what the hub
        said in ``X-Error-Message``: a token that was refused must not read like a missing one."""
        status, code = answer.status, answer.headers.get("X-Error-Code") or ""
        said = " ".join((answer.headers.get("X-Error-Message") or "").split())[:_MAX_SAID]
        said = f" (the hub said: {said})" if said else ""
        token = ("; the token posembed sent (HF_TOKEN or the saved login) may not read it, or is not valid"
                 if token_sent else "; if the model is private or gated, set HF_TOKEN to a token that may read it")
        if code == "GatedRepo":
            return ProviderError(f"{self.repo_id} is gated: accept its terms on the hub and set HF_TOKEN{said}")
        if code == "RepoNotFound":
            hint = "or the token sent may not read it" if token_sent else "if it is private, set HF_TOKEN"
            return ProviderError(f"{self.repo_id}: no such model on {self.endpoint} ({hint}){said}")
        if code == "RevisionNotFound":
            return ProviderError(f"{self.repo_id}: no revision {self.requested!r}{said}")
        if code == "EntryNotFound":
            return _NotFound(f"{self.repo_id}: {self.endpoint} has no {what} (HTTP 404){said}")
        if status in (401, 403):
            return ProviderError(f"{self.repo_id}: {self.endpoint} refused access to {what} (HTTP {status})"
                                 f"{token}{said}")
        if status == 404:
            return ProviderError(f"{self.repo_id}: {self.endpoint} has no {what} (HTTP 404){said}")
        return ProviderError(f"{self.repo_id}: {self.endpoint} answered HTTP {status} for {what}{said}")

    # -- every GET -------------------------------------------------------------------------------------------------

    def _get(self, filename: str, *, revision: str | None = None, start: int | None = None, stop: int = 0,
             exact: bool = True, limit: int, label: str = "", sink: Any = None,
             attempts: int | None = None) -> exchange.Answer:
        """One file of the repository, or bytes ``[start, stop)`` of it, with the user's auth headers.

        Transient faults are tried ``attempts`` times (default ``retries() + 1``) with a back-off, or after the
        wait the hub asks for when it fits ``deadline()``; anything else (4xx, an unreachable hub, a wrong
        ``Content-Range``, a deadline passed) fails at once.
        """
        attempts = attempts or retries() + 1
        for attempt in range(attempts):
            if sink is not None:
                sink.seek(0)
                sink.truncate()
            try:
                return self._get_once(filename, revision or self.revision, start, stop, exact, limit, label, sink)
            except _Transient as exc:
                if attempt + 1 == attempts:
                    raise _GaveUp(f"{self.repo_id}: {exc} (gave up after {attempts} "
                                  f"attempt{'s' if attempts > 1 else ''})") from None
                wait = exc.wait if exc.wait is not None else min(retry_wait() * (2 ** attempt), MAX_RETRY_WAIT)
                if wait >= 1:
                    info(f"posembed: {self.repo_id}: {exc}; trying again in {wait:.0f} s")
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, filename: str, revision: str, start: int | None, stop: int, exact: bool, limit: int,
                  label: str, sink: Any) -> exchange.Answer:
        from huggingface_hub import hf_hub_url

        if self.offline:
            raise self._not_cached(label or filename)
        headers = request_headers()
        token_sent = "authorization" in headers
        want = None if start is None else stop - start
        if start is not None:
            headers["Range"] = f"bytes={start}-{stop - 1}"
        url = hf_hub_url(self.repo_id, filename, revision=revision, endpoint=self.endpoint)
        progress: list[Progress] = []

        def on_bytes(done: int, announced: int | None) -> None:  # sized by what the server announces
            if not progress and (announced or 0) >= PROGRESS_MIN_BYTES:
                progress.append(Progress(label or filename, announced or 0))
            for bar in progress:
                bar.update(done)

        host, allowed = urlsplit(url).netloc, deadline()

        def note(seconds: float, received: int) -> None:
            info(f"posembed: {self.repo_id}: still fetching {filename} from {host} after {seconds:.0f} s "
                 f"({received} bytes received); posembed gives up after {allowed:g} s (POSEMBED_HUB_DEADLINE "
                 f"sets it)")

        try:
            answer = exchange.get(url, headers, limit=limit if want is None else min(limit, stop),
                                  deadline=exchange.Deadline(allowed, timeout(), note),
                                  connect_timeout=min(timeout(), CONNECT_TIMEOUT), sink=sink,
                                  on_bytes=on_bytes, stop_at=want,
                                  trusted=(*HUB_ORIGINS, self.endpoint))
        except exchange.ExchangeError as exc:
            if exc.unreachable:
                raise _Unreachable(f"{self.repo_id}: {exc} and {filename} is not in the cache; {OFFLINE_HINT}") from None
            if exc.transient:
                words = f"timed out sending {filename} (after {timeout():g} s)" if exc.kind == "timeout" else \
                    f"cut {filename} short ({exc.detail})"
                raise _Transient(f"{self.endpoint} {words}") from None
            raise ProviderError(f"{self.repo_id}: {self.endpoint} {exc} (fetching {filename})") from None
        finally:
            for bar in progress:
                bar.close()
        if answer.status == 429 or answer.status >= 500:
            wait = exchange.asked_wait(answer.status, answer.headers)
            if wait is not None and wait > allowed:
                when = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
                raise _GaveUp(f"{self.repo_id}: {self.endpoint} answered HTTP {answer.status} for {filename} and "
                              f"asks to wait {wait:.0f} s; posembed waits at most {allowed:g} s "
                              f"(POSEMBED_HUB_DEADLINE), so try again after {when}")
            raise _Transient(f"{self.endpoint} answered HTTP {answer.status} for {filename}", wait)
        if answer.status >= 400:
            raise self._status_error(answer, filename, token_sent)
        if start is not None:
            if answer.status != 206 and start != 0:
                raise ProviderError(f"{self.repo_id}: {self.endpoint} ignored the byte-range request for "
                                    f"{filename}; refusing to download the whole file")
            if answer.status == 206:
                exchange.check_content_range(answer.headers.get("Content-Range"), start, stop, exact,
                                             f"{self.repo_id}: {filename}")
            if exact and len(answer.body) != want:
                raise _Transient(f"{filename} sent {len(answer.body)} of the {want} bytes asked for")
        return answer

    def _get_range(self, filename: str, start: int, stop: int, exact: bool = True, label: str = "") -> bytes:
        """Bytes ``[start, stop)`` of a remote file by HTTP range requests."""
        return self._get(filename, start=start, stop=stop, exact=exact, limit=stop - start, label=label).body

    # -- the caches ----------------------------------------------------------------------------------------------------

    def _cache_path(self, *parts: str, suffix: str = "") -> Path:
        """The one place that names a cache file: each part (commit, file name, tensor name) one safe component."""
        return self.home.joinpath(*(_cache_component(part) for part in parts)).with_name(
            _cache_component(parts[-1]) + suffix)

    def _shared(self, filename: str) -> Path | None:
        """``filename`` of this commit in the shared cache (a transformers download's), found by huggingface_hub's
        ``try_to_load_from_cache``; read, never written. None: not there."""
        from huggingface_hub import try_to_load_from_cache

        try:
            found = try_to_load_from_cache(self.repo_id, filename, cache_dir=hub_cache_dir(), revision=self.revision)
        except (OSError, ValueError):
            return None
        return Path(found) if isinstance(found, str) else None

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
        if (shared := self._shared(filename)) is not None or path.is_file():
            return shared or path
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
        local, cached = self._shared(filename), self._cache_path(self.revision, filename, suffix=".header.json")
        if local is not None:  # the whole file is in the shared cache already
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
        if (self._shared(st.SINGLE_FILE) is not None
                or self._cache_path(self.revision, st.SINGLE_FILE, suffix=".header.json").is_file()):
            self._layout = st.SINGLE_FILE
        else:
            for name in (st.INDEX_FILE, BIN_INDEX_FILE, BIN_FILE):
                if self._shared(name) is not None or self._cache_path(self.revision, name).is_file():
                    self._layout = name
                    return name
            if self.offline:
                raise self._not_cached(f"a weights file ({st.SINGLE_FILE}, {st.INDEX_FILE} or {BIN_FILE})")
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
            local = self._shared(filename)
            if local is None:
                local = self._file(filename, limits.max_download_bytes())
                if local is None and filename != BIN_FILE:
                    raise missing_shard(self.repo_id, BIN_INDEX_FILE, filename)
                if local is None:
                    raise ProviderError(f"{self.repo_id}: no weights found ({st.SINGLE_FILE}, {st.INDEX_FILE} "
                                        f"or {BIN_FILE})")
                info(f"posembed: {self.repo_id} has no safetensors weights, only pickled {filename}: read it whole "
                     f"({local.stat().st_size / 1e6:.1f} MB)")
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
        try:
            tensor = self._header(filename).get(name, f"{self.repo_id}/{filename}")
        except _NotFound:
            if layout == st.SINGLE_FILE:
                raise
            raise missing_shard(self.repo_id, layout, filename) from None
        where = f"{self.repo_id}: {name!r}"
        local, cached = self._shared(filename), self._cache_path(self.revision, filename, name, suffix=".bin")
        if local is not None:
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
