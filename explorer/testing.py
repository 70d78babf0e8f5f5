"""Helpers for testing a posembed plugin, shipped with posembed so a plugin's own tests can use them.

- ``registry_with(plugin, ...)``: the built-ins plus your plugin module, registered exactly as an installed entry
  point is (the same checks, the same warnings), without installing anything; pass it as ``registry=`` to
  ``explorer.load``, ``analyze`` or ``report``. ``load(spec, plugin)`` is the one-line version.
- ``providing(provider, ...)``: a plugin module made in memory that registers those providers (to fake a table).
- ``installed(plugin)``: your plugin looks installed (an entry point of group ``posembed`` in a distribution of its
  own, written to a temporary folder on ``sys.path``) for as long as the ``with`` lasts, so the command line and
  ``explorer.load`` find it the way they would after ``pip install``.
- ``check_fast_start("your_module")``: in a fresh interpreter, imports your plugin and registers it, running
  every hook it implements (providers, analyses, sections); raises ``AssertionError`` if that imported torch, transformers or bokeh, or took
  longer than the slow-import warning's threshold.

This module imports nothing heavy and nothing from pytest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from explorer.plugins import manager, registry, selection

if TYPE_CHECKING:
    from explorer.core.embedding import PositionEmbedding

#: What a plugin must not import to be registered: ``posembed --help`` and ``providers`` stay fast without them.
HEAVY = ("torch", "transformers", "bokeh")


def _name_of(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def registry_with(*plugin_objects: Any, name: str | None = None) -> registry.Registry:
    """A registry of the built-ins plus ``plugin_objects`` (modules, or objects with ``@hookimpl`` methods), each
    registered as an installed plugin is, under ``name`` (one plugin) or its ``__name__``; no installed plugin is
    imported."""
    if name is not None and len(plugin_objects) != 1:
        raise TypeError("name= names one plugin")
    pm = manager.PluginManager.with_builtins()
    for plugin in plugin_objects:
        plugin_name = name or _name_of(plugin)
        manager.register_plugin(pm, plugin, manager.PluginInfo(plugin_name, module=_name_of(plugin)))
    return registry.Registry(pm)


def providing(*providers: Any, name: str = "posembed_test_providers") -> types.ModuleType:
    """A plugin module (made in memory) whose ``register_providers`` registers ``providers``: give it to
    ``registry_with``, ``load`` or ``installed`` to fake a provider without patching posembed."""
    from explorer.plugins.hookspecs import hookimpl

    module = types.ModuleType(name)

    @hookimpl
    def register_providers(register: Any) -> None:
        for provider in providers:
            register(provider)

    module.register_providers = register_providers  # type: ignore[attr-defined]
    return module


def load(spec: str, *plugin_objects: Any, **params: Any) -> "PositionEmbedding":
    """``explorer.load(spec)`` with the built-ins plus ``plugin_objects`` as the only plugins."""
    from explorer.loading.load import load as load_spec

    return load_spec(spec, registry=registry_with(*plugin_objects), **params)


@contextmanager
def installed(plugin: types.ModuleType | str, name: str | None = None, distribution: str | None = None,
              version: str = "0.0.0") -> Iterator[str]:
    """Make ``plugin`` (a module, or the name of an importable one) an installed plugin while the block runs.

    The entry point is ``name`` (default: the module's name with ``_`` as ``-``, less a ``posembed-`` prefix), in
    a distribution called ``distribution`` (default ``posembed-<name>``) at ``version``. The process's registry is
    reset on entry and exit, so the next ``explorer.load`` or command sees exactly what is installed. Yields the
    entry-point name.
    """
    module_name = plugin if isinstance(plugin, str) else plugin.__name__
    ep_name = name or re.sub(r"^posembed-", "", module_name.replace("_", "-"))
    dist_name = distribution or f"posembed-{ep_name}"
    folder = tempfile.mkdtemp(prefix="posembed-installed-")
    info = os.path.join(folder, f"{re.sub(r'[-.]+', '_', dist_name)}-{version}.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    with open(os.path.join(info, "entry_points.txt"), "w", encoding="utf-8") as handle:
        handle.write(f"[{selection.ENTRY_POINT_GROUP}]\n{ep_name} = {module_name}\n")
    added = not isinstance(plugin, str) and sys.modules.get(module_name) is not plugin
    previous = sys.modules.get(module_name)
    if added:
        sys.modules[module_name] = plugin  # type: ignore[assignment]
    sys.path.append(folder)
    registry.reset()
    try:
        yield ep_name
    finally:
        sys.path.remove(folder)
        if added:
            if previous is None:
                sys.modules.pop(module_name, None)
            else:
                sys.modules[module_name] = previous
        registry.reset()
        shutil.rmtree(folder, ignore_errors=True)


_FAST_START = """
import json, sys, time, warnings
warnings.simplefilter("always")
started = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])
seconds = time.perf_counter() - started
from explorer.plugins.manager import PluginInfo, PluginManager, register_plugin
from explorer.plugins.registry import Registry
with warnings.catch_warnings(record=True) as caught:
    pm = PluginManager()  # the plugin alone: the built-in sections would import Bokeh themselves
    register_plugin(pm, module, PluginInfo(sys.argv[1], module=sys.argv[1]))
    registry = Registry(pm)  # every hook runs: providers now, analyses and sections when asked
    providers = sorted(registry.providers)
    analyses, sections = [a.name for a in registry.analyses], [s.name for s in registry.sections]
print(json.dumps({"seconds": seconds, "modules": sorted(sys.modules), "providers": providers,
                  "analyses": analyses, "sections": sections, "warnings": [str(w.message) for w in caught]}))
"""


def check_fast_start(module: str, heavy: tuple[str, ...] = HEAVY, max_seconds: float | None = None,
                     timeout: float = 120) -> dict[str, Any]:
    """Import plugin ``module`` and register it, running every hook it implements (``register_providers``,
    ``register_analyses``, ``register_sections``), in a fresh interpreter with this one's ``sys.path``; return what
    happened (``seconds``, ``providers``, ``analyses``, ``sections``, ``warnings``, ``modules``).

    Raises ``AssertionError`` naming the modules of ``heavy`` that were imported, a warning posembed gave about the
    plugin, or an import slower than ``max_seconds`` (default: the slow-import warning's threshold).
    """
    limit = manager.SLOW_IMPORT_SECONDS if max_seconds is None else max_seconds
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _FAST_START, module], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if done.returncode != 0:
        raise AssertionError(f"importing and registering {module} failed:\n{done.stderr.strip()}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = [name for name in heavy if name in found["modules"]]
    if loaded:
        raise AssertionError(f"registering {module} imported {', '.join(loaded)}: import them inside load, build "
                             f"or run, not at the top of the module (python -X importtime -c 'import {module}' "
                             f"shows who imports them)")
    if found["warnings"]:
        raise AssertionError(f"registering {module} gave warnings: {'; '.join(found['warnings'])}")
    if found["seconds"] > limit:
        raise AssertionError(f"importing {module} took {found['seconds']:.2f} s (limit {limit:g} s)")
    return found
