"""An atlas from a fake hub: several models and a revision series of one, fetched concurrently, then offline."""

import numpy as np
from click.testing import CliRunner

from explorer.api import load_many
from explorer.cli import cli


def publish(hub, tiny_models):
    """Two revisions of one model (training checkpoints as branches) and two other models; the expected tables."""
    hub.add("org/series", tiny_models["gpt2"].path, revision="step1000")
    hub.add("org/series", tiny_models["distilgpt2"].path, revision="step2000")
    hub.add("org/bert", tiny_models["bert"].path)
    hub.add("org/opt", tiny_models["opt"].path)
    return [tiny_models[name].expected for name in ("gpt2", "distilgpt2", "bert", "opt")]


SPECS = ["hf:org/series,revision=step1000|step2000", "hf:org/bert", "hf:org/opt"]


def test_a_revision_series_and_other_models_load_in_order_with_their_revisions(hub, tiny_models):
    expected = publish(hub, tiny_models)
    tables, failures = load_many(SPECS)
    assert failures == []
    assert [t.params["revision"] for t in tables[:2]] == ["step1000", "step2000"]
    for table, want in zip(tables, expected):
        np.testing.assert_array_equal(table.matrix, want)


def test_the_atlas_is_built_from_the_hub_then_again_offline_from_the_cache(hub, tiny_models, tmp_path, monkeypatch):
    publish(hub, tiny_models)
    online, offline = tmp_path / "online.html", tmp_path / "offline.html"
    result = CliRunner().invoke(cli, ["-q", "report", *SPECS, "-o", str(online)])
    assert result.exit_code == 0, result.output
    page = online.read_text(encoding="utf-8")
    assert "posembed atlas: 4 tables" in page
    assert "@ step1000" in page and "@ step2000" in page  # the labels name the revision
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    result = CliRunner().invoke(cli, ["-q", "report", *SPECS, "-o", str(offline)])
    assert result.exit_code == 0, result.output
    assert len(hub.requests) == before  # offline means offline: every table came from the cache
    again = offline.read_text(encoding="utf-8")
    assert "posembed atlas: 4 tables" in again and "@ step1000" in again and "@ step2000" in again


def test_a_revision_missing_from_the_hub_is_named_and_nothing_is_written(hub, tiny_models, tmp_path):
    publish(hub, tiny_models)
    out = tmp_path / "atlas.html"
    result = CliRunner().invoke(cli, ["-q", "report", "hf:org/series,revision=step1000|step9999", "hf:org/bert",
                                      "hf:org/opt", "-o", str(out)])
    assert result.exit_code != 0
    assert "'hf:org/series,revision=step9999'" in result.output and result.output.count("\n") == 1
    assert not out.exists()
    result = CliRunner().invoke(cli, ["-q", "report", "hf:org/series,revision=step1000|step9999", "hf:org/bert",
                                      "hf:org/opt", "--keep-going", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "left out: 'hf:org/series,revision=step9999'" in result.output
    assert "posembed atlas: 3 tables" in out.read_text(encoding="utf-8")
