"""Write docs/reliability.md from the test tables: ``python docs/make_reliability.py``.

The rows come from ``CASES`` and ``INTERRUPT_COMMANDS`` in tests/test_bad_input.py, ``CASES`` and the test
docstrings of tests/test_hostile_inputs.py and tests/test_plugin_faults.py, ``NETWORK_CASES`` in
tests/test_network_faults.py, the test names of tests/providers/test_real_hub.py and test_missing_shards.py,
``REFUSED`` in tests/test_hostile_output.py, ``SIGNALS`` in tests/test_signals.py
and the test names of tests/test_security.py, tests/test_hostile_output.py, tests/test_signals.py and
tests/test_properties.py,
so the document says exactly what the tests try. ``tests/test_bad_input.py::test_reliability_doc_is_current``
fails when the file is stale.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DOC = REPO / "docs" / "reliability.md"


def _module(filename: str, name: str):
    if str(TESTS) not in sys.path:  # the test modules import their shared helpers (cli_run) as pytest lets them
        sys.path.insert(0, str(TESTS))
    from modules import by_path  # tests/modules.py

    return by_path(TESTS / filename, name)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _test_names(filename: str) -> list[str]:
    tree = ast.parse((TESTS / filename).read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


def _case_section(heading: str, intro: list[str], rows: list[str], test_file: str, table_test: str) -> list[str]:
    """A section: its heading, its text, a table of the cases a test runs, and every other test of its file."""
    out = ["", f"## {heading} (`tests/{test_file}`)", "", *intro, "",
           "| case | what was tried | exit | the error line holds |", "|---|---|---|---|", *rows]
    out += ["", "Also tried (each a test):", ""]
    return out + [f"- `{name}`" for name in _test_names(test_file) if name != table_test]


def _promises(filename: str, skip: str = "") -> list[str]:
    """A table of the tests of ``filename`` (but ``skip``): each test's name and its docstring, the promise it keeps."""
    tree = ast.parse((TESTS / filename).read_text(encoding="utf-8"))
    rows = ["| test | what is promised |", "|---|---|"]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and node.name != skip:
            promise = " ".join((ast.get_docstring(node) or "").split())
            rows.append(f"| `{node.name}` | {_cell(promise)} |")
    return rows


def _round_three() -> list[str]:
    """The sections for tests/test_hostile_inputs.py and tests/test_plugin_faults.py (issue 24, round three)."""
    inputs = _module("test_hostile_inputs.py", "_posembed_test_hostile_inputs")
    out = ["", "## The hf: route, the spec file and degenerate tables (`tests/test_hostile_inputs.py`)", "",
           "`hf:` hands a model without a table of its own to the provider a plugin claims it for through the",
           "same door as every load (`explorer/loading/load.py` `call_provider`), so a plugin's fault is one line",
           "naming it; a config's `model_type` must be a string. `--specs FILE` is read like every other input: a",
           "regular file of at most 1 MB, UTF-8 text without NUL bytes, lines of at most 8192 characters counted at",
           "line feeds alone; an error quotes a line only as a 60-character escaped excerpt; the file is an input no",
           "output may replace.", "", "| case | what was tried | exit | the error line holds |", "|---|---|---|---|"]
    out += [f"| `{case.id}` | {_cell(case.tried)}{f' (plugin {case.plugin})' if case.plugin else ''} "
            f"| {case.exit_code} | `{_cell(case.fragment)}` |" for case in inputs.CASES]
    out += ["", "Each other class, what is promised and the test that tries it:", ""]
    out += _promises("test_hostile_inputs.py", "test_hostile_input_gives_one_clear_line")
    out += ["", "## Plugin faults (`tests/test_plugin_faults.py`)", "",
            "Plugins are trusted code, but a fault costs one line: each test installs a plugin written as a third",
            "party would write it and runs the real command.", ""]
    return out + _promises("test_plugin_faults.py") + [""]


def _listed(heading: str, intro: list[str], test_file: str) -> list[str]:
    """A section: its heading, its text and the tests of its file, one a line."""
    return [f"## {heading} (`tests/{test_file}`)", "", *intro, "",
            *[f"- `{name}`" for name in _test_names(test_file)]]


