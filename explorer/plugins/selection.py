"""Which plugins are installed (entry points of group ``posembed``), which ``POSEMBED_LOAD_PLUGINS`` lets load and
in which order, and the single-file plugins of ``POSEMBED_PLUGINS_DIR``.

``POSEMBED_LOAD_PLUGINS`` is a comma-separated list of entry-point or distribution names, compared as pip compares
names; set but empty, it loads none; its order is the order in which plugins claim names that clash. Built-ins
always load, first. ``POSEMBED_PLUGINS_DIR`` names a folder whose ``*.py`` files each load as a plugin.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from explorer.runtime import environment
from explorer.runtime.console import did_you_mean, warn

ENTRY_POINT_GROUP = "posembed"
LOAD_PLUGINS_ENV = "POSEMBED_LOAD_PLUGINS"
PLUGINS_DIR_ENV = "POSEMBED_PLUGINS_DIR"
#: The distribution the built-in plugins ship in.
DISTRIBUTION = "posembed-explorer"


def normalize(name: str) -> str:
    """Names compare case-insensitively with '-', '_' and '.' alike, as pip compares distribution names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    """The name and version of the distribution that ships ``ep`` (None, None when it has no metadata)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def installed_entry_points() -> list[metadata.EntryPoint]:
    """Every installed entry point of group ``posembed``, by entry-point name, then as ``importlib.metadata`` finds
    the distributions (``sys.path`` order)."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


@dataclass(frozen=True)
class Selection:
    """What ``POSEMBED_LOAD_PLUGINS`` asks for: ``None`` (unset: every plugin) or the names given, as written."""

    raw: str | None
    names: dict[str, str]
    """Normalised name -> the name as the user wrote it."""

    @classmethod
    def from_environment(cls) -> "Selection":
        """The selection as ``POSEMBED_LOAD_PLUGINS`` is set now."""
        raw = environment.text(LOAD_PLUGINS_ENV)
        parts = [] if raw is None else [part.strip() for part in raw.split(",") if part.strip()]
        return cls(raw, {normalize(part): part for part in parts})

    def _keys(self, ep: metadata.EntryPoint) -> set[str]:
        return {normalize(ep.name), normalize(distribution_of(ep)[0] or "")}

    def allows(self, ep: metadata.EntryPoint) -> bool:
        """Whether the entry point may load (its entry-point or distribution name is listed, or nothing is set)."""
        return self.raw is None or bool(set(self.names) & self._keys(ep))

    def order(self, ep: metadata.EntryPoint) -> int:
        """Where the user put ``ep`` in the variable: the place of the first name that matches it (the order of the
        names is the order in which plugins claim names that clash); after every listed one when unset."""
        keys = self._keys(ep)
        return next((place for place, key in enumerate(self.names) if key in keys), len(self.names))

    def setting(self) -> str:
        """``POSEMBED_LOAD_PLUGINS='a,b'``, as the user set it."""
        return f"{LOAD_PLUGINS_ENV}={self.raw!r}"

    def check(self, installed: list[metadata.EntryPoint], builtins: tuple[str, ...]) -> None:
        """Warn about each name that is a built-in (they always load) or no installed plugin."""
        names = {normalize(ep.name): ep.name for ep in installed}
        names.update({normalize(dist): dist for dist, _ in map(distribution_of, installed) if dist})
        built_in = {normalize(name) for name in (*builtins, DISTRIBUTION)}
        for key, written in sorted(self.names.items()):
            if key in names:
                continue
            if key in built_in:
                warn(f"{LOAD_PLUGINS_ENV} names {written!r}, which is built in: built-in plugins always load")
            else:
                warn(f"{LOAD_PLUGINS_ENV} names {written!r}, which is not an installed plugin"
                     f"{did_you_mean(written, sorted(set(names.values())))}")


def left_out(distribution: str) -> str | None:
    """``POSEMBED_LOAD_PLUGINS='a,b'`` when that setting leaves out the installed plugin of ``distribution``; None
    when it is not installed or may load."""
    selection = Selection.from_environment()
    if selection.raw is None:
        return None
    wanted = normalize(distribution)
    installed = [ep for ep in installed_entry_points() if normalize(distribution_of(ep)[0] or "") == wanted]
    return selection.setting() if installed and not any(map(selection.allows, installed)) else None


def plugin_files() -> list[Path]:
    """The ``*.py`` files of the folder ``POSEMBED_PLUGINS_DIR`` names, by name; a setting that names no folder is
    one warning and no file."""
    folder = environment.text(PLUGINS_DIR_ENV)
    if not folder:
        return []
    path = Path(os.path.expanduser(folder))
    if not path.is_dir():
        warn(f"{PLUGINS_DIR_ENV}={folder!r} is not a folder; no plugin is loaded from it")
        return []
    return sorted((p for p in path.glob("*.py") if p.is_file()), key=lambda p: p.name)
