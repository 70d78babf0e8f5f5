"""The plugin tutorial (docs/plugins.md) shows the real package under plugins/, and every package there is
installed with an entry point of group posembed, as .ci/run does."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "plugins.md"
TUTORIAL_PACKAGE = REPO / "plugins" / "posembed-random-walk"
PACKAGES = sorted(path.parent for path in (REPO / "plugins").glob("*/pyproject.toml"))


def shown_files():
    """Repository path -> the code block that follows its ``<!-- file: PATH -->`` marker in the tutorial."""
    text = TUTORIAL.read_text(encoding="utf-8")
    return {path: code for path, code in
            re.findall(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)\n```\n", text, flags=re.S)}


def test_tutorial_shows_every_file_of_its_package():
    package_files = {str(path.relative_to(REPO)) for path in TUTORIAL_PACKAGE.rglob("*")
                     if path.is_file() and path.suffix in (".py", ".toml") and "__pycache__" not in path.parts}
    assert package_files == set(shown_files())


@pytest.mark.parametrize("path", sorted(shown_files()))
def test_tutorial_code_is_the_package_code(path):
    assert shown_files()[path] == (REPO / path).read_text(encoding="utf-8").rstrip("\n"), (
        f"docs/plugins.md shows an outdated {path}")


def test_there_are_plugin_packages():
    assert {p.name for p in PACKAGES} >= {"posembed-rotary", "posembed-random-walk"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_plugin_package_is_installed_with_its_entry_points(package):
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["entry-points"]["posembed"]
    try:
        dist = metadata.distribution(project["name"])
    except metadata.PackageNotFoundError:
        pytest.fail(f"{project['name']} is not installed: pip install -e plugins/{package.name} (as .ci/run does)")
    installed = {ep.name: ep.value for ep in dist.entry_points if ep.group == "posembed"}
    assert installed == declared
    assert (package / "tests").is_dir(), f"plugins/{package.name} has no tests/"


def test_ci_installs_every_plugin_package_and_pytest_collects_their_tests():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'for plugin in plugins/*/' in ci and 'pip install -q -e "$plugin"' in ci
    options = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "plugins" in options["testpaths"] and "--import-mode=importlib" in options["addopts"]
