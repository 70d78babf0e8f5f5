"""Plugins are trusted code, but a fault still costs one line (issue 24, item 5; issue 28, item 3).

Each test is one class of fault, written as a plugin would write it, run through the real command with the plugin
installed as a fake entry point. The promise each test keeps is its docstring: ``docs/reliability.md`` lists them
(``docs/make_reliability.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import types

import numpy as np
import pytest
from cli_run import run_cli

import explorer
from explorer import Analysis, Param, Provider, Section, hookimpl
from explorer.errors import PosembedWarning

SMALL = "sinusoidal,positions=48,dim=8"
OTHER = "sinusoidal,positions=32,dim=4"


def _plugin(name: str, *, providers=(), analyses=(), sections=(), claim=None, hooks: dict | None = None):
    """A plugin module registering what it is given; ``hooks`` replaces a hook by a function of its own."""
    module = types.ModuleType(name)

    def register_providers(register):
        for provider in providers:
            register(provider)

    def register_analyses(register):
        for unit in analyses:
            register(unit)

    def register_sections(register):
        for unit in sections:
            register(unit)

    found = {"register_providers": register_providers, "register_analyses": register_analyses,
             "register_sections": register_sections, **({"provider_for_config": claim} if claim else {}),
             **(hooks or {})}
    for hook, function in found.items():
        function.__name__ = hook
        setattr(module, hook, hookimpl(function))
    return module


def _exit(*args):
    raise SystemExit(0)  # a stray sys.exit(): before the fix, a silent exit 0 with nothing on stdout


def _lines(stderr: str) -> list[str]:
    """The lines on stderr but the informational "wrote FILE"."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("wrote ")]


@pytest.fixture
def installed(entry_points, monkeypatch):
    """Install a plugin module as the fake distribution posembed-faulty 1.0; POSEMBED_DEBUG off."""
    monkeypatch.delenv("POSEMBED_DEBUG", raising=False)

    def add(module):
        entry_points("faulty", module, dist="posembed-faulty", version="1.0")
        return module
    return add


# ---------------------------------------------------------------------------------------------------------------------
# SystemExit, wherever plugin code runs

_UNIT = {"run": lambda: [Analysis("quits", "exits", run=_exit)],
         "scalars": lambda: [Analysis("quits", "exits", run=lambda c: 1.0, scalars=_exit)],
         "arrays": lambda: [Analysis("quits", "exits", run=lambda c: 1.0, arrays=_exit)]}