def _hostile_output_and_signals() -> list[str]:
    """The sections for tests/test_hostile_output.py and tests/test_signals.py."""
    hostile = _module("test_hostile_output.py", "_posembed_test_hostile_output")
    signals = _module("test_signals.py", "_posembed_test_signals")
    out = _case_section("Hostile output paths and names", [
        "The output path is a regular file or nothing (`explorer/runtime/output.py`): `-o` behaves like the shell's",
        "`> PATH` except that a regular file is replaced atomically. A character device or FIFO (directly or",
        "through a symlink such as `/dev/stdout`) is written in place and never replaced; a symlink to a file",
        "stays and its target is replaced; an overwritten file keeps its mode and owner; anything else is",
        "refused. Every message is printed through `explorer.runtime.console.one_line`, which escapes line breaks,",
        "control characters and undecodable bytes, so no name can forge a second line.",
    ], [f"| `{case.id}` | {_cell(case.tried)} | {case.exit_code} | `{_cell(case.fragment)}` |"
        for case in hostile.REFUSED], "test_hostile_output.py", "test_hostile_output_or_name_gives_one_clear_line")
    out += [
        "",
        "## Signals (`tests/test_signals.py`)",
        "",
        "The real command runs in a session of its own; the signal arrives while it works, or while the",
        "temporary file is written (`os.fsync` slowed down). SIGTERM and SIGHUP raise the same interrupt as",
        "Ctrl-C (`explorer/runtime/interrupts.py`), so the same cleanups run: one line, no temporary file, an existing",
        "file keeps its old bytes, no process of the session is left.",
        "",
        "| signal | exit | the error line holds |",
        "|---|---|---|",
    ]
    for name, code in signals.SIGNALS.items():
        line = "interrupted; nothing was written" if name == "SIGINT" else f"interrupted by {name}; nothing was written"
        out.append(f"| {name} | {code} | `{line}` |")
    out += ["", "Also tried:", ""]
    out += [f"- `{name}`" for name in _test_names("test_signals.py")]
    return out


def _hostile_files() -> list[str]:
    """The section made from ``CASES`` in tests/test_hostile_files.py: sizes, special files, torch, JSON, strict headers."""
    hostile = _module("test_hostile_files.py", "_posembed_test_hostile_files")
    return _case_section("Hostile files and memory limits", [
        "No single array may take more than an eighth of the memory the process can still get (`MemAvailable`,",
        "lowered by a cgroup's `memory.max` and by `ulimit -v`); `POSEMBED_MAX_ARRAY_BYTES` overrides it.",
        "Providers, plugins included, call `explorer.check_shape` with the shape they are about to build, and",
        "`--resolution` is checked as an R x R float32 image, so a size is refused before anything is",
        "allocated. Local inputs are read only from regular files (a FIFO, a device or a folder is one",
        "line), every JSON read refuses nesting deeper than 64, and safetensors headers are as strict as",
        "the safetensors library's.",
    ], [f"| `{case.id}` | {_cell(case.tried)}{f' (plugin {case.plugin})' if case.plugin else ''} | {case.exit_code} "
        f"| `{_cell(case.fragment)}` |" for case in hostile.CASES], "test_hostile_files.py",
        "test_hostile_file_gives_one_clear_line") + [""]


