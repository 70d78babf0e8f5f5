"""What the report shows is faithful: colour scales per table or shared, --scale and --vmax, colour bars labelled
at their ends, traces decoded from fine codes, readable default traces, counted singular values, the CDN
message, and progress on a terminal."""

import re

import numpy as np
import pytest
from click.testing import CliRunner
from test_report_html import div_texts, document, named_models, walk

import explorer
import explorer.api
from explorer.analysis import fine_codes, matrix_image
from explorer.analysis.decomposition import UNRESOLVED
from explorer.analysis.frequencies import dimension_frequencies
from explorer.analysis.traces import FINE_LEVELS, MIN_PERIOD, trace_dims
from explorer.cli import cli
from explorer.core.embedding import PositionEmbedding
from explorer.errors import OutputError
from explorer.reporting import encoding
from explorer.reporting.page import Page
from explorer.runtime import console

SINUSOID = "sinusoidal,positions=256,dim=64"


def heavy_table() -> PositionEmbedding:
    """A GPT-2-like table: most values tiny, a few dimensions large (symlog by default)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, (256, 48)).astype(np.float32)
    x[:, 5] = 4.0 * np.sin(np.arange(256) / 30)
    x[:, 17] = -3.0 * np.cos(np.arange(256) / 50)
    return PositionEmbedding(x, provider="heavy", source="test", kind="learned")


def page_of(embeddings, **options) -> Page:
    results = [explorer.analyze(e) for e in embeddings]
    return Page(embeddings, results, **options)


def bar_labels(doc) -> list:
    """Every matrix heatmap's colour-bar tick labels (as serialised), in page order."""
    return [n["attributes"]["major_label_overrides"] for n in walk(doc)
            if n.get("name") == "ColorBar" and str(n["attributes"].get("title", "")).startswith("value")]


def _labels(overrides) -> list[str]:
    entries = overrides.get("entries", overrides) if isinstance(overrides, dict) else overrides
    if isinstance(entries, dict):
        return list(entries.values())
    return [label for _, label in entries]


# ---------------------------------------------------------------- 1. colour scales


def test_each_table_on_a_comparison_page_keeps_the_scale_it_has_alone():
    sinusoid, heavy = explorer.load(SINUSOID), heavy_table()
    together = page_of([sinusoid, heavy])
    alone = [page_of([sinusoid]).matrix_scale, page_of([heavy]).matrix_scale]
    for index, own in enumerate(alone):
        assert np.array_equal(together.matrix_scale_of(index).table, own.table)
    assert alone[0].kind == "linear" and alone[1].kind == "symlog"


def test_shared_scale_puts_every_table_on_one_scale_and_the_caption_says_so():
    sinusoid, heavy = explorer.load(SINUSOID), heavy_table()
    shared = page_of([sinusoid, heavy], shared_scale=True)
    assert shared.matrix_scale_of(0) is shared.matrix_scale_of(1)
    assert shared.matrix_scale.kind == "symlog"  # the heavy table decides
    text = " ".join(div_texts(document(explorer.report([sinusoid, heavy], shared_scale=True))))
    assert "shared by every table on the page (--shared-scale)" in text
    text = " ".join(div_texts(document(explorer.report([sinusoid, heavy]))))
    assert "This table has its own colour scale" in text and "shared by every table" not in text


# ---------------------------------------------------------------- 2. scale options


def test_linear_scale_with_vmax_gives_the_lectures_limits_and_labels_them(gpt2_wpe):
    emb = PositionEmbedding(gpt2_wpe, provider="gpt2", source="openai-community/gpt2", kind="learned")
    scale = encoding.matrix_scale([matrix_image(gpt2_wpe)], "linear", 0.2)
    assert scale.kind == "linear" and scale.limit == pytest.approx(0.2)
    assert scale.table[scale.low_code] == pytest.approx(-0.2) and scale.table[scale.high_code] == pytest.approx(0.2)
    assert scale.table[-1] == pytest.approx(float(np.abs(gpt2_wpe).max()), rel=1e-3)  # outliers keep their values
    html = explorer.report(emb, scale="linear", vmax=0.2)
    [labels] = [_labels(o) for o in bar_labels(document(html))]
    assert "-0.2" in labels and "0.2" in labels and "0" in labels
    assert "as asked for with --vmax" in " ".join(div_texts(document(html)))


def test_colour_bars_label_both_ends_of_the_colour_range():
    sinusoid = encoding.matrix_scale([matrix_image(explorer.load(SINUSOID).matrix)])
    ticks = sinusoid.ticks()
    assert ticks[sinusoid.low_code] == "-1" and ticks[sinusoid.high_code] == "1"
    heavy = encoding.matrix_scale([matrix_image(heavy_table().matrix)])
    ticks = heavy.ticks()
    assert heavy.kind == "symlog" and ticks[heavy.low_code] == "-4" and ticks[heavy.high_code] == "4"
    codes = sorted(ticks)
    assert min(np.diff(codes)) >= 1 and "0" in ticks.values()


