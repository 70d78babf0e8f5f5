"""Plugins are imported only when needed, through an index kept in posembed's cache; ``posembed plugins`` says
what happened to each; ``POSEMBED_LOAD_PLUGINS`` is matched as documented and named in errors."""

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
from explorer.plugins import manager as plugins
from explorer.testing import installed

PLUGIN = '''\
import time
time.sleep({sleep})
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

ANALYSES = '''

@hookimpl
def register_analyses(register):
    register(Analysis("{name}", "a test analysis", run=lambda context: 1.0))
'''


@pytest.fixture
def plugin_file(tmp_path, monkeypatch):
    """Write a plugin module on sys.path; returns its (unique) module name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(providers=(), analysis=None, sleep=0.0):
        module = f"posembed_test_{uuid.uuid4().hex[:10]}"
        code = PLUGIN.format(sleep=sleep, providers=tuple(providers))
        if analysis:
            code += ANALYSES.format(name=analysis)
        (tmp_path / f"{module}.py").write_text(code, encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)  # forgotten after the test
        return module
    yield write


def imported(module: str) -> bool:
    return module in sys.modules


def forget(*modules: str) -> None:
    """As a new process would start: the modules not imported, the process registry not built."""
    for module in modules:
        sys.modules.pop(module, None)
    plugins.reset()


def posembed(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_spec_naming_a_builtin_provider_imports_no_plugin(plugin_file):
    module = plugin_file(["alpha-table"])
    with installed(module, name="alpha"):
        assert posembed("providers").exit_code == 0  # every plugin, and the index written
        forget(module)
        assert explorer.load("sinusoidal,positions=8,dim=4").shape == (8, 4)
        result = posembed("info", "sinusoidal,positions=8,dim=4")
        assert result.exit_code == 0 and result.stderr == ""
        assert not imported(module)


def test_a_spec_naming_a_plugins_provider_imports_that_plugin_alone(plugin_file):
    alpha, beta = plugin_file(["alpha-table"]), plugin_file(["beta-table"])
    with installed(alpha, name="alpha"), installed(beta, name="beta"):
        assert posembed("plugins").exit_code == 0
        forget(alpha, beta)
        assert explorer.load("beta-table").positions == 4
        assert imported(beta) and not imported(alpha)


def test_analyses_import_the_plugins_that_register_analyses_and_no_other(plugin_file):
    provider_only, with_analysis = plugin_file(["gamma-table"]), plugin_file(analysis="delta_value")
    with installed(provider_only, name="gamma"), installed(with_analysis, name="delta"):
        posembed("providers")
        forget(provider_only, with_analysis)
        result = posembed("analyze", "sinusoidal,positions=16,dim=4", "--json")
        assert result.exit_code == 0, result.output
        assert imported(with_analysis) and not imported(provider_only)


def test_without_an_index_every_plugin_is_imported_and_the_index_written(plugin_file):
    module = plugin_file(["epsilon-table"])
    with installed(module, name="epsilon", distribution="posembed-epsilon", version="2.1"):
        plugins.index_path().unlink(missing_ok=True)
        explorer.load("sinusoidal,positions=8,dim=4")  # a built-in: nothing to import yet
        assert not imported(module)
        explorer.analyze(explorer.load("sinusoidal,positions=8,dim=4"))
        assert imported(module)  # the index did not know it: everything was imported, and the index written
        data = json.loads(plugins.index_path().read_text(encoding="utf-8"))
        record = data["entry_points"][f"epsilon={module} [posembed-epsilon]"]
        assert record["providers"] == ["epsilon-table"] and record["hooks"] == ["register_providers"]
        assert record["stamp"][:2] == ["posembed-epsilon", "2.1"]
        assert not list(plugins.index_path().parent.glob("*.part"))  # written atomically


def test_an_edited_plugin_module_is_indexed_again(plugin_file, tmp_path):
    module = plugin_file(["zeta-table"])
    with installed(module, name="zeta"):
        posembed("providers")
        path = tmp_path / f"{module}.py"
        path.write_text(path.read_text(encoding="utf-8").replace("'zeta-table',", "'zeta-table', 'zeta-two'"),
                        encoding="utf-8")
        forget(module)
        assert explorer.load("zeta-two").positions == 4
        record = json.loads(plugins.index_path().read_text(encoding="utf-8"))["entry_points"][
            f"zeta={module} [posembed-zeta]"]
        assert record["providers"] == ["zeta-table", "zeta-two"]


def test_a_provider_the_index_does_not_list_makes_every_plugin_import(plugin_file):
    module = plugin_file(["eta-table"])
    with installed(module, name="eta"):
        posembed("providers")
        records = json.loads(plugins.index_path().read_text(encoding="utf-8"))
        for record in records["entry_points"].values():
            record["providers"] = []  # as if the hook registered its provider only since
        plugins.index_path().write_text(json.dumps(records), encoding="utf-8")
        forget(module)
        assert explorer.load("eta-table").positions == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape"])
def test_a_corrupt_index_is_rebuilt(plugin_file, damage, monkeypatch):
    module = plugin_file(["theta-table"])
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "theta")  # whatever else is installed cannot warn here
    with installed(module, name="theta"):
        posembed("providers")
        text = plugins.index_path().read_text(encoding="utf-8")
        broken = {"garbage": "\x00\xff not json", "truncated": text[: len(text) // 2],
                  "wrong shape": text.replace('"hooks": [', '"hooks": [1, ')}[damage]
        plugins.index_path().write_text(broken, encoding="utf-8", errors="surrogateescape")
        forget(module)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert explorer.load("theta-table").positions == 4
        assert json.loads(plugins.index_path().read_text(encoding="utf-8"))["entry_points"]


def test_an_unwritable_cache_costs_no_warning_and_no_failure(plugin_file, monkeypatch, tmp_path):
    module = plugin_file(["iota-table"])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be", encoding="utf-8")
    monkeypatch.setattr(plugins, "index_path", lambda: blocker / "plugins" / "index.json")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "iota")  # whatever else is installed cannot warn here
    with installed(module, name="iota"):
        result = posembed("info", "iota-table")
        assert result.exit_code == 0 and result.stderr == ""


def test_the_index_lives_in_posembeds_cache_folder(monkeypatch, tmp_path):
    from explorer.loaders.hub import slice_cache_dir

    monkeypatch.undo()  # the real index_path, not the test suite's
    for env in ({"POSEMBED_CACHE": str(tmp_path / "pc")}, {"HF_HOME": str(tmp_path / "hf")}):
        monkeypatch.delenv("POSEMBED_CACHE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert plugins.index_path().parent == slice_cache_dir() / "plugins"


def test_a_slow_plugin_gets_one_warning_naming_it_and_the_time(plugin_file, monkeypatch):
    module = plugin_file(["kappa-table"], sleep=0.6)
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "kappa")  # whatever else is installed cannot warn here
    with installed(module, name="kappa", distribution="posembed-kappa", version="0.3"):
        result = posembed("info", "kappa-table")
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()
    assert re.fullmatch(r"posembed: warning: plugin 'kappa' \(posembed-kappa 0\.3\) took 0\.\d s to import; .*", line)


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


# --- POSEMBED_LOAD_PLUGINS ----------------------------------------------------------------------------------------

def test_a_provider_excluded_by_the_variable_says_so_naming_its_plugin(plugin_file, monkeypatch):
    module = plugin_file(["nu-table"])
    with installed(module, name="nu", distribution="posembed-nu", version="1.2"):
        posembed("providers")  # indexed while allowed
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
        result = posembed("info", "nu-table")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "posembed: error: unknown provider 'nu-table' (providers: alibi, file, gpt2, hf, sinusoidal, sinusoidal2d, t5, window); plugin 'nu' "
        "(posembed-nu 1.2) registers it, but POSEMBED_LOAD_PLUGINS='' leaves it out"]


def test_a_provider_unknown_while_plugins_are_excluded_names_what_is_left_out(plugin_file, monkeypatch):
    module = plugin_file(["xi-table"])
    with installed(module, name="xi"):
        plugins.index_path().unlink(missing_ok=True)  # never indexed: posembed cannot know who registers it
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "nothing-installed")
        with pytest.raises(SpecError) as raised:
            with pytest.warns(PosembedWarning, match="names 'nothing-installed', which is not an installed plugin"):
                explorer.load("xi-table")
    left_out = re.search(r"; POSEMBED_LOAD_PLUGINS='nothing-installed' leaves out the installed plugins (.*), "
                         r"which may register it$", str(raised.value))
    assert left_out and "xi" in left_out.group(1).split(", ")
    assert not imported(module)


@pytest.mark.parametrize("name", ["explorer.providers.sinusoidal", "posembed-explorer", "Posembed_Explorer"])
def test_naming_a_builtin_in_the_variable_says_it_always_loads_as_written(name, monkeypatch, entry_points):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", name)
    with pytest.warns(PosembedWarning) as caught:
        plugins.get_registry().load_all()
    assert [str(w.message) for w in caught] == [
        f"POSEMBED_LOAD_PLUGINS names {name!r}, which is built in: built-in plugins always load"]


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
