"""The pluggy markers and every hook a posembed plugin can implement.

A plugin needs only ``from explorer import hookimpl`` (or ``explorer.hookimpl``)
and a module or object with functions named after the hooks below. Each hook has a
section in docs/hooks.md with its parameters and an example (tests/test_docs_hooks.py
fails when one is missing).
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "posembed"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_providers(register: Callable[..., None]) -> None:
    """Register position-embedding providers by calling ``register(provider)`` once for each.

    ``provider`` is an ``explorer.Provider``: a unique ``name`` (used in specs such as
    ``NAME:TARGET,key=value``), a one-line ``description``, typed ``params`` and a
    ``load(**params)`` that returns an ``explorer.PositionEmbedding``. Registering a
    name that another plugin already registered is reported and that provider is
    skipped. Import heavy libraries inside ``load``, not at module level, so the
    command line stays fast.
    """
