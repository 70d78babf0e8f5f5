"""The examples in docs/quickstart.md and docs/api.md run as written (offline, in a temporary folder).

Convention: ```bash blocks of quickstart.md are run line by line (``posembed`` is this checkout's CLI);
```sh blocks need the network or an install and are not run. ```python blocks of api.md, except those naming
"gpt2", are the cells of a real Jupyter notebook executed on an IPython kernel (the ``run_notebook`` fixture).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"), flags=re.M | re.S)


def test_index_links_the_pages_and_every_link_resolves():
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(([^)#]+\.md)\)", text))
    for page in ("quickstart.md", "cli.md", "api.md", "gallery.md", "providers.md", "analyses.md",
                 "plugins.md", "hooks.md", "report.md", "performance.md"):
        assert page in links, f"docs/index.md does not link {page}"
    for link in links:
        assert (DOCS / link).is_file(), f"docs/index.md links a missing page: {link}"


def test_gallery_images_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (DOCS / "gallery.md").read_text(encoding="utf-8"))
    assert images and all((DOCS / image).is_file() for image in images)
    assert "images/gpt2-vs-sinusoid.png" in images


@pytest.mark.slow
def test_quickstart_commands_run(tmp_path):
    env = {**os.environ, "POSEMBED_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    env.pop("POSEMBED_QUIET", None)
    lines = [line.split("#")[0].strip() for block in blocks("quickstart.md", "bash") for line in block.splitlines()]
    lines = [line for line in lines if line]
    assert any(line.startswith("posembed report") for line in lines)
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "posembed", line
        stdout = None
        if ">" in words:  # one redirection of stdout to a file
            target = words[words.index(">") + 1]
            words = words[: words.index(">")]
            stdout = (tmp_path / target).open("wb")
        try:
            result = subprocess.run([sys.executable, "-m", "explorer", *words[1:]], cwd=tmp_path, env=env,
                                    stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        finally:
            if stdout:
                stdout.close()
        assert result.returncode == 0, f"{line}\n{result.stderr.decode(errors='replace')}"
        if words[1:2] == ["--quiet"]:
            assert result.stderr == b"", line
    for name in ("sinusoid.html", "numbers.json", "arrays.npz", "page.html", "compare.html", "table.npy",
                 "from-file.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "page.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


@pytest.mark.slow
def test_api_page_runs_as_a_jupyter_notebook(run_notebook, tmp_path):
    cells = [cell for cell in blocks("api.md", "python") if '"gpt2"' not in cell]
    assert len(cells) >= 4
    notebook = run_notebook(cells, cwd=tmp_path)  # a failing cell raises, naming it
    [show] = [cell for cell in notebook.cells if cell.source.lstrip().startswith("explorer.show(")]
    mimes = [sorted(output.get("data", {})) for output in show.outputs]
    assert ["application/javascript", "application/vnd.bokehjs_exec.v0+json"] in mimes  # the report, shown
    assert all(output.output_type == "display_data" and "text/plain" not in output.data for output in show.outputs)
    assert not any("Traceback" in output.get("text", "") for cell in notebook.cells for output in cell.outputs)
    for name in ("sinusoid.html", "compare.html"):
        assert (tmp_path / name).read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["compare.html", "sinusoid.html"]
