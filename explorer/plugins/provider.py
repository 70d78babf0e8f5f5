"""What a plugin registers: a ``Provider`` with typed ``Param`` declarations and a ``load``."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from explorer.errors import SpecError
from explorer.runtime.console import did_you_mean

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TYPES = {int: "int", float: "float", str: "str", bool: "bool"}


#: Names a parameter may not take: ``explorer.load(spec, registry=None, **params)`` keeps them for itself.
RESERVED = ("spec", "registry")


@dataclass(frozen=True)
class Param:
    """One typed parameter of a provider.

    ``type`` is ``int``, ``float``, ``str`` or ``bool`` (a bool takes 1/true/yes/on or
    0/false/no/off, in any case); ``choices`` restricts the value to a fixed set of that type;
    ``minimum`` and ``maximum`` bound numbers, inclusive unless ``min_open`` or ``max_open``
    (``Param("decay", float, 0.5, minimum=0, min_open=True, maximum=1)`` takes (0, 1]). A
    ``default`` of ``None`` means the parameter is optional with no value; ``required=True``
    (with no default) makes a spec without it a ``SpecError`` before ``load`` runs.

    A malformed declaration does not raise here: the provider declaring it is skipped when it
    is registered, with one warning naming it and what is wrong (``problem``).
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    required: bool = False
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False

    def __post_init__(self) -> None:
        if self.choices is not None and not isinstance(self.choices, (str, bytes)):
            try:
                object.__setattr__(self, "choices", tuple(self.choices))
            except TypeError:
                pass  # reported by problem()

    def problem(self) -> str | None:
        """What is wrong with this declaration, or None."""
        name = f"parameter {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            return f"{name}: its name must be a Python identifier"
        if self.name in RESERVED:
            return f"{name}: {', '.join(map(repr, RESERVED))} are explorer.load's own arguments; choose another name"
        if self.type not in _TYPES:
            return f"{name}: type must be one of int, float, str, bool"
        if self.required and self.default is not None:
            return f"{name}: a required parameter has no default"
        if self.choices is not None:
            if not isinstance(self.choices, tuple) or not self.choices:
                return f"{name}: choices must be a non-empty tuple of {_TYPES[self.type]} values"
            wrong = [c for c in self.choices if not _is_a(c, self.type)]
            if wrong:
                return f"{name}: choices must be {_TYPES[self.type]} values, got {wrong[0]!r}"
        bounds = {"minimum": self.minimum, "maximum": self.maximum}
        if any(v is not None for v in bounds.values()) and self.type not in (int, float):
            return f"{name}: minimum and maximum bound numbers (int or float), not {_TYPES[self.type]}"
        for key, value in bounds.items():
            if value is not None and not (_is_a(value, float) and math.isfinite(value)):
                return f"{name}: {key} must be a finite number, got {value!r}"
        if self.minimum is not None and self.maximum is not None and (
                self.minimum > self.maximum or (self.minimum == self.maximum and (self.min_open or self.max_open))):
            return f"{name}: no value lies within {self.bounds()}"
        return None

    def bounds(self) -> str:
        """The allowed range as ``(0, 1]``, ``>= 1`` or ``< 10``; ``""`` when unbounded."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"{'(' if self.min_open else '['}{low:g}, {high:g}{')' if self.max_open else ']'}"
        if low is not None:
            return f"{'>' if self.min_open else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.max_open else '<='} {high:g}"
        return ""

    def _within(self, value: Any) -> bool:
        low, high = self.minimum, self.maximum
        if low is not None and (value < low or (self.min_open and value == low)):
            return False
        return not (high is not None and (value > high or (self.max_open and value == high)))

    def _bounds_phrase(self) -> str:
        """``>= 0``, ``in (0, 1]``: what the error says a value must be."""
        both = self.minimum is not None and self.maximum is not None
        return f"in {self.bounds()}" if both else self.bounds()

    @property
    def type_name(self) -> str:
        """``int``, ``float``, ``str``, ``bool`` or ``a|b|c`` for choices."""
        return "|".join(map(str, self.choices)) if self.choices else _TYPES[self.type]

    def convert(self, value: Any, provider: str) -> Any:
        """Turn a spec string (or an already typed value) into this parameter's type, or raise SpecError."""
        where = f"{provider}: parameter {self.name!r}"
        if value is None:
            return None
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    result: Any = value
                elif str(value).strip().lower() in _TRUE:
                    result = True
                elif str(value).strip().lower() in _FALSE:
                    result = False
                else:
                    raise ValueError
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                result = int(value.replace("_", "")) if isinstance(value, str) else int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError
                result = float(value)
                if not math.isfinite(result):
                    raise ValueError
            else:
                result = str(value)
        except (TypeError, ValueError):
            raise SpecError(f"{where} expects {self.type_name}, got {value!r}") from None
        if self.choices is not None and result not in self.choices:
            hint = did_you_mean(str(result), [str(c) for c in self.choices])
            raise SpecError(
                f"{where} must be one of {', '.join(map(str, self.choices))}, got {result!r}{hint}"
            )
        if not self._within(result):
            raise SpecError(f"{where} must be {self._bounds_phrase()}, got {result!r}")
        return result


