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
