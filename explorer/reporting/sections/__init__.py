"""The report's built-in sections, one module each, registered through ``register_sections`` exactly as a
plugin's would be.

Each module declares ``SECTION`` (an ``explorer.Section``: heading, order, the analyses it needs, the terms it
takes and its ``build``). The modules import Bokeh, so they are imported here only when the page is built.
"""

from __future__ import annotations

import importlib
from typing import Callable

from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.units import Section

MODULES = ("comparison", "provenance", "matrix", "traces", "vectors", "cosine_positions", "offset_norms",
           "cosine_dimensions", "pca", "spectra", "probes", "relative_term", "relative_matrix", "rope_kernel",
           "distance_overlay", "patch_similarity", "grid_offset", "grid_pca", "attention", "atlas")


def builtin_sections() -> list[Section]:
    """Every built-in section (importing its module, and so Bokeh)."""
    return [importlib.import_module(f"{__name__}.{name}").SECTION for name in MODULES]


@hookimpl
def register_sections(register: Callable[[Section], None]) -> None:
    """Register every built-in section."""
    for section in builtin_sections():
        register(section)
