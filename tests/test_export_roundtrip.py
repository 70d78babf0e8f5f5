"""`file:` on a .safetensors that `posembed export` wrote gives back what was exported (a relative term, a table's
rows or grid), from its `posembed.provenance`; metadata that does not fit is one warning and a plain table."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer import RowAxis
from explorer.cli import cli
from explorer.core.embedding import PositionEmbedding
from explorer.core.relative import RelativePositionTerm
from explorer.errors import PosembedWarning
from explorer.export import PROVENANCE_KEY, RELATIVE_DISTANCES, RELATIVE_NAME, TENSOR_NAME, export

ALIBI = "alibi,heads=4,positions=32"
GRID = "sinusoidal2d,grid=4x6,dim=8"


def exported(tmp_path, term, name="t.safetensors"):
    path = tmp_path / name
    export(term, path)
    return path


def reloaded(path, options=""):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosembedWarning)  # a faithful export reads back without a word
        return explorer.load(f"file:{path}{options}")


def rows_table() -> PositionEmbedding:
    labels = tuple(f"{k}..{k + 1}" for k in range(10, 0, -1))
    return PositionEmbedding(np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32), provider="mine",
                             source="buckets", kind="relative", rows=RowAxis("key - query distance", labels, True))


# --- faithful exports --------------------------------------------------------------------------------------------

def test_a_relative_term_comes_back_as_a_relative_term(tmp_path):
    term = explorer.load(ALIBI)
    back = reloaded(exported(tmp_path, term))
    assert isinstance(back, RelativePositionTerm) and back.term == "relative"
    assert back.causal and back.kind == "alibi" and back.shape == (4, 32) and back.tensor == RELATIVE_NAME
    assert back.values.tobytes() == term.values.tobytes()
    np.testing.assert_array_equal(back.distances, term.distances)
    assert back.provider == "file" and back.params["kind"] == "alibi"


@pytest.mark.parametrize("table", ["auto", "decoder"])
def test_a_t5_bias_read_through_hf_comes_back_with_its_direction(tmp_path, table):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=3,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=20)
    transformers.T5Model(config).save_pretrained(tmp_path / "t5")
    term = explorer.load(f"hf:{tmp_path / 't5'},table={table},positions=25")
    back = reloaded(exported(tmp_path, term))
    assert isinstance(back, RelativePositionTerm) and back.kind == "bucketed"
    assert back.causal == (table == "decoder") and back.shape == term.shape == (3, 25 if back.causal else 49)
    assert back.values.tobytes() == term.values.tobytes()


def test_a_table_with_row_labels_comes_back_with_them(tmp_path):
    table = rows_table()
    back = reloaded(exported(tmp_path, table))
    assert back.rows == table.rows and back.rows.reverse and back.kind == "relative"
    assert back.matrix.tobytes() == table.matrix.tobytes() and back.grid is None


def test_a_grid_table_comes_back_on_its_grid(tmp_path):
    table = explorer.load(GRID)
    back = reloaded(exported(tmp_path, table))
    assert back.grid == (4, 6) and back.kind == "formula" and back.rows is None
    assert back.matrix.tobytes() == table.matrix.tobytes()


def test_the_round_trip_carries_on_through_a_second_export(tmp_path):
    first = exported(tmp_path, explorer.load(ALIBI), "first.safetensors")
    back = reloaded(exported(tmp_path, reloaded(first), "second.safetensors"))
    assert isinstance(back, RelativePositionTerm) and back.causal and back.kind == "alibi"


def test_info_shows_a_reloaded_relative_term_by_heads_and_distances(tmp_path):
    path = exported(tmp_path, explorer.load(ALIBI))
    result = CliRunner().invoke(cli, ["info", "--json", f"file:{path}"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["heads"] == 4 and data["distances"] == [-31, 0] and data["causal"] is True


def test_options_that_choose_other_rows_or_another_tensor_win(tmp_path):
    relative = exported(tmp_path, explorer.load(ALIBI), "r.safetensors")
    grid = exported(tmp_path, explorer.load(GRID), "g.safetensors")
    assert isinstance(reloaded(relative, f",key={RELATIVE_NAME}"), RelativePositionTerm)  # the same tensor, named
    plain = reloaded(relative, ",offset=1")
    assert isinstance(plain, PositionEmbedding) and plain.shape == (3, 32)
    assert reloaded(grid, ",grid=6x4").grid == (6, 4)
    assert reloaded(grid, ",kind=learned").kind == "learned"
    assert reloaded(relative, ",kind=other").kind == "other"
    with pytest.raises(explorer.PosembedError, match="distances: dtype I64 is not a floating-point table"):
        explorer.load(f"file:{relative},key={RELATIVE_DISTANCES}")


# --- metadata that does not fit: one warning, a plain table --------------------------------------------------------

def rewritten(path, provenance=None, tensors=None, raw=None):
    """``path`` with its provenance changed by ``provenance(dict) -> dict`` (or replaced by ``raw`` text) and its
    tensors by ``tensors(dict) -> dict``."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), "np") as handle:
        metadata = dict(handle.metadata())
    data = load_file(str(path))
    if provenance is not None:
        metadata[PROVENANCE_KEY] = json.dumps(provenance(json.loads(metadata[PROVENANCE_KEY])))
    if raw is not None:
        metadata[PROVENANCE_KEY] = raw
    save_file(tensors(data) if tensors is not None else data, str(path), metadata=metadata)
    return path


