"""The plugin manager: built-ins as ordinary plugins, entry points, broken and duplicate plugins."""

import json
import re
import types
import warnings

import numpy as np
import pytest

import explorer
from explorer import hookimpl
from explorer.core.embedding import PositionEmbedding
from explorer.errors import PosembedWarning, SpecError
from explorer.plugins.describe import describe_plugins
from explorer.plugins.manager import get_plugin_manager
from explorer.plugins import registry as plugins_registry
from explorer.plugins.registry import get_registry
from explorer.plugins.provider import Provider


def constant_provider(name):
    return Provider(name, f"constant {name}",
                    lambda: PositionEmbedding(np.ones((2, 2)), provider=name, source="test"))


def fake_plugin_module(module_name, *provider_names, fail=False):
    module = types.ModuleType(module_name)

    @hookimpl
    def register_providers(register):
        for name in provider_names:
            register(constant_provider(name))
        if fail:
            raise RuntimeError("boom")

    module.register_providers = register_providers
    return module


def test_builtins_register_like_any_plugin(builtin_registry):
    assert "sinusoidal" in builtin_registry.providers
    assert builtin_registry.owners["sinusoidal"] == "explorer.providers.sinusoidal"


def test_entry_point_plugin_adds_its_provider(entry_points):
    entry_points("extra", fake_plugin_module("posembed_fake_extra", "extra-table"))
    registry = get_registry(get_plugin_manager())
    assert registry.owners["extra-table"] == "extra"
    assert registry.get("extra-table").load().shape == (2, 2)


def test_duplicate_name_warns_naming_both_plugins_and_keeps_the_first(entry_points):
    entry_points("copycat", fake_plugin_module("posembed_fake_copycat", "sinusoidal", "unique-one"))
    with pytest.warns(PosembedWarning, match=r"'sinusoidal'.*'explorer.providers.sinusoidal'.*'copycat'"):
        registry = get_registry(get_plugin_manager())
    assert registry.owners["sinusoidal"] == "explorer.providers.sinusoidal"
    assert registry.owners["unique-one"] == "copycat"  # the plugin's other providers still count


def test_plugin_that_fails_to_import_is_skipped_with_one_warning(entry_points):
    entry_points("broken", "posembed_module_that_does_not_exist")
    with pytest.warns(PosembedWarning, match="plugin 'broken'.*failed to import and is skipped"):
        registry = get_registry(get_plugin_manager())
    assert "sinusoidal" in registry.providers


def test_plugin_that_raises_in_its_hook_is_skipped_whole(entry_points):
    entry_points("halfway", fake_plugin_module("posembed_fake_halfway", "half-a", fail=True))
    with pytest.warns(PosembedWarning,
                      match=r"plugin 'halfway' \(posembed_fake_halfway\) failed in register_providers"):
        registry = get_registry(get_plugin_manager())
    assert "half-a" not in registry.providers
    assert "sinusoidal" in registry.providers


def test_load_plugins_env_chooses_which_load(entry_points, monkeypatch):
    entry_points("one", fake_plugin_module("posembed_fake_one", "p-one"))
    entry_points("two", fake_plugin_module("posembed_fake_two", "p-two"))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "two")
    assert set(get_registry(get_plugin_manager()).providers) == {"alibi", "file", "gpt2", "hf", "sinusoidal", "sinusoidal2d", "t5", "window", "conv", "p-two"}
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    assert set(get_registry(get_plugin_manager()).providers) == {"alibi", "file", "gpt2", "hf", "sinusoidal", "sinusoidal2d", "t5", "window", "conv"}


def test_unknown_provider_lists_what_exists_and_suggests(builtin_registry):
    with pytest.raises(SpecError, match=r"unknown provider 'sinusoid'.*providers: alibi, conv, file, gpt2, hf, sinusoidal, sinusoidal2d, t5.*did you mean 'sinusoidal'"):
        builtin_registry.get("sinusoid")


def module_with(module_name, **functions):
    """A plugin module holding ``functions`` as they are (marked with @hookimpl or not)."""
    module = types.ModuleType(module_name)
    for name, function in functions.items():
        setattr(module, name, function)
    return module


def posembed_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, PosembedWarning)]


@pytest.fixture
def recorded():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield record


def test_misspelled_hook_is_reported_with_the_real_hook_and_the_rest_still_loads(entry_points, recorded):
    @hookimpl
    def register_provider(register):  # noqa: ARG001 - the misspelling is the point
        pass

    entry_points("typo", module_with("posembed_fake_typo", register_provider=register_provider,
                                     register_providers=fake_plugin_module("x", "typo-table").register_providers))
    registry = get_registry(get_plugin_manager())
    [message] = posembed_warnings(recorded)
    assert "plugin 'typo' implements 'register_provider', which is not a posembed hook" in message
    assert "did you mean 'register_providers'?" in message
    assert registry.owners["typo-table"] == "typo"


