"""What a plugin author is promised: a provider's failure is one line naming it and its distribution, a provider
is checked against its ``load`` when registered, required parameters, ``explorer.read_tensor`` and
``explorer.testing``."""

from __future__ import annotations

import types

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer import Param, PositionEmbedding, Provider, hookimpl
from explorer.cli import cli
from explorer.errors import PluginError, PosembedWarning, ProviderError, SpecError
from explorer.testing import check_fast_start, installed, registry_with


def module_registering(*providers: Provider, name: str = "posembed_contract") -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def register_providers(register):
        for provider in providers:
            register(provider)

    module.register_providers = register_providers
    return module


def boom():
    raise RuntimeError("boom")


def posembed(*args):
    return CliRunner().invoke(cli, list(args))


# --- 1. a provider that raises ------------------------------------------------------------------------------------

def test_an_exception_inside_a_plugins_provider_is_one_line_naming_it_and_its_distribution(monkeypatch):
    plugin = module_registering(Provider("vit", "raises", boom))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "vit")  # whatever else is installed cannot warn here
    with installed(plugin, name="vit", distribution="posembed-vit", version="0.1.0"):
        result = posembed("info", "vit")
        assert result.exit_code == 1
        assert result.stderr.splitlines() == ["posembed: error: provider 'vit' (posembed-vit 0.1.0) failed: "
                                              "RuntimeError: boom"]
        debug = posembed("--debug", "info", "vit")
    assert isinstance(debug.exception, PluginError)
    assert isinstance(debug.exception.__cause__, RuntimeError)  # --debug: the plugin's own frames, chained
    assert debug.exc_info[2] is not None