def _set(**changes):
    return lambda provenance: {**provenance, **changes}


def _rows(**changes):
    return lambda provenance: {**provenance, "rows": {**provenance["rows"], **changes}}


HOSTILE = {
    # tables with rows
    "rows-labels-too-few": ("rows", _rows(labels=["a"] * 9), "rows do not hold 10 text labels"),
    "rows-labels-not-text": ("rows", _rows(labels=list(range(10))), "rows do not hold 10 text labels"),
    "rows-labels-huge-list": ("rows", _rows(labels=["x"] * 1_000_000), "rows do not hold 10 text labels"),
    "rows-label-too-long": ("rows", _rows(labels=["x" * 49] * 10), "row labels are at most 48 characters"),
    "rows-not-an-object": ("rows", _set(rows=["a"] * 10), "rows do not hold 10 text labels"),
    "rows-name-not-text": ("rows", _rows(name=7), "rows have no text name"),
    "rows-name-empty": ("rows", _rows(name="  "), "needs a name of 1 to 48 characters"),
    "rows-reverse-not-bool": ("rows", _rows(reverse="yes"), "reverse that is not true or false"),
    "rows-and-grid": ("rows", _set(grid=[2, 5]), "a patch grid or has row labels, not both"),
    # grid tables
    "grid-wrong-product": ("grid", _set(grid=[5, 5]), "a 5 x 5 grid has 25 patches"),
    "grid-text": ("grid", _set(grid="4x6"), "grid is not a list [H, W] or [T, H, W]"),
    "grid-four-numbers": ("grid", _set(grid=[4, 6, 1, 1]), "grid is not a list [H, W] or [T, H, W]"),
    "grid-three-wrong-product": ("grid", _set(grid=[2, 2, 5]), "a 2 x 2 x 5 grid has 20 patches"),
    "grid-fractions": ("grid", _set(grid=[4.5, 6]), "grid must be (H, W) or (T, H, W) integers >= 1"),
    "grid-bools": ("grid", _set(grid=[True, 24]), "grid must be (H, W) or (T, H, W) integers >= 1"),
    "shape-mismatch": ("grid", _set(shape=[25, 8]), "shape is not the tensor's [24, 8]"),
    "kind-not-text": ("grid", _set(kind=5), "kind is not a text"),
    "kind-too-long": ("grid", _set(kind="k" * 500), "kind is not a text of 1 to 48 characters"),
    "term-unknown": ("grid", _set(term="sideways"), "term is not 'absolute', 'relative', 'window' or 'conv'"),
    "term-relative-on-a-table": ("grid", _set(term="relative"),
                                 "its term is 'relative', which posembed does not export as 'position_embedding'"),
    "not-json": ("grid", "{nope", "is not valid JSON"),
    "json-array": ("grid", "[1, 2]", "is not a JSON object"),
    "json-too-deep": ("grid", '{"x": ' + "[" * 100 + "]" * 100 + "}", "nests more than 64 levels deep"),
    # relative terms
    "relative-without-distances": ("relative", lambda t: {RELATIVE_NAME: t[RELATIVE_NAME]},
                                   "no I64 tensor 'distances' of 32 distances"),
    "distances-not-monotone": ("relative", lambda t: {**t, RELATIVE_DISTANCES: t[RELATIVE_DISTANCES][::-1].copy()},
                               "'distances' are not -31 .. 0 in steps of 1"),
    "distances-shifted": ("relative", lambda t: {**t, RELATIVE_DISTANCES: t[RELATIVE_DISTANCES] + 1},
                          "'distances' are not -31 .. 0"),
    "distances-float": ("relative", lambda t: {**t, RELATIVE_DISTANCES: t[RELATIVE_DISTANCES].astype(np.float32)},
                        "no I64 tensor 'distances'"),
    "distances-too-few": ("relative", lambda t: {**t, RELATIVE_DISTANCES: t[RELATIVE_DISTANCES][1:].copy()},
                          "no I64 tensor 'distances' of 32"),
    "causal-not-bool": ("relative", _set(causal="yes"), "causal is not true or false"),
    "causal-flipped": ("relative", _set(causal=False), "bidirectional relative term has 2L-1 distances"),
    "term-absolute-on-a-term": ("relative", _set(term="absolute"),
                                "its term is 'absolute', which posembed does not export as"),
    # 2-D relative biases (a 2 x 2 window, 3 heads: 9 offsets and 2 extras)
    "window-too-big": ("window", _set(window=[3, 3]), "a 3 x 3 window has 25 offsets and 2 extra entries"),
    "window-huge": ("window", _set(window=[10**9, 1]), "window must be a pair (Wh, Ww) of integers from 1 to 512"),
    "window-text": ("window", _set(window="2x2"), "window is not a pair [Wh, Ww]"),
    "window-extras-not-names": ("window", _set(extras=[1, 2]), "extras not a list of names"),
    "window-extras-repeated": ("window", _set(extras=["a", "a"]), "extra entries need distinct names"),
    "term-window-on-a-table": ("grid", _set(term="window"),
                               "its term is 'window', which posembed does not export as 'position_embedding'"),
    # convolution kernels (2 groups of 2 channels, 3 taps: 2 x 12 values)
    "conv-taps-wrong": ("conv", _set(taps=5), "values are groups x (channels x channels x taps)"),
    "conv-taps-other-square": ("conv", _set(taps=4), "3 kernel rows are not its output x input channels"),
    "conv-taps-not-square": ("conv", _set(taps=2), "kernel rows are not its output x input channels"),
    "conv-taps-huge": ("conv", _set(taps=10**12), "values are groups x (channels x channels x taps)"),
    "conv-taps-text": ("conv", _set(taps="3"), "taps is not a whole number"),
    "conv-taps-bool": ("conv", _set(taps=True), "taps is not a whole number"),
    "term-conv-on-a-table": ("grid", _set(term="conv"),
                             "its term is 'conv', which posembed does not export as 'position_embedding'"),
}


