"""What tells a series' members apart: its x axis (a training step where one is known) and its lines.

A series is any ordered set of tables: a hub model's revisions, a run's checkpoint folders (a glob), a swept
option, the lines of a spec file. What varies from member to member is read from the tables themselves: the
components of their source paths (``runs/seed-1/checkpoint-500``) and their parameters (``revision=step1000``,
``base=100``). The thing that changes most often is the x axis: its step (``checkpoint-500``, ``step1000``,
``step_20k``) or else its number (``base=100``) when every member has one, each line's steps distinct and
increasing; otherwise the member's place in the series. Whatever else varies (a seed folder, another swept
option, the rest of a name such as ``multiberts-seed_0-step_20k``'s seed) splits the members into lines, one
per value, in order of first appearance. The x axis is logarithmic where a linear one would bunch the members at its
left (``log_scale``: a swept base of 10 ... 100000); evenly spaced steps stay linear, and so does any axis holding
a value <= 0 (step 0 has no place on a log axis). Nothing here imports Bokeh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Sequence

import numpy as np

from explorer.loading.globs import step_of

_STEP = re.compile(r"(?:checkpoint|step)[-_]?\d+k?(?![0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class SeriesAxis:
    """The members' x values and names, and the line each belongs to."""

    x: np.ndarray
    """float64, one per member: its step, its swept number, or its place (1, 2, ...)."""
    x_name: str
    """``step``, the swept option's name, or ``member``."""
    names: list[str]
    """What sets each member apart (``checkpoint-500``, ``step1000``, ``base=100``), or its label."""
    lines: list[str]
    """The line (group) of each member; all ``""`` when the series is one line."""

    @property
    def line_names(self) -> list[str]:
        """The lines in order of first appearance."""
        return list(dict.fromkeys(self.lines))

    @property
    def decades(self) -> float:
        """How many decades the x values span (0 unless they are all positive)."""
        values = self.x[np.isfinite(self.x)]
        if not values.size or np.min(values) <= 0:
            return 0.0
        return float(np.log10(np.max(values) / np.min(values)))

    @property
    def log_scale(self) -> bool:
        """Whether the x axis is logarithmic: its values all positive, spanning more than a decade, and more than
        half of them in the lowest tenth of a linear axis (where they would bunch: 10, 100, ... 100000; 1, 2, 4,
        ... 1024). Evenly spaced steps (500, 1000, ... 10000) keep a linear axis, whatever their span."""
        if self.x_name == "member" or self.decades <= 1:
            return False
        values = np.unique(self.x)
        low, high = values[0], values[-1]
        return int(np.sum(values <= low + (high - low) / 10)) > len(values) / 2


def _varying(embeddings: Sequence[Any]) -> list[tuple[str, list[str]]]:
    """(key, value of each member) of every parameter and source path component that differs between members;
    one that splits the members as an earlier one does (a formula's source naming its base) is left out."""
    found: list[tuple[str, list[str]]] = []
    sources = [str(getattr(e, "source", "") or "") for e in embeddings]
    keys = dict.fromkeys(key for e in embeddings for key in (getattr(e, "params", None) or {}))
    for key in keys:
        values = [str((getattr(e, "params", None) or {}).get(key, "")) for e in embeddings]
        if len(set(values)) > 1 and values != sources:  # hf's model= is the source path: its parts come below
            found.append((key, [f"{key}={v}" if key != "revision" else v for v in values]))
    parts = [PurePath(s).parts for s in sources]
    if len({len(p) for p in parts}) == 1:
        found += [(f"path {k}", [p[k] for p in parts]) for k in range(len(parts[0]))]
    else:
        found.append(("source", sources))
    kept: list[tuple[str, list[str]]] = []
    for key, values in found:
        if len(set(values)) > 1 and all(_partition(values) != _partition(v) for _, v in kept):
            kept.append((key, values))
    return kept


def _partition(values: list[str]) -> list[int]:
    """Which members share a value: each member's first index with the same value."""
    first: dict[str, int] = {}
    return [first.setdefault(v, k) for k, v in enumerate(values)]


def _changes(values: list[str]) -> int:
    return sum(a != b for a, b in zip(values, values[1:]))


def series_axis(embeddings: Sequence[Any], labels: Sequence[str] | None = None) -> SeriesAxis:
    """The x axis and lines of ``embeddings`` taken as a series, in their order (``labels`` name members when
    nothing else sets them apart)."""
    n = len(embeddings)
    labels = list(labels) if labels is not None else [str(getattr(e, "label", k + 1)) for k, e in
                                                      enumerate(embeddings)]
    places = np.arange(1, n + 1, dtype=np.float64)
    varying = _varying(embeddings)
    if not varying:
        return SeriesAxis(places, "member", labels, [""] * n)
    # the x axis: what changes most often (ties: the later, a checkpoint folder below its seed's)
    best = max(range(len(varying)), key=lambda k: (_changes(varying[k][1]), k))
    key, names = varying[best]
    rest = [values for k, (_, values) in enumerate(varying) if k != best]
    stepped = all(_STEP.search(name) for name in names)
    if stepped:  # what remains of a name once its step is taken out (multiberts-seed_0-step_*) may split lines
        rest.append([_STEP.sub("step_*", name) for name in names])
    rest = [values for values in rest if len(set(values)) > 1]
    lines = [" ".join(parts) for parts in zip(*rest)] if rest else [""] * n
    if len(set(lines)) == n:  # every member its own line: they are not lines of one series
        lines = [""] * n
    steps = [step_of(name) for name in names]
    x, x_name = places, "member"
    if all(s is not None for s in steps):
        candidate = np.array(steps, dtype=np.float64)
        increasing = all(np.all(np.diff(candidate[[k for k in range(n) if lines[k] == line]]) > 0)
                         for line in set(lines))
        if increasing:
            x = candidate
            x_name = "step" if stepped else "number in the name" if key.startswith(("path", "source")) else key
    if len(set(names)) < n and not any(lines):
        names = labels
    return SeriesAxis(x, x_name, list(names), lines)