def test_functions_without_the_hookimpl_marker_are_reported(entry_points, recorded):
    def register_providers(register):
        register(constant_provider("never"))

    entry_points("unmarked", module_with("posembed_fake_unmarked", register_providers=register_providers))
    registry = get_registry(get_plugin_manager())
    [message] = posembed_warnings(recorded)
    assert "plugin 'unmarked'" in message and "implements no posembed hook" in message and "@explorer.hookimpl" in message
    assert "never" not in registry.providers


def test_hook_asking_for_arguments_the_spec_lacks_is_skipped_in_one_line(entry_points, recorded):
    @hookimpl
    def register_providers(register, colour):
        pass

    entry_points("greedy", module_with("posembed_fake_greedy", register_providers=register_providers))
    pm = get_plugin_manager()
    [message] = posembed_warnings(recorded)
    assert message.startswith("plugin 'greedy' (posembed_fake_greedy) failed to register and is skipped")
    assert "colour" in message and "\n" not in message
    assert not pm.has_plugin("greedy") and "greedy" in pm.failures


def test_plugin_that_exits_while_importing_is_skipped(entry_points, recorded, tmp_path, monkeypatch):
    (tmp_path / "posembed_fake_exits.py").write_text("import sys\nsys.exit('no thanks')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_points("exits", "posembed_fake_exits")
    registry = get_registry(get_plugin_manager())
    [message] = posembed_warnings(recorded)
    assert "plugin 'exits'" in message and "SystemExit: no thanks" in message
    assert "sinusoidal" in registry.providers


def test_multi_line_errors_become_one_warning_line(entry_points, recorded):
    @hookimpl
    def register_providers(register):
        raise ValueError("first line\nsecond line")

    entry_points("chatty", module_with("posembed_fake_chatty", register_providers=register_providers))
    get_registry(get_plugin_manager())
    assert posembed_warnings(recorded) == [
        "plugin 'chatty' (posembed_fake_chatty) failed in register_providers and is skipped: "
        "ValueError: first line second line"]


def test_second_plugin_with_a_taken_entry_point_name_is_skipped_naming_both(entry_points, recorded):
    entry_points("twin", fake_plugin_module("posembed_fake_twin_a", "twin-a"), dist="posembed-twin-a")
    entry_points("twin", fake_plugin_module("posembed_fake_twin_b", "twin-b"), dist="posembed-twin-b")
    registry = get_registry(get_plugin_manager())
    [message] = posembed_warnings(recorded)
    assert "plugin 'twin' (posembed-twin-b 1.0) is skipped: a plugin named 'twin' is already loaded from " \
           "posembed-twin-a" == message
    assert "twin-a" in registry.providers and "twin-b" not in registry.providers
    rows = {row["name"]: row for row in describe_plugins(get_plugin_manager(), registry)}
    assert rows["twin"]["error"] is None and rows["twin"]["distribution"] == "posembed-twin-a"
    loser = rows["twin (posembed-twin-b)"]
    assert "already loaded" in loser["error"] and loser["state"] == "clashed"
    assert loser["clashes"] == [{"kind": "plugin", "name": "twin", "kept": "twin"}]
    assert (loser["distribution"], loser["version"]) == ("posembed-twin-b", "1.0")


def test_provider_registered_twice_by_one_plugin_keeps_the_first(entry_points, recorded):
    entry_points("echo", fake_plugin_module("posembed_fake_echo", "echo", "echo"))
    registry = get_registry(get_plugin_manager())
    assert posembed_warnings(recorded) == ["plugin 'echo' registers provider 'echo' twice; keeping the first"]
    assert registry.owners["echo"] == "echo"


def test_registering_something_that_is_not_a_provider_is_reported(entry_points, recorded):
    @hookimpl
    def register_providers(register):
        register("sinusoidal-ish")
        register(constant_provider("real-one"))

    entry_points("sloppy", module_with("posembed_fake_sloppy", register_providers=register_providers))
    registry = get_registry(get_plugin_manager())
    [message] = posembed_warnings(recorded)
    assert "plugin 'sloppy' registered 'sinusoidal-ish', which is not an explorer.Provider" in message
    assert "real-one" in registry.providers


def test_load_plugins_env_takes_distribution_names_too(entry_points, monkeypatch):
    entry_points("short", fake_plugin_module("posembed_fake_short", "p-short"), dist="posembed-short")
    entry_points("other", fake_plugin_module("posembed_fake_other", "p-other"), dist="posembed-other")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", " Posembed_Short ")  # names normalised as pip does
    assert "p-short" in get_registry(get_plugin_manager()).providers
    assert "p-other" not in get_registry(get_plugin_manager()).providers


def test_load_plugins_env_warns_about_names_that_are_not_installed(entry_points, monkeypatch, recorded):
    entry_points("rotary", fake_plugin_module("posembed_fake_rotary", "p-rot"), dist="posembed-rotary")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "rotray")
    registry = get_registry(get_plugin_manager())
    assert posembed_warnings(recorded) == [
        "POSEMBED_LOAD_PLUGINS names 'rotray', which is not an installed plugin; did you mean 'rotary'?"]
    assert "p-rot" not in registry.providers


