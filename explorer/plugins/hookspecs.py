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


@hookspec
def register_analyses(register: Callable[..., None]) -> None:
    """Register analyses by calling ``register(analysis)`` once for each.

    ``analysis`` is an ``explorer.Analysis``: a unique ``name`` (its results are ``results[name]``), a
    one-line ``description``, ``run(context)`` from an ``explorer.TableContext`` (``context.matrix`` is the
    float32 positions x dimensions table) to any result object, and optionally the ``scalars`` that
    ``posembed analyze --json`` prints and the ``arrays`` that ``--npz`` saves. ``posembed analyze``,
    ``report`` and ``explorer.analyze`` run every registered analysis. A name already taken is reported and
    skipped; an analysis that raises is named in one warning line and left out, the rest still run.
    """


@hookspec
def register_sections(register: Callable[..., None]) -> None:
    """Register report sections by calling ``register(section)`` once for each.

    ``section`` is an ``explorer.Section``: a unique ``name``, a heading ``title``, an ``order`` on the page
    (the built-ins use 10, 20, ... 110), the analyses it ``needs``, and ``build(context)`` from an
    ``explorer.SectionContext`` to a Bokeh model holding its figures and their captions. Import Bokeh inside
    ``build``. A section that raises is named in one warning line and left out; the rest of the page renders.
    """


@hookspec(firstresult=True)
def provider_for_config(config: dict) -> str | None:
    """Claim a model config: return the name of a provider that reads such models, or None.

    ``config`` is the model's ``config.json`` as a plain dict (untrusted: check types before using a value).
    ``hf:`` asks this hook for every model type outside posembed's table families (RoPE, ALiBi, T5's buckets,
    and types it does not know at all), before it searches the model's structure for a table; the first
    provider named by a plugin (built-ins first) loads the model with ``model=`` set to the hf spec's model and
    ``revision=``, ``table=`` and ``positions=`` passed when the provider has them. Read only the dict here: no
    I/O, no heavy imports.
    """
