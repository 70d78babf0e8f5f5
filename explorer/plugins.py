"""The plugin manager and the provider registry built from it.

Built-in providers are registered exactly like third-party plugins: a module with
``@hookimpl`` functions. Third-party plugins are entry points of group ``posembed``.
One broken plugin is reported as a single warning line and skipped, never fatal.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from explorer import hookspecs
from explorer.errors import DuplicateProviderError, PluginError, PosembedWarning, SpecError
from explorer.provider import Provider, _closest

ENTRY_POINT_GROUP = "posembed"
LOAD_PLUGINS_ENV = "POSEMBED_LOAD_PLUGINS"

#: Built-in provider modules, registered in this order (so they win name clashes).
BUILTIN_PLUGINS = (
    "explorer.providers.sinusoidal",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from: its distribution and version, or ``builtin``."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus ``info``: where each registered plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.info: dict[str, PluginInfo] = {}


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A plugin manager with the hook specs, the built-in providers and (optionally) installed plugins.

    ``POSEMBED_LOAD_PLUGINS`` limits which installed plugins load: a comma-separated list of
    entry-point or distribution names; set but empty loads none. Built-ins always load.
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        pm.info[module_name] = PluginInfo(module_name, builtin=True)
    if load_entrypoints:
        _load_entrypoints(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        warnings.warn(PosembedWarning(f"plugin hook matches no spec: {exc}"), stacklevel=2)
    return pm


def _wanted() -> set[str] | None:
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_entrypoints(pm: PluginManager) -> None:
    wanted = _wanted()
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if wanted is not None and ep.name not in wanted and dist_name not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # one broken plugin must not stop the tool
            warnings.warn(
                PosembedWarning(f"plugin {ep.name!r} ({dist_name or ep.value}) failed to load and is skipped: "
                                f"{type(exc).__name__}: {exc}"),
                stacklevel=3,
            )
            continue
        pm.info[ep.name] = PluginInfo(ep.name, dist_name, dist.version if dist else None)


@dataclass
class ProviderRegistry:
    """Every registered provider by name, with the plugin that registered it."""

    providers: dict[str, Provider] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, provider: Any, plugin: str) -> None:
        """Record ``provider`` from ``plugin``; raise if it is not a Provider or its name is taken."""
        if not isinstance(provider, Provider):
            raise PluginError(f"plugin {plugin!r} registered {provider!r}, which is not an explorer.Provider")
        if provider.name in self.providers:
            raise DuplicateProviderError(
                f"provider {provider.name!r} is registered by both plugin {self.owners[provider.name]!r} "
                f"and plugin {plugin!r}; keeping the one from {self.owners[provider.name]!r}"
            )
        self.providers[provider.name] = provider
        self.owners[provider.name] = plugin

    def drop_plugin(self, plugin: str) -> None:
        """Forget every provider that ``plugin`` registered (it failed half-way)."""
        for name in [n for n, owner in self.owners.items() if owner == plugin]:
            del self.providers[name], self.owners[name]

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


def get_registry(pm: PluginManager | None = None) -> ProviderRegistry:
    """Collect providers from every plugin's ``register_providers`` hook, one plugin at a time.

    Each plugin's hook runs on its own so a failure or a duplicate name is pinned on that
    plugin, reported as a warning, and does not affect the others.
    """
    pm = pm or get_plugin_manager()
    registry = ProviderRegistry()
    # get_hookimpls() is in registration order: built-ins first, so they keep their names.
    for impl in pm.hook.register_providers.get_hookimpls():
        plugin = impl.plugin_name

        def register(provider: Any, _plugin: str = plugin) -> None:
            try:
                registry.add(provider, _plugin)
            except PluginError as exc:
                warnings.warn(PosembedWarning(str(exc)), stacklevel=2)

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:
            registry.drop_plugin(plugin)
            warnings.warn(
                PosembedWarning(f"plugin {plugin!r} failed in register_providers and is skipped: "
                                f"{type(exc).__name__}: {exc}"),
                stacklevel=2,
            )
    return registry
