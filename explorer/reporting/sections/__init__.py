"""The report's built-in sections, one module each, registered through ``register_sections`` exactly as a
plugin's would be.

Each module declares ``SECTION`` (an ``explorer.Section``: heading, order, the analyses it needs, the terms it
takes and its ``build``); this plugin finds every module that does (``explorer.plugins.discovery``), so a new
section is one module and nothing else. No two built-in sections share an ``order``. The modules import Bokeh, so
they are imported here only when the page is built.
"""

from __future__ import annotations

from typing import Callable

from explorer.plugins.discovery import check_orders, declared
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.units import Section, in_order


def builtin_sections() -> list[Section]:
    """Every built-in section in page order (importing its module, and so Bokeh)."""
    sections = in_order(declared(__name__, "SECTION"))
    check_orders(sections, "section")
    return sections


@hookimpl
def register_sections(register: Callable[[Section], None]) -> None:
    """Register every built-in section."""
    for section in builtin_sections():
        register(section)
