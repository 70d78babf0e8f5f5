"""How the built-in analyses and report sections are found: every module of their package that declares units.

A module of ``explorer.analysis`` declares ``ANALYSES`` (a tuple of ``Analysis``), a module of
``explorer.reporting.sections`` declares ``SECTION`` (one ``Section``, or a tuple). Adding a module is the whole
registration: no list names it. The modules are imported when the units are first asked for (they need numpy,
and the sections Bokeh).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def declared(package: str, attribute: str) -> list[Any]:
    """The units that the modules of ``package`` declare as ``attribute`` (a unit or a tuple of units), module by
    module in name order; modules that declare none (helpers) are passed over."""
    units: list[Any] = []
    path = importlib.import_module(package).__path__
    for info in sorted(pkgutil.iter_modules(path), key=lambda info: info.name):
        value = getattr(importlib.import_module(f"{package}.{info.name}"), attribute, None)
        if value is not None:
            units += list(value) if isinstance(value, (tuple, list)) else [value]
    return units


def check_orders(units: list[Any], kind: str) -> None:
    """Raise ``ValueError`` naming both units when two of ``units`` share an ``order``: the page's order (or the
    analyses') must not depend on which module was found first."""
    seen: dict[float, Any] = {}
    for unit in units:
        if unit.order in seen:
            raise ValueError(f"built-in {kind}s {seen[unit.order].name!r} and {unit.name!r} both have order "
                             f"{unit.order:g}: give each its own (the orders in use are listed in docs/hooks.md)")
        seen[unit.order] = unit
