"""Hugging Face hub checkpoints read by the byte: small files through huggingface_hub's cache, tensors by HTTP range.

What a remote read costs: ``config.json`` (and, for sharded models, the index) through
``hf_hub_download``, so they land in the shared cache (``HF_HOME``/``HF_HUB_CACHE``) like any
transformers download; the safetensors header by one or two range requests; and exactly the
position tensor's bytes by one more. The header and the tensor bytes are kept in
``$HF_HOME/posembed/`` (or ``$POSEMBED_CACHE``) under the resolved commit, so a second run, or any
run with ``HF_HUB_OFFLINE=1``, needs no network. A repository whose only weights are a pickled
``pytorch_model.bin`` is the one case downloaded whole (then loaded with ``weights_only=True``).

Range requests are retried on transient faults only (a 5xx answer, a timeout, a body cut short):
``POSEMBED_HUB_RETRIES`` times (0 to 10, default 3), after ``POSEMBED_HUB_RETRY_WAIT`` seconds (0 to 60,
default 1) doubling up to a minute, each waiting ``POSEMBED_HUB_TIMEOUT`` seconds (0.1 to 3600, default
huggingface_hub's download timeout); a value outside its range is one error (``explorer/environment.py``). A 206 answer whose
``Content-Range`` is not the range asked for is refused, and a slice is cached only once its size is right.

The user's conventions hold: ``HF_TOKEN`` (auth headers from ``build_hf_headers``), ``HF_ENDPOINT``,
``HF_HOME``, ``HF_HUB_OFFLINE`` and ``revision``. They are read when a checkpoint is opened, not when
huggingface_hub was imported. huggingface_hub is imported here only, inside functions.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from explorer.loaders import safetensors_io as st
from explorer.loaders.checkpoints import (BIN_FILE, BIN_INDEX_FILE, CONFIG_FILE, Checkpoint, load_torch_file,
                                          read_config, state_dict_of, torch_to_numpy)
from explorer import environment
from explorer.errors import OutputError, PosembedWarning, ProviderError
from explorer.feedback import Progress, info

#: The first header read; most safetensors headers fit (huggingface_hub makes the same bet).
HEADER_FIRST_READ = 100_000
#: Downloads at least this large show progress on stderr.
PROGRESS_MIN_BYTES = 4_000_000
CHUNK = 1 << 20
#: The longest back-off between two attempts: doubling from POSEMBED_HUB_RETRY_WAIT stops here.
MAX_RETRY_WAIT = 60.0
_COMMIT = re.compile(r"[0-9a-f]{40}")


def endpoint() -> str:
    """The hub's base URL: ``HF_ENDPOINT`` now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


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
    """The shared model cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expanduser(explicit)) if explicit else hf_home() / "hub"


def slice_cache_dir() -> Path:
    """Where posembed keeps safetensors headers and tensor slices: ``POSEMBED_CACHE``, else ``$HF_HOME/posembed``."""
    explicit = environment.text("POSEMBED_CACHE")
    return Path(os.path.expanduser(explicit)) if explicit else hf_home() / "posembed"


class _NotFound(Exception):
    """A file the repository does not have (HTTP 404 EntryNotFound)."""


class _Transient(Exception):
    """A fault worth retrying: a 5xx answer, a timeout, a body cut short."""


def timeout() -> float:
    """Seconds to wait for the hub: ``POSEMBED_HUB_TIMEOUT``, else huggingface_hub's download timeout."""
    from huggingface_hub import constants

    return environment.number("POSEMBED_HUB_TIMEOUT", float(constants.HF_HUB_DOWNLOAD_TIMEOUT), 0.1, 3600)


def retries() -> int:
    """Extra attempts after a transient fault: ``POSEMBED_HUB_RETRIES`` (default 3)."""
    return environment.integer("POSEMBED_HUB_RETRIES", 3, 0, 10)


def retry_wait() -> float:
    """The first back-off in seconds, doubled on each retry: ``POSEMBED_HUB_RETRY_WAIT`` (default 1)."""
    return environment.number("POSEMBED_HUB_RETRY_WAIT", 1.0, 0, MAX_RETRY_WAIT)


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


