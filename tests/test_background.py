"""explorer.background: a function run in a forked child gives what it gives in-process, errors and all.

The forking cases run in a fresh interpreter with one BLAS thread: the test process itself may hold threads
(OpenBLAS's pool, torch's, a fake hub's server), where ``can_fork`` rightly refuses to fork.
"""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from explorer import background
from explorer.errors import EmbeddingError, PosembedError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking is only used on Linux")

PRELUDE = """
import os, signal, time, warnings, numpy as np
from explorer import background
from explorer.errors import EmbeddingError, PosembedError
assert background.can_fork(), os.listdir("/proc/self/task")
"""


def in_fresh_process(body: str) -> str:
    """Run PRELUDE + body in a new single-threaded interpreter; returns its stdout, failing on a non-zero exit."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                          env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_forked_result_is_the_in_process_result():
    out = in_fresh_process("""
        def work(n):
            x = np.random.default_rng(0).normal(size=(n, n))
            return {"pid": os.getpid(), "gram": x @ x.T}
        pending = background.start(work, 300)
        got = pending.result()
        assert got["pid"] != os.getpid()  # it really ran in a child
        assert np.array_equal(got["gram"], work(300)["gram"])
        try:
            os.waitpid(got["pid"], os.WNOHANG)
        except ChildProcessError:
            print("ok")  # and it has been reaped: no zombie left
    """)
    assert out.strip() == "ok"


def test_errors_and_warnings_cross_from_the_child():
    out = in_fresh_process("""
        def bad():
            warnings.warn("zero rows: their cosines are NaN", RuntimeWarning)
            raise EmbeddingError("the table holds NaN")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                background.start(bad).result()
            except EmbeddingError as error:
                print("raised", type(error).__name__, error)
        print("warned", [(w.category.__name__, str(w.message)) for w in caught])
    """)
    assert "raised EmbeddingError the table holds NaN" in out
    assert "warned [('RuntimeWarning', 'zero rows: their cosines are NaN')]" in out


def test_an_unpicklable_error_still_arrives_as_one_line():
    out = in_fresh_process("""
        class Odd(Exception):
            def __init__(self, a, b):  # pickles, but cannot be rebuilt from its args
                super().__init__(f"{a}-{b}")
        def bad():
            raise Odd(1, 2)
        try:
            background.start(bad).result()
        except PosembedError as error:
            print("raised", type(error).__name__, error)
    """)
    assert out.strip() == "raised PosembedError 1-2"


def test_a_child_that_dies_is_reported():
    out = in_fresh_process("""
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            background.start(die).result()
        except PosembedError as error:
            print(error)
    """)
    assert out.strip() == "the analysis process died (signal 9) (out of memory?)"


def test_cancel_stops_and_reaps_a_running_child():
    out = in_fresh_process("""
        pending = background.start(time.sleep, 60)
        pid = pending._pid
        started = time.monotonic()
        pending.cancel()
        assert time.monotonic() - started < 5
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            print("reaped")
    """)
    assert out.strip() == "reaped"


def test_an_interrupt_while_waiting_stops_the_child_at_once():
    out = in_fresh_process("""
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        pending = background.start(time.sleep, 60)
        pid = pending._pid
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            pending.result()
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - started))
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            print("reaped")
    """)
    assert out.split() == ["interrupted", "after", "0", "reaped"]


def test_without_fork_the_function_runs_here(monkeypatch):
    monkeypatch.setattr(background, "can_fork", lambda: False)
    assert background.start(np.add, 2, 3).result() == 5
    with pytest.raises(EmbeddingError, match="bad"):
        background.start(_raise, EmbeddingError("bad")).result()


def _raise(error):
    raise error


def test_a_second_thread_forbids_forking():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not background.can_fork()
    finally:
        stop.set()
        thread.join()
