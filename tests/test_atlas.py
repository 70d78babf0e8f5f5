"""Many tables: revision series, spec files, concurrent loading, --keep-going, and the atlas page."""

import threading
import time

import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.errors import SpecError
from explorer.loading import series
from explorer.reporting.page import build_document

SMALL = "sinusoidal,positions=64,dim=16"


def test_a_series_is_one_spec_per_value_in_the_order_given():
    assert series.expand_series("hf:org/m,revision=step3|step1|step2") == [
        "hf:org/m,revision=step3", "hf:org/m,revision=step1", "hf:org/m,revision=step2"]
    assert series.expand_series("sinusoidal,dim=8") == ["sinusoidal,dim=8"]


@pytest.mark.parametrize("text,reason", [("sinusoidal,dim=8|16,base=1|2,positions=4|8", "at most two things"),
                                         ("sinusoidal,dim=8||16", "empty value")])
def test_a_bad_series_is_refused_with_its_reason(text, reason):
    with pytest.raises(SpecError, match=reason):
        series.expand_series(text)


def test_a_spec_file_skips_blank_lines_and_comments_and_expands_series(tmp_path):
    path = tmp_path / "specs.txt"
    path.write_text("# the sinusoid at two bases\n\nsinusoidal,base=100|1000  # a series\n   \nfile:a#b.npy\n")
    requests = series.read_spec_file(path)
    assert [r.spec for r in requests] == ["sinusoidal,base=100", "sinusoidal,base=1000", "file:a#b.npy"]
    assert requests[2].origin.endswith("line 5")


