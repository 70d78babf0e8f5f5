"""The plugin contract and its manager.

- ``hookspecs``: the markers and every hook, one docstring each;
- ``provider``: ``Provider`` and ``Param``, what ``register_providers`` registers;
- ``units``: ``Analysis`` and ``Section``, what ``register_analyses`` and ``register_sections`` register;
- ``selection``: the installed plugins (entry points of group ``posembed``) and ``POSEMBED_LOAD_PLUGINS``;
- ``manager``: the pluggy manager: built-ins, then every installed plugin, imported as it is built;
- ``discovery``: how the built-in analyses and sections are found (every module of their package);
- ``registry``: the providers, analyses and sections the plugins registered; the process's registry;
- ``describe``: what ``posembed plugins`` shows about each plugin.

The public names are importable from here (``explorer.plugins.get_registry()``), each imported on first use so
that ``import explorer`` (which needs only the contract) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "BUILTIN_PLUGINS": "manager", "PluginInfo": "manager", "PluginManager": "manager",
    "get_plugin_manager": "manager", "register_plugin": "manager",
    "Registry": "registry", "get_registry": "registry", "reset": "registry",
    "describe_plugins": "describe",
    "ENTRY_POINT_GROUP": "selection", "LOAD_PLUGINS_ENV": "selection",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