@pytest.mark.parametrize("where,fragment", [
    ("register_analyses", "plugin 'faulty' (posembed-faulty 1.0) failed in register_analyses and is skipped: "
                          "SystemExit: 0"),
    ("run", "analysis 'quits' of plugin 'faulty' (posembed-faulty 1.0) failed and is skipped: SystemExit: 0"),
    ("scalars", "analysis 'quits' of plugin 'faulty' (posembed-faulty 1.0): scalars() failed and is skipped: "
                "SystemExit: 0"),
    ("arrays", "analysis 'quits' of plugin 'faulty' (posembed-faulty 1.0): arrays() failed and is skipped: "
               "SystemExit: 0"),
])
def test_system_exit_in_a_plugin_hook_is_one_named_warning(where, fragment, installed, tmp_path):
    """`SystemExit` raised in a plugin's hook, `run`, `scalars()` or `arrays()` is one warning naming the plugin and
    the callback; the command still prints its results and exits 0."""
    if where == "register_analyses":
        installed(_plugin("posembed_quits", hooks={"register_analyses": _exit}))
    else:
        installed(_plugin("posembed_quits", analyses=_UNIT[where]()))
    result = run_cli(["analyze", SMALL, "--json", "--npz", str(tmp_path / "out.npz")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tables"][0]["scalars"]["effective_rank"] > 0
    assert _lines(result.stderr) == [f"posembed: warning: {fragment}"]
    assert "0.offset.mean" in np.load(tmp_path / "out.npz").files


def test_system_exit_in_a_section_or_a_provider_is_one_line(installed, tmp_path):
    """`SystemExit` in a section's `build` is a warning (the page is written); in a provider's `load` it is one
    error line naming the provider and its distribution, exit 1."""
    quitting = Provider(name="quitter", description="exits", load=lambda: _exit())
    installed(_plugin("posembed_quits", providers=[quitting], sections=[Section("quits", "quits", _exit)]))
    result = run_cli(["report", SMALL, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and (tmp_path / "r.html").exists()
    assert _lines(result.stderr) == ["posembed: warning: section 'quits' of plugin 'faulty' (posembed-faulty 1.0) "
                                     "failed and is skipped: SystemExit: 0"]
    result = run_cli(["info", "quitter"])
    assert result.exit_code == 1 and result.stdout == ""
    assert _lines(result.stderr) == ["posembed: error: provider 'quitter' (posembed-faulty 1.0) failed: SystemExit: 0"]


# ---------------------------------------------------------------------------------------------------------------------
# hf: hands a model to a plugin's provider


def _rope_folder(tmp_path, model_type: str = "mystery-rope"):
    """A model folder of a type posembed does not know, whose config says it uses RoPE (so hf: asks the plugins)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "rope_theta": 10000.0}))
    return folder


def test_a_claimed_provider_that_raises_is_one_line(installed, tmp_path):
    """A plugin's `provider_for_config` picks its provider for `hf:`, and that provider raises: one error line naming
    the provider and its distribution (hf:'s delegation goes through the same door as every load)."""
    def crash(model: str | None = None, revision: str | None = None, positions: int | None = None):
        return 1 // 0

    provider = Provider(name="crash", description="raises", load=crash, target="model",
                        params=(Param("model", str, None, "m"), Param("revision", str, None, "r"),
                                Param("positions", int, None, "p")))
    installed(_plugin("posembed_crash", providers=[provider], claim=lambda config: "crash"))
    result = run_cli(["info", f"hf:{_rope_folder(tmp_path)}"])
    assert "Traceback" not in result.stderr and result.exit_code == 1
    assert _lines(result.stderr) == ["posembed: error: provider 'crash' (posembed-faulty 1.0) failed: "
                                     "ZeroDivisionError: integer division or modulo by zero"]


def test_system_exit_in_provider_for_config_is_a_warning_and_hf_goes_on(installed, tmp_path):
    """`SystemExit` in `provider_for_config` is one warning naming the plugin; hf: then says what the model uses."""
    installed(_plugin("posembed_claims", claim=_exit))
    result = run_cli(["info", f"hf:{_rope_folder(tmp_path)}"])
    lines = _lines(result.stderr)
    assert result.exit_code == 1 and len(lines) == 2, result.stderr
    assert lines[0] == ("posembed: warning: plugin 'faulty' failed in provider_for_config and is passed over: "
                        "SystemExit: 0")
    assert lines[1].startswith("posembed: error:") and "rotary position embedding" in lines[1]


# ---------------------------------------------------------------------------------------------------------------------
# what a section returns, and where it fails


@pytest.mark.parametrize("returned", ["a string", {"figure": None}, "source"])
def test_a_section_returning_no_bokeh_model_is_a_warning_and_the_page_is_written(returned, installed, tmp_path):
    """A section's `build` that returns something other than a Bokeh model that can be laid out (a string, a dict,
    a data source) is one warning; the page is still written, with a note in the section's place."""
    def build(context):
        if returned == "source":
            from bokeh.models import ColumnDataSource

            return ColumnDataSource({"x": [1]})  # a Bokeh model, but not one a page can show
        return returned

    installed(_plugin("posembed_odd_view", sections=[Section("odd_view", "odd view", build, order=25)]))
    page = tmp_path / "r.html"
    result = run_cli(["report", SMALL, "-o", str(page)])
    assert result.exit_code == 0, result.stderr
    kind = "ColumnDataSource" if returned == "source" else type(returned).__name__
    assert _lines(result.stderr) == [
        f"posembed: warning: section 'odd_view' of plugin 'faulty' (posembed-faulty 1.0) failed and is skipped: "
        f"TypeError: build returned {kind}, not a Bokeh model (a figure or a layout)"]
    text = page.read_text(encoding="utf-8")
    assert f"build returned {kind}, not a Bokeh model" in text and "dimension traces" in text


def test_a_failed_section_leaves_a_note_in_its_column_and_warnings_name_the_table(monkeypatch):
    """On a page of several tables a section that fails for one table shows the warning's line in that table's
    column (not a blank one), and every warning names the table it is about."""
    from bokeh.models import Div, Spacer

    from explorer.reporting.page import build_document
    from explorer.testing import registry_with

    monkeypatch.delenv("POSEMBED_DEBUG", raising=False)

    def picky(context):
        if context.embedding.dim == 4:
            raise ValueError("needs 8 dimensions")
        from explorer.reporting.figures import caption

        return caption("fine")

    def fussy(context):
        if context.matrix.shape[1] == 4:
            raise ValueError("too narrow")
        return 1.0

    registry = registry_with(_plugin("posembed_picky", analyses=[Analysis("fussy", "fails on dim 4", run=fussy)],
                                     sections=[Section("picky", "picky view", picky, order=25)]))
    tables = [explorer.load(SMALL), explorer.load(OTHER)]
    with pytest.warns(PosembedWarning) as caught:
        results, pairs = explorer.api.analyze_all(tables, registry=registry)
        document = build_document(tables, results, pairs, sections=registry.sections)
    messages = [str(w.message) for w in caught if "posembed_picky" in str(w.message)]
    label = tables[1].label
    assert messages == [
        f"table 2 ({label}): analysis 'fussy' of plugin 'posembed_picky' (posembed_picky) failed and is skipped: "
        f"ValueError: too narrow",
        f"table 2 ({label}): section 'picky' of plugin 'posembed_picky' (posembed_picky) failed and is skipped: "
        f"ValueError: needs 8 dimensions"]
    rows = [m for m in document.models if type(m).__name__ == "Row"
            and any(isinstance(c, Div) and "needs 8 dimensions" in c.text for c in m.children)]
    assert len(rows) == 1 and len(rows[0].children) == 2  # the section's row: one column per table
    first, second = rows[0].children
    assert isinstance(second, Div) and not isinstance(second, Spacer) and "failed and is skipped" in second.text
    assert "fine" in " ".join(m.text for m in first.references() if isinstance(m, Div))


# ---------------------------------------------------------------------------------------------------------------------
# what an analysis returns: the scalars' and the arrays' contracts


def test_scalars_are_floats_and_nan_is_null(installed):
    """Scalars are floats: an int becomes a float, NaN and Inf become null in `--json`; a scalar that is not a
    number is refused as `scalars()`'s fault, naming the key, and the other analyses' numbers stay."""
    counts = Analysis("counts", "numbers of several kinds", run=lambda c: 1,
                      scalars=lambda r: {"count": 3, "half": np.float32(0.5), "undefined": float("nan"),
                                         "huge": np.inf, "flag": np.bool_(True)})
    words = Analysis("words", "a scalar that is a word", run=lambda c: 1, scalars=lambda r: {"word": "many"})
    installed(_plugin("posembed_counts", analyses=[counts, words]))
    result = run_cli(["analyze", SMALL, "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"count": 3.0' in result.stdout and '"undefined": null' in result.stdout and '"huge": null' in result.stdout
    scalars = json.loads(result.stdout)["tables"][0]["scalars"]
    assert scalars["half"] == 0.5 and scalars["flag"] == 1.0 and "word" not in scalars and "effective_rank" in scalars
    assert _lines(result.stderr) == [
        "posembed: warning: analysis 'words' of plugin 'faulty' (posembed-faulty 1.0): scalars() failed and is "
        "skipped: TypeError: the scalar 'word' is 'many' (str), not a number"]


def test_an_array_far_larger_than_its_table_is_refused_before_npz_writes_it(installed, tmp_path):
    """An analysis array breaking the shape rule (30000 x 30000 from a 64-row table; strings) is refused from its
    shape, before anything is copied or written: one warning naming `arrays()`, the array and its shape, and
    `--npz` holds every other array."""
    huge = Analysis("huge", "an array far larger than its table", run=lambda c: 1,
                    arrays=lambda r: {"grid": np.broadcast_to(np.float32(1), (30000, 30000))})  # 3.6 GB, no memory
    words = Analysis("words", "an array of strings", run=lambda c: 1, arrays=lambda r: {"names": np.array(["a"])})
    installed(_plugin("posembed_huge", analyses=[huge, words]))
    target = tmp_path / "out.npz"
    tracemalloc.start()
    try:
        result = run_cli(["analyze", "sinusoidal,positions=64,dim=16", "--npz", str(target)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.stderr
    assert peak < 200_000_000, peak
    assert _lines(result.stderr) == [
        "posembed: warning: analysis 'huge' of plugin 'faulty' (posembed-faulty 1.0): arrays() failed and is "
        "skipped: ValueError: the array 'grid' of shape 30000 x 30000 holds 900000000 elements, more than the "
        f"{64 * 16 + 1024 ** 2 + 65536} an analysis of this table may give (N x D + R x R + 65536)",
        "posembed: warning: analysis 'words' of plugin 'faulty' (posembed-faulty 1.0): arrays() failed and is "
        "skipped: TypeError: the array 'names' has dtype <U1, not numbers"]
    files = np.load(target).files
    assert "0.offset.mean" in files and not any(name.startswith(("0.huge", "0.words")) for name in files)


def test_the_builtin_analyses_keep_the_array_shape_rule():
    """Every array the built-in analyses give, for a long table and for a tiny one at a small resolution, keeps the
    shape rule (the check raises for a built-in, so this would fail)."""
    for spec, resolution in (("sinusoidal,positions=4096,dim=64", 64), ("sinusoidal,positions=3,dim=2", 8)):
        results = explorer.analyze(explorer.load(spec), resolution=resolution)
        assert results.arrays()


# ---------------------------------------------------------------------------------------------------------------------
# a hook that hangs

_HANGING = textwrap.dedent("""
    import pathlib, sys, time, types
    from explorer import Provider, hookimpl
    from explorer.testing import installed

    module = types.ModuleType("posembed_hangs")
    marker = pathlib.Path(sys.argv[1])

    def load():
        marker.write_text("in load")
        time.sleep(3600)

    @hookimpl
    def register_providers(register):
        register(Provider(name="hangs", description="never returns", load=load))

    module.register_providers = register_providers
    with installed(module):
        from explorer.cli import main
        sys.argv = ["posembed", "info", "hangs"]
        main()
""")


@pytest.mark.parametrize("signal_name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_hook_that_hangs_is_ended_by_ctrl_c_or_sigterm(signal_name, code, tmp_path):
    """A provider's `load` that never returns holds the command (plugins are trusted, and get no timeout) until
    Ctrl-C or SIGTERM, which end it at once (well within 10 s on a busy machine) with one line, as docs/plugins.md
    says."""
    marker = tmp_path / "marker"
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "hangs"}  # the one plugin the test installs
    process = subprocess.Popen([sys.executable, "-c", _HANGING, str(marker)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the provider never started"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(getattr(signal, signal_name))
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert _lines(stderr)[-1].startswith("posembed: error: interrupted") and "Traceback" not in stderr
    assert took < 10, took