def conv_kernel():
    return explorer.ConvKernel(np.arange(24, dtype=np.float32).reshape(2, 12), "test", "conv test", taps=3)


def window_bias():
    return explorer.WindowBias(np.arange(33, dtype=np.float32).reshape(3, 11), "test", "window test", window=(2, 2),
                               extras=("a", "b"))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_metadata_that_does_not_fit_is_one_warning_and_a_plain_table(tmp_path, case):
    which, change, fragment = HOSTILE[case]
    source = {"rows": rows_table, "grid": lambda: explorer.load(GRID), "relative": lambda: explorer.load(ALIBI),
              "window": window_bias, "conv": conv_kernel}
    original = source[which]()
    path = exported(tmp_path, original)
    if isinstance(change, str):
        rewritten(path, raw=change)
    elif which == "relative" and case.startswith(("relative-", "distances-")):
        rewritten(path, tensors=change)
    else:
        rewritten(path, provenance=change)
    with pytest.warns(PosembedWarning) as caught:
        back = explorer.load(f"file:{path}")
    [warning] = [str(w.message) for w in caught if issubclass(w.category, PosembedWarning)]
    assert fragment in warning and warning.endswith("; read as a plain table") and "\n" not in warning
    assert f"{PROVENANCE_KEY} metadata does not fit tensor" in warning
    assert isinstance(back, PositionEmbedding) and back.rows is None and back.grid is None
    assert back.kind == "other" and back.matrix.tobytes() == original.matrix.tobytes()


def test_a_term_of_too_many_heads_is_read_as_a_plain_table(tmp_path):
    term = RelativePositionTerm(np.zeros((1024, 3), np.float32), provider="mine", source="many")
    path = rewritten(exported(tmp_path, term), provenance=_set(shape=[1025, 3]),
                     tensors=lambda t: {**t, RELATIVE_NAME: np.zeros((1025, 3), np.float32)})
    with pytest.warns(PosembedWarning, match=r"posembed takes at most 1024\); read as a plain table"):
        assert explorer.load(f"file:{path}").shape == (1025, 3)


def test_the_command_line_prints_the_warning_once_and_goes_on(tmp_path):
    path = rewritten(exported(tmp_path, rows_table()), provenance=_rows(labels=["a"] * 3))
    result = CliRunner().invoke(cli, ["info", f"file:{path}"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("posembed: warning:")] == [
        f"posembed: warning: {path}: its {PROVENANCE_KEY} metadata does not fit tensor {TENSOR_NAME!r} (its rows do "
        f"not hold 10 text labels); read as a plain table"]