def test_symlog_with_vmax_saturates_beyond_it_and_keeps_the_values():
    scale = encoding.matrix_scale([matrix_image(heavy_table().matrix)], "symlog", 1.0)
    assert scale.saturates and scale.limit == pytest.approx(1.0)
    assert scale.table[scale.high_code] == pytest.approx(1.0) and scale.table[-1] == pytest.approx(4.0, rel=1e-3)
    assert np.all(np.diff(scale.table) > 0)


def test_forcing_symlog_on_an_even_table_still_covers_it():
    scale = encoding.matrix_scale([matrix_image(explorer.load(SINUSOID).matrix)], "symlog")
    assert scale.kind == "symlog" and scale.table[0] <= -1 + 1e-6 and scale.table[-1] >= 1 - 1e-6


def test_unknown_scales_and_bad_vmax_are_refused_before_any_work():
    table = explorer.load("sinusoidal,positions=8,dim=4")
    with pytest.raises(OutputError, match="auto, linear, symlog"):
        explorer.report(table, scale="log")
    with pytest.raises(OutputError, match="positive"):
        explorer.report(table, vmax=-1.0)
    result = CliRunner().invoke(cli, ["report", "--vmax", "0", "-o", "-"])
    assert result.exit_code == 2 and "--vmax" in result.output


def test_the_command_line_passes_scale_options_to_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["--quiet", "report", SINUSOID, "--scale", "linear", "--vmax", "0.5",
                                      "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [labels] = [_labels(o) for o in bar_labels(document(out.read_text(encoding="utf-8")))]
    assert "-0.5" in labels and "0.5" in labels


# ---------------------------------------------------------------- 3. faithful traces


@pytest.mark.parametrize("which", ["gpt2", "sinusoid"])
def test_fine_codes_decode_within_a_tenth_of_a_percent_of_each_columns_range(which, request):
    x = request.getfixturevalue("gpt2_wpe") if which == "gpt2" else explorer.load("sinusoidal").matrix
    fine = fine_codes(matrix_image(x))
    assert fine.codes.dtype == np.uint16 and int(fine.codes.max()) <= FINE_LEVELS
    column_range = x.max(axis=0) - x.min(axis=0)
    error = np.abs(fine.decoded() - x.T).max(axis=1)
    assert np.all(error <= 0.001 * column_range)
    assert np.all(error <= column_range / (2 * FINE_LEVELS) * 1.01 + 1e-7)  # half a code step, as documented


def test_the_heatmap_ships_no_colour_codes_only_the_fine_codes():
    doc = document(explorer.report(explorer.load(SINUSOID)))
    names = named_models(doc)
    assert len(names["fine_codes"]) == 1  # one copy per table, read by heatmap, traces and vectors
    arrays = [n for n in walk(names["matrix"][0]) if n.get("type") == "ndarray" and n.get("dtype") == "uint8"]
    assert arrays and all(len(a["array"]["data"]) < 2000 for a in arrays if isinstance(a["array"], dict))


# ---------------------------------------------------------------- 4. defaults that show something


def test_default_traces_of_the_sinusoid_skip_fast_dimensions_and_spread_over_frequencies():
    x = explorer.load("sinusoidal").matrix
    frequencies = dimension_frequencies(x)
    dims, rule = trace_dims(x, frequencies)
    wavelengths = frequencies.wavelength[dims]
    assert len(dims) == 4 and 0 not in dims
    assert np.all(wavelengths >= MIN_PERIOD)
    assert wavelengths.max() / wavelengths.min() > 20  # fast and slow ones, not four alike
    assert "spread over frequencies" in rule
    text = " ".join(div_texts(document(explorer.report(explorer.load("sinusoidal")))))
    assert "skipping dimensions with periods under 16 positions" in text


def test_default_traces_of_a_table_with_dominant_dimensions_are_those_dimensions():
    heavy = heavy_table()
    results = explorer.analyze(heavy)
    assert {5, 17} <= set(results.traces.dims.tolist())
    assert "largest spread" in results.traces.rule


def test_position_vectors_are_drawn_as_dots():
    doc = document(explorer.report(explorer.load(SINUSOID)))
    fig = named_models(doc)["position_vectors"][0]
    glyphs = {n.get("name") for n in walk(fig) if n.get("name") in ("Scatter", "MultiLine", "Line")}
    assert glyphs == {"Scatter"}
    assert "one dot per dimension" in " ".join(div_texts(doc))


def test_row_norms_of_a_long_table_draw_the_band_with_its_edges():
    """Blocks of positions show the min-max band of their norms; GPT-2's are thinner than a pixel, and a band alone
    drew next to nothing (an atlas at resolution 384): its edges are lines, so it shows whatever its width."""
    from bokeh.models import HoverTool, Line, VArea

    from explorer.api import document as build

    table = np.random.default_rng(3).normal(size=(2048, 16)).astype(np.float32)
    doc = build(PositionEmbedding(table, "random", "test"))  # 2048 rows at resolution 1024: blocks of two
    [fig] = doc.select({"name": "row_norms"})
    glyphs = [r.glyph for r in fig.renderers]
    assert [type(g) for g in glyphs] == [VArea, Line, Line]
    assert (glyphs[0].y1, glyphs[0].y2, glyphs[1].y, glyphs[2].y) == ("low", "high", "low", "high")
    assert len({r.data_source.id for r in fig.renderers}) == 1  # one source: the hover reads both ends
    [hover] = [t for t in fig.tools if isinstance(t, HoverTool)]
    assert hover.renderers == [fig.renderers[2]]  # one tooltip a position, not one per edge


# ---------------------------------------------------------------- 6. singular values


def test_zero_and_unresolved_singular_values_are_counted_in_the_caption():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(120, 6)) @ rng.normal(size=(6, 40))).astype(np.float32)  # rank 6 of 40
    results = explorer.analyze(PositionEmbedding(x, provider="low", source="rank"))
    spectrum = results.spectrum
    s = spectrum.singular_values
    assert spectrum.zeros + spectrum.unresolved == 34
    assert spectrum.zeros == int(np.sum(s == 0)) and spectrum.unresolved == int(np.sum((s > 0) & (s < UNRESOLVED * s[0])))
    text = " ".join(div_texts(document(explorer.report(PositionEmbedding(x, provider="low", source="rank")))))
    assert re.search(r"(\d+ of the 40 are exactly 0|\d+ lie below 1e-07 s_1)", text)
    assert "the line ends at the 6th" in text
    assert results.scalars()["singular_values_zero"] + results.scalars()["singular_values_unresolved"] == 34


