"""The plugin manager and the registry of providers, analyses and sections built from it.

Built-in plugins are registered exactly like third-party plugins: a module with ``@hookimpl`` functions.
Third-party plugins are entry points of group ``posembed``, imported only when a command needs them: a spec
that names a built-in provider imports no plugin, one that names a plugin's provider imports that plugin
alone, ``analyze`` adds the plugins that register analyses and ``report`` those that register sections
(docs/plugins.md, "When plugins are imported"). Which plugin registers what is kept in a small index in
posembed's cache, rebuilt when the installed distributions or a plugin's module file change. A broken
plugin (it fails to import, raises inside its hook, or registers a name that is taken) is reported as one
warning line and skipped, never fatal.

Environment:

- ``POSEMBED_LOAD_PLUGINS``: comma-separated entry-point or distribution names of the installed plugins to
  load, compared as pip compares names; set but empty loads none. Built-ins always load.
- ``POSEMBED_TRACE_PLUGINS=1``: print one line to stderr per plugin loaded and per hook called, with its
  duration, and what the index decided.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pluggy

from explorer import __version__
from explorer.runtime import environment
from explorer.plugins import hookspecs
from explorer.errors import DuplicateProviderError, PluginError, PosembedWarning, SpecError
from explorer.plugins.provider import Provider, _closest
from explorer.plugins.units import Analysis, Section, in_order

ENTRY_POINT_GROUP = "posembed"
LOAD_PLUGINS_ENV = "POSEMBED_LOAD_PLUGINS"
TRACE_PLUGINS_ENV = "POSEMBED_TRACE_PLUGINS"
#: The distribution the built-in plugins ship in.
DISTRIBUTION = "posembed-explorer"
#: A plugin whose import takes longer than this gets one warning naming it and the time it took.
SLOW_IMPORT_SECONDS = 0.5
#: Bumped whenever the index's layout changes: an index of another format is rebuilt.
INDEX_FORMAT = 1
#: An index larger than this is not an index posembed wrote: it is ignored and rebuilt.
MAX_INDEX_BYTES = 5_000_000

#: Built-in plugin modules, registered in this order (so they win name clashes).
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
)

#: The states of a plugin in ``describe_plugins`` and ``posembed plugins``.
LOADED, CLASHED, SKIPPED, EXCLUDED = "loaded", "clashed", "skipped", "excluded"


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


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what happened to each plugin: where it came from, and whether it was skipped,
    clashed or was excluded."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        #: Plugin name -> why it was skipped (failed to import, to register, or inside its hook).
        self.failures: dict[str, str] = {}
        #: Plugin name -> the names it lost to an earlier plugin: ``{"kind", "name", "kept"}``.
        self.clashes: dict[str, list[dict[str, str]]] = {}
        #: Plugin name -> other one-line notes (a provider skipped for its signature, a slow import).
        self.notes: dict[str, list[str]] = {}
        #: Plugin name -> its place in the order that decides name clashes (built-ins first).
        self.rank: dict[str, tuple[int, int]] = {}
        #: Installed plugins that POSEMBED_LOAD_PLUGINS leaves out, by entry-point name.
        self.excluded: dict[str, PluginInfo] = {}

    @classmethod
    def with_builtins(cls) -> "PluginManager":
        """A manager holding the hook specs and the built-in plugins."""
        pm = cls()
        for position, module_name in enumerate(BUILTIN_PLUGINS):
            pm.register(importlib.import_module(module_name), name=module_name)
            pm.info[module_name] = PluginInfo(module_name, DISTRIBUTION, __version__, builtin=True)
            pm.rank[module_name] = (0, position)
        return pm

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

    def skip(self, plugin: str, reason: str) -> None:
        """Record that ``plugin`` is skipped and say so in one warning line."""
        self.failures[plugin] = reason
        warn(reason)

    def clash(self, plugin: str, kind: str, name: str, kept: str) -> None:
        """Record that ``plugin`` lost the ``kind`` called ``name`` to plugin ``kept`` (the warning is the caller's)."""
        record = {"kind": kind, "name": name, "kept": kept}
        if record not in self.clashes.setdefault(plugin, []):
            self.clashes[plugin].append(record)

    def note(self, plugin: str, message: str) -> None:
        """Record a one-line note about ``plugin`` and say it as a warning."""
        self.notes.setdefault(plugin, []).append(message)
        warn(message)

    # Not ``trace``: pluggy's manager already has a ``trace`` attribute (its TagTracer).
    def trace_event(self, message: str) -> None:
        """One line on stderr when ``POSEMBED_TRACE_PLUGINS`` is set."""
        if self.tracing:
            sys.stderr.write(f"posembed: trace: {message}\n")
            sys.stderr.flush()


def warn(message: str) -> None:
    """Issue a PosembedWarning of exactly one line (plugin errors may span several)."""
    warnings.warn(PosembedWarning(one_line(message)), stacklevel=3)


def one_line(message: Any) -> str:
    """``message`` as text on one line, its whitespace runs collapsed."""
    return " ".join(str(message).split())


# --- which plugins are installed, and which POSEMBED_LOAD_PLUGINS lets load --------------------------------------

def _normalize(name: str) -> str:
    """Names compare case-insensitively with '-', '_' and '.' alike, as pip compares distribution names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _describe(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _info(ep: metadata.EntryPoint, name: str | None = None) -> PluginInfo:
    dist_name, version = _describe(ep)
    return PluginInfo(name or ep.name, dist_name, version, module=ep.value)


def installed_entry_points() -> list[metadata.EntryPoint]:
    """Every installed entry point of group ``posembed``, in the order that decides name clashes: by
    entry-point name, then as ``importlib.metadata`` finds the distributions (``sys.path`` order)."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


@dataclass(frozen=True)
class Selection:
    """What ``POSEMBED_LOAD_PLUGINS`` asks for: ``None`` (unset: every plugin) or the names given, as written."""

    raw: str | None
    names: dict[str, str]
    """Normalised name -> the name as the user wrote it."""

    @classmethod
    def from_environment(cls) -> "Selection":
        """The selection as ``POSEMBED_LOAD_PLUGINS`` is set now."""
        raw = environment.text(LOAD_PLUGINS_ENV)
        parts = [] if raw is None else [part.strip() for part in raw.split(",") if part.strip()]
        return cls(raw, {_normalize(part): part for part in parts})

    def allows(self, ep: metadata.EntryPoint) -> bool:
        """Whether the entry point may load (its entry-point or distribution name is listed, or nothing is set)."""
        if self.raw is None:
            return True
        return bool(set(self.names) & {_normalize(ep.name), _normalize(_describe(ep)[0] or "")})

    def setting(self) -> str:
        """``POSEMBED_LOAD_PLUGINS='a,b'``, as the user set it."""
        return f"{LOAD_PLUGINS_ENV}={self.raw!r}"

    def check(self, installed: list[metadata.EntryPoint]) -> None:
        """Warn about each name that is a built-in (they always load) or no installed plugin."""
        names = {_normalize(ep.name): ep.name for ep in installed}
        names.update({_normalize(dist): dist for dist, _ in map(_describe, installed) if dist})
        builtins = {_normalize(name): name for name in (*BUILTIN_PLUGINS, DISTRIBUTION)}
        for key, written in sorted(self.names.items()):
            if key in names:
                continue
            if key in builtins:
                warn(f"{LOAD_PLUGINS_ENV} names {written!r}, which is built in: built-in plugins always load")
            else:
                warn(f"{LOAD_PLUGINS_ENV} names {written!r}, which is not an installed plugin"
                     f"{_closest(written, sorted(set(names.values())))}")


def left_out(distribution: str) -> str | None:
    """``POSEMBED_LOAD_PLUGINS='a,b'`` when that setting leaves out the installed plugin of ``distribution``; None
    when it is not installed or may load."""
    selection = Selection.from_environment()
    if selection.raw is None:
        return None
    wanted = _normalize(distribution)
    installed = [ep for ep in installed_entry_points() if _normalize(_describe(ep)[0] or "") == wanted]
    return selection.setting() if installed and not any(map(selection.allows, installed)) else None


# --- registering one plugin -------------------------------------------------------------------------------------

def register_plugin(pm: PluginManager, plugin: object, info: PluginInfo, rank: tuple[int, int]) -> bool:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) as an installed plugin would be;
    False (with one warning) when pluggy refuses it."""
    name = info.name
    pm.info[name] = info
    pm.rank[name] = rank
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


def load_entry_point(pm: PluginManager, ep: metadata.EntryPoint, rank: tuple[int, int]) -> str | None:
    """Import and register one entry point; the plugin's name, or None when it was skipped (and reported)."""
    info = _info(ep)
    if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
        key = f"{ep.name} ({info.distribution or ep.value})"  # keyed apart from the plugin that holds the name
        earlier = pm.info.get(ep.name)
        pm.info[key] = dataclasses.replace(info, name=key)
        pm.rank[key] = rank
        pm.clash(key, "plugin", ep.name, ep.name)
        pm.skip(key, f"plugin {ep.name!r} ({info.origin}) is skipped: a plugin named {ep.name!r} is already loaded"
                     f"{f' from {earlier.distribution}' if earlier and earlier.distribution else ''}")
        return None
    started = time.perf_counter()
    try:
        plugin = ep.load()
    except (Exception, SystemExit) as exc:  # one broken plugin must not stop the tool
        pm.info[ep.name], pm.rank[ep.name] = info, rank
        pm.skip(ep.name, f"plugin {pm.where(ep.name)} failed to import and is skipped: {type(exc).__name__}: {exc}")
        return None
    seconds = time.perf_counter() - started
    if not register_plugin(pm, plugin, info, rank):
        return None
    pm.trace_event(f"loaded plugin {ep.name!r} ({info.origin}) in {1000 * seconds:.1f} ms")
    if seconds > SLOW_IMPORT_SECONDS:
        pm.note(ep.name, f"plugin {pm.where(ep.name)} took {seconds:.1f} s to import; posembed imports it only for "
                         f"commands that need it, but it slows each of them (import heavy libraries inside load)")
    return ep.name


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A plugin manager with the hook specs, the built-in plugins and (optionally) every installed plugin.

    ``POSEMBED_LOAD_PLUGINS`` limits which installed plugins load: a comma-separated list of
    entry-point or distribution names; set but empty loads none. Built-ins always load.
    Implementations of hooks that do not exist are reported (pluggy's ``check_pending``).
    """
    pm = PluginManager.with_builtins()
    if load_entrypoints:
        selection = Selection.from_environment()
        installed = installed_entry_points()
        selection.check(installed)
        for position, ep in enumerate(installed):
            if selection.allows(ep):
                load_entry_point(pm, ep, (1, position))
            else:
                pm.excluded.setdefault(ep.name, _info(ep))
    return pm


def report_pending(pm: pluggy.PluginManager, plugins: Iterable[str] | None = None) -> list[str]:
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
            messages.append(f"plugin {impl.plugin_name!r} implements {name!r}, which is not a posembed hook and "
                            f"is never called (hooks: {', '.join(known)}){_closest(name, known)}")
    for message in messages:
        warn(message)
    return messages


# --- the index: which installed plugin implements which hooks and registers which providers ---------------------

def cache_dir() -> Path:
    """posembed's cache folder: ``POSEMBED_CACHE``, else ``$HF_HOME/posembed`` (as ``explorer.loaders.hub`` uses;
    not imported from there, which would import numpy and huggingface_hub's settings)."""
    explicit = environment.text("POSEMBED_CACHE")
    if explicit:
        return Path(os.path.expanduser(explicit))
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                           "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("HF_HOME", default)))) / "posembed"


def index_path() -> Path:
    """The plugin index of this Python environment (one file per interpreter, so two virtualenvs never fight)."""
    where = hashlib.sha256(f"{sys.prefix}\0{sys.executable}".encode()).hexdigest()[:16]
    return cache_dir() / "plugins" / f"index-{where}.json"


def installed_fingerprint() -> str:
    """A digest of the distributions installed on ``sys.path`` (their ``*.dist-info`` / ``*.egg-info`` folder
    names, which carry name and version): installing, removing or upgrading any of them changes it."""
    digest = hashlib.sha256()
    for entry in sys.path:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, a folder that does not exist
            continue
        digest.update(f"{entry}\0{chr(0).join(names)}\0\0".encode())
    return digest.hexdigest()


def module_stamp(module: str) -> list[int] | None:
    """``[mtime_ns, size]`` of the file that holds ``module``, found without importing it, or None when there is
    no such file (a module only in memory, in a zip) and the plugin cannot be indexed."""
    parts = module.split(":")[0].strip().split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: finding it imports nothing
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec (made in memory)
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        paths = [spec.origin] if spec.has_location and spec.origin else []
    else:
        folders = [Path(p).joinpath(*parts[1:-1]) for p in spec.submodule_search_locations or []]
        paths = [str(f / name) for f in folders for name in (f"{parts[-1]}.py", f"{parts[-1]}/__init__.py")]
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        return [stat.st_mtime_ns, stat.st_size]
    return None


def _key(ep: metadata.EntryPoint) -> str:
    return f"{ep.name}={ep.value} [{_describe(ep)[0] or ''}]"


def _stamp(ep: metadata.EntryPoint) -> list[Any] | None:
    """What an index record of ``ep`` must match to be trusted: its distribution, version and module file."""
    file = module_stamp(ep.value)
    return None if file is None else [*_describe(ep), *file]


def read_index(fingerprint: str) -> dict[str, dict[str, Any]]:
    """The records of a readable index written for these installed distributions, or ``{}``."""
    path = index_path()
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):  # missing, unreadable, not JSON: rebuilt
        return {}
    if not (isinstance(data, dict) and data.get("format") == INDEX_FORMAT and data.get("posembed") == __version__
            and data.get("installed") == fingerprint and isinstance(data.get("entry_points"), dict)):
        return {}
    return {key: record for key, record in data["entry_points"].items() if _is_record(record)}


