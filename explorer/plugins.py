"""The plugin manager and the provider registry built from it.

Built-in providers are registered exactly like third-party plugins: a module with
``@hookimpl`` functions. Third-party plugins are entry points of group ``posembed``,
loaded only when a command needs providers. A broken plugin (it fails to import,
raises inside its hook, or registers a name that is taken) is reported as one
warning line and skipped, never fatal.

Environment:

- ``POSEMBED_LOAD_PLUGINS``: comma-separated entry-point or distribution names of the
  installed plugins to load; set but empty loads none. Built-ins always load.
- ``POSEMBED_TRACE_PLUGINS=1``: print one line to stderr per plugin loaded and per
  hook called, with its duration.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from typing import Any, Iterable

import pluggy

from explorer import __version__, environment, hookspecs
from explorer.errors import DuplicateProviderError, PluginError, PosembedWarning, SpecError
from explorer.provider import Provider, _closest
from explorer.units import Analysis, Section, in_order

ENTRY_POINT_GROUP = "posembed"
LOAD_PLUGINS_ENV = "POSEMBED_LOAD_PLUGINS"
TRACE_PLUGINS_ENV = "POSEMBED_TRACE_PLUGINS"
#: The distribution the built-in plugins ship in.
DISTRIBUTION = "posembed-explorer"

#: Built-in provider modules, registered in this order (so they win name clashes).
BUILTIN_PLUGINS = (
    "explorer.providers.sinusoidal",
    "explorer.providers.huggingface",
    "explorer.providers.files",
    "explorer.analysis.builtin",
    "explorer.reporting.sections",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from: its distribution and version (``builtin`` for the core's own)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from (``info``) and which were skipped (``failures``)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.info: dict[str, PluginInfo] = {}
        #: Plugin name -> why it was skipped (failed to import, to register, or inside its hook).
        self.failures: dict[str, str] = {}
        self.tracing = environment.flag(TRACE_PLUGINS_ENV)

    def hook_names(self, plugin: object) -> list[str]:
        """Names of the hooks ``plugin`` implements (spec'd or not), sorted."""
        return sorted({caller.name for caller in self.get_hookcallers(plugin) or []})

    def skip(self, plugin: str, reason: str) -> None:
        """Record that ``plugin`` is skipped and say so in one warning line."""
        self.failures[plugin] = reason
        warn(reason)

    # Not ``trace``: pluggy's manager already has a ``trace`` attribute (its TagTracer).
    def trace_event(self, message: str) -> None:
        """One line on stderr when ``POSEMBED_TRACE_PLUGINS`` is set."""
        if self.tracing:
            sys.stderr.write(f"posembed: trace: {message}\n")
            sys.stderr.flush()


def warn(message: str) -> None:
    """Issue a PosembedWarning of exactly one line (plugin errors may span several)."""
    warnings.warn(PosembedWarning(" ".join(str(message).split())), stacklevel=3)


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A plugin manager with the hook specs, the built-in providers and (optionally) installed plugins.

    ``POSEMBED_LOAD_PLUGINS`` limits which installed plugins load: a comma-separated list of
    entry-point or distribution names; set but empty loads none. Built-ins always load.
    Implementations of hooks that do not exist are reported (pluggy's ``check_pending``).
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        pm.info[module_name] = PluginInfo(module_name, DISTRIBUTION, __version__, builtin=True)
    if load_entrypoints:
        _load_entrypoints(pm)
    report_pending(pm)
    return pm


def report_pending(pm: pluggy.PluginManager) -> list[str]:
    """Warn once per hook implementation that matches no hook spec; return the warnings.

    This is ``pm.check_pending()`` made gentle: it names every such implementation (not
    only the first) with the closest real hook, and the plugin's other hooks keep working.
    """
    known = sorted(name for name, caller in vars(pm.hook).items() if not name.startswith("_") and caller.has_spec())
    messages = []
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            messages.append(f"plugin {impl.plugin_name!r} implements {name!r}, which is not a posembed hook and "
                            f"is never called (hooks: {', '.join(known)}){_closest(name, known)}")
    for message in messages:
        warn(message)
    return messages


def _normalize(name: str) -> str:
    """Distribution names compare case-insensitively with '-', '_' and '.' alike (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted() -> set[str] | None:
    raw = environment.text(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {_normalize(part.strip()) for part in raw.split(",") if part.strip()}


def _describe(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _load_entrypoints(pm: PluginManager) -> None:
    wanted = _wanted()
    installed = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if wanted:
        names = {_normalize(ep.name) for ep in installed} | {
            _normalize(dist) for dist, _ in map(_describe, installed) if dist}
        for name in sorted(wanted - names):
            warn(f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed plugin"
                 f"{_closest(name, sorted(names))}")
    for ep in installed:
        dist_name, version = _describe(ep)
        if wanted is not None and not wanted & {_normalize(ep.name), _normalize(dist_name or "")}:
            continue
        where = f"{ep.name!r} ({dist_name or ep.value})"
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            earlier = pm.info.get(ep.name)
            # keyed apart from the plugin that holds the name, which is loaded and well
            pm.skip(f"{ep.name} ({dist_name or ep.value})",
                    f"plugin {where} is skipped: a plugin named {ep.name!r} is already loaded"
                    f"{f' from {earlier.distribution}' if earlier and earlier.distribution else ''}")
            continue
        started = time.perf_counter()
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # one broken plugin must not stop the tool
            pm.skip(ep.name, f"plugin {where} failed to import and is skipped: {type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (Exception, SystemExit) as exc:  # a hook with arguments its spec lacks, a plugin object twice
            if pm.get_plugin(ep.name) is plugin:  # pluggy keeps the name and any hooks it validated before failing
                pm.unregister(name=ep.name)
            pm.skip(ep.name, f"plugin {where} failed to register and is skipped: {type(exc).__name__}: {exc}")
            continue
        pm.info[ep.name] = PluginInfo(ep.name, dist_name, version)
        origin = " ".join(filter(None, (dist_name or ep.value, version)))
        pm.trace_event(f"loaded plugin {ep.name!r} ({origin}) in {1000 * (time.perf_counter() - started):.1f} ms")
        if not pm.get_hookcallers(plugin):
            warn(f"plugin {where} implements no posembed hook: are its functions decorated with "
                 f"@explorer.hookimpl?")


@dataclass
class Registry:
    """Every registered provider by name with the plugin that registered it; the analyses and report sections.

    Analyses and sections are collected on first use (``posembed providers`` never asks for them). Without a
    plugin manager, they are the built-in ones.
    """

    providers: dict[str, Provider] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    pm: PluginManager | None = None

    def add(self, provider: Any, plugin: str) -> None:
        """Record ``provider`` from ``plugin``; raise if it is not a Provider or its name is taken."""
        if not isinstance(provider, Provider):
            raise PluginError(f"plugin {plugin!r} registered {provider!r}, which is not an explorer.Provider; "
                              f"it is skipped")
        if provider.name in self.providers:
            owner = self.owners[provider.name]
            if owner == plugin:
                raise DuplicateProviderError(f"plugin {plugin!r} registers provider {provider.name!r} twice; "
                                             f"keeping the first")
            raise DuplicateProviderError(
                f"provider {provider.name!r} is registered by both plugin {owner!r} "
                f"and plugin {plugin!r}; keeping the one from {owner!r}"
            )
        self.providers[provider.name] = provider
        self.owners[provider.name] = plugin

    def drop_plugin(self, plugin: str) -> None:
        """Forget every provider that ``plugin`` registered (it failed half-way)."""
        for name in [n for n, owner in self.owners.items() if owner == plugin]:
            del self.providers[name], self.owners[name]

    def of_plugin(self, plugin: str) -> list[str]:
        """Names of the providers ``plugin`` registered, sorted."""
        return sorted(n for n, owner in self.owners.items() if owner == plugin)

    def get(self, name: str) -> Provider:
        """The provider called ``name``, or SpecError listing what exists and the closest name."""
        try:
            return self.providers[name]
        except KeyError:
            known = sorted(self.providers)
            raise SpecError(
                f"unknown provider {name!r} (providers: {', '.join(known) or 'none'}){_closest(name, known)}"
            ) from None

    def __iter__(self) -> Iterable[Provider]:
        return iter(self.providers[name] for name in sorted(self.providers))

    def __len__(self) -> int:
        return len(self.providers)

    @cached_property
    def analyses(self) -> list[Analysis]:
        """Every registered analysis (``register_analyses``), built-ins first."""
        if self.pm is None:
            from explorer.analysis.builtin import builtin_analyses

            return builtin_analyses()
        return _collect_units(self.pm, "register_analyses", Analysis)

    @cached_property
    def sections(self) -> list[Section]:
        """Every registered report section (``register_sections``), in page order."""
        if self.pm is None:
            from explorer.reporting.sections import builtin_sections

            return in_order(builtin_sections())
        return in_order(_collect_units(self.pm, "register_sections", Section))


def _call_each(pm: pluggy.PluginManager, hook: str, make_register: Any, forget: Any, names_of: Any) -> None:
    """Call ``hook`` of each plugin on its own, with ``make_register(plugin)`` as its ``register``.

    A failure is pinned on that plugin, reported as one warning and does not affect the others; ``forget(plugin)``
    then drops what it had registered, so a plugin whose hook raises is skipped whole; ``names_of(plugin)`` names
    what it registered, for the trace.
    """
    # get_hookimpls() is in registration order: built-ins first, so they keep their names.
    for impl in getattr(pm.hook, hook).get_hookimpls():
        plugin = impl.plugin_name
        register = make_register(plugin)
        started = time.perf_counter()
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except (Exception, SystemExit) as exc:
            forget(plugin)
            reason = f"plugin {plugin!r} failed in {hook} and is skipped: {type(exc).__name__}: {exc}"
            if isinstance(pm, PluginManager):
                pm.skip(plugin, reason)
            else:
                warn(reason)
            continue
        if isinstance(pm, PluginManager):
            pm.trace_event(f"{hook} of {plugin!r} registered {', '.join(names_of(plugin)) or 'nothing'} "
                           f"in {1000 * (time.perf_counter() - started):.1f} ms")


def get_registry(pm: PluginManager | None = None) -> Registry:
    """Collect providers from every plugin's ``register_providers`` hook, one plugin at a time.

    Each plugin's hook runs on its own so a failure or a duplicate name is pinned on that
    plugin, reported as a warning, and does not affect the others. A plugin whose hook
    raises is skipped whole: none of its providers are kept.
    """
    pm = pm or get_plugin_manager()
    registry = Registry(pm=pm)

    def make_register(plugin: str):
        def register(provider: Any) -> None:
            try:
                registry.add(provider, plugin)
            except PluginError as exc:
                warn(str(exc))
        return register

    _call_each(pm, "register_providers", make_register, registry.drop_plugin, registry.of_plugin)
    return registry


def _collect_units(pm: pluggy.PluginManager, hook: str, kind: type) -> list:
    """What every plugin registers through ``hook`` (analyses or sections), each name once, first one kept.

    A third-party unit is marked with its plugin's name, so that its failure at run time is reported and
    skipped rather than stopping the work (``explorer.units.guarded``).
    """
    units: dict[str, Any] = {}
    owners: dict[str, str] = {}
    noun = kind.__name__.lower()

    def make_register(plugin: str):
        builtin = isinstance(pm, PluginManager) and pm.info.get(plugin, PluginInfo(plugin)).builtin

        def register(unit: Any) -> None:
            if not isinstance(unit, kind):
                warn(f"plugin {plugin!r} registered {unit!r}, which is not an explorer.{kind.__name__}; it is skipped")
            elif unit.name in units:
                warn(f"{noun} {unit.name!r} is registered by both plugin {owners[unit.name]!r} and plugin "
                     f"{plugin!r}; keeping the one from {owners[unit.name]!r}")
            else:
                units[unit.name] = unit if builtin else dataclasses.replace(unit, plugin=plugin)
                owners[unit.name] = plugin
        return register

    def forget(plugin: str) -> None:
        for name in [n for n, owner in owners.items() if owner == plugin]:
            del units[name], owners[name]

    _call_each(pm, hook, make_register, forget, lambda plugin: [n for n, owner in owners.items() if owner == plugin])
    return list(units.values())


def describe_plugins(pm: PluginManager, registry: Registry | None = None) -> list[dict[str, Any]]:
    """One JSON-able row per plugin, loaded or skipped: name, distribution, version, hooks, providers."""
    registry = registry if registry is not None else get_registry(pm)
    rows = []
    for name, plugin in pm.list_name_plugin():
        info = pm.info.get(name, PluginInfo(name))
        rows.append({
            "name": name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "hooks": pm.hook_names(plugin),
            "providers": registry.of_plugin(name),
            "error": pm.failures.get(name),
        })
    loaded = {row["name"] for row in rows}
    for name, reason in pm.failures.items():
        if name not in loaded:
            rows.append({"name": name, "distribution": None, "version": None, "builtin": False,
                         "hooks": [], "providers": [], "error": reason})
    return rows
