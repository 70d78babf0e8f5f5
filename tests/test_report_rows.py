"""Tables whose rows are not positions (``PositionEmbedding.rows``, DeBERTa's distance buckets): every axis,
hover and picker along the rows names the rows by their labels, in the order the labels read, and nothing pairs
such a table with one whose rows are positions."""

import html
import json

import numpy as np
import pytest
from bokeh.models import CustomJSHover, CustomJSTickFormatter, Div, HoverTool, MultiChoice
from browser import Chromium, find_chromium  # tests/browser.py, on pytest's pythonpath
from click.testing import CliRunner

import explorer
from explorer.api import analyze_all
from explorer.cli import cli
from explorer.core.embedding import RowAxis
from explorer.errors import EmbeddingError
from explorer.export import encode
from explorer.reporting import rows as row_axes
from explorer.reporting.page import build_document

S = 32  # rows 0 .. 2S-1 stand for key - query distances S .. -(S-1), as DeBERTa's do


def bucket_table(reverse: bool = True) -> explorer.PositionEmbedding:
    """A DeBERTa-like table: row r is the key - query distance S - r, the end rows open-ended."""
    distance = S - np.arange(2 * S)
    labels = [f">= {S}" if r == 0 else f"<= {-(S - 1)}" if r == 2 * S - 1 else str(d) for r, d in enumerate(distance)]
    if not reverse:
        labels = labels[::-1]
    rng = np.random.default_rng(1)
    matrix = np.cos(np.outer(distance, np.linspace(0.02, 0.6, 24))) + 0.01 * rng.standard_normal((2 * S, 24))
    return explorer.PositionEmbedding(matrix.astype(np.float32), "buckets", "test", kind="relative",
                                      rows=RowAxis("key - query distance", labels, reverse=reverse))


def built(*embeddings):
    results, pairs = analyze_all(list(embeddings))
    return build_document(list(embeddings), results, pairs), results, pairs


def figures(doc, name):
    return [m for m in doc.select({"name": name})]


# ---------------------------------------------------------------- the field


def test_a_row_axis_needs_one_short_label_per_row_and_no_grid():
    table = bucket_table()
    assert row_axes.row_text(table.rows, [0, S]) == [f">= {S}", "0"] and row_axes.row_word(table.rows) == "key - query distance"
    assert table.provenance()["rows"] == {"name": "key - query distance", "labels": list(table.rows.labels),
                                          "reverse": True}
    axis = RowAxis("d", ["0", "1"])
    with pytest.raises(EmbeddingError, match="2 row labels for a table of 3 rows"):
        explorer.PositionEmbedding(np.zeros((3, 2)), "x", "x", rows=axis)
    with pytest.raises(EmbeddingError, match="at most 48 characters"):
        RowAxis("d", ["x" * 49])
    with pytest.raises(EmbeddingError, match="needs a name"):
        RowAxis(" ", ["0"])
    with pytest.raises(EmbeddingError, match="grid or has row labels"):
        explorer.PositionEmbedding(np.zeros((4, 2)), "x", "x", grid=(2, 2), rows=RowAxis("d", list("abcd")))
    with pytest.raises(EmbeddingError, match="explorer.RowAxis"):
        explorer.PositionEmbedding(np.zeros((2, 2)), "x", "x", rows=["a", "b"])
    plain = explorer.load("sinusoidal,positions=8,dim=4")
    assert row_axes.row_text(plain.rows, [5]) == ["5"] and row_axes.row_word(plain.rows) == "position"  # the position


# ---------------------------------------------------------------- the page


