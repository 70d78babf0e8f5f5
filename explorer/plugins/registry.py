"""The registry: every provider by name with the plugin that registered it, the analyses and the report sections.

A registry is made from a plugin manager whose plugins are all imported (``explorer.plugins.manager``): providers
are collected when it is made, analyses and sections the first time they are asked for (the built-in ones import
numpy and Bokeh). ``get_registry()`` is the process's registry, built once per value of ``POSEMBED_LOAD_PLUGINS``.
Names are kept by the first plugin in the clash order (built-ins first, then installed plugins as
``get_plugin_manager`` registered them); every clash is one warning and is recorded for ``posembed plugins``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator

from explorer.errors import DuplicateProviderError, PluginError, SpecError
from explorer.plugins.manager import PluginInfo, PluginManager, get_plugin_manager
from explorer.plugins.provider import Provider
from explorer.plugins.selection import LOAD_PLUGINS_ENV, PLUGINS_DIR_ENV, Selection, normalize
from explorer.plugins.units import Analysis, Section, in_order
from explorer.runtime import environment
from explorer.runtime.console import did_you_mean, warn


class Registry:
    """Every provider by name with the plugin that registered it; the analyses and report sections of ``pm``'s
    plugins (default: the built-ins alone)."""

    def __init__(self, pm: PluginManager | None = None) -> None:
        self.pm = pm if pm is not None else PluginManager.with_builtins()
        self.providers: dict[str, Provider] = {}
        self.owners: dict[str, str] = {}
        self._units: dict[str, tuple[list, dict[str, str]]] = {}
        call_each(self.pm, "register_providers", self._register_provider, self.drop_plugin, self.of_plugin)

    # -- providers ------------------------------------------------------------------------------------------------

    def add(self, provider: Any, plugin: str) -> None:
        """Record ``provider`` from ``plugin``; raise PluginError if it is not a Provider, its ``load`` does not
        match its parameters, or its name is taken (the plugin earlier in the order keeps it)."""
        if not isinstance(provider, Provider):
            raise PluginError(f"plugin {plugin!r} registered {provider!r}, which is not an explorer.Provider; "
                              f"it is skipped")
        problem = provider.problem()
        if problem:
            raise PluginError(f"provider {provider.name!r} of plugin {self.pm.where(plugin)} is skipped: {problem}")
        if provider.name in self.providers:
            owner = self.owners[provider.name]
            if owner == plugin:
                raise DuplicateProviderError(f"plugin {plugin!r} registers provider {provider.name!r} twice; "
                                             f"keeping the first")
            self.pm.clash(plugin, "provider", provider.name, owner)
            raise DuplicateProviderError(f"provider {provider.name!r} is registered by both plugin {owner!r} "
                                         f"and plugin {plugin!r}; keeping the one from {owner!r}")
        self.providers[provider.name] = provider
        self.owners[provider.name] = plugin

    def _register_provider(self, plugin: str) -> Callable[[Any], None]:
        def register(provider: Any) -> None:
            try:
                self.add(provider, plugin)
            except DuplicateProviderError as exc:
                self.pm.say(str(exc))
            except PluginError as exc:
                self.pm.note(plugin, str(exc))
        return register

    def drop_plugin(self, plugin: str) -> None:
        """Forget every provider that ``plugin`` registered (it failed half-way)."""
        for name in self.of_plugin(plugin):
            del self.providers[name], self.owners[name]

    def of_plugin(self, plugin: str) -> list[str]:
        """Names of the providers ``plugin`` registered and keeps, sorted."""
        return sorted(n for n, owner in self.owners.items() if owner == plugin)

    def origin(self, provider: str) -> str:
        """``posembed-vit 0.1.0``: the distribution and version of the plugin that registered ``provider``."""
        plugin = self.owners.get(provider, "")
        return self.pm.info[plugin].origin if plugin in self.pm.info else f"plugin {plugin}"

    def is_builtin(self, provider: str) -> bool:
        """Whether ``provider`` is one of posembed's own."""
        return self.pm.is_builtin(self.owners.get(provider, ""))

    def get(self, name: str) -> Provider:
        """The provider called ``name``; SpecError listing what exists, the closest name, and which plugins
        ``POSEMBED_LOAD_PLUGINS`` left out or failed, any of which may register it."""
        try:
            return self.providers[name]
        except KeyError:
            known = sorted(self.providers)
            raise SpecError(f"unknown provider {name!r} (providers: {', '.join(known) or 'none'})"
                            f"{did_you_mean(name, known)}{self._missing_hint(name)}") from None

    def _missing_hint(self, name: str) -> str:
        """Which plugins this process did not load (they failed, or ``POSEMBED_LOAD_PLUGINS`` leaves them out) and
        may register ``name``, or ``""``. The plugin whose entry point or distribution is named like the provider
        (``vit``, ``posembed-vit``) is named alone; posembed imports no plugin to find out."""
        failed = [plugin for plugin in self.pm.failures if not self.pm.is_builtin(plugin)]
        left_out = sorted(self.pm.excluded)
        likely = {normalize(name), normalize(f"posembed-{name}")}

        def named(plugin: str, info: PluginInfo) -> bool:
            return bool(likely & {normalize(plugin), normalize(info.distribution or "")})

        for plugin in failed:
            if named(plugin, self.pm.info[plugin]):
                return f"; {self.pm.failures[plugin]} (it may register {name!r})"
        setting = Selection.from_environment().setting()
        for plugin in left_out:
            if named(plugin, self.pm.excluded[plugin]):
                info = self.pm.excluded[plugin]
                return f"; plugin {plugin!r} ({info.origin}) may register it, but {setting} leaves it out"
        hints = []
        if failed:
            hints.append(f"the plugins {', '.join(failed)} were skipped (see the warnings above) and may register it")
        if left_out:
            hints.append(f"{setting} leaves out the installed plugins {', '.join(left_out)}, which may register it")
        return "".join(f"; {hint}" for hint in hints)

    def __iter__(self) -> Iterator[Provider]:
        return iter(self.providers[name] for name in sorted(self.providers))

    def __len__(self) -> int:
        return len(self.providers)

    # -- analyses and sections ------------------------------------------------------------------------------------

    def _units_of(self, hook: str, kind: type) -> tuple[list, dict[str, str]]:
        if hook not in self._units:
            self._units[hook] = collect_units(self.pm, hook, kind)
        return self._units[hook]

    def units_of(self, plugin: str) -> tuple[list[str], list[str]]:
        """Names of the analyses and of the sections ``plugin`` registered and keeps, each sorted."""
        analyses = self._units_of("register_analyses", Analysis)[1]
        sections = self._units_of("register_sections", Section)[1]
        return (sorted(n for n, owner in analyses.items() if owner == plugin),
                sorted(n for n, owner in sections.items() if owner == plugin))

    @property
    def analyses(self) -> list[Analysis]:
        """Every registered analysis (``register_analyses``), in the order they run (``Analysis.order``)."""
        return in_order(self._units_of("register_analyses", Analysis)[0])

    @property
    def sections(self) -> list[Section]:
        """Every registered report section (``register_sections``), in page order (``Section.order``)."""
        return in_order(self._units_of("register_sections", Section)[0])

    # -- claiming model configs -----------------------------------------------------------------------------------

    def provider_for_config(self, config: dict[str, Any]) -> str | None:
        """The provider a plugin names for a model ``config`` (``provider_for_config``), plugins asked in the clash
        order; None when none does. A plugin that raises, or names a provider that is not registered, is one
        warning line and is passed over."""
        impls = sorted(self.pm.hook.provider_for_config.get_hookimpls(), key=lambda i: self.pm.rank(i.plugin_name))
        for impl in impls:
            try:
                name = impl.function(**{arg: config for arg in impl.argnames})
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin must not stop hf: for every model
                warn(f"plugin {impl.plugin_name!r} failed in provider_for_config and is passed over: "
                     f"{type(exc).__name__}: {exc}")
                continue
            if name is None:
                continue
            if not isinstance(name, str) or name not in self.providers:
                warn(f"plugin {impl.plugin_name!r} claims the config for provider {name!r}, which is not "
                     f"registered; passed over")
                continue
            self.pm.trace_event(f"provider_for_config of {impl.plugin_name!r} named {name!r}")
            return name
        return None


