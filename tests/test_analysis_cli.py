"""``posembed analyze`` and the API around the analyses: JSON scalars, .npz arrays, comparisons."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from explorer.analysis import Results, analyze, arrays, scalars
from explorer.cli import cli


A, B = "sinusoidal,positions=96,dim=16", "sinusoidal,positions=64,dim=8,layout=split"


def test_analyze_json_has_every_scalar_per_spec_and_each_pair(run):
    result = run("analyze", A, B, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["spec"] for t in data["tables"]] == [A, B] and data["tables"][0]["shape"] == [96, 16]
    first = data["tables"][0]["scalars"]
    assert first["translation_invariance"] == pytest.approx(1.0, abs=1e-5)
    for key in ("effective_rank", "pca_explained_1", "probe_absolute_mae", "probe_order_error",
                "probe_interpolation_mae", "row_norm_mean", "neighbour_cosine_mean"):
        assert key in first
    (pair,) = data["comparisons"]
    assert (pair["a"], pair["b"]) == (A, B) and pair["scalars"]["positions"] == 64
    assert 0 < pair["scalars"]["cka"] <= 1


def test_json_scalars_equal_the_python_api(run):
    from explorer.api import analyze as analyze_embedding
    from explorer.api import load

    data = json.loads(run("analyze", A, "--json").stdout)["tables"][0]["scalars"]
    expected = scalars(analyze_embedding(load(A)))
    assert data == pytest.approx(expected)


def test_undefined_numbers_are_null_in_json(run):
    result = run("analyze", "sinusoidal,positions=1,dim=4", "--json")  # one row: no variance, no probes
    assert result.exit_code == 0
    values = json.loads(result.stdout)["tables"][0]["scalars"]
    assert values["pca_explained_1"] is None and "probe_absolute_mae" not in values


def test_npz_holds_every_array_float32(run, tmp_path):
    target = tmp_path / "out.npz"
    result = run("analyze", A, B, "--npz", str(target))
    assert result.exit_code == 0 and "effective_rank" in result.stdout
    saved = np.load(target)
    for key in ("0.offset.mean", "0.offset.std", "1.pca.scores", "0.cosine_positions_centred.values",
                "1.frequencies.frequency", "0-1.comparison.offset_a", "0-1.comparison.lag"):
        assert key in saved.files
    assert saved["0.offset.mean"].dtype == np.float32 and saved["0.offset.lag"].dtype == np.int32
    assert not list(tmp_path.glob("*.part"))  # written atomically: no temporary left behind


def test_unwritable_npz_fails_before_any_work(run, tmp_path):
    result = CliRunner().invoke(cli, ["analyze", A, "--npz", str(tmp_path / "missing" / "x.npz")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_api_compare_and_analyze_take_embeddings():
    from explorer.api import compare, load

    a, b = load(A), load(B)
    result = compare(a, b, resolution=16)
    assert result.comparison.positions == 64 and len(result.comparison.lag) == 16
    assert isinstance(analyze(a.matrix, 32), Results)


def test_arrays_keys_name_the_view_and_field():
    result = analyze(np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    keys = arrays(result, prefix="t.")
    assert {"t.offset.lag", "t.norms.low", "t.spectrum.singular_values", "t.pca.explained"} <= set(keys)


def test_analyze_has_help_and_does_not_load_the_renderer(run):
    import subprocess
    import sys

    assert "--npz" in run("analyze", "--help").output
    code = ("import sys\nfrom explorer.cli import cli\n"
            f"try:\n    cli(['analyze', {A!r}, '--json'], prog_name='posembed')\nexcept SystemExit as e:\n    assert not e.code\n"
            "print('bokeh' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__('os').environ, "POSEMBED_LOAD_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
