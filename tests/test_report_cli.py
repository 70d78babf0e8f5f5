"""`posembed report`: the options users expect (-o -, --title, --resources, --open) and atomic writes."""



TINY = "sinusoidal,positions=16,dim=8"


def test_dash_writes_the_page_to_stdout_and_nothing_else(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("report", TINY, "-o", "-", "--title", "to stdout")
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>") and "<title>to stdout</title>" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no report.html beside it


def test_title_is_escaped_on_the_page(run, tmp_path):
    out = tmp_path / "r.html"
    assert run("report", TINY, "-o", str(out), "--title", "<b>bold</b> & \"q\"").exit_code == 0
    text = out.read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;bold&lt;/b&gt; &amp; &#34;q&#34;</title>" in text and "<b>bold</b>" not in text


def test_cdn_resources_make_a_small_page(run, tmp_path):
    inline, cdn = tmp_path / "inline.html", tmp_path / "cdn.html"
    assert run("report", TINY, "-o", str(inline)).exit_code == 0
    assert run("report", TINY, "-o", str(cdn), "--resources", "cdn").exit_code == 0
    assert cdn.stat().st_size < inline.stat().st_size / 5
    assert "https://cdn.bokeh.org" in cdn.read_text(encoding="utf-8")


def test_open_hands_the_written_file_to_the_browser(run, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    out = tmp_path / "r.html"
    assert run("report", TINY, "-o", str(out), "--open").exit_code == 0
    assert opened == [out.resolve().as_uri()]


def test_a_failed_report_leaves_the_old_file_untouched(run, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("previous report")
    result = run("report", "sinusoidal,dim=-3", "-o", str(out))
    assert result.exit_code != 0
    assert out.read_text() == "previous report" and [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_comparison_of_two_specs_from_the_command_line(run, tmp_path):
    out = tmp_path / "cmp.html"
    result = run("report", TINY, TINY + ",layout=split", "-o", str(out))
    assert result.exit_code == 0
    text = out.read_text(encoding="utf-8")
    assert "pairwise comparison" in text and text.count('"provenance"') == 2


def test_open_with_stdout_says_it_is_ignored(run, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    result = run("report", TINY, "-o", "-", "--open")
    assert result.exit_code == 0 and opened == []
    assert "--open needs a file" in result.stderr and result.stdout.startswith("<!DOCTYPE html>")


def test_open_on_a_machine_with_no_browser_says_so(run, tmp_path, monkeypatch):
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: False)  # what it answers when it finds no browser
    out = tmp_path / "r.html"
    result = run("report", TINY, "-o", str(out), "--open")
    assert result.exit_code == 0 and out.exists()
    assert f"posembed: warning: --open found no browser on this machine; open {out} yourself" in result.stderr


def test_info_of_a_bare_path_hints_at_the_file_provider(run, tmp_path):
    table = tmp_path / "table.npy"
    table.write_bytes(b"")
    for given in (str(table), "table.npy", "./t.safetensors"):
        result = run("info", given)
        assert result.exit_code != 0 and f"for a file, write 'file:{given}'" in result.stderr, result.stderr
    assert "for a file" not in run("info", "sinusoidl").stderr  # a misspelt provider is not taken for a path
