"""A Python file loaded as a module by its path, once per process: for the test files, conftests and docs
scripts that one test reads from another (pytest does not let them be imported by name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def by_path(path: str | Path, name: str):
    """The module the file at ``path`` makes, under ``name`` in ``sys.modules`` (executed the first time only)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