# ---------------------------------------------------------------- 7. the CDN message


def test_a_cdn_page_carries_a_message_for_when_bokehjs_cannot_load():
    table = explorer.load("sinusoidal,positions=8,dim=4")
    cdn = explorer.report(table, resources="cdn")
    assert 'id="posembed-no-bokeh"' in cdn and "could not load BokehJS" in cdn
    assert cdn.index("posembed-no-bokeh") > cdn.index("cdn.bokeh.org")  # checked after the CDN scripts ran
    assert "posembed-no-bokeh" not in explorer.report(table)  # inline pages need none


# ---------------------------------------------------------------- 8. progress


def test_report_on_a_terminal_shows_each_stage_and_the_elapsed_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "interactive", lambda: True)  # as if stderr were a terminal
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", SINUSOID, "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert f"posembed: loading {SINUSOID} ... " in err
    for name in ("summary", "matrix", "traces", "offset", "pca", "probes"):
        assert re.search(rf"posembed: analysing [^\r]*: {name} \.\.\. \d+\.\d s", err), name
    assert "posembed: building the page ... " in err and "posembed: writing the page ... " in err
    assert err.index("loading") < err.index("analysing") < err.index("building") < err.index("writing")
    assert result.stdout == ""


def test_quiet_report_shows_no_stage_and_stdout_carries_only_the_html(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    monkeypatch.setattr(console, "_stderr_is_terminal", lambda: True)
    result = CliRunner().invoke(cli, ["--quiet", "report", SINUSOID, "-o", "-"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.lstrip().lower().startswith("<!doctype html") and result.stdout.rstrip().endswith("</html>")


def test_the_analysis_loop_reports_each_analysis_to_its_caller():
    seen = []
    explorer.analysis.analyze(explorer.load(SINUSOID).matrix, progress=seen.append)
    assert seen[:3] == ["summary", "matrix", "traces"] and "probes" in seen
    assert "fine_codes" not in seen  # an encoding the page computes from the matrix, not an analysis


@pytest.mark.parametrize("specs", [
    ["sinusoidal,positions=64,dim=16"],
    ["sinusoidal,positions=64,dim=16", "sinusoidal,positions=48,dim=16,layout=split"],
    ["sinusoidal,positions=64,dim=16", "sinusoidal,positions=48,dim=16", "sinusoidal,positions=32,dim=16"],
    ["sinusoidal2d,grid=6x5,dim=16", "alibi,heads=2,positions=8"],
], ids=["one", "two", "atlas", "grid-and-relative"])
def test_every_kind_of_page_passes_bokehs_document_validation(specs, monkeypatch):
    """``posembed`` skips Bokeh's document validation when it writes a page (BOKEH_VALIDATE_DOC, set by
    ``runtime.environment.command_process``): it only logs layout warnings the page's own code would cause, so this
    is where they are caught."""
    from bokeh.core.validation.check import check_integrity

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    doc = explorer.api.document([explorer.load(spec) for spec in specs])
    issues = check_integrity([model for root in doc.roots for model in root.references()])
    assert not issues.error and not issues.warning, issues
