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


@dataclass(frozen=True)
class Param:
    """One typed parameter of a provider.

    ``type`` is ``int``, ``float``, ``str`` or ``bool`` (a bool takes 1/true/yes/on or
    0/false/no/off, in any case); ``choices`` restricts the value to a fixed set;
    ``minimum`` bounds numbers from below. A ``default`` of ``None`` means the parameter
    is optional with no value; ``required=True`` (with no default) makes a spec without it
    a ``SpecError`` before ``load`` runs.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if self.required and self.default is not None:
            raise TypeError(f"Param {self.name!r}: a required parameter has no default")
        if self.type not in _TYPES:
            raise TypeError(f"Param {self.name!r}: type must be one of int, float, str, bool")
        if not self.name.isidentifier():
            raise TypeError(f"Param {self.name!r}: name must be a Python identifier")

    @property
    def type_name(self) -> str:
        """``int``, ``float``, ``str``, ``bool`` or ``a|b|c`` for choices."""
        return "|".join(self.choices) if self.choices else _TYPES[self.type]

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
            hint = did_you_mean(str(result), self.choices)
            raise SpecError(
                f"{where} must be one of {', '.join(self.choices)}, got {result!r}{hint}"
            )
        if self.minimum is not None and result < self.minimum:
            raise SpecError(f"{where} must be >= {self.minimum:g}, got {result!r}")
        return result


@dataclass(frozen=True)
class Provider:
    """A named source of position tables.

    ``load`` is called with every declared parameter as a keyword argument (typed,
    defaults filled in) and returns a ``PositionEmbedding``. ``target`` names the
    parameter that the ``NAME:TARGET`` part of a spec fills, e.g. ``hf:gpt2`` sets
    the ``model`` parameter of ``hf``; it must be one of ``params``. When registered,
    ``load``'s signature is checked against ``params`` (``load_problem``).
    """

    name: str
    description: str
    load: Callable[..., Any]
    params: Sequence[Param] = field(default_factory=tuple)
    target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        if not self.name or any(ch in self.name for ch in ":,= \t") :
            raise TypeError(f"provider name {self.name!r} must be non-empty without ':', ',', '=' or spaces")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise TypeError(f"provider {self.name!r} declares a parameter twice")
        if self.target is not None and self.target not in names:
            raise TypeError(f"provider {self.name!r}: target {self.target!r} is not one of its parameters")
        if not callable(self.load):
            raise TypeError(f"provider {self.name!r}: load must be callable")

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

