"""Every plugin hook has a section in docs/hooks.md with its signature, parameters and a running example
(datasette's test_plugin_hooks_are_documented)."""

import re
import types
from pathlib import Path

import pytest

from explorer.plugins.manager import get_plugin_manager
from explorer.plugins.registry import get_registry

REPO = Path(__file__).resolve().parents[1]
HOOKS_DOC = REPO / "docs" / "hooks.md"


def hook_specs():
    """Hook name -> argument names, for every hook with a spec."""
    pm = get_plugin_manager(load_entrypoints=False)
    return {name: caller.spec.argnames for name, caller in vars(pm.hook).items()
            if not name.startswith("_") and caller.has_spec()}


def sections():
    """``## heading`` -> the text up to the next ``## `` heading."""
    parts = re.split(r"^## (.+)$", HOOKS_DOC.read_text(encoding="utf-8"), flags=re.M)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2])}


HOOKS = hook_specs()


def test_there_is_a_hook():
    assert "register_providers" in HOOKS


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_plugin_hooks_are_documented(hook):
    signature = f"{hook}({', '.join(HOOKS[hook])})"
    body = sections().get(signature)
    assert body is not None, f"docs/hooks.md has no section '## {signature}'"
    for arg in HOOKS[hook]:
        assert re.search(rf"^- `{arg}` \(", body, flags=re.M), f"{signature}: parameter {arg!r} is not described"
    assert "```python" in body, f"{signature}: no example"


def test_every_documented_hook_exists():
    documented = {heading.split("(")[0] for heading in sections() if "(" in heading}
    assert documented <= set(HOOKS), f"docs/hooks.md documents hooks that do not exist: {documented - set(HOOKS)}"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_examples_run_as_plugins(hook, monkeypatch):
    """The example of each hook section, registered as a plugin, implements that hook without warnings."""
    [code] = re.findall(r"```python\n(.*?)```", sections()[f"{hook}({', '.join(HOOKS[hook])})"], flags=re.S)
    module = types.ModuleType(f"posembed_docs_example_{hook}")
    exec(compile(code, f"docs/hooks.md:{hook}", "exec"), module.__dict__)
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    pm.register(module, name="docs-example")
    assert pm.hook_names(module) == [hook]
    if hook == "register_providers":
        registry = get_registry(pm)
        [name] = registry.of_plugin("docs-example")
        assert registry.get(name).load(**{p.name: p.default for p in registry.get(name).params}).positions > 0
    elif hook == "register_analyses":
        import explorer

        [unit] = [a for a in get_registry(pm).analyses if a.plugin == "docs-example"]
        results = explorer.analyze(explorer.load("sinusoidal,positions=32,dim=8"), registry=get_registry(pm))
        assert unit.name in results and set(unit.scalars_of(results[unit.name])) <= set(results.scalars())
    elif hook == "register_sections":
        import explorer
        from explorer.reporting.page import build_document

        registry = get_registry(pm)
        [section] = [s for s in registry.sections if s.plugin == "docs-example"]
        emb = explorer.load("sinusoidal,positions=32,dim=8")
        doc = build_document([emb], [explorer.analyze(emb, registry=registry)], sections=[section])
        texts = [m.text for m in doc.models if type(m).__name__ == "Div"]
        assert any(section.title in t for t in texts) and len(texts) >= 3  # title, heading, the section's own


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_test_implementing_it(hook):
    implementations = [path for path in (REPO / "tests").glob("test_*.py")
                       if path.name != Path(__file__).name and f"def {hook}(" in path.read_text(encoding="utf-8")]
    assert implementations, f"no test implements {hook}"


def test_the_tables_of_builtin_analyses_and_sections_are_generated_from_the_registry():
    from modules import by_path

    text = HOOKS_DOC.read_text(encoding="utf-8")
    generator = by_path(REPO / "docs" / "make_unit_tables.py", "make_unit_tables")
    assert generator.render(text) == text, "docs/hooks.md is stale: run python docs/make_unit_tables.py"
    registry = get_registry(get_plugin_manager(load_entrypoints=False))
    for section in registry.sections:
        assert f"| {section.order:g} | `{section.name}` |" in text
    for analysis in registry.analyses:
        assert f"| {analysis.order:g} | `{analysis.name}` |" in text
