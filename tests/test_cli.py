"""The command line through click's CliRunner: output, exit codes and one-line errors."""

import json

import numpy as np

import pytest
from click.testing import CliRunner

from explorer import __version__
from explorer.cli import cli


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", [[], ["providers"], ["info"], ["report"]])
def test_every_command_has_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_providers_table_and_json(run):
    table = run("providers")
    assert table.exit_code == 0 and "sinusoidal" in table.output and "layout" in table.output
    rows = json.loads(run("providers", "--json").output)
    sinusoidal = next(r for r in rows if r["name"] == "sinusoidal")
    assert {p["name"] for p in sinusoidal["params"]} == {"positions", "dim", "base", "layout"}


def test_info_json_has_shape_provenance_and_summary(run):
    result = run("info", "sinusoidal,positions=100,dim=16", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["shape"] == [100, 16] and data["kind"] == "formula"
    assert data["summary"]["row_norm_mean"] == pytest.approx(np.sqrt(8), rel=1e-6)


def test_info_text(run):
    result = run("info", "sinusoidal,positions=10,dim=4")
    assert result.exit_code == 0 and "shape: [10, 4]" in result.output


def test_report_with_no_spec_writes_the_default(run, tmp_path):
    out = tmp_path / "r.html"
    result = run("report", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "1024 positions" in out.read_text(encoding="utf-8")


def test_report_to_stdout(run):
    result = run("report", "sinusoidal,positions=16,dim=8", "-o", "-")
    assert result.exit_code == 0 and result.stdout.lstrip().startswith("<!DOCTYPE html>")


def test_report_of_two_specs_is_one_page(run, tmp_path):
    out = tmp_path / "cmp.html"
    result = run("report", "sinusoidal,dim=16", "sinusoidal,dim=16,layout=split", "-o", str(out))
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8").count('"provenance"') == 2


@pytest.mark.parametrize("args, code, message", [
    (["info", "sinusodal"], 2, "unknown provider 'sinusodal' (providers: alibi, conv, file, gpt2, hf, sinusoidal, sinusoidal2d, t5, window); did you mean 'sinusoidal'?"),
    (["info", "sinusoidal,dims=3"], 2, "did you mean 'dim'?"),
    (["info", "sinusoidal,dim=abc"], 2, "parameter 'dim' expects int, got 'abc'"),
    (["info", "sinusoidal,layout=spiral"], 2, "must be one of interleaved, split"),
    (["report", "-o", "/nonexistent-folder/r.html"], 1, "folder '/nonexistent-folder' does not exist"),
])
def test_bad_input_is_one_line_and_nonzero_exit(run, args, code, message):
    result = run(*args)
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posembed: error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(monkeypatch):
    from explorer.errors import SpecError

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    with pytest.raises(SpecError):
        CliRunner().invoke(cli, ["--debug", "info", "nope"], catch_exceptions=False)



