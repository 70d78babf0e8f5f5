"""Single-file plugins (``POSEMBED_PLUGINS_DIR``) and the clash order chosen by the user (the order of
``POSEMBED_LOAD_PLUGINS``): issue 28, items 5 and 6."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.testing import installed, providing

def decay_plugin() -> str:
    """The single-file plugin of docs/plugins.md, section 12.9."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    return re.search(r"<!-- example: decay -->\n```python\n(.*?)\n```\n", doc, flags=re.S).group(1) + "\n"



def posembed(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def plugins_dir(tmp_path, monkeypatch):
    folder = tmp_path / "my plugins"
    folder.mkdir()
    monkeypatch.setenv("POSEMBED_PLUGINS_DIR", str(folder))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")  # installed plugins cannot warn here
    yield folder
    for name in [m for m in sys.modules if m.startswith("posembed_plugins_dir.")]:
        del sys.modules[name]


def test_each_python_file_of_the_folder_is_a_plugin(plugins_dir):
    (plugins_dir / "decay.py").write_text(decay_plugin(), encoding="utf-8")
    (plugins_dir / "notes.txt").write_text("not a plugin", encoding="utf-8")
    result = posembed("analyze", "decay,decay=0.25", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    scalars = json.loads(result.stdout)["tables"][0]["scalars"]
    assert scalars["last_norm"] == pytest.approx(float((explorer.load("decay,decay=0.25").matrix[-1] ** 2).sum()) ** 0.5)
    bad = posembed("info", "decay,decay=0")
    assert bad.exit_code == 2 and bad.stderr == "posembed: error: decay: parameter 'decay' must be in (0, 1], got 0.0\n"
    [row] = [r for r in json.loads(posembed("plugins", "--json").stdout) if r["name"] == "decay"]
    assert row["state"] == "loaded" and row["module"] == str(plugins_dir / "decay.py")
    assert row["providers"] == ["decay"] and row["analyses"] == ["last_norm"]
    assert f"decay  {plugins_dir / 'decay.py'}\n" in posembed("plugins").stdout


def test_a_broken_file_is_one_line_naming_it_and_the_others_still_load(plugins_dir):
    (plugins_dir / "decay.py").write_text(decay_plugin(), encoding="utf-8")
    (plugins_dir / "broken.py").write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    result = posembed("info", "decay")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"posembed: warning: plugin 'broken' ({plugins_dir / 'broken.py'}) failed to import and is skipped: "
        f"RuntimeError: half written"]


def test_a_file_named_like_a_loaded_plugin_is_skipped_as_a_clash(plugins_dir, monkeypatch):
    (plugins_dir / "decay.py").write_text(decay_plugin(), encoding="utf-8")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "decay")
    with installed(providing(explorer.Provider("other", "x", lambda: None), name="posembed_decay_pkg"),
                   name="decay"):
        result = posembed("info", "sinusoidal,positions=8,dim=4")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"posembed: warning: plugin 'decay' ({plugins_dir / 'decay.py'}) is skipped: a plugin named 'decay' is "
        f"already loaded from posembed-decay"]


def test_a_setting_that_is_no_folder_is_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_PLUGINS_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    result = posembed("info", "sinusoidal,positions=8,dim=4")
    assert result.exit_code == 0
    assert result.stderr == (f"posembed: warning: POSEMBED_PLUGINS_DIR={str(tmp_path / 'missing')!r} is not a folder; "
                             f"no plugin is loaded from it\n")


def _claiming(name: str, value: str):
    return providing(explorer.Provider("shared", value, lambda: None), name=f"posembed_{name}")


@pytest.mark.parametrize("order, kept", [("alpha,beta", "alpha"), ("beta,alpha", "beta"),
                                         ("posembed-beta,alpha", "beta")])
def test_the_order_of_load_plugins_decides_who_keeps_a_shared_name(order, kept, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", order)
    with installed(_claiming("alpha", "from alpha"), name="alpha"), installed(_claiming("beta", "from beta"),
                                                                                name="beta"):
        with pytest.warns(explorer.errors.PosembedWarning, match=rf"keeping the one from '{kept}'"):
            registry = explorer.plugins.get_registry()
    assert registry.providers["shared"].description == f"from {kept}" and registry.owners["shared"] == kept


def test_without_an_order_the_entry_point_names_decide(monkeypatch):
    monkeypatch.delenv("POSEMBED_LOAD_PLUGINS", raising=False)
    with installed(_claiming("beta", "from beta"), name="beta"), installed(_claiming("alpha", "from alpha"),
                                                                            name="alpha"):
        with pytest.warns(explorer.errors.PosembedWarning, match="keeping the one from 'alpha'"):
            registry = explorer.plugins.get_registry()
    assert registry.owners["shared"] == "alpha"
