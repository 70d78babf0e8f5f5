"""What an analysis's ``scalars()`` and ``arrays()`` must give, checked before anything is printed or written.

- A scalar is a real number (Python's or numpy's bool, int or float, or a 0-d numeric array), kept as a float.
- An array holds numbers and at most N x D + R x R + ``ARRAY_SLACK`` elements (``array_budget``), decided from its
  shape before anything is copied: the memory bound every analysis keeps.

This module imports nothing heavy (numpy inside the checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import numpy as np


def real_number(key: object, value: Any) -> float:
    """A scalar as a float: a real number (bool, int, float, numpy's) or a 0-d numeric array; else TypeError."""
    import numbers

    if isinstance(value, numbers.Real) or (getattr(value, "shape", None) == () and getattr(value, "dtype", None) is
                                           not None and value.dtype.kind in "biuf"):
        return float(value)
    from explorer.runtime.console import excerpt

    raise TypeError(f"the scalar {excerpt(key)} is {excerpt(value)} ({type(value).__name__}), not a number")


#: Elements an analysis array may hold beyond N x D + R x R (fixed-size arrays of tiny tables stay allowed).
ARRAY_SLACK = 65536


def array_budget(shapes: Sequence[tuple[int, ...]], resolution: int) -> int:
    """The most elements one analysis array may hold: N x D of the largest table analysed, plus R x R at display
    resolution R, plus ``ARRAY_SLACK`` (the memory bound every analysis keeps: O(N D + R^2))."""
    largest = max((int(shape[0]) * int(shape[1]) for shape in shapes), default=0)
    return largest + int(resolution) ** 2 + ARRAY_SLACK


def check_array(key: str, value: Any, max_elements: int | None = None) -> "np.ndarray":
    """``value`` as an array if it keeps the shape rule: numbers (bool, integer, floating point, complex) and at
    most ``max_elements`` elements; else TypeError or ValueError naming ``key`` and the shape, decided from the
    shape before anything is copied."""
    import numpy as np

    name = key or "the result"
    shape = tuple(value.shape) if isinstance(value, np.ndarray) else None
    if shape is None:
        value = np.asarray(value)
        shape = value.shape
    size = int(np.prod(shape, dtype=object))
    if max_elements is not None and size > max_elements:
        raise ValueError(f"the array {name!r} of shape {' x '.join(map(str, shape))} holds {size} elements, more than "
                         f"the {max_elements} an analysis of this table may give (N x D + R x R + {ARRAY_SLACK})")
    if value.dtype.kind not in "biufc":
        raise TypeError(f"the array {name!r} has dtype {value.dtype}, not numbers")
    return value
