"""Shared fixtures: paths to the real data beside the checkout, a fresh provider registry, and a real notebook."""

from __future__ import annotations

import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
GPT2_WPE = SHARED_DATA / "gpt2-small-wpe.npy"


@pytest.fixture(autouse=True)
def fresh_plugin_registry(monkeypatch, tmp_path_factory):
    """Each test starts from a fresh process registry (``explorer.plugins.reset``), since tests fake, exclude and
    add plugins."""
    from explorer.plugins import registry as plugins

    plugins.reset()
    yield
    plugins.reset()


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
    from explorer.plugins.manager import get_plugin_manager
    from explorer.plugins.registry import get_registry

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


#: First cell of every notebook the tests run: any connection off this machine fails loudly.
NO_NETWORK_CELL = """\
import socket as _socket

def _loopback_only(connect):
    def guarded(self, address):
        if self.family in (_socket.AF_INET, _socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"the test notebook has no network: connection to {address!r} refused")
        return connect(self, address)
    return guarded

_socket.socket.connect = _loopback_only(_socket.socket.connect)
_socket.socket.connect_ex = _loopback_only(_socket.socket.connect_ex)
"""


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory):
    """Execute code cells as a real Jupyter notebook (nbclient, an IPython kernel of this very Python, this
    checkout's code first on its path, third-party plugins off, no network); returns the executed notebook.

    The kernel's folder is a fresh temporary one: files the cells write land there, not in the checkout.
    Raises ``nbclient.exceptions.CellExecutionError`` naming the cell when one fails.
    """
    import gc
    import logging
    import os

    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    home = tmp_path_factory.mktemp("jupyter")
    # a kernel spec naming sys.executable: an installed "python3" spec may name whichever python is on PATH
    write_kernel_spec(home / "kernels" / "python3")
    specs = KernelSpecManager(kernel_dirs=[str(home / "kernels")], ensure_native_kernel=False)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "POSEMBED_LOAD_PLUGINS": "",
        "HF_HUB_OFFLINE": "1",
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
    }

    def execute(cells: list[str], cwd: Path, timeout: float = 120) -> "nbformat.NotebookNode":
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in (NO_NETWORK_CELL, *cells)]
        manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
        client = NotebookClient(nb, km=manager, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute(env=env)
        # The kernel client's destructor logs "Could not destroy zmq context" whenever it runs: let it run here,
        # quietly, not during a later test that checks stderr line by line.
        del client, manager
        logging.disable(logging.WARNING)
        try:
            gc.collect()
        finally:
            logging.disable(logging.NOTSET)
        nb.cells = nb.cells[1:]
        return nb

    return execute


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

    monkeypatch.setattr("explorer.plugins.selection.metadata.entry_points",
                        lambda group: [ep for ep in installed if ep.group == group])
    from explorer.plugins import registry as plugins

    plugins.reset()  # the process's registry must see these entry points, not the installed ones
    monkeypatch.delenv("POSEMBED_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("POSEMBED_TRACE_PLUGINS", raising=False)
    return add
