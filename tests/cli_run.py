"""Running ``posembed`` in-process and checking its one error line: shared by the bad-input and hostile-input
tests (``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

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
