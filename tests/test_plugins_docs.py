"""The plugin tutorial (docs/plugins.md) shows the real package under plugins/, and every package there is
installed with an entry point of group posembed, as .ci/run does."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "plugins.md"
#: The packages the tutorial builds, in the order it builds them.
TUTORIAL_PACKAGES = [REPO / "plugins" / "posembed-random-walk", REPO / "plugins" / "posembed-monotonicity"]
PACKAGES = sorted(path.parent for path in (REPO / "plugins").glob("*/pyproject.toml"))


def shown_files():
    """Repository path -> the code block that follows its ``<!-- file: PATH -->`` marker in the tutorial."""
    text = TUTORIAL.read_text(encoding="utf-8")
    return {path: code for path, code in
            re.findall(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)\n```\n", text, flags=re.S)}


def package_files(package: Path) -> set[str]:
    """The package's code and metadata files, as repository paths."""
    return {str(path.relative_to(REPO)) for path in package.rglob("*")
            if path.is_file() and path.suffix in (".py", ".toml") and "__pycache__" not in path.parts}


def test_tutorial_shows_every_file_of_its_packages_and_nothing_else():
    expected = set().union(*(package_files(package) for package in TUTORIAL_PACKAGES))
    assert all(package_files(package) for package in TUTORIAL_PACKAGES)
    assert expected == set(shown_files())


def test_tutorial_shows_each_file_once():
    markers = re.findall(r"<!-- file: (\S+) -->", TUTORIAL.read_text(encoding="utf-8"))
    assert len(markers) == len(set(markers)) == len(shown_files())


@pytest.mark.parametrize("path", sorted(shown_files()))
def test_tutorial_code_is_the_package_code(path):
    assert shown_files()[path] == (REPO / path).read_text(encoding="utf-8").rstrip("\n"), (
        f"docs/plugins.md shows an outdated {path}")


def test_there_are_plugin_packages():
    assert {p.name for p in PACKAGES} >= {"posembed-rotary", *(p.name for p in TUTORIAL_PACKAGES)}


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


#: What a plugin's own code may import from posembed: the modules section 14 of docs/plugins.md makes public.
PUBLIC_MODULES = {"explorer", "explorer.errors", "explorer.testing", "explorer.plugins", "explorer.reporting.figures"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.name)
def test_every_plugin_uses_only_explorers_public_api(package):
    """A plugin under plugins/ is written as a third party would: it imports only public modules, and from
    ``explorer`` only the names it exports (so ``open_model``, not the loaders behind it)."""
    import ast

    import explorer

    for path in package.glob("*.py"):  # the plugin's own modules (its tests may drive the CLI)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "explorer":
                assert node.module in PUBLIC_MODULES, f"{path.name} imports {node.module}"
                if node.module == "explorer":
                    assert {a.name for a in node.names} <= set(explorer.__all__), f"{path.name}: {node.names}"
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names if a.name.split(".")[0] == "explorer"}
                assert names <= PUBLIC_MODULES, f"{path.name} imports {names}"
