"""The published probe protocol (Wang & Chen 2020's code, MiuLab/PE-Study) beside the project's ridge default."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from importlib import import_module

P = import_module("explorer.analysis.probes")  # the package exports a function of the same name
from explorer.cli import cli


def test_stratified_folds_match_scikit_learns_documented_split():
    # StratifiedKFold(n_splits=2) on y = [0, 0, 1, 1]: test folds [0, 2] and [1, 3] (scikit-learn's user guide)
    assert [f.tolist() for f in P.stratified_folds(np.array([0, 0, 1, 1]), 2)] == [[0, 2], [1, 3]]
    labels = np.array([True] * 7 + [False] * 13)
    for fold in P.stratified_folds(labels, 5):  # every fold keeps the classes' shares
        assert len(fold) == 4 and labels[fold].sum() in (1, 2)


def test_the_absolute_probe_is_minimum_norm_least_squares_over_five_folds_of_shuffled_rows():
    table = np.random.default_rng(3).normal(size=(300, 400)).astype(np.float32)  # wider than the training rows
    target = np.random.RandomState(7).permutation(300)
    rows = table[target].astype(np.float64)
    folds = []
    for test in np.array_split(np.arange(300), 5):
        train = np.setdiff1d(np.arange(300), test)
        mean = rows[train].mean(axis=0)
        w = np.linalg.pinv(rows[train] - mean) @ (target[train] - target[train].mean())  # minimum norm
        folds.append(np.abs(np.round((rows[test] - mean) @ w + target[train].mean()) - target[test]).mean())
    assert P.wang_chen_absolute(table, seed=7) == pytest.approx(np.mean(folds), abs=1e-9)


def test_the_published_protocol_cuts_tables_to_512_rows():
    table = np.random.default_rng(0).normal(size=(900, 12)).astype(np.float32)
    whole, cut = P.wang_chen_probes(table, seed=1), P.wang_chen_probes(table[:512], seed=1)
    assert (whole.absolute_mae, whole.order_error) == (cut.absolute_mae, cut.order_error)
    assert whole.rows == 512 and whole.order_pairs == 512
    assert np.isnan(whole.interpolation_mae)  # not part of the paper


def test_the_logistic_fit_is_the_optimum_of_scikit_learns_default_objective():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 200))  # wider than the rows, as [p_i ; p_j] is
    y = (x[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(float)
    w, b = P.logistic_l2(x, y)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert np.abs(x.T @ (p - y) + w).max() < 1e-6  # d/dw [sum log-loss + |w|^2 / 2] = 0 (C = 1)
    assert abs(np.sum(p - y)) < 1e-6  # the intercept is not penalised


def test_the_order_probe_uses_n_cells_of_the_grid_with_the_papers_labels():
    table = np.arange(40, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    error, pairs = P.wang_chen_order(table, seed=0)
    cells = np.random.RandomState(0).permutation(40 * 40)[:40]
    assert pairs == 40 and (cells // 40 < cells % 40).any()
    assert error <= 0.1  # position is linear in the table: order is easy


def test_analyze_runs_either_protocol_and_says_which(tmp_path):
    spec = "sinusoidal,positions=600,dim=32"
    runs = {}
    for protocol in ("ridge", "wang-chen"):
        result = CliRunner().invoke(cli, ["-q", "analyze", spec, "--json", "--probe-protocol", protocol])
        assert result.exit_code == 0, result.output
        runs[protocol] = json.loads(result.stdout)["tables"][0]["scalars"]
    assert runs["ridge"]["probe_rows"] == 600 and runs["wang-chen"]["probe_rows"] == 512
    assert runs["ridge"]["probe_ridge"] > 0 and runs["wang-chen"]["probe_ridge"] == 0
    assert runs["wang-chen"]["probe_interpolation_mae"] is None
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["-q", "report", spec, "--probe-protocol", "wang-chen", "-o", str(out)])
    assert result.exit_code == 0 and "The protocol of Wang &amp;amp; Chen 2020" in out.read_text(encoding="utf-8")


def test_an_unknown_protocol_is_one_clear_error():
    result = CliRunner().invoke(cli, ["analyze", "sinusoidal", "--probe-protocol", "lasso"])
    assert result.exit_code == 2 and "lasso" in result.output and result.output.count("\n") == 1
    with pytest.raises(Exception, match="probe protocol must be one of ridge, wang-chen"):
        P.probes(np.zeros((20, 3), dtype=np.float32), protocol="lasso")
