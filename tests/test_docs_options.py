"""The options the README and docs name are the command line's own: a test that fails when they drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from explorer.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: Options the docs name that belong to other programs, each with its owner.
OTHERS = {
    "--help": "click, every command",
    "--grid-only": "docs/make_screenshots.py",
    "--dynamics-only": "docs/make_screenshots.py",
    "--quick": "benchmarks",
    "--runs": "benchmarks",
    "--bogus": "a test's name in docs/reliability.md (an unknown option refused)",
    "--all": "docs/make_screenshots.py",
    "--remote-debugging-pipe": "Chromium (tests/browser.py)",
}


def options(command: click.Command) -> set[str]:
    """Every long option of ``command`` and, for a group, of its commands."""
    found = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    for sub in getattr(command, "commands", {}).values():
        found |= options(sub)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_option_the_docs_name_is_one_the_command_line_has(doc):
    named = set(OPTION.findall(doc.read_text(encoding="utf-8")))
    assert named <= options(cli) | set(OTHERS), sorted(named - options(cli) - set(OTHERS))


def test_the_readmes_report_options_line_lists_every_option_of_report():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^Options: (.*?)(?:\n\n|\Z)", readme, re.S | re.M)[1]
    assert set(OPTION.findall(line)) - {"--help"} == options(cli.commands["report"]) - {"--help"}
