"""Installed plugins stay out of the way of speed: entry points load only for commands that need providers,
and loading the rotary plugin imports neither torch, transformers nor bokeh (``plugins`` imports Bokeh: it lists
the built-in report sections)."""

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

HEAVY = ("torch", "transformers", "bokeh")


@pytest.fixture(scope="module", autouse=True)
def rotary_installed():
    try:
        metadata.distribution("posembed-rotary")
    except metadata.PackageNotFoundError:
        pytest.fail("posembed-rotary is not installed: pip install -e plugins/posembed-rotary (as .ci/run does)")


def run_cli(*args):
    """Run the CLI in a fresh interpreter with every installed plugin; return the modules it imported."""
    code = (
        "import json, sys\n"
        "from explorer.cli import cli\n"
        f"try:\n    cli({list(args)!r}, prog_name='posembed')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("POSEMBED_LOAD_PLUGINS", "POSEMBED_TRACE_PLUGINS")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stderr.rsplit("MODULES ", 1)[1])), result.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["report", "--help"]], ids=" ".join)
def test_help_loads_no_plugin(args):
    modules, _ = run_cli(*args)
    assert "posembed_rotary" not in modules
    assert not modules & set(HEAVY)


@pytest.mark.parametrize("args, heavy", [(["providers"], HEAVY), (["plugins", "--json"], ("torch", "transformers"))],
                         ids=["providers", "plugins --json"])
def test_listing_loads_the_rotary_plugin_without_heavy_imports(args, heavy):
    """``plugins`` runs every register_sections hook to list the sections, and the built-in ones are Bokeh code."""
    modules, out = run_cli(*args)
    assert "posembed_rotary" in modules and "rotary" in out
    assert sorted(modules & set(heavy)) == []
