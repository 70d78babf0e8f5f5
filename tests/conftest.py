"""Shared fixtures: paths to the real data beside the checkout, and a fresh provider registry."""

from __future__ import annotations

import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
GPT2_WPE = SHARED_DATA / "gpt2-small-wpe.npy"


@pytest.fixture
def gpt2_wpe():
    """GPT-2 small's real learned table (1024 x 768), or a skip when ../shared is absent."""
    if not GPT2_WPE.exists():
        pytest.skip(f"real GPT-2 table not found at {GPT2_WPE} (../shared is absent)")
    import numpy as np

    return np.load(GPT2_WPE)


@pytest.fixture
def builtin_registry(monkeypatch):
    """A registry with the built-in providers only (no installed third-party plugins)."""
    from explorer.plugins import get_registry, get_plugin_manager

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    return get_registry(get_plugin_manager())


@pytest.fixture
def run(monkeypatch):
    """Invoke the ``posembed`` CLI through click's CliRunner with third-party plugins off; returns the Result."""
    from click.testing import CliRunner

    from explorer.cli import cli

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")

    def invoke(*args):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def cli_comparison_report(tmp_path_factory):
    """A comparison page written by the real command in a fresh process in which starting any other process
    fails: (the page's path, the command's stderr). One process builds the page."""
    import os
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("cli") / "cmp.html"
    code = (
        "import os, subprocess, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('posembed report started a process')\n"
        "os.fork = os.forkpty = os.posix_spawn = os.posix_spawnp = refuse\n"
        "subprocess.Popen.__init__ = refuse\n"
        "from explorer.cli import main\n"
        f"sys.argv = ['posembed', '--quiet', 'report', 'sinusoidal,positions=256,dim=64',\n"
        f"            'sinusoidal,positions=200,dim=32,layout=split', '-o', {str(path)!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return path, done.stderr


class FakeDistribution(metadata.Distribution):
    """An installed distribution that exists only in memory (pluggy tests entry points the same way)."""

    def __init__(self, name, version, points):
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "[posembed]\n" + "".join(f"{ep} = {value}\n" for ep, value in points.items()),
        }

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):  # pragma: no cover - nothing is on disk
        raise FileNotFoundError(path)


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake entry points of group 'posembed'; returns add(ep_name, module_or_value, dist=None)."""
    installed = []

    def add(ep_name, module_or_value, dist=None, version="1.0"):
        if isinstance(module_or_value, types.ModuleType):
            monkeypatch.setitem(sys.modules, module_or_value.__name__, module_or_value)
            value = module_or_value.__name__
        else:
            value = module_or_value
        if dist is None:
            installed.append(metadata.EntryPoint(ep_name, value, "posembed"))
        else:
            installed.extend(FakeDistribution(dist, version, {ep_name: value}).entry_points)

    monkeypatch.setattr("explorer.plugins.metadata.entry_points",
                        lambda group: [ep for ep in installed if ep.group == group])
    monkeypatch.delenv("POSEMBED_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("POSEMBED_TRACE_PLUGINS", raising=False)
    return add
