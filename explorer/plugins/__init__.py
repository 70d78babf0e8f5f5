"""The plugin contract and its manager.

- ``hookspecs``: the markers and every hook, one docstring each;
- ``provider``: ``Provider`` and ``Param``, what ``register_providers`` registers;
- ``units``: ``Analysis`` and ``Section``, what ``register_analyses`` and ``register_sections`` register;
- ``manager``: the pluggy manager, ``POSEMBED_LOAD_PLUGINS`` and the registry of what the plugins registered.

The manager's public names are importable from here (``explorer.plugins.get_registry()``).
"""

import importlib
from typing import Any

__all__ = ["BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "LOAD_PLUGINS_ENV", "PluginInfo", "PluginManager", "Registry",
           "describe_plugins", "get_plugin_manager", "get_registry", "register_plugin", "reset"]


def __getattr__(name: str) -> Any:
    # The manager (importlib.metadata, entry points) is imported on first use: `import explorer` and
    # `posembed --help` need only the contract (hookspecs, provider, units).
    if name in __all__:
        return getattr(importlib.import_module("explorer.plugins.manager"), name)
    raise AttributeError(f"module 'explorer.plugins' has no attribute {name!r}")