def test_every_axis_along_the_rows_is_labelled_and_drawn_in_the_order_the_labels_read():
    table = bucket_table()
    doc, _, _ = built(table)
    labels = list(table.rows.labels)
    along = {"matrix": "x", "dimension_traces": "x", "row_norms": "x", "cosine_positions": "xy"}
    ranges = set()
    for name, axes in along.items():
        [fig] = figures(doc, name)
        for which in axes:
            axis = (fig.xaxis if which == "x" else fig.yaxis)[0]
            assert axis.axis_label == "key - query distance", name
            assert isinstance(axis.formatter, CustomJSTickFormatter) and axis.formatter.args["labels"] == labels
            span = fig.x_range if which == "x" else fig.y_range
            # row 0 (distance >= S) at the right; on the cosine images' y axis at the bottom: labels read
            # ascending left to right and top to bottom, as positions do
            assert (span.start, span.end) == ((2 * S, 0) if which == "x" else (0, 2 * S)), (name, which)
            ranges.add(id(span))
    assert len(ranges) == 2  # one x range shared by the table's plots, one y range for the cosine images
    [matrix] = figures(doc, "matrix")
    hover = next(t for t in matrix.tools if isinstance(t, HoverTool))
    assert hover.tooltips[0] == ("key - query distance", "$x{custom}")
    assert isinstance(hover.formatters["$x"], CustomJSHover) and hover.formatters["$x"].args["labels"] == labels


def test_pickers_and_hovers_name_rows_by_their_labels():
    table = bucket_table()
    doc, _, _ = built(table)
    [picker] = [m for m in doc.select({"type": MultiChoice}) if m.name == "position_picker"]
    names = {v: html.unescape(text) for v, text in picker.options}  # options are markup to the widget: escaped
    assert [names[v] for v in picker.value] == [f"key - query distance >= {S}", "key - query distance 0",
                                               f"key - query distance <= {-(S - 1)}"]
    [norms] = figures(doc, "row_norms")
    source = norms.renderers[0].data_source
    assert source.data["label"][S] == "0"
    [pc] = figures(doc, "pca_scores")
    assert pc.renderers[0].data_source.data["label"][0] == f">= {S}"
    text = " ".join(d.text for d in doc.select({"type": Div}))
    assert "The rows are not positions" in text and "key - query distance" in text
    assert "128 rows" not in text and f"{2 * S} rows \u00d7 24 dimensions" in text
    assert "i is the row number" in text  # the probes read out row order, not positions


def test_rows_that_read_ascending_keep_the_usual_direction():
    doc, _, _ = built(bucket_table(reverse=False))
    [fig] = figures(doc, "matrix")
    assert (fig.x_range.start, fig.x_range.end) == (0, 2 * S)
    assert "equal steps along it are not equal distances" not in " ".join(d.text for d in doc.select({"type": Div}))


def test_rows_that_serve_ranges_of_distances_are_ticked_at_round_numbers_and_the_caption_warns():
    table = bucket_table()
    labels = list(table.rows.labels)
    labels[1:4] = ["29..31", "25..28", "20..24"]  # logarithmic buckets, as DeBERTa-v3's past +-128
    table = explorer.PositionEmbedding(table.matrix, "buckets", "test", rows=RowAxis(table.rows.name, labels, True))
    low, high = row_axes.row_numbers(table.rows)
    assert (low[0], high[0]) == (S, S) and (low[2], high[2]) == (25, 28) and (low[S], high[S]) == (0, 0)
    doc, _, _ = built(table)
    assert "equal steps along it are not equal distances" in " ".join(d.text for d in doc.select({"type": Div}))


