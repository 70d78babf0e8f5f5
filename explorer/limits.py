"""Limits derived from the machine, checked before anything is allocated or downloaded.

``available_memory()`` is what the kernel says a new allocation may take without swapping
(``MemAvailable`` on Linux, physical memory elsewhere). ``max_download_bytes()`` bounds one remote read
(a table's bytes, or a pickled checkpoint downloaded whole): ``POSEMBED_MAX_DOWNLOAD_MB`` when set,
else an eighth of the available memory (the bytes, their float32 decoding and the analyses' copies
must all fit) and at most ``DOWNLOAD_CAP_MB``, far above any real position table (OPT-175B's is 50 MB).
"""

from __future__ import annotations

import os

from explorer import environment

MB = 1_000_000
#: The default ceiling of one download, whatever the memory: a 671 MB "table" is an embedding of words.
DOWNLOAD_CAP_MB = 512
#: Assumed when the platform tells nothing about its memory.
FALLBACK_MEMORY = 4_000_000_000


def available_memory() -> int:
    """Bytes a new allocation may take now: Linux's ``MemAvailable``, else physical memory, else 4 GB."""
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return FALLBACK_MEMORY


def max_download_bytes() -> int:
    """The most bytes one remote read may bring: ``POSEMBED_MAX_DOWNLOAD_MB``, else derived from memory."""
    default = min(available_memory() / 8 / MB, DOWNLOAD_CAP_MB)
    return int(environment.number("POSEMBED_MAX_DOWNLOAD_MB", default, 0, 10_000_000) * MB)
