"""The house's shape holds: no import cycle between explorer's modules, at most 10 modules at the top level, none
over 500 lines (the plugin manager's under 300)."""

from __future__ import annotations

import ast
from pathlib import Path

import explorer

PACKAGE = Path(explorer.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str) -> set[str]:
    """The explorer modules that module ``name`` imports anywhere: at its top or inside a function (a cycle
    through a function's import still ties two layers together); ``if TYPE_CHECKING`` blocks never run."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if not _is_type_checking(node):
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base]).strip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)

    Imports().visit(ast.parse(path.read_text(encoding="utf-8")))
    return {module for module in found if module in MODULES and module != name}


def cycles() -> list[list[str]]:
    """Every import cycle among explorer's modules (each found once, from its smallest name)."""
    graph = {name: imports_of(name) for name in MODULES}
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                found.append(path + [start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def test_the_walk_sees_imports():
    assert "explorer.plugins.registry" in imports_of("explorer.plugins.describe")
    assert "explorer.analysis" in imports_of("explorer.api")  # inside a function
    assert "explorer.core.embedding" not in imports_of("explorer.analysis.context")  # under TYPE_CHECKING only


def test_a_cycle_is_found(monkeypatch):
    import test_layers

    real = test_layers.imports_of
    monkeypatch.setattr(test_layers, "imports_of", lambda name: real(name) | (
        {"explorer.api"} if name == "explorer.loading.series" else set()))
    assert ["explorer.api", "explorer.loading.series", "explorer.api"] in test_layers.cycles()


def test_no_module_imports_itself_back_through_others():
    assert cycles() == []


def test_at_most_ten_modules_at_the_top_level():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_no_module_is_over_500_lines_and_the_plugin_managers_are_under_300():
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 500} == {}
    assert {p: n for p, n in sizes.items() if p.startswith("plugins/") and n >= 300} == {}