def test_a_bad_line_of_a_spec_file_is_named_by_its_number(tmp_path):
    path = tmp_path / "specs.txt"
    path.write_text("sinusoidal\n\n:nothing\n")
    result = CliRunner().invoke(cli, ["report", "--specs", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "line 3" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_at_most_four_tables_load_at_once_and_come_back_in_order():
    import numpy as np

    from explorer.testing import registry_with

    running, most, lock = [0], [0], threading.Lock()

    def slow_table(positions: int) -> explorer.PositionEmbedding:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return explorer.PositionEmbedding(np.ones((positions, 8), np.float32), provider="slow", source="test")

    class SlowTables:
        @explorer.hookimpl
        def register_providers(self, register):
            register(explorer.Provider("slow", "a table that takes 50 ms to load", slow_table,
                                       params=(explorer.Param("positions", int, required=True),),
                                       target="positions"))

    specs = [f"slow:{16 + k}" for k in range(9)]
    tables, failures = series.load_many([series.Request(s) for s in specs], registry_with(SlowTables()))
    assert failures == [] and [t.positions for t in tables] == [16 + k for k in range(9)]
    assert most[0] == series.WORKERS  # concurrent, and never more than four


def test_a_failing_spec_stops_before_writing_unless_keep_going(tmp_path):
    out = tmp_path / "r.html"
    args = ["report", SMALL, "file:/nonexistent/table.npy", f"{SMALL},base=100", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and not out.exists()
    assert result.output.startswith("posembed: error: 'file:/nonexistent/table.npy'")
    result = CliRunner().invoke(cli, [*args, "--keep-going"])
    assert result.exit_code == 0, result.output
    assert "left out: 'file:/nonexistent/table.npy'" in result.output
    assert "posembed: sinusoidal" in out.read_text(encoding="utf-8")  # the two others, side by side


def _document(count: int):
    tables = [explorer.load(f"{SMALL},base={100 * (k + 1)}") for k in range(count)]
    results, pairs = explorer.api.analyze_all(tables)
    return build_document(tables, results, pairs)


def _named(doc, name):
    return [m for m in doc.models if getattr(m, "name", None) == name]


def test_three_tables_make_an_atlas_with_one_table_shown_below():
    doc = _document(3)
    assert _named(doc, "atlas_numbers") and _named(doc, "atlas_cka") and _named(doc, "atlas_similarity_correlation")
    assert all(_named(doc, f"thumb_{kind}_{k}") for kind in ("matrix", "cosine", "pca") for k in range(3))
    panels = [_named(doc, f"drill_{k}")[0] for k in range(3)]
    assert _named(doc, "atlas_drill")[0].children == panels[:1]  # the first shown; the others wait in the file
    assert all(p.select_one({"name": "matrix"}) is not None for p in panels)  # every table's full sections
    numbers = _named(doc, "atlas_numbers_source")[0].data
    assert len(numbers["table"]) == 3 and "probe_absolute_mae" in numbers
    assert not _named(doc, "comparison")  # the pairwise list gives way to the heatmaps
    overlay = _named(doc, "offset_overlay")[0]
    assert overlay.legend[0].click_policy == "hide"


def test_two_tables_keep_the_side_by_side_page():
    doc = _document(2)
    assert not _named(doc, "atlas_numbers") and not _named(doc, "drill_0")
    assert _named(doc, "comparison") and len(_named(doc, "matrix")) == 2


def test_the_atlas_numbers_are_the_chosen_protocols():
    tables = [explorer.load(f"sinusoidal,positions=600,dim=16,base={b}") for b in (100, 1000, 10000)]
    results, pairs = explorer.api.analyze_all(tables, probe_protocol="wang-chen")
    doc = build_document(tables, results, pairs)
    numbers = _named(doc, "atlas_numbers_source")[0].data
    assert numbers["probe_absolute_mae"] == [r["probes"].absolute_mae for r in results]
    assert all(r["probes"].protocol == "wang-chen" and r["probes"].rows == 512 for r in results)
    assert "wang-chen protocol" in _named(doc, "atlas")[0].children[1].text


def test_loading_a_set_draws_one_line_for_the_set(tmp_path, monkeypatch):
    from explorer.runtime import console

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "interactive", lambda: True)  # as if stderr were a terminal
    result = CliRunner().invoke(cli, ["analyze", f"{SMALL},base=100|1000|10000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "posembed: loading 3 tables ... " in result.stderr
    assert "posembed: loaded 3 of 3 tables ... " in result.stderr


def test_a_series_over_any_parameter_names_each_tables_value_wherever_the_tables_are_labelled():
    from explorer.api import document
    from explorer.reporting.page import Page

    tables = [explorer.load(f"sinusoidal,positions=32,dim={d}") for d in (8, 16, 32)]
    page = Page(tables, [{} for _ in tables])
    labels = [page.label_of(k) for k in range(3)]
    assert len(set(labels)) == 3 and all(label.endswith(f"(dim={d})") for label, d in zip(labels, (8, 16, 32)))
    assert Page(tables[:1] + [explorer.load("alibi,heads=2,positions=8")], [{}, {}]).label_of(0) == tables[0].label
    doc = document(tables)
    source = next(m for m in doc.models if getattr(m, "name", None) == "atlas_numbers_source")
    assert source.data["table"] == [f"{k + 1}. {label}" for k, label in enumerate(labels)]
    legend = " ".join(item.label.value for m in doc.models if type(m).__name__ == "Legend" for item in m.items
                      if item.label and getattr(item.label, "value", None))
    assert all(label in legend for label in labels)


def test_the_atlas_tables_name_column_holds_the_longest_name_at_1280_px():
    from explorer.api import document

    tables = [explorer.load(f"sinusoidal,positions=32,dim={d}") for d in (8, 16, 32)]
    table = next(m for m in document(tables).models if getattr(m, "name", None) == "atlas_numbers")
    longest = max(len(text) for text in table.source.data["table"])
    widths = [c.width for c in table.columns]  # shares of the table's width (Bokeh's force_fit)
    assert widths[0] / sum(widths) * (1280 - 48) >= 7 * longest  # about 7 px a character at the table's font
