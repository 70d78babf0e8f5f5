"""docs/plugins.md, sections 11 to 14, hold: the posembed-vit plugin is written from the page's text alone, its
own tests pass, and every promise the page makes about it is what posembed does (the one-line failure, the
signature check, ``posembed plugins``, the public API and its version, when plugins are imported,
``POSEMBED_LOAD_PLUGINS``)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.plugins import registry as plugins
from explorer.testing import installed

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")


def examples() -> dict[str, str]:
    """``<!-- example: NAME -->`` -> the code block that follows it."""
    return dict(re.findall(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)\n```\n", DOC, flags=re.S))


def block_after(marker: str) -> str:
    """The first plain ``` block after ``marker`` in the page."""
    rest = DOC[DOC.index(marker):]
    return re.search(r"\n\n```\n(.*?)\n```\n", rest, flags=re.S).group(1)


def section(heading: str) -> str:
    start = DOC.index(heading)
    end = DOC.find("\n### ", start + 1)
    return DOC[start:end if end > 0 else None]


@pytest.fixture
def vit(tmp_path, monkeypatch):
    """posembed-vit written from the page into a folder on sys.path; yields the folder."""
    folder = tmp_path / "posembed-vit"
    for name, code in examples().items():
        if name.startswith("posembed-vit/"):
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code + "\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "posembed_vit", raising=False)
    yield folder
    sys.modules.pop("posembed_vit", None)


def posembed(*args):
    return CliRunner().invoke(cli, list(args))


def test_the_page_shows_the_whole_plugin():
    assert {name for name in examples() if name.startswith("posembed-vit/")} == {
        "posembed-vit/posembed_vit.py", "posembed-vit/pyproject.toml", "posembed-vit/tests/test_vit.py"}


def test_the_plugins_own_tests_pass(vit, tmp_path):
    env = {**os.environ, "POSEMBED_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(vit), str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("POSEMBED_LOAD_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=vit,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def a_table(tmp_path) -> Path:
    path = tmp_path / "vit.npz"
    np.savez(path, pos_embed=np.arange(1 * 5 * 4, dtype=np.float16).reshape(1, 5, 4))
    return path


# item 1
def test_an_exception_inside_its_load_is_the_line_the_page_shows(vit, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(explorer, "read_tensor", boom)
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "vit")  # whatever else is installed cannot warn here
    with installed("posembed_vit", version="0.1.0"):
        result = posembed("info", f"vit:{a_table(tmp_path)}")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line == "posembed: error: provider 'vit' (posembed-vit 0.1.0) failed: RuntimeError: boom"
    assert f"`{line}`" in section("### 12.5")


# item 2
def test_a_mismatched_provider_gives_the_warning_the_page_shows(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "walk")  # whatever else is installed cannot warn here
    module = types.ModuleType("posembed_walk_mismatch")
    exec(compile(examples()["mismatch"], "docs/plugins.md:mismatch", "exec"), module.__dict__)
    with installed(module, name="walk", distribution="posembed-walk", version="0.1.0"):
        result = posembed("providers")
    assert result.exit_code == 0 and not re.search(r"^walk ", result.stdout, flags=re.M)
    assert result.stderr.splitlines() == [block_after("<!-- example: mismatch -->")]


# item 3
def test_posembed_plugins_gives_the_row_the_page_shows(vit):
    with installed("posembed_vit", version="0.1.0"):
        rows = json.loads(posembed("plugins", "--json").stdout)
    [row] = [row for row in rows if row["name"] == "vit"]
    shown = json.loads(re.search(r"```json\n(.*?)\n```", section("### 12.7"), flags=re.S).group(1))
    assert row == shown


# item 4
def documented_defaults(heading: str) -> dict[str, str]:
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section(heading), flags=re.M))


def spelled(field: dataclasses.Field) -> str:
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return "required"
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if isinstance(value, type):
        return f"`{value.__name__}`"
    return f"`{json.dumps(value) if isinstance(value, str) else repr(value)}`"


@pytest.mark.parametrize("heading, cls", [("### 12.1", explorer.Provider), ("### 12.2", explorer.Param),
                                          ("### 12.3", explorer.PositionEmbedding)], ids=lambda v: str(v))
def test_every_field_is_documented_with_its_default(heading, cls):
    fields = {f.name: spelled(f) for f in dataclasses.fields(cls)}
    assert documented_defaults(heading) == fields


def test_the_api_version_the_page_states_is_the_packages():
    assert explorer.API_VERSION == "0.2" and explorer.__version__.startswith(explorer.API_VERSION + ".")
    assert f'explorer.API_VERSION == "{explorer.API_VERSION}"' in DOC
    assert 'dependencies = ["posembed-explorer>=0.2,<0.3"]' in examples()["posembed-vit/pyproject.toml"]


# item 5
def test_it_is_imported_by_the_commands_the_page_says_and_a_failure_is_named_as_shown(vit, tmp_path, monkeypatch):
    table = a_table(tmp_path)
    with installed("posembed_vit", version="0.1.0"):
        for command, imports in ((["--help"], False), (["report", "--help"], False),
                                 (["info", "sinusoidal,positions=8,dim=4"], True), (["info", f"vit:{table}"], True)):
            sys.modules.pop("posembed_vit", None)
            plugins.reset()  # as in a new process
            result = posembed(*command)
            assert result.exit_code == 0, (command, result.output)
            assert ("posembed_vit" in sys.modules) is imports, command
    assert "| every other command; `explorer.load`, `analyze`, `report`, `show` | every allowed plugin" in DOC
    source = vit / "posembed_vit.py"
    future = "from __future__ import annotations\n"
    source.write_text(source.read_text(encoding="utf-8").replace(future, future + "import scipy_not_installed\n"),
                      encoding="utf-8")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "vit")  # the page lists the built-in providers alone
    with installed("posembed_vit", version="0.1.0"):
        sys.modules.pop("posembed_vit", None)
        plugins.reset()
        result = posembed("info", "vit")
    assert result.exit_code == 2
    shown = block_after("## 13.").replace("'scipy'", "'scipy_not_installed'")
    assert result.stderr.splitlines()[-1] == shown


def test_a_slow_import_gives_the_warning_the_page_shows(vit, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "vit-slow")  # whatever else is installed cannot warn here
    code = (vit / "posembed_vit.py").read_text(encoding="utf-8")
    future = "from __future__ import annotations\n"
    (vit / "posembed_vit_slow.py").write_text(code.replace(future, future + "import time\ntime.sleep(0.6)\n"),
                                              encoding="utf-8")
    with installed("posembed_vit_slow", version="0.1.0") as name:
        result = posembed("info", f"vit:{a_table(tmp_path)}")
    sys.modules.pop("posembed_vit_slow", None)
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    seconds = re.search(r"took (\d+\.\d) s", line).group(1)
    shown = next(row for row in section("## 8.").splitlines()
                 if row.startswith("posembed: warning:") and " s to import" in row)
    assert line == (shown.replace("'random-walk' (posembed-random-walk 0.1.0)", f"{name!r} (posembed-{name} 0.1.0)")
                    .replace("took 5.0 s", f"took {seconds} s"))


# item 6
def test_a_provider_excluded_by_load_plugins_gives_the_error_the_page_shows(vit, monkeypatch):
    with installed("posembed_vit", version="0.1.0"):
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
        result = posembed("info", "vit")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [block_after("### 12.8")]


def test_the_public_name_list_is_complete():
    import inspect

    import explorer.errors
    import explorer.testing

    listed = {module: set(re.findall(r"`(\w+)`", names)) for module, names in re.findall(
        r"^- `(explorer(?:\.\w+)?)`: (.*?)(?=;\n- |\.\n\n)", section("## 14."), flags=re.S | re.M)}
    assert listed["explorer"] == set(explorer.__all__)
    assert listed["explorer.errors"] == {n for n, v in vars(explorer.errors).items()
                                         if inspect.isclass(v) and v.__module__ == "explorer.errors"}
    assert listed["explorer.testing"] == {n for n, v in vars(explorer.testing).items() if not n.startswith("_")
                                          and inspect.isfunction(v) and v.__module__ == "explorer.testing"}
    assert listed["explorer.plugins"] <= set(explorer.plugins.__all__)
    assert "check_shape" in listed["explorer"]
