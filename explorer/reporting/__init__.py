"""Bokeh rendering of analysis results: views (one function each) and the page that assembles them."""

from __future__ import annotations

import threading


def _import_bokeh() -> None:
    try:
        import bokeh.document  # noqa: F401
        import bokeh.embed  # noqa: F401
        import bokeh.layouts  # noqa: F401

        import explorer.reporting.views  # noqa: F401  (bokeh.models, bokeh.plotting)
    except Exception:  # noqa: BLE001 - the page build imports them again and reports any error itself
        pass


def preload() -> threading.Thread:
    """Start importing Bokeh (about half a second of pure Python) in a background thread and return it.

    ``explorer.api.report`` calls this before analysing: the analyses spend most of their time in numpy
    (FFTs, BLAS, LAPACK), which releases the GIL, so on a machine with a second core the import costs
    little wall time. Join the thread before building the page.
    """
    thread = threading.Thread(target=_import_bokeh, name="posembed-import-bokeh", daemon=True)
    thread.start()
    return thread
