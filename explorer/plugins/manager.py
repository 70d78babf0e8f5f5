"""The plugin manager: the hook specs, the built-in plugins, then every installed plugin, imported as it is built.

As in simonw/llm and datasette, ``get_plugin_manager()`` imports the plugins there and then: built-ins first (they
are ordinary plugins, registered exactly as a third party's), then the entry points of group ``posembed`` that
``POSEMBED_LOAD_PLUGINS`` allows (``explorer.plugins.selection``). Plugins are required to import cheaply
(``explorer.testing.check_fast_start``); one that takes longer than ``SLOW_IMPORT_SECONDS`` is named in a warning.
A broken plugin (it fails to import or to register) is one warning line naming its distribution and version, on
every run that builds the manager, and is skipped, never fatal. Where a plugin stands is kept here for
``posembed plugins``.

``POSEMBED_TRACE_PLUGINS=1`` prints one line to stderr per plugin loaded and per hook called, with its duration.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

import pluggy

from explorer import __version__
from explorer.plugins import hookspecs
from explorer.plugins.selection import (DISTRIBUTION, Selection, distribution_of, installed_entry_points,
                                        plugin_files)
from explorer.runtime import environment
from explorer.runtime.console import did_you_mean, warn

TRACE_PLUGINS_ENV = "POSEMBED_TRACE_PLUGINS"
#: A plugin whose import takes longer than this gets one warning naming it and the time it took.
SLOW_IMPORT_SECONDS = 0.5

#: Built-in plugin modules, registered in this order (so they win name clashes). The analyses and the report
#: sections are each one plugin that finds its units by walking its package (``explorer.plugins.discovery``).
BUILTIN_PLUGINS = (
    "explorer.providers.sinusoidal",
    "explorer.providers.huggingface",
    "explorer.providers.files",
    "explorer.analysis.builtin",
    "explorer.reporting.sections",
    "explorer.providers.t5",
    "explorer.providers.alibi",
    "explorer.providers.sinusoidal2d",
    "explorer.providers.window",
    "explorer.providers.conv",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: its distribution and version (``posembed-explorer`` for the built-ins)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    module: str | None = None
    """The entry point's value (the module posembed imports), for a plugin installed without metadata."""

    @property
    def origin(self) -> str:
        """``posembed-vit 0.1.0``; the module when there is no distribution; never empty."""
        return " ".join(filter(None, (self.distribution, self.version))) or self.module or "unknown distribution"

    @classmethod
    def of(cls, ep: metadata.EntryPoint) -> "PluginInfo":
        """The info of an installed entry point."""
        return cls(ep.name, *distribution_of(ep), module=ep.value)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what happened to each plugin: where it came from, and whether it was skipped,
    clashed or was excluded."""

    def __init__(self, warn: bool = True) -> None:
        super().__init__(hookspecs.PROJECT)
        #: Whether what happens to a plugin is also said as a warning (``posembed plugins`` lists it instead).
        self.warns = warn
        self.add_hookspecs(hookspecs)
        #: Plugin name -> where it came from, for every plugin tried (registered, skipped or clashed).
        self.info: dict[str, PluginInfo] = {}
        #: Plugin name -> why it was skipped (failed to import, to register, or inside its hook).
        self.failures: dict[str, str] = {}
        #: Plugin name -> the names it lost to an earlier plugin: ``{"kind", "name", "kept"}``.
        self.clashes: dict[str, list[dict[str, str]]] = {}
        #: Plugin name -> other one-line notes (a provider skipped for its signature, a slow import).
        self.notes: dict[str, list[str]] = {}
        #: Installed plugins that POSEMBED_LOAD_PLUGINS leaves out, by entry-point name.
        self.excluded: dict[str, PluginInfo] = {}

    @classmethod
    def with_builtins(cls, warn: bool = True) -> "PluginManager":
        """A manager holding the hook specs and the built-in plugins."""
        pm = cls(warn)
        for module_name in BUILTIN_PLUGINS:
            pm.info[module_name] = PluginInfo(module_name, DISTRIBUTION, __version__, True, module_name)
            pm.register(importlib.import_module(module_name), name=module_name)
        return pm

    def rank(self, plugin: str) -> int:
        """``plugin``'s place in the order that decides name clashes: the order plugins were tried in."""
        return list(self.info).index(plugin) if plugin in self.info else len(self.info)

    @property
    def tracing(self) -> bool:
        """``POSEMBED_TRACE_PLUGINS`` as set now."""
        return environment.flag(TRACE_PLUGINS_ENV)

    def hook_names(self, plugin: object) -> list[str]:
        """Names of the hooks ``plugin`` implements (spec'd or not), sorted."""
        return sorted({caller.name for caller in self.get_hookcallers(plugin) or []})

    def origin(self, plugin: str) -> str:
        """``posembed-vit 0.1.0``: the distribution and version ``plugin`` came from (see ``PluginInfo.origin``)."""
        return self.info.get(plugin, PluginInfo(plugin)).origin

    def where(self, plugin: str) -> str:
        """``'vit' (posembed-vit 0.1.0)``: a plugin as every message names it."""
        return f"{plugin!r} ({self.origin(plugin)})"

    def is_builtin(self, plugin: str) -> bool:
        """Whether ``plugin`` is one of posembed's own."""
        return self.info.get(plugin, PluginInfo(plugin)).builtin

    def say(self, message: str) -> None:
        """One warning line about a plugin, unless this manager only records (``warns`` is False)."""
        if self.warns:
            warn(message, stacklevel=4)

    def skip(self, plugin: str, reason: str) -> None:
        """Record that ``plugin`` is skipped and say so in one warning line."""
        self.failures[plugin] = reason
        self.say(reason)

    def clash(self, plugin: str, kind: str, name: str, kept: str) -> None:
        """Record that ``plugin`` lost the ``kind`` called ``name`` to plugin ``kept`` (the warning is the caller's)."""
        record = {"kind": kind, "name": name, "kept": kept}
        if record not in self.clashes.setdefault(plugin, []):
            self.clashes[plugin].append(record)

    def note(self, plugin: str, message: str) -> None:
        """Record a one-line note about ``plugin`` and say it as a warning."""
        self.notes.setdefault(plugin, []).append(message)
        self.say(message)

    # Not ``trace``: pluggy's manager already has a ``trace`` attribute (its TagTracer).
    def trace_event(self, message: str) -> None:
        """One line on stderr when ``POSEMBED_TRACE_PLUGINS`` is set."""
        if self.tracing:
            sys.stderr.write(f"posembed: trace: {message}\n")
            sys.stderr.flush()


