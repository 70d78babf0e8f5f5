"""Shared fixtures: paths to the real data beside the checkout, and a fresh provider registry."""

from __future__ import annotations

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
def forked_cli_report(tmp_path_factory):
    """A comparison page written by the real command in a fresh process, where ``posembed`` forks (one BLAS
    thread, one Python thread): (the page's path, what ``background.can_fork`` answered at each ``start``).

    The test process itself cannot fork (OpenBLAS's threads), so in-process reports take the sequential path;
    this is the one that runs the analyses and the page's second part in forked children.
    """
    import os
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("cli") / "cmp.html"
    code = (
        "import sys\n"
        "from explorer import background\n"
        "answers, can_fork = [], background.can_fork\n"
        "background.can_fork = lambda: answers.append(can_fork()) or answers[-1]\n"
        "from explorer.cli import main\n"
        f"sys.argv = ['posembed', '--quiet', 'report', 'sinusoidal,positions=256,dim=64',\n"
        f"            'sinusoidal,positions=200,dim=32,layout=split', '-o', {str(path)!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print(answers)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["POSEMBED_LOAD_PLUGINS"] = ""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return path, done.stdout.strip()
