"""The shape each table of a run will have, known before any is loaded: what its memory estimate counts.

A provider may say it (``Provider.expected_shape``: from its parameters, a local ``config.json`` or a file's
header, never by loading the table); where it does not, or cannot tell (a hub model, a pickle, a spec that will fail
to load), the shape is None and the run counts ``explorer.runtime.limits.DEFAULT_SHAPE``. A shape is only ever
multiplied, never allocated: a header claiming 10^6 x 10^6 is refused by ``limits.check_run`` before anything is
loaded.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Sequence

from explorer.loading.spec import parse_spec

if TYPE_CHECKING:
    from explorer.plugins.registry import Registry


def expected_shape(spec: str, registry: Registry) -> tuple[int, int] | None:
    """The ``(rows, columns)`` the spec's provider expects its matrix to have, or None when it cannot tell.

    Any failure (a bad spec, an unknown provider, an unreadable header, a plugin's bug) is None: loading the spec
    says what is wrong, in its turn, as it always does.
    """
    try:
        parsed = parse_spec(spec)
        provider = registry.get(parsed.name)
        if provider.expected_shape is None:
            return None
        shape = provider.expected_shape(**provider.resolve(parsed.target, parsed.options))
        rows, columns = (operator.index(n) for n in shape)
    except Exception:  # noqa: BLE001 - an estimate: what fails here fails again, named, when it is loaded
        return None
    return (rows, columns) if rows >= 0 and columns >= 0 else None


def expected_shapes(specs: Sequence[str], registry: Registry) -> list[tuple[int, int] | None]:
    """``expected_shape`` of each spec, in order."""
    return [expected_shape(spec, registry) for spec in specs]
