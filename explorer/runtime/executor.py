"""The one seam many tables flow through: a ``concurrent.futures.Executor``, or none (serial, in this process).

- **Serial** (the default): each table is loaded and analysed in this process, one after the other. It costs the
  least CPU (no second interpreter, nothing pickled) and a signal stops it at once.
- ``--jobs N``: a local ``ProcessPoolExecutor`` of N workers, started with ``spawn`` (a clean interpreter: no
  threads or locks of this process are copied into it). The workers ignore SIGINT and are ended by this process
  when it is interrupted, so Ctrl-C and SIGTERM leave no worker behind.
- ``--executor ADDRESS``: a Dask distributed scheduler (``tcp://host:8786``), through ``dask.distributed``'s
  ``Client.get_executor()``, an ``Executor`` (the optional extra ``posembed-explorer[dask]``). The workers must
  have posembed and the plugins the specs need installed. The scheduler and its workers are trusted as this
  process is: work goes to them, and results come back, pickled.

What runs through the seam is a module-level function and plain arguments; it returns plain results (the
registered units hold lambdas, which do not pickle: a worker builds its own registry).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Executor, wait
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from explorer.errors import SettingError

#: The most local worker processes ``--jobs`` may start.
MAX_JOBS = 256


def _worker_start() -> None:
    """Each local worker: Ctrl-C reaches the whole process group, but only the parent acts on it (it ends the
    workers); progress lines are the parent's."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["POSEMBED_QUIET"] = "1"


def _dask(address: str) -> tuple[Executor, Callable[[], None]]:
    try:
        from distributed import Client
    except ImportError:
        raise SettingError("--executor needs Dask's distributed scheduler: pip install 'posembed-explorer[dask]'"
                           ) from None
    try:
        client = Client(address, set_as_default=False)  # waits distributed.comm.timeouts.connect (30 s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SettingError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
    return client.get_executor(), client.close


@contextmanager
def executor(jobs: int = 1, address: str | None = None) -> Iterator[Executor | None]:
    """The executor a run uses: None (serial), a local process pool of ``jobs`` workers, or a Dask scheduler's.

    On any exception (an interrupt included) the queued work is cancelled and local workers are ended at once.
    """
    if address is not None and jobs > 1:
        raise SettingError("--jobs and --executor choose different executors: give one of them")
    if not 1 <= jobs <= MAX_JOBS:
        raise SettingError(f"--jobs must be from 1 to {MAX_JOBS}, got {jobs}")
    if address is None and jobs == 1:
        yield None
        return
    import multiprocessing

    others = set(multiprocessing.active_children())  # a notebook's own processes are not the pool's to end
    if address is not None:
        pool, close = _dask(address)
    else:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start)
        close = None
    try:
        yield pool
    except BaseException:
        _end_now(pool, others)
        if close is not None:
            close()
        raise
    pool.shutdown(wait=True)
    if close is not None:
        close()


def _end_now(pool: Executor, others: set) -> None:
    """Cancel what is queued and end the local workers now, not ``others`` (a worker in a long read would otherwise
    hold the exit)."""
    import multiprocessing

    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except TypeError:  # Dask's ClientExecutor.shutdown takes no cancel_futures; wait=False cancels there
        pool.shutdown(wait=False)
    workers = [child for child in multiprocessing.active_children() if child not in others]
    for child in workers:
        child.terminate()
    for child in workers:
        child.join(timeout=1)
        if child.is_alive():
            child.kill()


def each(pool: Executor | None, work: Callable[..., Any], items: Sequence[Any], *args: Any,
         done: Callable[[int], None] | None = None, stop: Callable[[Any], bool] = lambda result: False) -> list[Any]:
    """``work(item, *args)`` for every item, results in the items' order: in this process one after the other
    when ``pool`` is None, else through the pool. ``done(k)`` is called as the k-th result arrives; a result for
    which ``stop`` is true ends the work (what is still queued is cancelled; unfinished items stay None)."""
    results: list[Any] = [None] * len(items)
    if pool is None:
        for k, item in enumerate(items):
            results[k] = work(item, *args)
            if done is not None:
                done(k + 1)
            if stop(results[k]):
                break
        return results
    futures = {pool.submit(work, item, *args): k for k, item in enumerate(items)}
    pending = set(futures)
    count = 0
    while pending:
        # wait() with a timeout, not as_completed(): the main thread wakes up, so a signal is acted on at once
        finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        for future in finished:
            results[futures[future]] = future.result()
            count += 1
            if done is not None:
                done(count)
        if any(stop(results[futures[future]]) for future in finished):
            for future in pending:
                future.cancel()
            break
    return results