def test_a_builtin_providers_bug_keeps_its_traceback(monkeypatch):
    from explorer.providers import sinusoidal

    def broken_table(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(sinusoidal, "sinusoidal_table", broken_table)
    with pytest.raises(ZeroDivisionError) as raised:
        explorer.load("sinusoidal", registry=registry_with())
    assert raised.traceback[-1].name == "broken_table"


@pytest.mark.parametrize("returns, message", [
    (lambda: {"not": "a table"}, "provider 'odd' returned dict, not a PositionEmbedding"),
    (lambda: PositionEmbedding(np.full((2, 2), np.nan), provider="odd", source="x"), "odd: the table holds 4 NaN"),
    (lambda: PositionEmbedding(np.ones(3), provider="odd", source="x"), "odd: the table must be 2-D"),
    (lambda: (_ for _ in ()).throw(ProviderError("no table in that file")), "no table in that file"),
])
def test_wrong_returns_nan_bad_shapes_and_provider_errors_keep_their_own_messages(returns, message):
    registry = registry_with(module_registering(Provider("odd", "odd", returns)))
    with pytest.raises(explorer.PosembedError) as raised:
        explorer.load("odd", registry=registry)
    assert not isinstance(raised.value, PluginError) and str(raised.value).startswith(message)


# --- 2. registration checks a provider against its load -----------------------------------------------------------

@pytest.mark.parametrize("load, problem", [
    (lambda positions: None, "its load() takes no parameter 'dim', declared as a Param"),
    (lambda positions, dim, seed: None, "its load() requires 'seed', not declared as a Param"),
])
def test_a_provider_whose_load_does_not_match_its_params_is_skipped_with_one_warning(load, problem, entry_points):
    params = (Param("positions", int, 8), Param("dim", int, 4))
    good = Provider("good", "fine", lambda positions, dim: None, params)
    entry_points("mismatch", module_registering(Provider("bad", "mismatched", load, params), good,
                                                name="posembed_mismatch"), dist="posembed-mismatch", version="0.2")
    with pytest.warns(PosembedWarning) as caught:
        registry = explorer.plugins.get_registry()
    assert [str(w.message) for w in caught] == [
        f"provider 'bad' of plugin 'mismatch' (posembed-mismatch 0.2) is skipped: {problem}"]
    assert "bad" not in registry.providers and "good" in registry.providers  # the plugin's other providers count
    [row] = [r for r in explorer.plugins.describe_plugins(registry.pm, registry) if r["name"] == "mismatch"]
    assert row["notes"] == [str(caught[0].message)] and row["providers"] == ["good"]


def test_a_load_taking_keyword_arguments_accepts_any_params():
    provider = Provider("kw", "kw", lambda **params: None, (Param("a", int, 1),))
    assert provider.load_problem() is None


# --- 4. the public API --------------------------------------------------------------------------------------------

def test_a_required_parameter_missing_is_a_spec_error_before_load_runs():
    calls = []
    def load(path, cls):
        calls.append((path, cls))
        return PositionEmbedding(np.ones((2, 2)), provider="need", source=path)

    provider = Provider("need", "needs a path", load,
                        (Param("path", str, help="the file", required=True), Param("cls", bool, True)),
                        target="path")
    registry = registry_with(module_registering(provider))
    with pytest.raises(SpecError, match=r"^need: parameter 'path' is required \(need:PATH or path=\.\.\.\)$"):
        explorer.load("need", registry=registry)
    assert calls == []
    assert explorer.load("need:/x,cls=off", registry=registry).source == "/x" and calls == [("/x", False)]
    assert Param("path", str, "default.npy", required=True).problem() == (
        "parameter 'path': a required parameter has no default")


@pytest.mark.parametrize("text, value", [("1", True), ("TRUE", True), ("yes", True), ("On", True),
                                         ("0", False), ("false", False), ("No", False), ("off", False)])
def test_bool_parameters_take_the_documented_spellings(text, value):
    assert Param("flag", bool, False).convert(text, "p") is value


def test_bool_parameters_refuse_anything_else():
    with pytest.raises(SpecError, match="p: parameter 'flag' expects bool, got 'y'"):
        Param("flag", bool, False).convert("y", "p")


def test_providers_command_marks_required_parameters(entry_points):
    provider = Provider("need", "needs a path", lambda path: None, (Param("path", str, required=True),),
                        target="path")
    entry_points("need", module_registering(provider, name="posembed_need"))
    result = CliRunner().invoke(cli, ["providers"])
    assert "    path (str, required)  \n" in result.stdout
    import json

    rows = json.loads(CliRunner().invoke(cli, ["providers", "--json"]).stdout)
    [need] = [row for row in rows if row["name"] == "need"]
    assert need["params"][0]["required"] is True


def bf16_bits(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


@pytest.fixture
def checkpoint(tmp_path):
    """A safetensors file with a BF16 3-D ``pos_embed`` (as a ViT stores it), an F16 table and an int tensor."""
    import safetensors.numpy

    rng = np.random.default_rng(0)
    exact = bf16_bits(rng.normal(size=(1, 5, 4))).astype(np.uint32) << 16  # values bf16 holds exactly
    pos_embed = exact.view(np.float32)
    half = rng.normal(size=(6, 3)).astype(np.float16)
    path = tmp_path / "model.safetensors"
    safetensors.numpy.save_file({"pos_embed": pos_embed, "wpe": half, "steps": np.arange(3)}, str(path))
    # safetensors' numpy backend cannot write BF16: rewrite pos_embed's header entry and bytes by hand
    raw = bytearray(path.read_bytes())
    import json
    import struct

    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    start, stop = header["pos_embed"]["data_offsets"]
    body = raw[8 + length:]
    bf16 = bf16_bits(pos_embed).tobytes()
    new_body = body[:start] + bf16 + b"\0" * (stop - start - len(bf16)) + body[stop:]
    header["pos_embed"] = {"dtype": "BF16", "shape": [1, 5, 4], "data_offsets": [start, start + len(bf16)]}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(new_body))
    return path, pos_embed, half


def test_read_tensor_decodes_bf16_and_f16_exactly_with_their_stored_dtype(checkpoint):
    path, pos_embed, half = checkpoint
    array, dtype = explorer.read_tensor(path, "pos_embed")
    assert dtype == "bfloat16" and array.dtype == np.float32 and array.shape == (1, 5, 4)
    np.testing.assert_array_equal(array, pos_embed)
    table = explorer.read_tensor(path, "wpe")
    assert table.dtype == "float16"
    np.testing.assert_array_equal(table.array, half.astype(np.float32))


def test_read_tensor_reads_npy_npz_and_pt(tmp_path):
    import torch

    table = np.arange(12, dtype=np.float16).reshape(4, 3)
    np.save(tmp_path / "t.npy", table)
    np.savez(tmp_path / "t.npz", wpe=table, other=np.ones((2, 2, 2)))
    torch.save({"wpe": torch.tensor(table.astype(np.float32)).to(torch.bfloat16)}, tmp_path / "t.pt")
    for name, key, dtype in (("t.npy", None, "float16"), ("t.npz", "wpe", "float16"), ("t.pt", None, "bfloat16")):
        array, stored = explorer.read_tensor(tmp_path / name, key)
        assert stored == dtype
        np.testing.assert_array_equal(array, table.astype(np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.with_suffix(".safetensors").write_bytes(b"\xff" * 16), "not a safetensors file"),
    (lambda p: p.with_suffix(".npy").write_bytes(b"no magic here"), "not a .npy file"),
    (lambda p: p.with_suffix(".txt").write_text("hi"), "unsupported file type '.txt'"),
])
def test_read_tensor_makes_every_check_of_the_file_provider(tmp_path, make, message):
    make(tmp_path / "bad")
    [path] = tmp_path.iterdir()
    with pytest.raises(ProviderError, match=message) as via_read_tensor:
        explorer.read_tensor(path)
    with pytest.raises(ProviderError) as via_provider:
        explorer.load(f"file:{path}", registry=registry_with())
    assert str(via_read_tensor.value) == str(via_provider.value)