def call_each(pm: PluginManager, hook: str, make_register: Callable[[str], Callable[[Any], None]],
              forget: Callable[[str], None], names_of: Callable[[str], list[str]]) -> None:
    """Call ``hook`` of each plugin on its own, with ``make_register(plugin)`` as its ``register``, in clash order.

    A third-party plugin's failure is pinned on that plugin, reported as one warning and does not affect the
    others; ``forget(plugin)`` then drops what it had registered, so a plugin whose hook raises is skipped whole. A
    built-in's failure is a bug and propagates. ``names_of(plugin)`` names what it registered, for the trace.
    """
    # get_hookimpls() puts tryfirst/trylast implementations out of registration order: the clash order is not theirs
    for impl in sorted(getattr(pm.hook, hook).get_hookimpls(), key=lambda impl: pm.rank(impl.plugin_name)):
        plugin = impl.plugin_name
        register = make_register(plugin)
        started = time.perf_counter()
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except (Exception, SystemExit) as exc:
            if pm.is_builtin(plugin):
                raise
            forget(plugin)
            pm.skip(plugin, f"plugin {pm.where(plugin)} failed in {hook} and is skipped: {type(exc).__name__}: {exc}")
            continue
        pm.trace_event(f"{hook} of {plugin!r} registered {', '.join(names_of(plugin)) or 'nothing'} "
                       f"in {1000 * (time.perf_counter() - started):.1f} ms")


