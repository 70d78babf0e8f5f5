"""Running ``posembed`` in-process and checking its one error line: shared by the bad-input and hostile-input
tests (``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from click.testing import CliRunner, Result


def run_cli(argv: list[str]) -> Result:
    """``posembed ARGV`` in-process; returns click's Result (stdout and stderr apart)."""
    from explorer.cli import cli

    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps them apart always
        runner = CliRunner()
    return runner.invoke(cli, argv, catch_exceptions=True)


def error_line(stderr: str, fragment: str) -> str:
    """The one line on ``stderr``: a ``posembed: error:`` line holding ``fragment``, nothing else, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("posembed: error:"), stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def assert_one_error_line(result: Result, fragment: str, exit_code: int = 1) -> str:
    """Exactly one ``posembed: error:`` line on stderr, holding ``fragment``; the exit code; no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout
    line = error_line(result.stderr, fragment)
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    return line


def installed(distribution: str) -> bool:
    """Whether ``distribution`` (a plugin the repository ships, say) is installed."""
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Case:
    """One row of hostile input: what was tried, how to build it (``argv(tmp_path)``), what must come back."""

    id: str
    tried: str
    argv: Callable[[Path], list[str]]
    fragment: str
    exit_code: int = 1
    plugin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    needs_fifo: bool = False


def run_case(case: Case, tmp_path: Path, monkeypatch) -> str:
    """Run one row in ``tmp_path`` (its plugin alone loaded, its environment set; skipped when the plugin is not
    installed or FIFOs do not exist) and check its one error line, which is returned."""
    import pytest

    if case.plugin is not None:
        if not installed(case.plugin):
            pytest.skip(f"{case.plugin} is not installed")
        monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", case.plugin)
    if case.needs_fifo and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return assert_one_error_line(run_cli(case.argv(tmp_path)), case.fragment, case.exit_code)