def test_describe_plugins_gives_distribution_version_hooks_providers_and_failures(entry_points, recorded):
    entry_points("extra", fake_plugin_module("posembed_fake_described", "extra-a", "extra-b"),
                 dist="posembed-extra", version="2.3")
    entry_points("halfway", fake_plugin_module("posembed_fake_half", "half", fail=True), dist="posembed-half")
    entry_points("missing", "posembed_module_that_does_not_exist", dist="posembed-missing")
    rows = {row["name"]: row for row in describe_plugins(get_plugin_manager())}
    assert rows["explorer.providers.sinusoidal"] == {
        "name": "explorer.providers.sinusoidal", "distribution": "posembed-explorer", "version": explorer.__version__,
        "module": "explorer.providers.sinusoidal", "builtin": True, "state": "loaded", "error": None, "clashes": [], "notes": [],
        "hooks": ["register_providers"], "providers": ["sinusoidal"], "analyses": [], "sections": []}
    assert rows["extra"] == {"name": "extra", "distribution": "posembed-extra", "version": "2.3",
                             "module": "posembed_fake_described", "builtin": False,
                             "state": "loaded", "error": None, "clashes": [], "notes": [],
                             "hooks": ["register_providers"], "providers": ["extra-a", "extra-b"],
                             "analyses": [], "sections": []}
    assert "summary" in rows["explorer.analysis.builtin"]["analyses"]
    assert "matrix" in rows["explorer.reporting.sections"]["sections"]
    assert rows["halfway"]["providers"] == [] and "failed in register_providers" in rows["halfway"]["error"]
    assert rows["missing"]["hooks"] == [] and "failed to import" in rows["missing"]["error"]
    # whatever happened to a plugin, its row names its distribution and version
    for name, dist in (("halfway", "posembed-half"), ("missing", "posembed-missing")):
        assert (rows[name]["state"], rows[name]["distribution"], rows[name]["version"]) == ("skipped", dist, "1.0")


def test_trace_env_prints_each_plugin_load_and_hook_call(entry_points, monkeypatch, capsys):
    entry_points("traced", fake_plugin_module("posembed_fake_traced", "traced-table"), dist="posembed-traced")
    monkeypatch.setenv("POSEMBED_TRACE_PLUGINS", "1")
    get_registry(get_plugin_manager())
    lines = capsys.readouterr().err.splitlines()
    assert any(re.fullmatch(r"posembed: trace: loaded plugin 'traced' \(posembed-traced 1\.0\) in [\d.]+ ms", line)
               for line in lines), lines
    assert any(re.fullmatch(r"posembed: trace: register_providers of 'traced' registered traced-table in [\d.]+ ms",
                            line) for line in lines), lines


def test_no_trace_without_the_env(entry_points, capsys):
    entry_points("quiet", fake_plugin_module("posembed_fake_quiet", "quiet-table"))
    get_registry(get_plugin_manager())
    assert capsys.readouterr().err == ""


# --- through the command line ------------------------------------------------------------------------------------