def collect_units(pm: PluginManager, hook: str, kind: type) -> tuple[list, dict[str, str]]:
    """What every plugin registers through ``hook`` (analyses or sections), each name once, first one kept; and
    the plugin that registered each name.

    A third-party unit is marked with its plugin's name and origin, so that its failure at run time is reported
    (naming both) and skipped rather than stopping the work (``explorer.plugins.units.guarded``).
    """
    units: dict[str, Any] = {}
    owners: dict[str, str] = {}
    noun = kind.__name__.lower()

    def make_register(plugin: str) -> Callable[[Any], None]:
        def register(unit: Any) -> None:
            if not isinstance(unit, kind):
                pm.note(plugin, f"plugin {plugin!r} registered {unit!r}, which is not an explorer.{kind.__name__}; it "
                                f"is skipped")
            elif unit.name in units:
                pm.clash(plugin, noun, unit.name, owners[unit.name])
                pm.say(f"{noun} {unit.name!r} is registered by both plugin {owners[unit.name]!r} and plugin "
                     f"{plugin!r}; keeping the one from {owners[unit.name]!r}")
            else:
                builtin = pm.is_builtin(plugin)
                units[unit.name] = unit if builtin else dataclasses.replace(unit, plugin=plugin,
                                                                             origin=pm.origin(plugin))
                owners[unit.name] = plugin
        return register

    def names_of(plugin: str) -> list[str]:
        return [n for n, owner in owners.items() if owner == plugin]

    def forget(plugin: str) -> None:
        for name in names_of(plugin):
            del units[name], owners[name]

    call_each(pm, hook, make_register, forget, names_of)
    return list(units.values()), owners


#: The process's registries, one per value of POSEMBED_LOAD_PLUGINS (``reset()`` forgets them).
_PROCESS_REGISTRIES: dict[tuple[str | None, str | None], Registry] = {}


def get_registry(pm: PluginManager | None = None) -> Registry:
    """The registry of ``pm``'s plugins; without ``pm``, the process's registry: built once, with every installed
    plugin that ``POSEMBED_LOAD_PLUGINS`` allows.

    The process's registry is kept per value of ``POSEMBED_LOAD_PLUGINS`` and ``POSEMBED_PLUGINS_DIR``, so changing
    either gives the registry it asks for; ``reset()`` forgets it (after installing or faking plugins in a test, say).
    """
    if pm is not None:
        return Registry(pm)
    key = (environment.text(LOAD_PLUGINS_ENV), environment.text(PLUGINS_DIR_ENV))
    if key not in _PROCESS_REGISTRIES:
        _PROCESS_REGISTRIES[key] = Registry(get_plugin_manager())
    return _PROCESS_REGISTRIES[key]


def reset() -> None:
    """Forget the process's registry: the next ``get_registry()`` (``explorer.load``, every command) builds a fresh
    one from the plugins installed then. For tests that install, fake or change plugins."""
    _PROCESS_REGISTRIES.clear()