@dataclass(frozen=True)
class Provider:
    """A named source of position tables.

    ``load`` is called with every declared parameter as a keyword argument (typed,
    defaults filled in) and returns a ``PositionEmbedding``. ``target`` names the
    parameter that the ``NAME:TARGET`` part of a spec fills, e.g. ``hf:gpt2`` sets
    the ``model`` parameter of ``hf``; it must be one of ``params``. When registered,
    ``load``'s signature is checked against ``params``; a malformed provider is skipped then, with
    one warning (``problem``), rather than raising where it is made (so the rest of its plugin loads).

    ``expected_shape``, optional, is called with the same keywords as ``load`` and returns the shape
    ``(rows, columns)`` of the matrix ``load`` would return, or None when it cannot tell cheaply: from
    the parameters, a config file or a file's header, never by loading the table (no network either).
    A run of many tables estimates its memory from it before loading any (``explorer.loading.shapes``).
    """

    name: str
    description: str
    load: Callable[..., Any]
    params: Sequence[Param] = field(default_factory=tuple)
    target: str | None = None
    expected_shape: Callable[..., tuple[int, int] | None] | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "params", tuple(self.params))
        except TypeError:
            pass  # reported by problem()

    def problem(self) -> str | None:
        """What is wrong with this declaration (its name, its parameters, its target, ``load``'s signature), or
        None. A provider with a problem is skipped when registered, with one warning naming it and the problem;
        the plugin's other providers, analyses and sections still count."""
        if not isinstance(self.name, str) or not self.name or any(ch in self.name for ch in ":,= \t"):
            return f"its name {self.name!r} must be non-empty text without ':', ',', '=' or spaces"
        if not isinstance(self.params, tuple) or not all(isinstance(p, Param) for p in self.params):
            return "params must be a tuple of explorer.Param"
        for param in self.params:
            problem = param.problem()
            if problem:
                return problem
        names = [p.name for p in self.params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            return f"it declares the parameter {twice[0]!r} twice"
        if self.target is not None and self.target not in names:
            return f"its target {self.target!r} is not one of its parameters"
        if not callable(self.load):
            return "its load must be callable"
        if self.expected_shape is not None and not callable(self.expected_shape):
            return "its expected_shape must be callable (or None)"
        return self.load_problem()

    def param(self, name: str) -> Param:
        """The declared parameter called ``name``, or SpecError suggesting the closest one."""
        for p in self.params:
            if p.name == name:
                return p
        known = [p.name for p in self.params]
        listing = ", ".join(known) if known else "none"
        raise SpecError(
            f"{self.name}: unknown parameter {name!r} (parameters: {listing}){did_you_mean(name, known)}"
        )

    def resolve(self, target: str | None, options: dict[str, Any]) -> dict[str, Any]:
        """Typed keyword arguments for ``load`` from a spec's target and options, defaults filled in."""
        given = dict(options)
        if target is not None:
            if self.target is None:
                raise SpecError(f"{self.name}: takes no ':TARGET' part (got {target!r})")
            if self.target in given:
                raise SpecError(f"{self.name}: {self.target!r} given twice (as ':TARGET' and as a parameter)")
            given[self.target] = target
        for name in given:
            self.param(name)  # raises on unknown names
        values = {p.name: p.convert(given.get(p.name, p.default), self.name) for p in self.params}
        for p in self.params:
            if p.required and values[p.name] is None:
                how = f"{self.name}:{p.name.upper()} or {p.name}=..." if p.name == self.target else f"{p.name}=..."
                raise SpecError(f"{self.name}: parameter {p.name!r} is required ({how})")
        return values

    def load_problem(self) -> str | None:
        """Why ``load`` cannot be called with exactly the declared parameters as keywords, or None when it can."""
        try:
            signature = inspect.signature(self.load)
        except (TypeError, ValueError):  # a builtin or C callable without a signature: trust it
            return None
        kinds = inspect.Parameter
        args = signature.parameters.values()
        declared = [p.name for p in self.params]
        takes = {a.name for a in args if a.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
        if not any(a.kind is kinds.VAR_KEYWORD for a in args):
            extra = [name for name in declared if name not in takes]
            if extra:
                return f"its load() takes no parameter {', '.join(map(repr, extra))}, declared as a Param"
        needed = [a.name for a in args if a.default is a.empty and a.name not in declared
                  and a.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
        if needed:
            return f"its load() requires {', '.join(map(repr, needed))}, not declared as a Param"
        return None



def _is_a(value: Any, kind: type) -> bool:
    """Whether ``value`` is of the parameter type ``kind`` (a bool is not a number; an int is a float's)."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
