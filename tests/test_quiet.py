"""--quiet silences progress and informational lines; stdout carries only the requested output."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.runtime import console

SMALL = "sinusoidal,positions=64,dim=16"


def _run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != console.ENV}
    env["POSEMBED_LOAD_PLUGINS"] = ""
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_quiet_report_prints_nothing(tmp_path):
    result = _run("--quiet", "report", "-o", "f.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""
    assert (tmp_path / "f.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_quiet_report_to_stdout_is_only_html(tmp_path):
    result = _run("--quiet", "report", SMALL, "-o", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    html = result.stdout.strip()
    assert html.lower().startswith("<!doctype html") and html.endswith("</html>")
    assert not list(tmp_path.iterdir())


def test_without_quiet_the_wrote_line_goes_to_stderr(tmp_path):
    result = _run("report", SMALL, "-o", "f.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("wrote f.html")
    assert "\r" not in result.stderr  # no in-place progress into a pipe


@pytest.mark.parametrize("args", [["export", SMALL, "-o", "t.npy"],
                                  ["analyze", SMALL, "--npz", "r.npz", "--json"]])
def test_quiet_other_commands(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--quiet", *args], catch_exceptions=False)
    assert result.exit_code == 0
    assert "wrote" not in result.stderr
    assert console.ENV not in os.environ or not console.quiet()  # restored for in-process callers


def test_quiet_switch_and_restore(monkeypatch, capsys):
    monkeypatch.delenv(console.ENV, raising=False)
    console.info("hello")
    assert capsys.readouterr().err == "hello\n"
    previous = console.set_quiet(True)
    try:
        assert console.quiet() and not console.interactive()
        console.info("hello")
        assert capsys.readouterr().err == ""
    finally:
        console.restore(previous)
    assert not console.quiet()


def test_hub_download_progress_respects_quiet(monkeypatch, capsys):
    """Download progress (the hub loader's) prints nothing when quiet, one line each way into a pipe otherwise."""
    Progress = console.Progress
    monkeypatch.delenv(console.ENV, raising=False)
    progress = Progress("model.safetensors", 8_000_000)
    progress.update(4_000_000)
    progress.close()
    err = capsys.readouterr().err
    assert "downloading model.safetensors" in err and "\r" not in err
    monkeypatch.setenv(console.ENV, "1")
    progress = Progress("model.safetensors", 8_000_000)
    progress.update(4_000_000)
    progress.close()
    assert capsys.readouterr().err == ""


def test_long_work_shows_a_stage_line_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "interactive", lambda: True)  # as if stderr were a terminal
    result = CliRunner().invoke(cli, ["analyze", SMALL, "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "posembed: analysing sinusoidal" in result.stderr and "\r" in result.stderr
    assert "analysing" not in result.stdout
    monkeypatch.setattr(console, "interactive", lambda: False)
    result = CliRunner().invoke(cli, ["analyze", SMALL, "--json"], catch_exceptions=False)
    assert "analysing" not in result.stderr


def test_on_a_terminal_progress_redraws_in_place_and_a_stage_erases_itself(monkeypatch, capsys):
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "_stderr_is_terminal", lambda: True)
    progress = console.Progress("model.safetensors", 8_000_000)
    progress.update(4_000_000)
    progress.close()
    err = capsys.readouterr().err
    assert err == "\rposembed: downloading model.safetensors: 4.0 of 8.0 MB (50%)\n"
    with pytest.raises(RuntimeError):
        with console.stage("analysing"):
            raise RuntimeError("the line is erased even when the step fails")
    assert capsys.readouterr().err == "\rposembed: analysing ... 0.0 s\033[K\r\033[K"
