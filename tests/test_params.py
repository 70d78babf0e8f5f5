"""Parameters that validate themselves (issue 28, item 1): bounds on both sides, open or closed; choices of any
type; the names ``explorer.load`` keeps for itself; a malformed provider reported as that provider's problem."""

from __future__ import annotations

import types

import numpy as np
import pytest

import explorer
from explorer import Analysis, Param, Provider, hookimpl
from explorer.errors import PosembedWarning, SpecError
from explorer.testing import providing, registry_with


def table(**params):
    return explorer.PositionEmbedding(np.ones((4, 2), np.float32), provider="t", source="t", params=params)


DECAY = Param("decay", float, 0.5, "per-position decay", minimum=0, min_open=True, maximum=1)


@pytest.mark.parametrize("value, ok", [("0", False), ("0.000001", True), ("1", True), ("1.0000001", False),
                                       ("-1", False)])
def test_an_open_lower_and_closed_upper_bound(value, ok):
    if ok:
        assert DECAY.convert(value, "decaying") == float(value)
    else:
        with pytest.raises(SpecError, match=rf"^decaying: parameter 'decay' must be in \(0, 1\], got "):
            DECAY.convert(value, "decaying")


def test_each_bound_alone_reads_as_written():
    assert Param("n", int, minimum=1).bounds() == ">= 1" and Param("n", int, maximum=9).bounds() == "<= 9"
    assert Param("x", float, maximum=1, max_open=True).bounds() == "< 1"
    with pytest.raises(SpecError, match=r"^p: parameter 'x' must be < 1, got 1\.0$"):
        Param("x", float, maximum=1, max_open=True).convert("1", "p")
    with pytest.raises(SpecError, match=r"^p: parameter 'n' must be >= 1, got 0$"):
        Param("n", int, minimum=1).convert("0", "p")


def test_choices_of_any_type():
    k = Param("k", int, 1, choices=(1, 2))
    assert k.type_name == "1|2" and k.convert("2", "p") == 2
    with pytest.raises(SpecError, match=r"^p: parameter 'k' must be one of 1, 2, got 3$"):
        k.convert("3", "p")
    scale = Param("scale", float, 0.5, choices=(0.5, 2))
    assert scale.convert("2", "p") == 2.0


@pytest.mark.parametrize("param, problem", [
    (Param("k", int, choices=("a", "b")), "parameter 'k': choices must be int values, got 'a'"),
    (Param("k", int, choices=()), "parameter 'k': choices must be a non-empty tuple of int values"),
    (Param("s", str, minimum=1), "parameter 's': minimum and maximum bound numbers (int or float), not str"),
    (Param("x", float, minimum=2, maximum=1), "parameter 'x': no value lies within [2, 1]"),
    (Param("x", float, minimum=1, maximum=1, max_open=True), "parameter 'x': no value lies within [1, 1)"),
    (Param("x", float, maximum=float("nan")), "parameter 'x': maximum must be a finite number, got nan"),
])
def test_a_malformed_param_is_named(param, problem):
    assert param.problem() == problem


def test_the_names_load_keeps_are_refused_so_a_spec_never_raises_a_raw_type_error():
    bad = Provider("clash", "a parameter named spec", lambda spec: table(), (Param("spec"),))
    with pytest.warns(PosembedWarning, match=r"^provider 'clash' of plugin 'posembed_test_providers' \(.*\) is "
                                             r"skipped: parameter 'spec': 'spec', 'registry' are explorer\.load's "
                                             r"own arguments; choose another name$"):
        registry = registry_with(providing(bad))
    with pytest.raises(SpecError, match="unknown provider 'clash'"):
        explorer.load("clash", registry=registry)


MODULE_LEVEL = '''
from explorer import Analysis, Param, Provider, hookimpl

PROVIDER = Provider("dup", "declares a parameter twice", lambda n: None, (Param("n", int), Param("n", int)))
GOOD = Provider("fine", "a good one", lambda: None)


@hookimpl
def register_providers(register):
    register(PROVIDER)
    register(GOOD)


@hookimpl
def register_analyses(register):
    register(Analysis("still_here", "runs although the provider is malformed", run=lambda context: 1.0))
'''


def test_a_malformed_module_level_provider_is_that_providers_error_not_a_failed_import(entry_points):
    module = types.ModuleType("posembed_module_level")
    exec(compile(MODULE_LEVEL, "posembed_module_level.py", "exec"), module.__dict__)
    entry_points("module-level", module, dist="posembed-module-level", version="0.1")
    with pytest.warns(PosembedWarning) as caught:
        registry = explorer.plugins.get_registry()
        analyses = [a.name for a in registry.analyses]
    assert [str(w.message) for w in caught] == [
        "provider 'dup' of plugin 'module-level' (posembed-module-level 0.1) is skipped: it declares the parameter "
        "'n' twice"]
    assert "fine" in registry.providers and "dup" not in registry.providers and "still_here" in analyses
    [row] = [r for r in explorer.plugins.describe_plugins(registry.pm, registry) if r["name"] == "module-level"]
    assert row["state"] == "loaded" and row["notes"] == [str(caught[0].message)]