def test_read_tensor_refuses_a_missing_file_and_a_missing_key(checkpoint, tmp_path):
    with pytest.raises(ProviderError, match="no such file"):
        explorer.read_tensor(tmp_path / "nothing.safetensors")
    with pytest.raises(ProviderError, match=r"no 'pos_embd'.*did you mean 'pos_embed'"):
        explorer.read_tensor(checkpoint[0], "pos_embd")


def test_testing_registry_with_loads_a_plugin_without_installing_it(entry_points):
    plugin = module_registering(Provider("ramp", "ramp", lambda: PositionEmbedding(np.ones((3, 2)), provider="ramp",
                                                                                 source="x")))
    assert explorer.testing.load("ramp", plugin).shape == (3, 2)
    with pytest.raises(SpecError, match="unknown provider 'ramp'"):
        explorer.load("ramp")  # nothing was installed


def test_testing_installed_makes_the_command_line_find_the_plugin():
    plugin = module_registering(Provider("ramp", "ramp", lambda: PositionEmbedding(np.ones((3, 2)), provider="ramp",
                                                                                 source="x")), name="posembed_ramp")
    with installed(plugin) as name:
        assert name == "ramp"
        assert posembed("info", "ramp").exit_code == 0
    assert posembed("info", "ramp").exit_code == 2


def test_check_fast_start_passes_a_light_plugin_and_names_heavy_imports(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "posembed_light_probe.py").write_text(
        "from explorer import Provider, hookimpl\n\n\n"
        "@hookimpl\ndef register_providers(register):\n    register(Provider('light', 'light', lambda: None))\n",
        encoding="utf-8")
    found = check_fast_start("posembed_light_probe")
    assert found["providers"] == ["light"] and found["analyses"] == found["sections"] == []
    (tmp_path / "posembed_heavy_probe.py").write_text("import bokeh\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"registering posembed_heavy_probe imported bokeh"):
        check_fast_start("posembed_heavy_probe", max_seconds=60)


def test_check_fast_start_runs_the_analysis_and_section_hooks_too(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "posembed_view_probe.py").write_text(
        "from explorer import Analysis, Section, hookimpl\n\n\n"
        "@hookimpl\ndef register_analyses(register):\n"
        "    register(Analysis('probe_value', 'v', run=lambda context: 1.0))\n\n\n"
        "@hookimpl\ndef register_sections(register):\n"
        "    import bokeh.plotting  # heavy, and only in the hook: check_fast_start must see it\n"
        "    register(Section('probe_view', 'v', lambda context: None))\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"registering posembed_view_probe imported bokeh"):
        check_fast_start("posembed_view_probe", max_seconds=60)