def test_numbers_beyond_float32_in_labels_are_read_as_text_without_a_warning():
    import warnings

    labels = ["9" * 47, "0", "1", "-" + "9" * 46, "2", "3"]  # 48 characters at most: within float64, not float32
    table = explorer.PositionEmbedding(np.ones((6, 2), np.float32) + np.eye(6, 2, dtype=np.float32), "mine", "t",
                                       rows=RowAxis("d", labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # `posembed --quiet report` printed "overflow encountered"
        doc, _, _ = built(table)
    [fig] = figures(doc, "matrix")
    low = list(fig.xaxis[0].ticker.args["low"])
    assert low[1:3] == [0, 1] and np.isnan(low[0]) and np.isnan(low[3])  # no tick at a number it cannot hold


def test_a_table_of_positions_and_one_of_buckets_keep_their_own_axes_and_are_not_paired():
    table, plain = bucket_table(), explorer.load("sinusoidal,positions=100,dim=24")
    doc, _, pairs = built(table, plain)
    first, second = sorted(figures(doc, "matrix"), key=lambda fig: fig.x_range.end)  # buckets: 2S .. 0
    assert first.x_range is not second.x_range  # distance buckets are not positions: not linked
    assert isinstance(first.xaxis[0].formatter, CustomJSTickFormatter)
    assert not isinstance(second.xaxis[0].formatter, CustomJSTickFormatter) and second.xaxis[0].axis_label == "position"
    [(_, _, pair)] = pairs
    assert "comparison" not in pair  # CKA over row index would pair distance buckets with positions
    text = " ".join(d.text for d in doc.select({"type": Div}))
    assert "Table 1 has rows that are not positions (key - query distance)" in text
    assert "counts k in rows (key - query distance), not positions" in text
    same, _, pairs = built(table, bucket_table())
    assert "comparison" in pairs[0][2]  # two tables whose rows mean the same are compared


def test_two_tables_whose_rows_mean_different_things_say_why_they_are_not_compared():
    table = bucket_table()
    labels = [f"tok{k}" for k in range(2 * S)]
    other = explorer.PositionEmbedding(table.matrix, "tokens", "test", rows=RowAxis("token", labels))
    doc, _, pairs = built(table, other)
    assert "comparison" not in pairs[0][2]
    text = " ".join(d.text for d in doc.select({"type": Div}))
    assert "No pairwise numbers (CKA, similarity correlation)" in text
    assert "Tables 1, 2 have rows that are not positions" in text


def test_an_atlas_draws_the_thumbnails_the_way_round_the_sections_do():
    doc, _, _ = built(bucket_table(), explorer.load("sinusoidal,positions=64,dim=24"),
                      explorer.load("sinusoidal,positions=64,dim=24,layout=split"))
    [thumb] = figures(doc, "thumb_matrix_0")
    assert (thumb.x_range.start, thumb.x_range.end) == (1, 0)
    [other] = figures(doc, "thumb_matrix_1")
    assert (other.x_range.start, other.x_range.end) == (0, 1)
    text = " ".join(d.text for d in doc.select({"type": Div}))
    assert "Table 1 has rows that are not positions (key - query distance)" in text  # why its pair cells are empty


# ---------------------------------------------------------------- outputs


def test_json_csv_and_safetensors_carry_the_row_labels():
    table = bucket_table()
    csv = encode(table, "csv").decode().splitlines()
    assert csv[0].startswith('row,"key - query distance",d0,d1')
    assert csv[1].startswith(f'0,">= {S}",') and csv[S + 1].startswith(f'{S},"0",')
    values = np.array([[float(v) for v in line.split(",")[2:]] for line in csv[1:]], dtype=np.float32)
    assert np.array_equal(values, table.matrix)
    import os
    import tempfile

    from safetensors import safe_open
    from safetensors.numpy import load

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.safetensors")
        with open(path, "wb") as f:
            f.write(encode(table, "safetensors"))
        with safe_open(path, "numpy") as f:
            provenance = json.loads(f.metadata()["posembed.provenance"])
        assert provenance["rows"]["labels"] == list(table.rows.labels)
        assert np.array_equal(next(iter(load(open(path, "rb").read()).values())), table.matrix)


def test_analyze_json_names_the_rows(tmp_path):
    from explorer.export import export

    path = tmp_path / "buckets.safetensors"
    export(bucket_table(), path, "safetensors")  # read back with its row labels, as exported
    result = CliRunner().invoke(cli, ["analyze", "--json", f"file:{path}"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)["tables"]
    assert entry["rows"]["name"] == "key - query distance" and entry["rows"]["labels"][S] == "0"


# ---------------------------------------------------------------- in the browser


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
def test_the_page_labels_ticks_and_hovers_with_the_rows_labels(tmp_path):
    from test_browser import hover

    table = bucket_table()
    path = tmp_path / "rows.html"
    explorer.report(table, path)
    with Chromium(width=1400, height=1100) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        labels, ticks, zoomed, traces = browser.evaluate("""(() => {
          const doc = Bokeh.documents[0], fig = doc.get_model_by_name('matrix'), axis = fig.below[0];
          const ticks = (a, start, end) => a.formatter.doFormat(a.ticker.get_ticks(start, end, fig.x_range, 0).major,
                                                                {loc: 0});
          const lines = doc.get_model_by_name('dimension_traces').below[0];
          return [axis.formatter.doFormat([0, 8.2, 32.9, 63.5], {loc: 0}), ticks(axis, 0, 2 * S),
                  ticks(axis, 30, 40), lines.ticker.get_ticks(0, 2 * S, fig.x_range, 0).major];
        })()""".replace("S", str(S)))
        assert labels == [f">= {S}", str(S - 8), "0", f"<= {-(S - 1)}"]  # a row's label over its whole cell
        # round distances, evenly over the rows (about as many as a normal axis), not the distances rows 0, 9, 18
        # happen to hold
        assert ticks == ["30", "20", "10", "0", "-10", "-20", "-30"]
        assert zoomed == [str(d) for d in range(2, -8, -1)]  # zoomed in to ten rows: each row
        assert traces == [S - 30, S - 20, S - 10, S, S + 10, S + 20, S + 30]  # lines draw row r at r: ticks follow
        distance, dimension, value = hover(browser, "matrix", 0.25, 0.5)
        row = table.rows.labels.index(distance)
        assert 2 * S * 0.7 <= row <= 2 * S * 0.8  # a quarter of the way from the left: row 0 is at the right
        assert abs(float(value.split(" ")[0]) - table.matrix[row, int(dimension)]) <= 0.02
        errors, _ = browser.console()
        assert errors == []


@pytest.mark.parametrize("others", [1, 2], ids=["side-by-side", "atlas"])
def test_pages_with_relative_terms_and_bucket_tables_build(others):
    terms = [explorer.load(f"alibi,heads=4,positions={32 + k}") for k in range(others)]
    doc, _, pairs = built(bucket_table(), *terms)
    assert all("comparison" not in pair for _, _, pair in pairs)
    assert figures(doc, "matrix") or figures(doc, "thumb_matrix_0")


def test_a_deberta_checkpoint_reaches_the_page_with_its_distance_labels(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.DebertaV2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32, vocab_size=30, relative_attention=True,
                                          position_buckets=256, max_position_embeddings=512, max_relative_positions=-1)
    transformers.DebertaV2Model(config).save_pretrained(tmp_path / "deberta")
    out = tmp_path / "deberta.html"
    result = CliRunner().invoke(cli, ["report", f"hf:{tmp_path / 'deberta'}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    from test_report_html import document, walk

    doc = document(out.read_text())
    formatters = [n["attributes"]["args"] for n in walk(doc) if n.get("name") == "CustomJSTickFormatter"]
    text = json.dumps(formatters)  # every axis along the rows carries the provider's labels
    assert len(formatters) >= 5 and '">= 512"' in text and '"506..511"' in text and '"<= -506"' in text
    assert "key - query distance" in out.read_text()


def as_provider(name, table):
    """The command line finds ``table`` as provider ``name`` of an installed plugin (``explorer.testing``)."""
    from explorer.testing import installed, providing

    return installed(providing(explorer.Provider(name, "a fixed table", lambda: table), name=f"posembed_{name}"),
                     name=name)


def test_info_names_the_row_axis_in_one_line(monkeypatch):
    table = bucket_table()
    with as_provider("buckets", table):
        result = CliRunner().invoke(cli, ["info", "buckets"])
        data = json.loads(CliRunner().invoke(cli, ["info", "--json", "buckets"]).output)
    assert result.exit_code == 0, result.output
    assert f"rows: key - query distance, >= {S} (row 0) to <= {-(S - 1)}" in result.output
    assert len(result.output.splitlines()) < 25  # the labels themselves are in --json, not one per line
    assert data["rows"]["labels"] == list(table.rows.labels)


def test_labels_and_info_lines_show_control_characters_escaped(monkeypatch):
    axis = RowAxis("key - query\ndistance", ["0\x1b[2J", "1"])
    assert axis.name == "key - query\\ndistance" and axis.labels[0] == "0\\x1b[2J"  # a tick, a hover: one line
    table = explorer.PositionEmbedding(np.zeros((2, 2)), "buckets", "test\x1b]0;title\x07", rows=axis,
                                       description="note\nsecond line", tensor="t\rx")
    with as_provider("buckets", table):
        output = CliRunner().invoke(cli, ["info", "buckets"]).output
    assert "\x1b" not in output and "\x07" not in output and "\r" not in output
    assert "note\\nsecond line" in output and "t\\rx" in output


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
@pytest.mark.filterwarnings("ignore:.*have no direction:explorer.errors.PosembedWarning")  # a 1-row table centred
def test_rows_labelled_by_text_or_one_number_are_ticked_once_each(tmp_path):
    """Labels that are no numbers (or a single number) are ticked at whole rows, each once, however far the axis is
    zoomed: not at Bokeh's fractional ticks, which put one row's label at several ticks."""
    def table(labels):
        matrix = np.random.default_rng(5).normal(size=(len(labels), 6)).astype(np.float32)
        return explorer.PositionEmbedding(matrix, "mine", "t", rows=RowAxis("token", labels))

    script = """((zoom) => {
      const doc = Bokeh.documents[0], out = {};
      const read = (axis, start, end, range) => axis.formatter.doFormat(
          axis.ticker.get_ticks(start, end, range, 0).major, {loc: 0});
      for (const name of ['matrix', 'dimension_traces', 'row_norms']) {
        const fig = doc.get_model_by_name(name);
        out[name] = read(fig.below[0], fig.x_range.start, fig.x_range.end, fig.x_range);
        if (zoom) out[name + ' zoomed'] = read(fig.below[0], 10.3, 13.1, fig.x_range);
      }
      const bar = doc.get_model_by_name('pca_scores').right.find((r) => r.color_mapper !== undefined);
      out.colour_bar = read(bar, bar.color_mapper.low, bar.color_mapper.high, null);
      return out;
    })(ZOOM)"""
    cases = {"one": ["alpha"], "two": ["a", "b"], "one number": ["5"], "forty": [f"tok{k}" for k in range(40)]}
    with Chromium(width=1400, height=1100) as browser:
        for case, labels in cases.items():
            path = tmp_path / f"{len(labels)}.html"
            explorer.report(table(labels), path)
            result = browser.open(path)
            assert result.errors == [] and result.idle, case
            ticks = browser.evaluate(script.replace("ZOOM", str(len(labels) > 20).lower()))
            for where, shown in ticks.items():
                if len(labels) < 3:
                    assert shown == labels, (case, where)  # every row once, at the row
                else:
                    assert len(shown) == len(set(shown)) and set(shown) <= set(labels), (case, where, shown)
                    assert 3 <= len(shown) <= 12, (case, where, shown)


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
def test_numbers_that_repeat_along_the_rows_get_a_readable_number_of_ticks(tmp_path):
    """Labels need not run in order: numbers that come back (a position per layer, one number on every row) still
    give about a dozen ticks at most, not one at every row holding a round number."""
    cases = {"one number on every row": ["5"] * 50, "positions per layer": [str(k % 10) for k in range(200)]}
    with Chromium(width=1400, height=1100) as browser:
        for case, labels in cases.items():
            matrix = np.random.default_rng(6).normal(size=(len(labels), 6)).astype(np.float32)
            path = tmp_path / "repeat.html"
            explorer.report(explorer.PositionEmbedding(matrix, "mine", "t", rows=RowAxis("position", labels)), path)
            result = browser.open(path)
            assert result.errors == [] and result.idle, case
            counts = browser.evaluate("""(() => ['matrix', 'dimension_traces', 'row_norms'].map((name) => {
              const fig = Bokeh.documents[0].get_model_by_name(name);
              return fig.below[0].ticker.get_ticks(fig.x_range.start, fig.x_range.end, fig.x_range, 0).major.length;
            }))()""")
            assert all(3 <= count <= 12 for count in counts), (case, counts)


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
def test_long_row_labels_leave_every_plot_room_and_the_page_its_width(tmp_path):
    """Labels and an axis name of the longest allowed (48 characters): the legends of the row pickers and the tick
    labels along the rows are cut short (hovers and pickers keep the whole label), so no plot is squeezed to a
    sliver and two tables still fit the window."""
    name = "a row axis of the longest name a table may give!"
    labels = [f"row {k:04d} " + "x" * 39 for k in range(300)]
    assert len(name) == len(labels[0]) == 48
    matrix = np.random.default_rng(7).normal(size=(300, 24)).astype(np.float32)
    table = explorer.PositionEmbedding(matrix, "mine", "t", rows=RowAxis(name, labels))
    path = tmp_path / "long.html"
    explorer.report([table, table], path, resolution=64)
    for width in (1280, 1920):
        with Chromium(width=width, height=1000) as browser:
            result = browser.open(path)
            assert result.errors == [] and result.idle
            page, frames, ticks = browser.evaluate("""(() => {
              const frames = {};
              let ticks = [];
              for (const m of Bokeh.documents[0].all_models) {
                if (m.toolbar === undefined || m.renderers === undefined) continue;
                const view = Bokeh.index.find_one(m);
                frames[m.name] = Math.min(frames[m.name] ?? Infinity, Math.round(view.frame.bbox.width));
                if (m.name === 'cosine_positions') {
                  const axis = m.left[0];
                  ticks = axis.formatter.doFormat(axis.ticker.get_ticks(0, 300, m.y_range, 0).major, {loc: 0});
                }
              }
              return [document.documentElement.scrollWidth, frames, ticks];
            })()""")
            assert page == width, (width, page)
            for plot in ("position_vectors", "cosine_positions", "pca_scores", "dimension_traces"):
                assert frames[plot] >= 150, (width, plot, frames[plot])
            assert ticks and all(len(tick) <= 16 for tick in ticks), ticks


@pytest.mark.browser
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; .ci/run installs Debian's chromium")
def test_deberta_distance_buckets_are_ticked_as_densely_and_evenly_as_a_normal_axis(tmp_path):
    """DeBERTa-v3's 512 rows: distances one by one within +-128, logarithmic buckets out to 512. Ticks come about
    as many as on a normal axis and evenly over the rows (rounding the distances alone put five ticks on the axis,
    one of them in the middle half where most rows are), each at a round distance of its stretch."""
    from explorer.loaders.deberta import row_axis

    rows = row_axis({"model_type": "deberta-v2", "relative_attention": True, "position_buckets": 256, "max_position_embeddings": 512,
                     "max_relative_positions": -1}, 512)
    matrix = np.random.default_rng(8).normal(size=(512, 16)).astype(np.float32)
    path = tmp_path / "deberta.html"
    explorer.report(explorer.PositionEmbedding(matrix, "deberta-like", "t", rows=rows), path)
    with Chromium(width=1280, height=1000) as browser:
        result = browser.open(path)
        assert result.errors == [] and result.idle
        shown = browser.evaluate("""(() => ['matrix', 'dimension_traces', 'row_norms', 'cosine_positions'].map((name) => {
          const fig = Bokeh.documents[0].get_model_by_name(name), axis = fig.below[0];
          const ticks = axis.ticker.get_ticks(fig.x_range.start, fig.x_range.end, fig.x_range, 0).major;
          const basic = Bokeh.documents[0].get_model_by_name('matrix').left[0].ticker;  // the dimension axis's
          const [a, b] = [Math.min(fig.x_range.start, fig.x_range.end), Math.max(fig.x_range.start, fig.x_range.end)];
          const plain = basic.get_ticks(a, b, fig.x_range, 0).major;
          return [name, ticks, axis.formatter.doFormat(ticks, {loc: 0}), plain.length];
        }))()""")
    for name, ticks, labels, normal in shown:
        assert len(ticks) >= normal >= 5, (name, labels)  # as many as a normal axis over the same 512 rows
        gaps = np.diff(sorted(ticks))
        assert gaps.max() <= 1.5 * 512 / len(ticks), (name, labels)  # evenly spread over the rows
        assert "0" in labels and "100" in labels and "-100" in labels, (name, labels)  # round distances