def render() -> str:
    """The whole of docs/reliability.md."""
    bad = _module("test_bad_input.py", "_posembed_test_bad_input")
    net = _module("test_network_faults.py", "_posembed_test_network_faults")
    out = [
        "# Reliability: what was tried and what happened",
        "",
        "<!-- generated by docs/make_reliability.py from the tests; do not edit by hand -->",
        "",
        "Every row below is a test. Bad input must give exactly one line on stderr starting",
        "`posembed: error:` (it holds the fragment shown), the exit code shown and no traceback;",
        "`--debug` shows the traceback instead. Exit codes: 1 bad input or environment, 2 a bad spec or",
        "usage, 128 + the signal's number for an interrupt (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).",
        "",
        "## Bad input (`tests/test_bad_input.py`)",
        "",
        "| case | what was tried | exit | the error line holds |",
        "|---|---|---|---|",
    ]
    for case in bad.CASES:
        note = " (skipped as root)" if case.skip_if_root else " (Linux only)" if case.linux_only else ""
        out.append(f"| `{case.id}` | {_cell(case.tried)}{note} | {case.exit_code} | `{_cell(case.fragment)}` |")
    out += [
        "",
        "As root, permission bits stop nothing (`os.access` says a `chmod 0o500` folder is writable), so the",
        "unwritable output folder is also exercised as a path under a plain file and as `/proc`, where",
        "creating the file really fails.",
        "",
        "## Interrupts and failures while writing",
        "",
        "`os.fsync` is patched to raise `KeyboardInterrupt` (or `OSError: No space left on device`) after the",
        "bytes reached the temporary sibling and before the rename. Each command below exits 130 with",
        "`posembed: error: interrupted; nothing was written`; no partial or temporary file remains, and an",
        "existing file at the output path keeps its old bytes.",
        "",
        "| command | output |",
        "|---|---|",
    ]
    for name, argv in sorted(bad.INTERRUPT_COMMANDS.items()):
        args = argv(Path("out"))
        out.append(f"| `{name}` | `posembed {' '.join(args)}` |")
    out += _hostile_output_and_signals()
    out += [
        "",
        "## Network faults (`tests/test_network_faults.py`)",
        "",
        f"Through a fake hub on 127.0.0.1, with `POSEMBED_HUB_TIMEOUT={net.TIMEOUT}`,",
        f"`POSEMBED_HUB_RETRIES={net.RETRIES}` and `POSEMBED_HUB_RETRY_WAIT=0` (defaults: huggingface_hub's",
        "download timeout, 3 retries, 1 s back-off doubling). Targets: `slice` is the range request for the",
        "position tensor's bytes, `header` the one for the safetensors header, `config` config.json. After",
        "every row the faults are lifted and the model is loaded again: it gives the exact table, so nothing",
        "corrupt was cached (a slice is cached only after its size and its `Content-Range` were checked).",
        "",
        "| case | what was tried | target | retried | requests | result |",
        "|---|---|---|---|---|---|",
    ]
    for case in net.NETWORK_CASES:
        result = "loads the exact table" if case.fragment is None else f"exit 1: `{_cell(case.fragment)}`"
        out.append(f"| `{case.id}` | {_cell(case.tried)} | {case.target} | {_cell(case.retried)} | {case.gets} | "
                   f"{result} |")
    out += ["", "Also tried:", ""]
    out += [f"- `{name}`" for name in _test_names("test_network_faults.py") if name != "test_network_fault"]
    out += [
        "",
        "A hub that cannot be reached (refused connection, unknown host, no connection within",
        "`POSEMBED_HUB_TIMEOUT`, at most 5 s, a name lookup not answered within `POSEMBED_HUB_DEADLINE`) is",
        "one line at once, without retries, that says how to work offline (`HF_HUB_OFFLINE=1`, `file:`).",
        "",
    ]
    hostile = _module("providers/test_hostile_hub.py", "_posembed_test_hostile_hub")
    out += [
        "## A hostile hub (`tests/providers/test_hostile_hub.py`)",
        "",
        f"Through a fake hub on 127.0.0.1 that misbehaves on purpose, with `POSEMBED_HUB_DEADLINE={hostile.DEADLINE:g}`",
        f"and `POSEMBED_HUB_TIMEOUT={hostile.TIMEOUT:g}` (defaults: 120 s for a whole exchange, huggingface_hub's",
        "download timeout for one read). Each row is one `posembed: error:` line, exit 1, within 5 s; no file",
        "appears outside the caches, nothing half-fetched stays in them, and a clean run afterwards loads the",
        "exact table.",
        "",
        "| case | what was tried | target | the error line holds |",
        "|---|---|---|---|",
    ]
    for case in hostile.HOSTILE_CASES:
        out.append(f"| `{case.id}` | {_cell(case.tried)} | {case.target} | `{_cell(case.fragment)}` |")
    out += ["", "Also tried:", ""]
    out += [f"- `{name}`" for name in _test_names("providers/test_hostile_hub.py") if name != "test_hostile_answer"]
    out += [
        "",
        "What a server sends never names a path: posembed does not use huggingface_hub's downloads (which take",
        "a blob's file name from the ETag), checks that a revision is a branch, tag or commit name and that a",
        "commit is 40 hex digits, and builds every cache path in one place from these checked parts. Limits",
        "apply before a download: `config.json` 10 MB, an index 50 MB, a tensor or a whole pickled checkpoint",
        "`POSEMBED_MAX_DOWNLOAD_MB` (default: an eighth of the available memory, at most 512 MB).",
        "",
    ]
    out += _listed("A hub that answers as huggingface.co does", [
        "`RealHub` redirects small files (307) to `/api/resolve-cache/` and weights (302) to a signed URL on",
        "another host that answers ranges with 206; it rate-limits with `RateLimit` headers and explains errors in",
        "`X-Error-Message`; `Mirror` 308s to it. docs/architecture.md compares posembed with huggingface_hub",
        "need by need.",
    ], "providers/test_real_hub.py")
    out += _listed("Half-uploaded models", [
        "An index naming a shard that is not there, locally or on the hub, `.safetensors` or `.bin`: one line",
        "naming the index and the shard.",
    ], "providers/test_missing_shards.py")
    out += _hostile_files()
    out += _round_three()
    out += [
        "## Security (`tests/test_security.py`)",
        "",
    ]
    out += [f"- `{name}`" for name in _test_names("test_security.py")]
    out += [
        "",
        "## Properties (`tests/test_properties.py`, hypothesis)",
        "",
        "Random input; nothing escapes but `explorer.errors.PosembedError` subclasses:",
        "",
    ]
    out += [f"- `{name}`" for name in _test_names("test_properties.py")]
    out += ["- `tests/test_analysis_degenerate.py::test_random_tables_raise_nothing_but_the_projects_errors`", ""]
    return "\n".join(out)


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
