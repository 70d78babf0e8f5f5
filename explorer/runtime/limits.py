"""Limits derived from the machine, checked before anything is allocated or downloaded.

``check_shape`` refuses a planned table or image before allocating it; ``max_download_bytes`` bounds one
remote read (a table's bytes, or a pickled checkpoint downloaded whole).

Building a table takes a few arrays of its size at once (float64 angles, a random walk's steps, the
float32 copy ``PositionEmbedding`` freezes, the analyses' working copies), so no single array may take
more than an eighth of the memory this process can still get: ``MemAvailable``, lowered by a cgroup's
``memory.max`` and by ``ulimit -v``. ``POSEMBED_MAX_ARRAY_BYTES`` overrides that (a byte count, ``4e9``
is fine). One download may bring ``POSEMBED_MAX_DOWNLOAD_MB`` when set, else the same eighth of the available
memory (the bytes, their float32 decoding and the analyses' copies must all fit), at most ``DOWNLOAD_CAP_MB``,
far above any real position table (OPT-175B's is 50 MB). Only the standard library is used, so checking
costs nothing at start-up.

A run of many tables (an atlas, a series, ``--specs``) may have at most ``MAX_TABLES`` tables, or
``POSEMBED_MAX_TABLES``. Before any table is loaded, the memory it will need is estimated (``run_bytes``: each
table's share at the run's display resolution, from the shape its spec says it has (``explorer.loading.shapes``;
``DEFAULT_SHAPE`` when it cannot tell), and every pair's) and checked against half the memory available, or
``POSEMBED_MAX_RUN_BYTES``; a table whose expected shape alone is larger than one array may be is refused then too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from explorer.runtime import environment
from explorer.errors import SizeLimitError

ENV = "POSEMBED_MAX_ARRAY_BYTES"
#: The share of available memory one array may take.
FRACTION = 8
#: The limit when the available memory cannot be found out (no /proc, no sysconf).
FALLBACK_BYTES = 2 * 1024**3
MB = 1_000_000
#: The default ceiling of one download, whatever the memory: a 671 MB "table" is an embedding of words.
DOWNLOAD_CAP_MB = 512
#: The largest value ``POSEMBED_MAX_ARRAY_BYTES`` accepts (beyond it, products of shapes stop meaning anything).
MAX_SETTING = 2**62


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):  # absent, "max", unreadable: not a limit
        return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has no AVPHYS: total memory then
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            continue
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` still allows this process to map, or None when there is no such limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    pages = _read_int("/proc/self/statm")  # the first field is the mapped size in pages
    used = pages * os.sysconf("SC_PAGE_SIZE") if pages is not None else 0
    return max(soft - used, 0)


def available_memory() -> int | None:
    """Bytes this process can still allocate, as best the system says; None when it cannot be told."""
    candidates = [_meminfo_available() or _sysconf_available(), _address_space_left()]
    cgroup_max, cgroup_used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cgroup_max is not None:
        candidates.append(max(cgroup_max - (cgroup_used or 0), 0))
    known = [value for value in candidates if value is not None]
    return min(known) if known else None


def max_array_bytes() -> int:
    """The most bytes one array may take: ``POSEMBED_MAX_ARRAY_BYTES``, else an eighth of available memory."""
    available = available_memory()
    default = FALLBACK_BYTES if available is None else max(available // FRACTION, 1)
    return environment.integer(ENV, default, 1, MAX_SETTING)


def max_download_bytes() -> int:
    """The most bytes one remote read may bring: ``POSEMBED_MAX_DOWNLOAD_MB``, else derived from memory."""
    available = available_memory()
    default = min((FALLBACK_BYTES if available is None else available) / FRACTION / MB, DOWNLOAD_CAP_MB)
    return int(environment.number("POSEMBED_MAX_DOWNLOAD_MB", default, 0, 10_000_000) * MB)


def human(nbytes: float) -> str:
    """``nbytes`` as a short decimal size: ``3.7 GB``, ``512 kB``."""
    try:
        nbytes = float(nbytes)
    except OverflowError:  # a whole number past float's range (a shape of 10^400): no count of PB can say it
        return "more than 1e+293 PB"
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def check_shape(shape: Sequence[int], where: str = "", *, itemsize: int = 4, what: str = "a table") -> None:
    """Raise ``SizeLimitError`` if an array of ``shape`` (``itemsize`` bytes each) would exceed ``max_array_bytes()``.

    Call it with the shape a provider is about to build, before allocating anything: ``where`` (the
    provider's name, say) starts the message, ``what`` names the array, ``itemsize`` is the widest
    dtype the construction uses (8 when it works in float64).
    """
    dims = [int(n) for n in shape]
    if any(n < 0 for n in dims):
        raise SizeLimitError(f"{where + ': ' if where else ''}{what} cannot have a negative size {dims}")
    nbytes = math.prod(dims) * itemsize
    limit = max_array_bytes()
    if nbytes > limit:
        setting = "set" if environment.text(ENV) else "an eighth of the memory available; set"
        raise SizeLimitError(
            f"{where + ': ' if where else ''}{what} of {' x '.join(map(str, dims))} needs {human(nbytes)}, more than "
            f"the {human(limit)} one array may take ({setting} {ENV} to change it)")


TABLES_ENV = "POSEMBED_MAX_TABLES"
#: The most tables one run may have (an atlas or series of 1000 tables has 499,500 pairs).
MAX_TABLES = 1000
RUN_ENV = "POSEMBED_MAX_RUN_BYTES"
#: The share of available memory a run of many tables may plan to take.
RUN_FRACTION = 2
#: The shape a table counts as when its spec does not say it before loading (a hub model, a plugin's provider
#: without ``expected_shape``): GPT-2's, 1024 x 768.
DEFAULT_SHAPE = (1024, 768)
#: What one table holds while a run goes on, besides its images, in copies of its float32 bytes: the table, what
#: CKA keeps of it (4.2 MB for 1024 x 768), its results and its share of the page.
TABLE_COPIES = 5
#: What one table holds whatever its size: its results' Python objects, its provenance, its rows of the page.
TABLE_OVERHEAD = 1 * MB
#: Images kept per table at display resolution R (cosine images, the matrix image and its fine codes): at most
#: R^2 * 4 B each, or the square of the table's longer side when that is smaller.
IMAGES = 6
#: What one pair's results hold besides its two profiles of at most R lags: its scalars and Python objects.
PAIR_BYTES = 4000


def check_tables(count: int) -> None:
    """Refuse a run of more than ``MAX_TABLES`` tables (``POSEMBED_MAX_TABLES``), before anything is loaded."""
    limit = environment.integer(TABLES_ENV, MAX_TABLES, 1, 10**9)
    if count > limit:
        raise SizeLimitError(f"{count} tables asked for, more than the {limit} a run may have "
                             f"(set {TABLES_ENV} to raise the cap)")


def table_bytes(shape: tuple[int, int] | None, resolution: int) -> int:
    """The memory one table of ``shape`` (rows, columns; None: ``DEFAULT_SHAPE``) takes in a run at ``resolution``."""
    rows, columns = shape or DEFAULT_SHAPE
    side = min(max(rows, columns), resolution)
    return TABLE_COPIES * 4 * rows * columns + TABLE_OVERHEAD + IMAGES * 4 * side**2


def run_bytes(shapes: Sequence[tuple[int, int] | None], resolution: int) -> int:
    """The memory a run of tables of ``shapes`` (None where unknown) at display resolution ``resolution`` is
    estimated to need: every table's ``table_bytes`` and every pair's results."""
    pairs = len(shapes) * (len(shapes) - 1) // 2
    lags = min(max((shape or DEFAULT_SHAPE)[0] for shape in shapes), resolution) if shapes else 0
    return sum(table_bytes(shape, resolution) for shape in shapes) + pairs * (PAIR_BYTES + 8 * lags)


def check_run(shapes: Sequence[tuple[int, int] | None], resolution: int, names: Sequence[str] = ()) -> None:
    """Refuse a run, before any table is loaded: more than ``MAX_TABLES`` tables; a table whose expected shape alone
    is more than one array may take (``check_shape``, led by its name in ``names``); or an estimate (``run_bytes``)
    above half the available memory (``POSEMBED_MAX_RUN_BYTES``)."""
    check_tables(len(shapes))
    for k, shape in enumerate(shapes):
        if shape is not None:
            check_shape(shape, names[k] if k < len(names) else "")
    need = run_bytes(shapes, resolution)
    available = available_memory()
    default = FALLBACK_BYTES if available is None else max(available // RUN_FRACTION, 1)
    limit = environment.integer(RUN_ENV, default, 1, MAX_SETTING)
    if need > limit:
        setting = "set" if environment.text(RUN_ENV) else "half the memory available; set"
        count = f"{len(shapes)} table{'s' if len(shapes) != 1 else ''}"
        largest = max(range(len(shapes)), key=lambda k: table_bytes(shapes[k], resolution))
        known = shapes[largest] is not None and largest < len(names) and len(shapes) > 1
        what = (f"; the largest, {names[largest]} ({' x '.join(map(str, shapes[largest]))}), "
                f"{human(table_bytes(shapes[largest], resolution))}" if known else "")
        raise SizeLimitError(f"{count} at resolution {resolution} need about {human(need)}{what}, more than the "
                             f"{human(limit)} a run may take ({setting} {RUN_ENV} to change it)")
