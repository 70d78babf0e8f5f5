"""Hostile files and strings: nothing executed, everything escaped, nothing written outside the output path."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.core.embedding import PositionEmbedding
from explorer.errors import ProviderError
from explorer.plugins.registry import Registry
from explorer.plugins.provider import Param, Provider

REPO = Path(__file__).resolve().parents[1]
EVIL = '<script>alert(1)</script>"\'</title>&amp;'


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")


def _run(argv):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, argv)


# ---------------------------------------------------------------------------------------------------------------------
# pickles: weights_only=True, always


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"wpe.weight": torch.zeros(16, 4), "x": _Payload(str(marker))}, path)
    return path


def test_malicious_pickle_is_refused_by_the_file_provider(tmp_path):
    marker = tmp_path / "PWNED"
    path = _evil_pickle(tmp_path / "evil.pt", marker)
    with pytest.raises(ProviderError, match="weights_only=True"):
        explorer.load(f"file:{path}")
    assert not marker.exists()


def test_malicious_pytorch_model_bin_in_a_model_folder_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 16, "n_embd": 4}))
    _evil_pickle(folder / "pytorch_model.bin", marker)
    result = _run(["info", f"hf:{folder}"])
    assert result.exit_code == 1 and "refused to unpickle" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_every_torch_load_in_the_code_passes_weights_only_true():
    calls = []
    for path in sorted((REPO / "explorer").rglob("*.py")) + sorted((REPO / "plugins").rglob("*.py")):
        if "egg-info" in str(path):
            continue
        for match in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text(encoding="utf-8")):
            calls.append((path.name, match.group(1)))
    assert calls, "expected the pickled-checkpoint reader"
    assert all("weights_only=True" in args for _, args in calls), calls


# ---------------------------------------------------------------------------------------------------------------------
# trust_remote_code: never


def test_trust_remote_code_is_never_turned_on_in_the_source():
    offenders = []
    for path in sorted((REPO / "explorer").rglob("*.py")) + sorted((REPO / "plugins").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"trust_remote_code\s*=\s*(?!False)\w+", text)]
    assert offenders == []


def test_a_config_asking_for_remote_code_runs_none_of_it(tmp_path, monkeypatch):
    """A folder whose config's auto_map points at its own Python: posembed refuses, the code never runs."""
    marker = tmp_path / "PWNED"
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil-custom", "architectures": ["EvilModel"], "hidden_size": 4,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}}))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_evil.py").write_text(code)
    (folder / "modeling_evil.py").write_text(code)
    import safetensors.numpy

    safetensors.numpy.save_file({"pos.weight": np.ones((16, 4), np.float32)}, str(folder / "model.safetensors"))
    import transformers

    seen = []
    original = transformers.AutoConfig.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", classmethod(spy))
    monkeypatch.setattr("builtins.input", lambda *a, **k: pytest.fail("asked the user whether to trust code"))
    result = _run(["info", f"hf:{folder}"])
    assert result.exit_code == 1 and result.stderr.startswith("posembed: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert seen and all(value is False for value in seen), seen  # transformers was asked, and told no
    assert "configuration_evil" not in sys.modules and "modeling_evil" not in sys.modules


# ---------------------------------------------------------------------------------------------------------------------
# HTML: every string from a model, config or plugin is escaped


def _assert_escaped(html: str) -> None:
    assert "<script>alert(1)</script>" not in html and EVIL not in html
    assert "alert(1)" in html  # it is there, as text
    assert html.lower().count("</title>") == 1  # the page's own title element only


def test_tensor_names_and_paths_from_a_file_are_escaped(tmp_path):
    import safetensors.numpy

    folder = tmp_path / "<script>alert(1)<x>\"'"
    folder.mkdir()
    path = folder / "t.safetensors"
    table = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    safetensors.numpy.save_file({EVIL: table}, str(path), metadata={"note": EVIL})
    out = tmp_path / "report.html"
    result = _run(["report", f"file:{path},kind=learned", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    _assert_escaped(out.read_text(encoding="utf-8"))


def test_strings_from_a_model_config_are_escaped(tmp_path):
    import safetensors.numpy

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_positions": 12, "n_embd": 4, "_name_or_path": EVIL, "architectures": [EVIL]}))
    table = np.random.default_rng(1).normal(size=(12, 4)).astype(np.float32)
    safetensors.numpy.save_file({"wpe.weight": table}, str(folder / "model.safetensors"), metadata={"x": EVIL})
    html = explorer.report(explorer.load(f"hf:{folder}"), title=EVIL)
    _assert_escaped(html)


def test_strings_from_a_plugin_are_escaped(tmp_path):
    def load(model: str, note: str):
        return PositionEmbedding(np.random.default_rng(2).normal(size=(10, 3)), provider="evil",
                                 source=EVIL + model, description=EVIL, kind=EVIL, tensor=EVIL, revision=EVIL,
                                 params={"model": model, "note": note, EVIL: EVIL})

    registry = Registry()
    registry.add(Provider("evil", EVIL, load, (Param("model", str, "m", EVIL), Param("note", str, EVIL)),
                          target="model"), EVIL)
    one = explorer.load("evil:<b>x</b>", registry=registry)
    two = explorer.load("evil,note=\"'</title>", registry=registry)
    _assert_escaped(explorer.report(one))
    _assert_escaped(explorer.report([one, two], title=EVIL))


def test_strings_from_an_exports_provenance_are_escaped(tmp_path):
    import safetensors.numpy

    table = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    provenance = {"provider": EVIL, "source": EVIL, "kind": EVIL, "shape": [6, 4], "description": EVIL,
                  "rows": {"name": EVIL, "labels": [EVIL] * 6, "reverse": False}}
    path = tmp_path / "t.safetensors"
    safetensors.numpy.save_file({"position_embedding": table}, str(path),
                                metadata={"posembed.provenance": json.dumps(provenance)})
    emb = explorer.load(f"file:{path}")
    assert emb.rows.labels[0] == EVIL and emb.kind == EVIL  # read back as exported, then escaped on the page
    _assert_escaped(explorer.report(emb))


@pytest.mark.browser
def test_row_labels_from_an_export_run_no_script_in_the_browser(tmp_path):
    """The pickers' options are HTML to the widget behind them (Choices.js with allowHTML), and Bokeh's Divs typeset
    TeX between $$ with MathJax, whose \\href makes links of any URL: a row label, row axis name or kind from a
    file's provenance must reach them as text, not markup or TeX."""
    import safetensors.numpy
    from browser import Chromium, find_chromium  # tests/browser.py, on pytest's pythonpath

    from explorer.reporting import rows

    if find_chromium() is None:
        pytest.skip("no Chromium found; .ci/run installs Debian's chromium")
    label, name = '<img src=x onerror="window.__pwn=1">', '<img src=y onerror="window.__pwn=2">'
    table = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    kind = r"$$\href{javascript:window.__pwn=3}{x}$$"
    provenance = {"kind": kind, "shape": [6, 4], "rows": {"name": name, "labels": [label] * 6, "reverse": False}}
    path = tmp_path / "t.safetensors"
    safetensors.numpy.save_file({"position_embedding": table}, str(path),
                                metadata={"posembed.provenance": json.dumps(provenance)})
    page = tmp_path / "report.html"
    explorer.report(explorer.load(f"file:{path}"), page)
    with Chromium(width=1400, height=1100) as browser:
        result = browser.open(page)
        assert result.errors == [] and result.idle
        ran, images, shown, legend = browser.evaluate("""(() => {
          const found = [];
          const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
              if (el.shadowRoot) walk(el.shadowRoot);
              if (el.tagName === 'IMG' || /^javascript:/i.test(el.getAttribute('href') || '')) found.push(el.outerHTML);
            }
          };
          walk(document);
          const picker = Bokeh.documents[0].get_model_by_name('position_picker');
          const view = Bokeh.index.find_one(picker);
          const items = [...view.shadow_el.querySelectorAll('.choices__item--selectable')].map((e) => e.textContent);
          const fig = Bokeh.documents[0].get_model_by_name('position_vectors');
          const lines = fig.renderers.find((r) => r.data_source.data.label !== undefined).data_source;
          picker.value = [picker.options[1][0]];  // the legend redrawn in the browser keeps the plain text
          return [window.__pwn ?? null, found, items, lines.data.label[0]];
        })()""")
    assert ran is None and images == []  # no markup from the file became an element, no handler ran
    assert any(text.startswith(f"{name} {label}") for text in shown)  # shown as the text it is
    assert legend == rows.shortened(label, rows.MAX_LEGEND)  # the legend entry: the label alone, cut short


# ---------------------------------------------------------------------------------------------------------------------
# nothing written outside the output path

_WRITES: list[str] | None = None


def _audit(event: str, args) -> None:
    if _WRITES is None or event != "open":
        return
    path, mode, flags = args
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
    if writing and isinstance(path, (str, bytes, os.PathLike)):
        _WRITES.append(os.fsdecode(path))


sys.addaudithook(_audit)  # idle unless a test below switches it on


WRITE_COMMANDS = {
    "export-npy": lambda out: ["export", "sinusoidal,positions=16,dim=4", "-o", str(out / "t.npy")],
    "export-safetensors": lambda out: ["export", "sinusoidal,positions=16,dim=4", "-o", str(out / "t.safetensors")],
    "export-csv": lambda out: ["export", "sinusoidal,positions=16,dim=4", "-o", str(out / "t.csv")],
    "report": lambda out: ["report", "sinusoidal,positions=16,dim=4", "-o", str(out / "r.html")],
    "analyze-npz": lambda out: ["analyze", "sinusoidal,positions=16,dim=4", "--npz", str(out / "a.npz")],
}


@pytest.mark.parametrize("command", sorted(WRITE_COMMANDS))
def test_only_the_output_path_and_its_temporary_sibling_are_written(command, tmp_path, monkeypatch):
    global _WRITES
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    out.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = WRITE_COMMANDS[command](out)
    target = Path(argv[-1])
    _WRITES = []
    try:
        result = _run(argv)
    finally:
        written, _WRITES = _WRITES, None
    assert result.exit_code == 0, result.stderr
    temporary = re.compile(re.escape(str(out / f".{target.name}.")) + r".+\.part")
    outside = [p for p in written if p != str(target) and not temporary.fullmatch(p)]
    assert outside == [], outside
    assert sorted(p.name for p in out.iterdir()) == [target.name] and list(cwd.iterdir()) == []
