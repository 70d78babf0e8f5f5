"""`posembed --help` and `posembed providers` import neither torch, transformers nor bokeh."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "bokeh")


@pytest.mark.parametrize("args", [["--help"], ["providers"], ["providers", "--json"]])
def test_light_commands_do_not_import_heavy_libraries(args):
    code = (
        "import sys\n"
        "from explorer.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='posembed')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_explorer_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "explorer", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "posembed" in result.stdout
