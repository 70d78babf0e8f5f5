"""``posembed plugins``: one row per plugin, whatever happened to it."""

from __future__ import annotations

from typing import Any

from explorer.plugins.manager import PluginInfo, PluginManager
from explorer.plugins.registry import Registry, get_registry

#: The states of a plugin in ``describe_plugins`` and ``posembed plugins``.
LOADED, CLASHED, SKIPPED, EXCLUDED = "loaded", "clashed", "skipped", "excluded"


def describe_plugins(pm: PluginManager, registry: Registry | None = None) -> list[dict[str, Any]]:
    """One JSON-able row per plugin, whatever happened to it: name, distribution, version, module (what posembed
    imports: the entry point's module, or a single-file plugin's path), ``state`` (loaded,
    clashed, skipped or excluded), ``error`` (why it was skipped), ``clashes`` (each name it lost and the plugin
    that kept it), ``notes`` (other warnings about it), hooks, providers, analyses and sections."""
    registry = registry if registry is not None else get_registry(pm)
    registry.analyses, registry.sections  # noqa: B018 - their hooks run first: one that fails skips its plugin
    rows = []
    for name in pm.info:  # every plugin tried, in the clash order
        plugin = pm.get_plugin(name)
        info = pm.info[name]
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
            "module": info.module,
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
        rows.append(_excluded(info))
    return rows


def _excluded(info: PluginInfo) -> dict[str, Any]:
    return {"name": info.name, "distribution": info.distribution, "version": info.version, "module": info.module,
            "builtin": False,
            "state": EXCLUDED, "error": None, "clashes": [], "notes": [], "hooks": [], "providers": [],
            "analyses": [], "sections": []}