def posembed(*args):
    from click.testing import CliRunner

    from explorer.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plugins_command_lists_distribution_version_hooks_and_providers(entry_points):
    entry_points("extra", fake_plugin_module("posembed_fake_cli_extra", "extra-table"),
                 dist="posembed-extra", version="0.4")
    result = posembed("plugins", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["extra"]["distribution"] == "posembed-extra" and rows["extra"]["version"] == "0.4"
    assert rows["extra"]["hooks"] == ["register_providers"] and rows["extra"]["providers"] == ["extra-table"]
    assert rows["explorer.providers.sinusoidal"]["builtin"] is True
    text = posembed("plugins").stdout
    assert "extra  posembed-extra 0.4\n    hooks: register_providers\n    providers: extra-table\n" in text
    assert "explorer.providers.sinusoidal  posembed-explorer" in text and "(built-in)" in text


def units_module(name, analyses=(), sections=(), fail=False):
    """A plugin module registering analyses and report sections by name (and raising afterwards when ``fail``)."""
    module = types.ModuleType(name)

    @hookimpl
    def register_analyses(register):
        for unit in analyses:
            register(explorer.Analysis(unit, "test", run=lambda context: None))
        if fail:
            raise RuntimeError("boom")

    @hookimpl
    def register_sections(register):
        for unit in sections:
            register(explorer.Section(unit, unit, build=lambda context: None))

    module.register_analyses, module.register_sections = register_analyses, register_sections
    return module


def test_plugins_command_lists_each_plugins_analyses_and_sections(entry_points):
    entry_points("units", units_module("posembed_fake_cli_units", ["wobble", "jitter"], ["wobble", "matrix"]),
                 dist="posembed-units", version="0.5")
    entry_points("flaky", units_module("posembed_fake_cli_flaky", ["flaky"], fail=True), dist="posembed-flaky")
    result = posembed("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    units = rows["units"]
    assert (units["providers"], units["analyses"], units["sections"]) == ([], ["jitter", "wobble"], ["wobble"])
    assert units["state"] == "clashed"  # its section 'matrix' is the built-in one's
    assert units["clashes"] == [{"kind": "section", "name": "matrix", "kept": "explorer.reporting.sections"}]
    # a failing register_analyses hook shows here too, not only when analyze runs it
    assert rows["flaky"]["state"] == "skipped" and rows["flaky"]["analyses"] == []
    assert "failed in register_analyses" in rows["flaky"]["error"]
    text = posembed("plugins").stdout
    assert ("units  posembed-units 0.5\n    clashed: section 'matrix' is kept by plugin 'explorer.reporting.sections'\n"
            "    hooks: register_analyses, register_sections\n    analyses: jitter, wobble\n    sections: wobble\n"
            ) in text
    assert "    hooks: register_analyses\n    analyses: attention, comparison, conv_kernel, cosine_dimensions," in text


def test_plugins_command_with_load_plugins_empty_loads_only_built_ins_and_lists_the_rest_as_excluded(
        entry_points, monkeypatch):
    entry_points("extra", fake_plugin_module("posembed_fake_cli_none", "extra-table"), dist="posembed-extra")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    result = posembed("plugins", "--json")
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows if not row["builtin"]] == ["extra"]
    [extra] = [row for row in rows if not row["builtin"]]
    assert extra["state"] == "excluded" and extra["distribution"] == "posembed-extra" and extra["providers"] == []
    assert all(row["state"] == "loaded" for row in rows if row["builtin"])
    assert "extra  posembed-extra 1.0\n    excluded by POSEMBED_LOAD_PLUGINS\n" in posembed("plugins").stdout


BROKEN = {
    "import": lambda: "posembed_module_that_does_not_exist",
    "hook": lambda: fake_plugin_module("posembed_fake_cli_raises", "half", fail=True),
    "duplicate": lambda: fake_plugin_module("posembed_fake_cli_dup", "sinusoidal"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("command", [["providers"], ["info", "sinusoidal,positions=8,dim=4"]], ids=" ".join)
def test_a_broken_plugin_is_one_warning_line_and_every_command_still_works(entry_points, kind, command):
    entry_points("broken", BROKEN[kind]())
    result = posembed(*command)
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("posembed: warning: ") and "'broken'" in line
    assert result.stdout


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_posembed_plugins_says_what_happened_to_a_broken_plugin_once(entry_points, kind):
    entry_points("broken", BROKEN[kind]())
    result = posembed("plugins")
    assert result.exit_code == 0 and result.stderr == ""  # listed below its name, not warned as well
    block = re.split(r"\n(?=\S)", result.stdout.split("\nbroken ")[1])[0]
    assert len(re.findall(r"^    (?:skipped|clashed): ", block, flags=re.M)) == 1, block
    [row] = [r for r in json.loads(posembed("plugins", "--json").stdout) if r["name"] == "broken"]
    assert row["state"] in ("skipped", "clashed") and (row["error"] or row["clashes"])


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_plugin_is_named_on_every_run_and_the_builtins_still_work(entry_points, kind):
    entry_points("broken", BROKEN[kind]())
    for _ in range(2):  # each run is a new process: its registry imports every plugin again
        plugins_registry.reset()
        result = posembed("info", "sinusoidal,positions=8,dim=4")
        assert result.exit_code == 0 and "value_min" in result.stdout
        [line] = result.stderr.splitlines()
        assert line.startswith("posembed: warning: ") and "'broken'" in line


def test_help_and_version_load_no_plugin(monkeypatch):
    def refuse(group):
        raise AssertionError("entry points were read")

    monkeypatch.setattr("explorer.plugins.selection.metadata.entry_points", refuse)
    for args in (["--help"], ["--version"], ["plugins", "--help"], ["report", "--help"], ["providers", "--help"]):
        result = posembed(*args)
        assert result.exit_code == 0, (args, result.output)
