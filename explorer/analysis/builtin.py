"""The built-in analyses, registered through ``register_analyses`` exactly as a plugin's would be.

Each analysis module declares its units in a tuple ``ANALYSES``; this plugin registers them in the order
below, which is also the order of ``posembed analyze``'s numbers.
"""

from __future__ import annotations

import importlib
from typing import Callable

from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.units import Analysis

MODULES = ("summary", "matrix", "traces", "similarity", "offset", "norms", "decomposition", "frequencies",
           "probes", "compare", "relative", "rope", "grid", "attention")


def builtin_analyses() -> list[Analysis]:
    """Every built-in analysis, in order (the modules are imported here, on first use: they need numpy)."""
    return [unit for name in MODULES for unit in importlib.import_module(f"explorer.analysis.{name}").ANALYSES]


@hookimpl
def register_analyses(register: Callable[[Analysis], None]) -> None:
    """Register every built-in analysis."""
    for unit in builtin_analyses():
        register(unit)
