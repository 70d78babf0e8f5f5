"""Where the hub is, who the user is and how long to wait: the user's settings, read when a checkpoint is opened.

The Hugging Face conventions hold as huggingface_hub reads them: ``HF_ENDPOINT``, ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``), ``HF_TOKEN`` or the saved login
(``huggingface_hub.get_token``; none sent with ``HF_HUB_DISABLE_IMPLICIT_TOKEN=1``). posembed's own:
``POSEMBED_CACHE``, ``POSEMBED_HUB_DEADLINE``, ``POSEMBED_HUB_TIMEOUT``, ``POSEMBED_HUB_RETRIES`` and
``POSEMBED_HUB_RETRY_WAIT``, each bounded (``explorer.runtime.environment``). They are read now, not when
huggingface_hub was imported; huggingface_hub is imported inside functions only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from explorer.errors import SpecError
from explorer.runtime import environment

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Hosts that are the hub itself wherever ``HF_ENDPOINT`` points: a redirect to one of them keeps the user's token
#: (a mirror such as hf-mirror.com answers 308 to huggingface.co). huggingface_hub trusts the same ones
#: (``utils/_http.py``: its default and staging endpoints, ``HF_ENDPOINT`` and hf.co); staging is left out.
HUB_ORIGINS = (DEFAULT_ENDPOINT, "https://hf.co")
#: The longest back-off between two attempts: doubling from POSEMBED_HUB_RETRY_WAIT stops here.
MAX_RETRY_WAIT = 60.0
#: Seconds to wait for a connection (at most POSEMBED_HUB_TIMEOUT): an unreachable hub fails fast.
CONNECT_TIMEOUT = 5.0
#: How to carry on without a network, said whenever the hub cannot be reached.
OFFLINE_HINT = ("to work without a network, set HF_HUB_OFFLINE=1 to use what is cached, or read a local copy "
                "with file:PATH or hf:FOLDER")
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


def timeout() -> float:
    """Seconds one read may wait for the hub: ``POSEMBED_HUB_TIMEOUT``, else huggingface_hub's download timeout."""
    from huggingface_hub import constants

    return environment.number("POSEMBED_HUB_TIMEOUT", float(constants.HF_HUB_DOWNLOAD_TIMEOUT), 0.1, 3600)


def deadline() -> float:
    """Seconds one whole exchange may take, headers and body, and the longest wait a rate limit may ask for:
    ``POSEMBED_HUB_DEADLINE`` (default 120)."""
    return environment.number("POSEMBED_HUB_DEADLINE", 120.0, 0.1, 86400)


def retries() -> int:
    """Extra attempts after a transient fault: ``POSEMBED_HUB_RETRIES`` (default 3)."""
    return environment.integer("POSEMBED_HUB_RETRIES", 3, 0, 10)


def retry_wait() -> float:
    """The first back-off in seconds, doubled on each retry: ``POSEMBED_HUB_RETRY_WAIT`` (default 1)."""
    return environment.number("POSEMBED_HUB_RETRY_WAIT", 1.0, 0, MAX_RETRY_WAIT)


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

    headers = {"user-agent": f"posembed-explorer/{__version__}; hf_hub/{hub_version}; "
                             f"python/{platform.python_version()}"}
    # huggingface_hub's reading of its own variable: 1/on/yes/true in any case turns it on, anything else off
    implicit_off = (environment.text("HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").strip().upper()
    token = None if implicit_off in ("1", "ON", "YES", "TRUE") else get_token()
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers
