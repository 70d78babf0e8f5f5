"""The built-in analyses, registered through ``register_analyses`` exactly as a plugin's would be.

Each module of ``explorer.analysis`` that computes analyses declares them in a tuple ``ANALYSES``; this plugin
finds them all (``explorer.plugins.discovery``), so a new analysis is one module and nothing else. They run, and
``posembed analyze`` prints their numbers, by ascending ``Analysis.order``.
"""

from __future__ import annotations

from typing import Callable

from explorer.plugins.discovery import check_orders, declared
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.units import Analysis, in_order


def builtin_analyses() -> list[Analysis]:
    """Every built-in analysis, in order (their modules are imported here, on first use: they need numpy)."""
    analyses = in_order(declared("explorer.analysis", "ANALYSES"))
    check_orders(analyses, "analysis")
    return analyses


@hookimpl
def register_analyses(register: Callable[[Analysis], None]) -> None:
    """Register every built-in analysis."""
    for unit in builtin_analyses():
        register(unit)