def register_plugin(pm: PluginManager, plugin: object, info: PluginInfo) -> bool:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) as an installed plugin would be, after
    those registered before it in the clash order; False (with one warning) when pluggy refuses it."""
    name = info.name
    pm.info[name] = info
    try:
        pm.register(plugin, name=name)
    except (Exception, SystemExit) as exc:  # a hook with arguments its spec lacks, a plugin object twice
        if pm.get_plugin(name) is plugin:  # pluggy keeps the name and any hooks it validated before failing
            pm.unregister(name=name)
        pm.skip(name, f"plugin {pm.where(name)} failed to register and is skipped: {type(exc).__name__}: {exc}")
        return False
    if not pm.get_hookcallers(plugin):
        pm.note(name, f"plugin {pm.where(name)} implements no posembed hook: are its functions decorated with "
                      f"@explorer.hookimpl?")
    report_pending(pm, {name})
    return True


def load_plugin(pm: PluginManager, info: PluginInfo, where: str, importer: Callable[[], object]) -> str | None:
    """Import a plugin (``importer()``) and register it under ``info.name``; its name, or None when it was skipped
    (and reported): its name was taken (``where`` tells it apart), it failed to import or to register."""
    name = info.name
    if pm.has_plugin(name) or pm.is_blocked(name):
        key = f"{name} ({where})"  # keyed apart from the plugin that holds the name
        earlier = pm.info.get(name)
        pm.info[key] = dataclasses.replace(info, name=key)
        pm.clash(key, "plugin", name, name)
        pm.skip(key, f"plugin {name!r} ({info.origin}) is skipped: a plugin named {name!r} is already loaded"
                     f"{f' from {earlier.distribution}' if earlier and earlier.distribution else ''}")
        return None
    started = time.perf_counter()
    try:
        plugin = importer()
    except (Exception, SystemExit) as exc:  # one broken plugin must not stop the tool
        pm.info[name] = info
        pm.skip(name, f"plugin {pm.where(name)} failed to import and is skipped: {type(exc).__name__}: {exc}")
        return None
    seconds = time.perf_counter() - started
    if not register_plugin(pm, plugin, info):
        return None
    pm.trace_event(f"loaded plugin {name!r} ({info.origin}) in {1000 * seconds:.1f} ms")
    if seconds > SLOW_IMPORT_SECONDS:
        pm.note(name, f"plugin {pm.where(name)} took {seconds:.1f} s to import, which every command that loads "
                      f"plugins pays (import heavy libraries inside load)")
    return name


def load_entry_point(pm: PluginManager, ep: metadata.EntryPoint) -> str | None:
    """Import and register one installed entry point (see ``load_plugin``)."""
    info = PluginInfo.of(ep)
    return load_plugin(pm, info, info.distribution or ep.value, ep.load)


def load_file(pm: PluginManager, path: Path) -> str | None:
    """Import and register one single-file plugin of ``POSEMBED_PLUGINS_DIR``, named by its file (``decay.py`` is
    plugin ``decay``, from that path), with the isolation of an installed plugin (see ``load_plugin``)."""

    def importer() -> object:
        module_name = f"posembed_plugins_dir.{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # as an import would: dataclasses and pickling look the module up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    return load_plugin(pm, PluginInfo(path.stem, module=str(path)), str(path), importer)


def get_plugin_manager(load_entrypoints: bool = True, warn: bool = True) -> PluginManager:
    """A plugin manager with the hook specs, the built-in plugins and (optionally) every installed plugin that
    ``POSEMBED_LOAD_PLUGINS`` allows, imported now.

    Implementations of hooks that do not exist are reported (pluggy's ``check_pending``, made gentle). With
    ``warn=False`` what happens to each plugin is only recorded (for ``posembed plugins``, which lists it).
    """
    pm = PluginManager.with_builtins(warn)
    if not load_entrypoints:
        return pm
    selection = Selection.from_environment()
    installed = installed_entry_points()
    selection.check(installed, BUILTIN_PLUGINS)
    for ep in sorted(installed, key=selection.order):  # stable: by entry-point name where the user chose no order
        if selection.allows(ep):
            load_entry_point(pm, ep)
        else:
            pm.excluded.setdefault(ep.name, PluginInfo.of(ep))
    for path in plugin_files():
        load_file(pm, path)
    return pm



def report_pending(pm: PluginManager, plugins: Iterable[str] | None = None) -> list[str]:
    """Warn once per hook implementation that matches no hook spec (of ``plugins``, or of all); return the warnings.

    This is ``pm.check_pending()`` made gentle: it names every such implementation (not
    only the first) with the closest real hook, and the plugin's other hooks keep working.
    """
    only = None if plugins is None else set(plugins)
    known = sorted(name for name, caller in vars(pm.hook).items() if not name.startswith("_") and caller.has_spec())
    messages = []
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook or (only is not None and impl.plugin_name not in only):
                continue
            messages.append((impl.plugin_name, f"plugin {impl.plugin_name!r} implements {name!r}, which is not a "
                             f"posembed hook and is never called (hooks: {', '.join(known)}){did_you_mean(name, known)}"))
    for plugin, message in messages:
        pm.note(plugin, message)
    return [message for _, message in messages]


__all__ = ["BUILTIN_PLUGINS", "SLOW_IMPORT_SECONDS", "TRACE_PLUGINS_ENV", "PluginInfo", "PluginManager",
           "get_plugin_manager", "load_entry_point", "load_file", "register_plugin", "report_pending"]