def _is_record(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("stamp"), list)
            and all(isinstance(record.get(k), list) and all(isinstance(v, str) for v in record[k])
                    for k in ("hooks", "providers")))


def write_index(fingerprint: str, records: dict[str, dict[str, Any]], pm: PluginManager) -> None:
    """Write the index atomically; a cache that cannot be written costs speed, never the command."""
    from explorer.errors import OutputError
    from explorer.runtime.output import write_atomic

    path = index_path()
    data = {"format": INDEX_FORMAT, "posembed": __version__, "installed": fingerprint, "entry_points": records}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    except (OSError, OutputError) as exc:
        pm.trace_event(f"plugin index not written ({exc}); every command will import every plugin")
        return
    pm.trace_event(f"plugin index written: {path} ({len(records)} entry points)")


# --- the registry ------------------------------------------------------------------------------------------------

class Registry:
    """Every provider by name with the plugin that registered it; the analyses and report sections.

    A registry made from a plugin manager (``get_registry(pm)``) holds what that manager's plugins register. The
    process's registry (``get_registry()``) starts with the built-ins and imports installed plugins as they are
    needed: ``get(name)`` those that register ``name``, ``analyses`` and ``sections`` those that implement the hook,
    iterating over it every plugin. ``providers`` holds the providers registered so far.
    """

    def __init__(self, pm: PluginManager | None = None, lazy: bool = False) -> None:
        self.pm = pm
        self.lazy = lazy and pm is None
        if self.lazy:
            self.pm = PluginManager.with_builtins()
        self.providers: dict[str, Provider] = {}
        self.owners: dict[str, str] = {}
        #: Plugin -> every provider name its hook registered, kept or not (what the index records).
        self.registered: dict[str, list[str]] = {}
        self._collected: set[str] = set()
        self._units: dict[str, tuple[tuple[str, ...], list, dict[str, str]]] = {}
        self._installed: list[metadata.EntryPoint] | None = None
        self._attempted: set[str] = set()
        self._complete = not self.lazy
        if self.pm is not None:
            self._collect_providers()

    # -- adding providers -----------------------------------------------------------------------------------------

    def _rank(self, plugin: str) -> tuple[int, int]:
        return self.pm.rank.get(plugin, (2, 0)) if self.pm is not None else (2, 0)

    def add(self, provider: Any, plugin: str) -> None:
        """Record ``provider`` from ``plugin``; raise PluginError if it is not a Provider, its ``load`` does not
        match its parameters, or its name is taken (the plugin earlier in the order keeps it)."""
        if not isinstance(provider, Provider):
            raise PluginError(f"plugin {plugin!r} registered {provider!r}, which is not an explorer.Provider; "
                              f"it is skipped")
        self.registered.setdefault(plugin, [])
        if provider.name not in self.registered[plugin]:
            self.registered[plugin].append(provider.name)
        problem = provider.load_problem()
        if problem:
            raise PluginError(f"provider {provider.name!r} of plugin {self._where(plugin)} is skipped: {problem}")
        if provider.name in self.providers:
            owner = self.owners[provider.name]
            if owner == plugin:
                raise DuplicateProviderError(f"plugin {plugin!r} registers provider {provider.name!r} twice; "
                                             f"keeping the first")
            kept, lost = (plugin, owner) if self._rank(plugin) < self._rank(owner) else (owner, plugin)
            if kept == plugin:  # loaded later, first in the order: it takes the name, as it would have eagerly
                self.providers[provider.name], self.owners[provider.name] = provider, plugin
            if isinstance(self.pm, PluginManager):
                self.pm.clash(lost, "provider", provider.name, kept)
            first, second = sorted((plugin, owner), key=self._rank)
            raise DuplicateProviderError(f"provider {provider.name!r} is registered by both plugin {first!r} "
                                         f"and plugin {second!r}; keeping the one from {kept!r}")
        self.providers[provider.name] = provider
        self.owners[provider.name] = plugin

    def _where(self, plugin: str) -> str:
        return self.pm.where(plugin) if isinstance(self.pm, PluginManager) else repr(plugin)

    def drop_plugin(self, plugin: str) -> None:
        """Forget every provider that ``plugin`` registered (it failed half-way)."""
        for name in [n for n, owner in self.owners.items() if owner == plugin]:
            del self.providers[name], self.owners[name]

    def of_plugin(self, plugin: str) -> list[str]:
        """Names of the providers ``plugin`` registered and keeps, sorted."""
        return sorted(n for n, owner in self.owners.items() if owner == plugin)

    def origin(self, provider: str) -> str:
        """``posembed-vit 0.1.0``: the distribution and version of the plugin that registered ``provider``."""
        plugin = self.owners.get(provider, "")
        if isinstance(self.pm, PluginManager) and plugin in self.pm.info:
            return self.pm.info[plugin].origin
        return f"plugin {plugin}"

    def is_builtin(self, provider: str) -> bool:
        """Whether ``provider`` is one of posembed's own."""
        return isinstance(self.pm, PluginManager) and self.pm.is_builtin(self.owners.get(provider, ""))

    def _collect_providers(self) -> None:
        """Call ``register_providers`` of each plugin that has not been asked yet."""
        new = {name for name, _ in self.pm.list_name_plugin()} - self._collected
        self._collected |= new

        def make_register(plugin: str):
            def register(provider: Any) -> None:
                try:
                    self.add(provider, plugin)
                except PluginError as exc:
                    if isinstance(self.pm, PluginManager) and not isinstance(exc, DuplicateProviderError):
                        self.pm.note(plugin, str(exc))
                    else:
                        warn(str(exc))
            return register

        _call_each(self.pm, "register_providers", make_register, self.drop_plugin, self.of_plugin, only=new)

    # -- importing installed plugins when they are needed ---------------------------------------------------------

    def _entry_points(self) -> list[metadata.EntryPoint]:
        """The installed entry points (read once), the excluded ones recorded, the variable's names checked."""
        if self._installed is None:
            selection = Selection.from_environment()
            installed = installed_entry_points()
            selection.check(installed)
            self._installed = []
            for ep in installed:
                if selection.allows(ep):
                    self._installed.append(ep)
                else:
                    self.pm.excluded.setdefault(ep.name, _info(ep))
            self._ranks = {_key(ep): (1, position) for position, ep in enumerate(installed)}
        return self._installed

    def _load(self, eps: list[metadata.EntryPoint]) -> None:
        """Import and register the entry points not tried yet, in clash order, and collect their providers."""
        fresh = [ep for ep in eps if _key(ep) not in self._attempted]
        for ep in sorted(fresh, key=lambda ep: self._ranks[_key(ep)]):
            self._attempted.add(_key(ep))
            load_entry_point(self.pm, ep, self._ranks[_key(ep)])
        if fresh:
            self._collect_providers()

    def load_all(self) -> None:
        """Import every installed plugin that ``POSEMBED_LOAD_PLUGINS`` allows, and rebuild the index."""
        if self._complete:
            return
        eps = self._entry_points()
        self._load(eps)
        self._complete = True
        if eps:
            self._update_index(eps)

    def _update_index(self, eps: list[metadata.EntryPoint]) -> None:
        fingerprint = installed_fingerprint()
        records = read_index(fingerprint)
        before = dict(records)
        for ep in eps:
            stamp = _stamp(ep)
            if stamp is None:
                records.pop(_key(ep), None)
                continue
            plugin = self.pm.get_plugin(ep.name)
            mine = plugin is not None and _describe(ep)[0] == self.pm.info[ep.name].distribution
            records[_key(ep)] = {"stamp": stamp, "hooks": self.pm.hook_names(plugin) if mine else [],
                                 "providers": self.registered.get(ep.name, []) if mine else []}
        if records != before:
            write_index(fingerprint, records, self.pm)

    def _need(self, wants: Callable[[dict[str, Any]], bool], why: str) -> None:
        """Import the plugins whose index record ``wants``; every plugin when one is not indexed."""
        if self._complete:
            return
        eps = self._entry_points()
        if not eps:
            return
        records = read_index(installed_fingerprint())
        stale = [ep.name for ep in eps if (r := records.get(_key(ep))) is None or r["stamp"] != _stamp(ep)]
        if stale:
            self.pm.trace_event(f"plugin index: {', '.join(stale)} not indexed; importing every plugin ({why})")
            self.load_all()
            return
        chosen = {ep.name for ep in eps if wants(records[_key(ep)])}
        # entry points sharing a chosen name come too, so the first of them keeps the name as it would eagerly
        wanted = [ep for ep in eps if ep.name in chosen]
        self.pm.trace_event(f"plugin index: importing {', '.join(sorted(chosen)) or 'no plugin'} ({why})")
        self._load(wanted)

    def get(self, name: str) -> Provider:
        """The provider called ``name``, importing the plugin that registers it; SpecError listing what exists,
        the closest name, and whether ``POSEMBED_LOAD_PLUGINS`` left it out."""
        if name not in self.providers and self.lazy:
            self._need(lambda record: name in record["providers"], f"provider {name!r}")
            if name not in self.providers and not self._complete:  # the index may be out of date: ask every plugin
                self.pm.trace_event(f"plugin index: no plugin imported registers {name!r}; importing every plugin")
                self.load_all()
        try:
            return self.providers[name]
        except KeyError:
            known = sorted(self.providers)
            raise SpecError(f"unknown provider {name!r} (providers: {', '.join(known) or 'none'})"
                            f"{_closest(name, known)}{self._excluded_hint(name)}") from None

    def _excluded_hint(self, name: str) -> str:
        """What POSEMBED_LOAD_PLUGINS leaves out that may hold ``name``, or ``""``."""
        if not isinstance(self.pm, PluginManager) or not self.pm.excluded:
            return ""
        selection = Selection.from_environment()
        records = read_index(installed_fingerprint())
        by_key = {_key(ep): ep for ep in installed_entry_points()}
        owners = [ep for key, ep in by_key.items() if ep.name in self.pm.excluded
                  and name in records.get(key, {}).get("providers", [])]
        if owners:
            plugins = ", ".join(f"plugin {ep.name!r} ({_info(ep).origin})" for ep in owners)
            return f"; {plugins} registers it, but {selection.setting()} leaves it out"
        left_out = ", ".join(sorted(self.pm.excluded))
        return f"; {selection.setting()} leaves out the installed plugins {left_out}, which may register it"

    def __iter__(self) -> Iterator[Provider]:
        self.load_all()
        return iter(self.providers[name] for name in sorted(self.providers))

    def __len__(self) -> int:
        self.load_all()
        return len(self.providers)

    def __bool__(self) -> bool:
        return True  # ``registry or get_registry()`` must not count (and so import) every plugin

    # -- analyses and sections ------------------------------------------------------------------------------------

    def _units_of(self, hook: str, kind: type) -> list:
        if self.pm is None:
            return []
        if self.lazy:
            self._need(lambda record: hook in record["hooks"], hook)
        plugins = tuple(impl.plugin_name for impl in getattr(self.pm.hook, hook).get_hookimpls())
        cached = self._units.get(hook)
        if cached is None or cached[0] != plugins:  # collected again when a plugin implementing it loaded since
            self._units[hook] = (plugins, *_collect_units(self.pm, hook, kind))
        return self._units[hook][1]

    def units_of(self, plugin: str) -> tuple[list[str], list[str]]:
        """Names of the analyses and of the sections ``plugin`` registered and keeps, each sorted."""
        names: list[list[str]] = []
        for hook, kind in (("register_analyses", Analysis), ("register_sections", Section)):
            self._units_of(hook, kind)
            owners = self._units[hook][2] if hook in self._units else {}
            names.append(sorted(n for n, owner in owners.items() if owner == plugin))
        return names[0], names[1]

    @property
    def analyses(self) -> list[Analysis]:
        """Every registered analysis (``register_analyses``), built-ins first."""
        if self.pm is None:
            from explorer.analysis.builtin import builtin_analyses

            return builtin_analyses()
        return self._units_of("register_analyses", Analysis)

    @property
    def sections(self) -> list[Section]:
        """Every registered report section (``register_sections``), in page order."""
        if self.pm is None:
            from explorer.reporting.sections import builtin_sections

            return in_order(builtin_sections())
        return in_order(self._units_of("register_sections", Section))

    # -- claiming model configs -----------------------------------------------------------------------------------

    def provider_for_config(self, config: dict[str, Any]) -> str | None:
        """The provider a plugin names for a model ``config`` (``provider_for_config``), built-ins asked first and
        installed plugins imported only when no built-in claims it; None when none does.

        A plugin that raises, or names a provider that is not registered, is one warning line and is passed over.
        """
        if self.pm is None:
            return None
        answer = self._claim(config)
        if answer is None and self.lazy:
            self._need(lambda record: "provider_for_config" in record["hooks"], "provider_for_config")
            answer = self._claim(config)
        return answer

    def _claim(self, config: dict[str, Any]) -> str | None:
        rank = self.pm.rank if isinstance(self.pm, PluginManager) else {}
        impls = sorted(self.pm.hook.provider_for_config.get_hookimpls(),
                       key=lambda impl: rank.get(impl.plugin_name, (2, 0)))
        for impl in impls:
            try:
                name = impl.function(**{arg: config for arg in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop hf: for every model
                warn(f"plugin {impl.plugin_name!r} failed in provider_for_config and is passed over: "
                     f"{type(exc).__name__}: {exc}")
                continue
            if name is None:
                continue
            if not isinstance(name, str) or name not in self.providers:
                warn(f"plugin {impl.plugin_name!r} claims the config for provider {name!r}, which is not "
                     f"registered; passed over")
                continue
            if isinstance(self.pm, PluginManager):
                self.pm.trace_event(f"provider_for_config of {impl.plugin_name!r} named {name!r}")
            return name
        return None


def _call_each(pm: pluggy.PluginManager, hook: str, make_register: Any, forget: Any, names_of: Any,
               only: set[str] | None = None) -> None:
    """Call ``hook`` of each plugin (of those in ``only``) on its own, with ``make_register(plugin)`` as its
    ``register``, in clash order (built-ins first).

    A failure is pinned on that plugin, reported as one warning and does not affect the others; ``forget(plugin)``
    then drops what it had registered, so a plugin whose hook raises is skipped whole; ``names_of(plugin)`` names
    what it registered, for the trace.
    """
    rank = pm.rank if isinstance(pm, PluginManager) else {}
    impls = [impl for impl in getattr(pm.hook, hook).get_hookimpls() if only is None or impl.plugin_name in only]
    # get_hookimpls() is in registration order; a plugin imported later may still come first in the clash order
    for impl in sorted(impls, key=lambda impl: rank.get(impl.plugin_name, (2, 0))):
        plugin = impl.plugin_name
        register = make_register(plugin)
        started = time.perf_counter()
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except (Exception, SystemExit) as exc:
            forget(plugin)
            if isinstance(pm, PluginManager):
                pm.skip(plugin, f"plugin {pm.where(plugin)} failed in {hook} and is skipped: "
                                f"{type(exc).__name__}: {exc}")
            else:
                warn(f"plugin {plugin!r} failed in {hook} and is skipped: {type(exc).__name__}: {exc}")
            continue
        if isinstance(pm, PluginManager):
            pm.trace_event(f"{hook} of {plugin!r} registered {', '.join(names_of(plugin)) or 'nothing'} "
                           f"in {1000 * (time.perf_counter() - started):.1f} ms")


#: The process's registries, one per value of POSEMBED_LOAD_PLUGINS (``reset()`` forgets them).
_PROCESS_REGISTRIES: dict[str | None, Registry] = {}


def get_registry(pm: PluginManager | None = None) -> Registry:
    """The registry of ``pm``'s plugins; without ``pm``, the process's registry, built once and importing plugins
    only as they are needed.

    The process's registry is kept per value of ``POSEMBED_LOAD_PLUGINS``, so changing the variable gives the
    registry it asks for; ``reset()`` forgets it (after faking installed plugins in a test, say).
    """
    if pm is not None:
        return Registry(pm)
    key = environment.text(LOAD_PLUGINS_ENV)
    if key not in _PROCESS_REGISTRIES:
        _PROCESS_REGISTRIES[key] = Registry(lazy=True)
    return _PROCESS_REGISTRIES[key]


def reset() -> None:
    """Forget the process's registry: the next ``get_registry()`` (``explorer.load``, every command) builds a fresh
    one from the plugins installed then. For tests that install, fake or change plugins."""
    _PROCESS_REGISTRIES.clear()


def _collect_units(pm: pluggy.PluginManager, hook: str, kind: type) -> tuple[list, dict[str, str]]:
    """What every plugin registers through ``hook`` (analyses or sections), each name once, first one kept; and
    the plugin that registered each name.

    A third-party unit is marked with its plugin's name and origin, so that its failure at run time is reported
    (naming both) and skipped rather than stopping the work (``explorer.plugins.units.guarded``).
    """
    units: dict[str, Any] = {}
    owners: dict[str, str] = {}
    noun = kind.__name__.lower()

    def make_register(plugin: str):
        builtin = isinstance(pm, PluginManager) and pm.is_builtin(plugin)
        origin = pm.origin(plugin) if isinstance(pm, PluginManager) else None

        def register(unit: Any) -> None:
            if not isinstance(unit, kind):
                warn(f"plugin {plugin!r} registered {unit!r}, which is not an explorer.{kind.__name__}; it is skipped")
            elif unit.name in units:
                if isinstance(pm, PluginManager):
                    pm.clash(plugin, noun, unit.name, owners[unit.name])
                warn(f"{noun} {unit.name!r} is registered by both plugin {owners[unit.name]!r} and plugin "
                     f"{plugin!r}; keeping the one from {owners[unit.name]!r}")
            else:
                units[unit.name] = unit if builtin else dataclasses.replace(unit, plugin=plugin, origin=origin)
                owners[unit.name] = plugin
        return register

    def forget(plugin: str) -> None:
        for name in [n for n, owner in owners.items() if owner == plugin]:
            del units[name], owners[name]

    _call_each(pm, hook, make_register, forget, lambda plugin: [n for n, owner in owners.items() if owner == plugin])
    return list(units.values()), owners


def describe_plugins(pm: PluginManager, registry: Registry | None = None) -> list[dict[str, Any]]:
    """One JSON-able row per plugin, whatever happened to it: name, distribution, version, ``state`` (loaded,
    clashed, skipped or excluded), ``error`` (why it was skipped), ``clashes`` (each name it lost and the plugin
    that kept it), ``notes`` (other warnings about it), hooks, providers, analyses and sections."""
    registry = registry if registry is not None else get_registry(pm)
    registry.analyses, registry.sections  # noqa: B018 - their hooks run first: one that fails skips its plugin
    rows = []
    names = [name for name, _ in pm.list_name_plugin()]
    names += [name for name in pm.failures if name not in names]
    for name in sorted(names, key=lambda n: pm.rank.get(n, (2, 0))):
        plugin = pm.get_plugin(name)
        info = pm.info.get(name, PluginInfo(name))
        analyses, sections = registry.units_of(name)
        clashes = pm.clashes.get(name, [])
        if any(c["kind"] == "plugin" for c in clashes):  # its entry-point name was taken: nothing of it loaded
            state = CLASHED
        else:
            state = SKIPPED if name in pm.failures else CLASHED if clashes else LOADED
        rows.append({
            "name": name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "state": state,
            "error": pm.failures.get(name),
            "clashes": clashes,
            "notes": pm.notes.get(name, []),
            "hooks": pm.hook_names(plugin) if plugin is not None else [],
            "providers": registry.of_plugin(name),
            "analyses": analyses,
            "sections": sections,
        })
    for name, info in sorted(pm.excluded.items()):
        rows.append({"name": name, "distribution": info.distribution, "version": info.version, "builtin": False,
                     "state": EXCLUDED, "error": None, "clashes": [], "notes": [], "hooks": [], "providers": [],
                     "analyses": [], "sections": []})
    return rows
