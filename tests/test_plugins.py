"""The plugin manager: built-ins as ordinary plugins, entry points, broken and duplicate plugins."""

import sys
import types
from importlib import metadata

import numpy as np
import pytest

from explorer import hookimpl
from explorer.embedding import PositionEmbedding
from explorer.errors import PosembedWarning, SpecError
from explorer.plugins import get_plugin_manager, get_registry
from explorer.provider import Provider


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


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake entry points of group 'posembed'; returns a function taking (ep_name, module)."""
    installed = []

    def add(ep_name, module_or_value):
        if isinstance(module_or_value, types.ModuleType):
            monkeypatch.setitem(sys.modules, module_or_value.__name__, module_or_value)
            value = module_or_value.__name__
        else:
            value = module_or_value
        installed.append(metadata.EntryPoint(ep_name, value, "posembed"))

    monkeypatch.setattr("explorer.plugins.metadata.entry_points",
                        lambda group: [ep for ep in installed if ep.group == group])
    monkeypatch.delenv("POSEMBED_LOAD_PLUGINS", raising=False)
    return add


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
    with pytest.warns(PosembedWarning, match="plugin 'broken'.*failed to load"):
        registry = get_registry(get_plugin_manager())
    assert "sinusoidal" in registry.providers


def test_plugin_that_raises_in_its_hook_is_skipped_whole(entry_points):
    entry_points("halfway", fake_plugin_module("posembed_fake_halfway", "half-a", fail=True))
    with pytest.warns(PosembedWarning, match="plugin 'halfway' failed in register_providers"):
        registry = get_registry(get_plugin_manager())
    assert "half-a" not in registry.providers
    assert "sinusoidal" in registry.providers


def test_load_plugins_env_chooses_which_load(entry_points, monkeypatch):
    entry_points("one", fake_plugin_module("posembed_fake_one", "p-one"))
    entry_points("two", fake_plugin_module("posembed_fake_two", "p-two"))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "two")
    assert set(get_registry(get_plugin_manager()).providers) == {"sinusoidal", "p-two"}
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    assert set(get_registry(get_plugin_manager()).providers) == {"sinusoidal"}


def test_unknown_provider_lists_what_exists_and_suggests(builtin_registry):
    with pytest.raises(SpecError, match=r"unknown provider 'sinusoid'.*providers: sinusoidal.*did you mean 'sinusoidal'"):
        builtin_registry.get("sinusoid")
