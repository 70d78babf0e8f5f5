import pytest

from explorer.errors import SpecError
from explorer.plugins.provider import Param, Provider


def provider(**kw):
    return Provider(
        name="demo",
        description="a demo",
        load=lambda **params: params,
        params=(
            Param("model", str, None, "model id"),
            Param("positions", int, 16, "rows", minimum=1),
            Param("scale", float, 1.0, "factor"),
            Param("centre", bool, False, "centre it"),
            Param("layout", str, "a", "layout", choices=("a", "b")),
        ),
        target="model",
        **kw,
    )


def test_resolve_types_values_and_fills_defaults():
    kwargs = provider().resolve("org/m", {"positions": "1_024", "scale": "0.5", "centre": "yes"})
    assert kwargs == {"model": "org/m", "positions": 1024, "scale": 0.5, "centre": True, "layout": "a"}


@pytest.mark.parametrize("options, fragment", [
    ({"positions": "ten"}, "expects int"),
    ({"positions": "0"}, ">= 1"),
    ({"scale": "nan"}, "expects float"),
    ({"centre": "maybe"}, "expects bool"),
    ({"layout": "c"}, "must be one of a, b"),
    ({"positons": "3"}, "did you mean 'positions'"),
])
def test_bad_values_name_the_parameter(options, fragment):
    with pytest.raises(SpecError, match=fragment):
        provider().resolve(None, options)


def test_target_and_parameter_given_twice_is_refused():
    with pytest.raises(SpecError, match="given twice"):
        provider().resolve("a", {"model": "b"})


def test_target_refused_when_provider_has_none():
    p = Provider("plain", "no target", lambda: None)
    with pytest.raises(SpecError, match="takes no ':TARGET'"):
        p.resolve("x", {})


@pytest.mark.parametrize("kwargs, problem", [
    ({"name": "a:b"}, "its name 'a:b' must be non-empty text without ':', ',', '=' or spaces"),
    ({"name": ""}, "its name '' must be non-empty text"),
    ({"params": (Param("x"), Param("x"))}, "it declares the parameter 'x' twice"),
    ({"target": "missing"}, "its target 'missing' is not one of its parameters"),
    ({"load": "not callable"}, "its load must be callable"),
    ({"params": (Param("spec"),)}, "parameter 'spec': 'spec', 'registry' are explorer.load's own arguments"),
    ({"params": (Param("registry", int, 1),)}, "parameter 'registry': 'spec', 'registry'"),
    ({"params": (Param("x", str, "a", required=True),)}, "parameter 'x': a required parameter has no default"),
])
def test_malformed_declarations_are_named_as_that_providers_problem(kwargs, problem):
    base = {"name": "ok", "description": "", "load": lambda **kw: None}
    declared = Provider(**{**base, **kwargs})  # made without raising: its plugin's module still imports
    assert declared.problem().startswith(problem)
