"""Open a report in headless Chromium and look at it: console errors, Bokeh's idle state, screenshots.

A test tool, not part of the product: used by the browser tests (pytest puts ``tests/`` on the path) and
``docs/make_screenshots.py``. It speaks the Chrome DevTools protocol over
``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file descriptors 3 and 4), so it
needs no Python dependency beyond the standard library, and no network.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--mute-audio", "--remote-debugging-pipe",
)

#: A posembed report is whole once its document-ready callback has mirrored the packed images.
REPORT_READY = "document.documentElement.dataset.posembedReady === '1'"

#: Resolves once every Bokeh document on the page reports idle (all views rendered) and the page's own
#: readiness expression holds, then two frames later.
IDLE_JS = """
new Promise((resolve) => {
  const start = performance.now();
  const check = () => {
    const docs = (window.Bokeh && window.Bokeh.documents) || [];
    const idle = docs.length > 0 && docs.every((d) => d.is_idle) && (%s);
    if (idle) {
      requestAnimationFrame(() => requestAnimationFrame(() =>
        resolve({idle: true, documents: docs.length, ms: performance.now() - start})));
    } else if (performance.now() - start > %d) {
      resolve({idle: false, documents: docs.length, ms: performance.now() - start});
    } else {
      setTimeout(check, 25);
    }
  };
  check();
})
"""


class BrowserError(RuntimeError):
    """Chromium could not be started or did not answer."""


def find_chromium() -> str | None:
    """The path of a Chromium/Chrome executable (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageResult:
    """What a page did while loading: its console errors, whether Bokeh went idle, and a screenshot."""

    errors: list[str]
    idle: bool
    idle_ms: float
    screenshot: bytes
    messages: list[str] = field(default_factory=list)


class Chromium:
    """One headless Chromium process driven over the DevTools pipe; use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 1000,
                 timeout: float = 30.0) -> None:
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no Chromium found (looked for " + ", ".join(CANDIDATES) + ")")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._profile = tempfile.mkdtemp(prefix="posembed-chromium-")
        cmd_read, self._cmd_write = os.pipe()
        self._res_read, res_write = os.pipe()

        def wire_fds() -> None:  # in the child: the protocol expects to read fd 3 and write fd 4
            a, b = os.dup(cmd_read), os.dup(res_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=wire_fds,
        )
        os.close(cmd_read)
        os.close(res_write)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(domain, session=self.session)
        self.resize(width, height)

    # -- protocol

    def _read_loop(self) -> None:
        buffer = b""
        with os.fdopen(self._res_read, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._cond:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self._events.append(message)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def call(self, method: str, session: str | None = None, timeout: float | None = None, **params: Any) -> dict:
        """Send one DevTools command and wait for its result."""
        with self._lock:
            self._id += 1
            ident = self._id
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise BrowserError(f"Chromium did not answer {method} (exit code {self.process.poll()})")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def _wait_event(self, method: str, since: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events[since:]:
                    if event.get("method") == method:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} within {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    # -- page

    def resize(self, width: int, height: int) -> None:
        """Set the viewport size in CSS pixels."""
        self.width, self.height = width, height
        self.call("Emulation.setDeviceMetricsOverride", session=self.session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", session=self.session, timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"script failed: {details.get('exception', {}).get('description') or details}")
        return result.get("result", {}).get("value")

    def open(self, path: str | Path, idle_timeout: float = 20.0, ready: str = REPORT_READY) -> PageResult:
        """Load a page, wait until Bokeh reports every document idle and ``ready`` (a JavaScript expression)
        holds, and screenshot the viewport."""
        url = Path(path).resolve().as_uri()
        since = self.mark()
        self.call("Page.navigate", session=self.session, url=url)
        self._wait_event("Page.loadEventFired", since, self.timeout)
        state = self.evaluate(IDLE_JS % (ready, int(idle_timeout * 1000)), timeout=idle_timeout + 10)
        shot = self.screenshot()
        errors, messages = self.console(since)
        return PageResult(errors, bool(state and state.get("idle")), float((state or {}).get("ms", 0.0)), shot,
                          messages)

    def mark(self) -> int:
        """An index into the events received so far, for ``console(since=...)``."""
        with self._cond:
            return len(self._events)

    def console(self, since: int = 0) -> tuple[list[str], list[str]]:
        """Errors (console.error, uncaught exceptions, failed loads) and all console messages since an event index."""
        errors, messages = [], []
        with self._cond:
            events = list(self._events[since:])
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                messages.append(f"{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    errors.append(text)
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                messages.append(f"{entry.get('level')}: {entry.get('text')}")
                if entry.get("level") == "error":
                    errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        return errors, messages

    def screenshot(self, full_page: bool = False, clip: dict | None = None) -> bytes:
        """A PNG of the viewport, of the whole page, or of ``clip`` (x, y, width, height in CSS pixels of the page).

        Beyond the viewport, the viewport grows to hold the region for the capture (and is put back after), as a
        taller window would: Chromium's own ``captureBeyondViewport`` first lays the page out 1 x 1 px, which
        squeezes every plot, and BokehJS's next paint leaves traces of that one at some plots' left edges."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            clip = {"x": 0, "y": 0, "width": size[0], "height": size[1]}
        if not clip:
            return base64.b64decode(self.call("Page.captureScreenshot", session=self.session, **params)["data"])
        params["clip"] = {**clip, "scale": 1}
        width, height = self.width, self.height
        self.resize(width, max(height, int(clip["y"] + clip["height"] + 0.999)))
        try:
            self.evaluate("(window.scrollTo(0, 0), new Promise((done) => requestAnimationFrame(() => "
                          "requestAnimationFrame(done))))")
            return base64.b64decode(self.call("Page.captureScreenshot", session=self.session, **params)["data"])
        finally:
            self.resize(width, height)

    def close(self) -> None:
        """Shut the browser down and remove its throw-away profile."""
        try:
            if self.process.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except BrowserError:
                    pass
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
        finally:
            try:
                os.close(self._cmd_write)
            except OSError:
                pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def blankness(png: bytes) -> tuple[float, int]:
    """(share of pixels that are not near-white, number of distinct colours) of a PNG screenshot."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    import numpy as np

    pixels = np.asarray(small).reshape(-1, 3)
    inked = float(np.mean(pixels.min(axis=1) < 235)) if len(pixels) else 0.0
    colours = len(np.unique(pixels.astype(np.uint32) @ np.array([65536, 256, 1], np.uint32)))
    return inked, colours
