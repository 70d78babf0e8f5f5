"""docs/cli.md is generated from the click commands; this fails when it is stale."""

from pathlib import Path

from modules import by_path

REPO = Path(__file__).resolve().parents[1]


def _generator():
    return by_path(REPO / "docs" / "make_cli_reference.py", "make_cli_reference")


def test_cli_reference_is_current():
    expected = _generator().render()
    actual = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run python docs/make_cli_reference.py"


def test_cli_reference_covers_every_command_and_option():
    from explorer.cli import cli

    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in cli.commands.items():
        assert f"## posembed {name}" in text
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in text, f"{name} {opt} missing from docs/cli.md"
