"""Plugins are imported when the registry is built, as llm and datasette do: no index, one way. A plugin that
fails to import is named on every run; ``posembed plugins`` says what happened to each; ``POSEMBED_LOAD_PLUGINS``
is matched as documented and named in errors."""

from __future__ import annotations

import json
import re
import sys
import uuid
import warnings

import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.errors import PosembedWarning, SpecError
from explorer.plugins import manager
from explorer.plugins import registry as plugins
from explorer.testing import installed

PLUGIN = '''\
import time
time.sleep({sleep})
{broken}
from explorer import Analysis, Provider, hookimpl

CALLS = []


def _load():
    import numpy as np
    from explorer import PositionEmbedding

    return PositionEmbedding(np.ones((4, 2)), provider="test", source="test")


@hookimpl
def register_providers(register):
    CALLS.append("register_providers")
    for name in {providers!r}:
        register(Provider(name, "a test table", _load))
'''


@pytest.fixture
def plugin_file(tmp_path, monkeypatch):
    """Write a plugin module on sys.path; returns its (unique) module name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(providers=(), sleep=0.0, broken=""):
        module = f"posembed_test_{uuid.uuid4().hex[:10]}"
        code = PLUGIN.format(sleep=sleep, providers=tuple(providers), broken=broken)
        (tmp_path / f"{module}.py").write_text(code, encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)  # forgotten after the test
        return module
    yield write


def forget(*modules: str) -> None:
    """As a new process would start: the modules not imported, the process registry not built."""
    for module in modules:
        sys.modules.pop(module, None)
    plugins.reset()


def posembed(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_building_the_registry_imports_every_allowed_plugin_and_help_imports_none(plugin_file, monkeypatch):
    alpha, beta = plugin_file(["alpha-table"]), plugin_file(["beta-table"])
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "alpha,beta")
    with installed(alpha, name="alpha"), installed(beta, name="beta"):
        assert posembed("--help").exit_code == 0
        assert alpha not in sys.modules and beta not in sys.modules
        assert explorer.load("beta-table").positions == 4
        assert alpha in sys.modules and beta in sys.modules


def test_a_plugin_that_failed_to_import_is_named_on_every_run_until_it_is_fixed(plugin_file, tmp_path,
                                                                                 monkeypatch):
    """The bug of the plugin index: once recorded with no hooks, a broken plugin was skipped silently."""
    module = plugin_file(["omega-table"], broken="raise RuntimeError('half-installed')")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "omega")  # whatever else is installed cannot warn here
    with installed(module, name="omega", distribution="posembed-omega", version="0.4"):
        for command in (["providers"], ["info", "sinusoidal,positions=8,dim=4"],
                        ["analyze", "sinusoidal,positions=8,dim=4"], ["info", "omega-table"]):
            forget(module)
            result = posembed(*command)
            lines = result.stderr.splitlines()
            assert lines[0] == ("posembed: warning: plugin 'omega' (posembed-omega 0.4) failed to import and is "
                                "skipped: RuntimeError: half-installed"), command
        assert result.exit_code == 2  # the provider's error names the plugin that failed
        assert "; the plugins omega were skipped (see the warnings above) and may register it" in lines[1]
        path = tmp_path / f"{module}.py"
        path.write_text(path.read_text(encoding="utf-8").replace("raise RuntimeError('half-installed')", ""),
                        encoding="utf-8")
        forget(module)
        result = posembed("info", "omega-table")
        assert result.exit_code == 0 and result.stderr == ""


def test_a_provider_named_like_a_plugin_that_failed_names_that_plugin_and_why(entry_points):
    entry_points("rho", "posembed_module_that_does_not_exist", dist="posembed-rho", version="2.0")
    result = posembed("info", "rho")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "posembed: error: unknown provider 'rho' (providers: alibi, conv, file, gpt2, hf, sinusoidal, sinusoidal2d, t5, window); "
        "plugin 'rho' (posembed-rho 2.0) failed to import and is skipped: ModuleNotFoundError: No module named "
        "'posembed_module_that_does_not_exist' (it may register 'rho')")


def test_no_file_is_written_to_posembeds_cache(plugin_file, monkeypatch, tmp_path):
    monkeypatch.setenv("POSEMBED_CACHE", str(tmp_path / "cache"))
    module = plugin_file(["iota-table"])
    with installed(module, name="iota"):
        assert posembed("info", "iota-table").exit_code == 0
        assert posembed("plugins").exit_code == 0
    assert not (tmp_path / "cache").exists()


def test_a_slow_plugin_gets_one_warning_naming_it_and_the_time(plugin_file, monkeypatch):
    module = plugin_file(["kappa-table"], sleep=0.6)
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "kappa")  # whatever else is installed cannot warn here
    with installed(module, name="kappa", distribution="posembed-kappa", version="0.3"):
        result = posembed("info", "kappa-table")
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()
    assert re.fullmatch(r"posembed: warning: plugin 'kappa' \(posembed-kappa 0\.3\) took 0\.\d s to import, .*", line)


def test_the_registry_is_built_once_per_process(plugin_file):
    module = plugin_file(["lambda-table"])
    with installed(module, name="lambda"):
        explorer.load("lambda-table")
        explorer.load("lambda-table")
        explorer.analyze(explorer.load("sinusoidal,positions=8,dim=4"))
        assert sys.modules[module].CALLS == ["register_providers"]
        assert plugins.get_registry() is plugins.get_registry()
        plugins.reset()
        explorer.load("lambda-table")
        assert sys.modules[module].CALLS == ["register_providers"] * 2


def test_changing_load_plugins_gives_the_registry_it_asks_for(plugin_file, monkeypatch):
    module = plugin_file(["mu-table"])
    with installed(module, name="mu"):
        assert explorer.load("mu-table").positions == 4
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
        with pytest.raises(SpecError, match="unknown provider 'mu-table'"):
            explorer.load("mu-table")


def test_tracing_prints_each_plugin_loaded_and_each_hook_called(plugin_file, monkeypatch):
    module = plugin_file(["tau-table"])
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "tau")
    monkeypatch.setenv("POSEMBED_TRACE_PLUGINS", "1")
    with installed(module, name="tau", distribution="posembed-tau", version="0.9"):
        result = posembed("info", "tau-table")
    assert result.exit_code == 0
    traces = [line for line in result.stderr.splitlines() if line.startswith("posembed: trace: ")]
    assert any(re.fullmatch(r"posembed: trace: loaded plugin 'tau' \(posembed-tau 0\.9\) in \d+\.\d ms", t)
               for t in traces)
    assert any(re.fullmatch(r"posembed: trace: register_providers of 'tau' registered tau-table in \d+\.\d ms", t)
               for t in traces)


# --- POSEMBED_LOAD_PLUGINS ----------------------------------------------------------------------------------------

def test_a_provider_excluded_by_the_variable_says_so_naming_its_plugin(plugin_file, monkeypatch):
    module = plugin_file(["nu"])
    with installed(module, name="nu", distribution="posembed-nu", version="1.2"):
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
        result = posembed("info", "nu")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "posembed: error: unknown provider 'nu' (providers: alibi, conv, file, gpt2, hf, sinusoidal, sinusoidal2d, t5, window); "
        "plugin 'nu' (posembed-nu 1.2) may register it, but POSEMBED_LOAD_PLUGINS='' leaves it out"]
    assert module not in sys.modules


def test_a_provider_unknown_while_plugins_are_excluded_names_what_is_left_out(plugin_file, monkeypatch):
    module = plugin_file(["xi-table"])
    with installed(module, name="xi"):
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "nothing-installed")
        with pytest.raises(SpecError) as raised:
            with pytest.warns(PosembedWarning, match="names 'nothing-installed', which is not an installed plugin"):
                explorer.load("xi-table")
    left_out = re.search(r"; POSEMBED_LOAD_PLUGINS='nothing-installed' leaves out the installed plugins (.*), "
                         r"which may register it$", str(raised.value))
    assert left_out and "xi" in left_out.group(1).split(", ")
    assert module not in sys.modules


@pytest.mark.parametrize("name", ["explorer.providers.sinusoidal", "posembed-explorer", "Posembed_Explorer"])
def test_naming_a_builtin_in_the_variable_says_it_always_loads_as_written(name, monkeypatch, entry_points):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", name)
    with pytest.warns(PosembedWarning) as caught:
        plugins.get_registry()
    assert [str(w.message) for w in caught] == [
        f"POSEMBED_LOAD_PLUGINS names {name!r}, which is built in: built-in plugins always load"]


def test_the_manager_package_has_no_module_over_300_lines():
    from pathlib import Path

    folder = Path(manager.__file__).parent
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in folder.glob("*.py")}
    assert sizes and max(sizes.values()) < 300, sizes


# --- posembed plugins: every plugin's distribution, version and state --------------------------------------------

def in_memory(providers=(), fail=False):
    """A plugin module made in memory registering constant providers (and raising afterwards when ``fail``)."""
    import types

    from explorer import Provider, hookimpl

    module = types.ModuleType(f"posembed_memory_{uuid.uuid4().hex[:10]}")

    @hookimpl
    def register_providers(register):
        for name in providers:
            register(Provider(name, "test", lambda: None))
        if fail:
            raise RuntimeError("boom")

    module.register_providers = register_providers
    return module


def fine():
    return in_memory(["fine-table"])


def copycat():
    return in_memory(["sinusoidal", "copycat-own"])


def broken_hook():
    return in_memory(["half"], fail=True)


def test_plugins_json_gives_each_plugin_its_distribution_version_and_state(entry_points, plugin_file, monkeypatch):
    entry_points("fine", fine(), dist="posembed-fine", version="1.1")
    entry_points("copycat", copycat(), dist="posembed-copycat", version="1.2")
    entry_points("hooky", broken_hook(), dist="posembed-hooky", version="1.3")
    entry_points("gone", "posembed_module_that_does_not_exist", dist="posembed-gone", version="1.4")
    entry_points("left-out", in_memory(["left-table"]), dist="posembed-left-out", version="1.5")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "fine,copycat,hooky,gone")
    result = posembed("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    origin = {name: (row["distribution"], row["version"]) for name, row in rows.items() if not row["builtin"]}
    assert origin == {"fine": ("posembed-fine", "1.1"), "copycat": ("posembed-copycat", "1.2"),
                      "hooky": ("posembed-hooky", "1.3"), "gone": ("posembed-gone", "1.4"),
                      "left-out": ("posembed-left-out", "1.5")}
    assert {name: row["state"] for name, row in rows.items() if not row["builtin"]} == {
        "fine": "loaded", "copycat": "clashed", "hooky": "skipped", "gone": "skipped", "left-out": "excluded"}
    assert rows["copycat"]["clashes"] == [{"kind": "provider", "name": "sinusoidal",
                                           "kept": "explorer.providers.sinusoidal"}]
    assert rows["copycat"]["providers"] == ["copycat-own"]  # what did not clash is in use
    assert rows["hooky"]["error"] == ("plugin 'hooky' (posembed-hooky 1.3) failed in register_providers and is "
                                      "skipped: RuntimeError: boom")
    assert rows["gone"]["error"].startswith("plugin 'gone' (posembed-gone 1.4) failed to import and is skipped")
    text = posembed("plugins").stdout
    assert ("copycat  posembed-copycat 1.2\n    clashed: provider 'sinusoidal' is kept by plugin "
            "'explorer.providers.sinusoidal'\n") in text
    assert "gone  posembed-gone 1.4\n    skipped: plugin 'gone' (posembed-gone 1.4) failed to import" in text