class RemoteCheckpoint(Checkpoint):
    """A model repository on the hub, read through the cache and by byte range."""

    def __init__(self, repo_id: str, revision: str | None = None) -> None:
        from huggingface_hub.utils import validate_repo_id

        try:
            validate_repo_id(repo_id)
        except ValueError:
            raise ProviderError(f"{repo_id!r} is neither a local folder nor a Hugging Face model id") from None
        self.repo_id = self.source = repo_id
        self.requested = revision or "main"
        self.endpoint = endpoint()
        self.offline = is_offline()
        config_path = self._download(CONFIG_FILE, self.requested)
        if config_path is None:
            raise ProviderError(f"{repo_id}: the repository has no {CONFIG_FILE}")
        self.snapshot = config_path.parent
        commit = self.snapshot.name
        self.revision = commit if _COMMIT.fullmatch(commit) else self.requested
        self.config = read_config(config_path, repo_id)
        self.config_dir = self.snapshot
        self.cache = slice_cache_dir() / f"models--{repo_id.replace('/', '--')}" / quote(self.revision, safe="")
        self._layout: str | None = None
        self._headers: dict[str, st.Header] = {}
        self._weight_map: dict[str, str] | None = None
        self._torch: dict[str, dict[str, Any]] = {}

    # -- files through huggingface_hub's cache ---------------------------------------------------------------------

    def _download(self, filename: str, revision: str | None = None) -> Path | None:
        """A small file through the shared cache; None when the repository does not have it."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

        try:
            return Path(hf_hub_download(self.repo_id, filename, revision=revision or self.revision,
                                        cache_dir=hub_cache_dir(), endpoint=self.endpoint,
                                        local_files_only=self.offline))
        except RemoteEntryNotFoundError:
            return None
        except LocalEntryNotFoundError:
            if filename != CONFIG_FILE and (self.snapshot / CONFIG_FILE).exists():
                return None  # the model is cached, this optional file is not
            raise self._not_cached(filename) from None
        except Exception as exc:
            raise self._hub_error(exc, filename) from None

    def _not_cached(self, what: str) -> ProviderError:
        if self.offline:
            return ProviderError(f"{self.repo_id}: {what} is not in the cache ({hub_cache_dir()}) and HF_HUB_OFFLINE "
                                 f"is set; run once with network access first")
        return ProviderError(f"{self.repo_id}: cannot reach {self.endpoint} and {what} is not in the cache")

    def _hub_error(self, exc: Exception, what: str) -> ProviderError:
        from huggingface_hub.errors import (GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        if isinstance(exc, GatedRepoError):
            return ProviderError(f"{self.repo_id} is gated: accept its terms on the hub and set HF_TOKEN")
        if isinstance(exc, RepositoryNotFoundError):
            return ProviderError(f"{self.repo_id}: no such model on {self.endpoint} "
                                 f"(if it is private, set HF_TOKEN)")
        if isinstance(exc, RevisionNotFoundError):
            return ProviderError(f"{self.repo_id}: no revision {self.requested!r}")
        if isinstance(exc, OfflineModeIsEnabled):
            return self._not_cached(what)
        if isinstance(exc, ProviderError):
            return exc
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return ProviderError(f"{self.repo_id}: {self.endpoint} refused access to {what} (HTTP {status}); "
                                 f"if the model is private or gated, set HF_TOKEN to a token that may read it")
        if status == 404:
            return ProviderError(f"{self.repo_id}: {self.endpoint} has no {what} (HTTP 404)")
        first = (str(exc).strip().splitlines() or [""])[0]
        return ProviderError(f"{self.repo_id}: cannot fetch {what} from {self.endpoint}: "
                             f"{type(exc).__name__}{': ' + first if first else ''}")

    # -- byte ranges -----------------------------------------------------------------------------------------------

    def _url(self, filename: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, filename, revision=self.revision, endpoint=self.endpoint)

    def _get_range(self, filename: str, start: int, stop: int, exact: bool = True, label: str = "") -> bytes:
        """Bytes ``[start, stop)`` of a remote file by HTTP range requests, with the user's auth headers.

        Transient faults (a 5xx answer, a timeout, a body cut short) are retried ``retries()`` times with a
        short back-off; anything else (4xx, a refused connection, a wrong ``Content-Range``) fails at once.
        """
        import time

        attempts = retries() + 1
        for attempt in range(attempts):
            try:
                return self._get_range_once(filename, start, stop, exact, label)
            except _Transient as exc:
                if attempt + 1 == attempts:
                    raise ProviderError(f"{self.repo_id}: {exc} (gave up after {attempts} attempts)") from None
                time.sleep(min(retry_wait() * (2 ** attempt), MAX_RETRY_WAIT))
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_range_once(self, filename: str, start: int, stop: int, exact: bool, label: str) -> bytes:
        from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
        from huggingface_hub.utils import httpx  # httpx in huggingface_hub 1.x, httpx2 in 2.x

        if self.offline:
            raise self._not_cached(f"{label or filename}")
        headers = build_hf_headers()
        headers.update({"Range": f"bytes={start}-{stop - 1}", "Accept-Encoding": "identity"})
        want = stop - start
        data = bytearray()
        progress = Progress(label or filename, want) if want >= PROGRESS_MIN_BYTES else None
        try:
            with get_session().stream("GET", self._url(filename), headers=headers,
                                      timeout=timeout()) as response:
                if response.status_code >= 500:
                    raise _Transient(f"{self.endpoint} answered HTTP {response.status_code} for {filename}")
                if response.status_code >= 400:
                    response.read()
                    hf_raise_for_status(response)
                if response.status_code != 206 and start != 0:
                    raise ProviderError(f"{self.repo_id}: {self.endpoint} ignored the byte-range request for "
                                        f"{filename}; refusing to download the whole file")
                if response.status_code == 206:
                    _check_content_range(response.headers.get("Content-Range"), start, stop, exact,
                                         f"{self.repo_id}: {filename}")
                for chunk in response.iter_bytes(CHUNK):
                    data += chunk[: want - len(data)]
                    if progress:
                        progress.update(len(data))
                    if len(data) >= want:
                        break
        except RemoteEntryNotFoundError:
            raise _NotFound(filename) from None
        except httpx.TimeoutException:
            raise _Transient(f"{self.endpoint} timed out sending {filename} (after {timeout():g} s)") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Transient(f"{self.endpoint} cut {filename} short ({type(exc).__name__})") from None
        except HfHubHTTPError as exc:
            raise self._hub_error(exc, filename) from None
        except (httpx.TransportError, OSError) as exc:  # hub errors are OSErrors too
            raise self._hub_error(exc, filename) from None
        finally:
            if progress:
                progress.close()
        if exact and len(data) != want:
            raise _Transient(f"{filename} sent {len(data)} of the {want} bytes asked for")
        return bytes(data)

    # -- the posembed cache ----------------------------------------------------------------------------------------

    def _cache_path(self, filename: str, suffix: str) -> Path:
        return self.cache / (quote(filename, safe="") + suffix)

    def _cache_write(self, path: Path, data: bytes) -> None:
        from explorer.output import write_atomic

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        except (OSError, OutputError) as exc:
            warnings.warn(PosembedWarning(f"could not cache {path.name} in {path.parent}: {exc}"), stacklevel=3)

    # -- Checkpoint ------------------------------------------------------------------------------------------------

    def _header(self, filename: str) -> st.Header:
        if filename in self._headers:
            return self._headers[filename]
        local, cached = self.snapshot / filename, self._cache_path(filename, ".header.json")
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
        if (snap / st.SINGLE_FILE).is_file() or self._cache_path(st.SINGLE_FILE, ".header.json").is_file():
            self._layout = st.SINGLE_FILE
        else:
            for name in (st.INDEX_FILE, BIN_INDEX_FILE, BIN_FILE):
                if (snap / name).is_file():
                    self._layout = name
                    return name
            if self.offline:
                raise self._not_cached("the weights")
            try:
                self._header(st.SINGLE_FILE)
                self._layout = st.SINGLE_FILE
            except _NotFound:
                for name in (st.INDEX_FILE, BIN_INDEX_FILE):
                    if self._download(name) is not None:
                        self._layout = name
                        break
                else:
                    self._layout = BIN_FILE
        return self._layout

    def _map(self) -> dict[str, str]:
        if self._weight_map is None:
            path = self._download(self._find_layout())
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
                local = self._download(filename)
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
        info = self._header(filename).get(name, f"{self.repo_id}/{filename}")
        where = f"{self.repo_id}: {name}"
        local = self.snapshot / filename
        cached = self.cache / quote(filename, safe="") / (quote(name, safe="") + ".bin")
        if local.is_file():
            raw = st.read_tensor_bytes(local, info)
        elif cached.is_file() and cached.stat().st_size == info.nbytes:
            raw = cached.read_bytes()
        else:
            raw = self._get_range(filename, info.start, info.stop, label=f"{name} from {self.repo_id}")
            self._cache_write(cached, raw)  # its size was checked against the header by _get_range
        return st.decode(raw, info.dtype, info.shape, where), st.DTYPE_NAMES[info.dtype]
