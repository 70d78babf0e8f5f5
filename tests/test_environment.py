"""posembed's environment variables: yes/no flags and bounded numbers, each bad value one clear error."""

import pytest

from explorer.errors import PosembedError, SettingError
from explorer.runtime import environment

NAME = "POSEMBED_TEST_SETTING"


@pytest.mark.parametrize("raw", ["1", "true", "YES", " On "])
def test_flag_reads_yes_words(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert environment.flag(NAME) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "OFF", "", "  "])
def test_flag_reads_no_words_and_empty(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert environment.flag(NAME) is False


def test_unset_flag_is_no(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert environment.flag(NAME) is False


def test_flag_that_is_neither_yes_nor_no_is_one_error_naming_it(monkeypatch):
    monkeypatch.setenv(NAME, "maybe")
    with pytest.raises(SettingError, match=f"{NAME}='maybe' is neither yes .* nor no"):
        environment.flag(NAME)


def test_number_inside_its_range_is_read(monkeypatch):
    monkeypatch.setenv(NAME, " 2.5 ")
    assert environment.number(NAME, 1.0, 0, 10) == 2.5


def test_unset_or_empty_number_is_the_default(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert environment.number(NAME, 7.0, 0, 10) == 7.0
    monkeypatch.setenv(NAME, "")
    assert environment.number(NAME, 7.0, 0, 10) == 7.0


def test_range_bounds_are_inclusive(monkeypatch):
    for raw, expected in (("0", 0.0), ("10", 10.0)):
        monkeypatch.setenv(NAME, raw)
        assert environment.number(NAME, 1.0, 0, 10) == expected


@pytest.mark.parametrize("raw", ["1e300", "-1", "10.001", "1e12"])
def test_number_out_of_range_is_one_error_naming_variable_and_range(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(SettingError) as caught:
        environment.number(NAME, 1.0, 0, 10)
    assert str(caught.value) == f"{NAME}={raw!r}: expected a number from 0 to 10"


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "Infinity", "1e999"])
def test_non_finite_number_is_refused(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(SettingError, match="expected a number from 0 to 10"):
        environment.number(NAME, 1.0, 0, 10)


@pytest.mark.parametrize("raw", ["soon", "1,5", "0x10", "3 s"])
def test_non_numeric_number_is_refused(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(SettingError, match=f"{NAME}=.*expected a number from 0 to 10"):
        environment.number(NAME, 1.0, 0, 10)


def test_integer_refuses_a_fraction_and_reads_a_whole_number(monkeypatch):
    monkeypatch.setenv(NAME, "2.5")
    with pytest.raises(SettingError, match="expected a whole number from 0 to 10"):
        environment.integer(NAME, 3, 0, 10)
    monkeypatch.setenv(NAME, "4")
    assert environment.integer(NAME, 3, 0, 10) == 4


def test_setting_error_is_a_posembed_error_with_a_usage_exit_code():
    assert issubclass(SettingError, PosembedError) and SettingError.exit_code == 2


@pytest.mark.parametrize("name, raw", [("POSEMBED_HUB_RETRIES", "1e12"), ("POSEMBED_HUB_RETRY_WAIT", "1e300"),
                                       ("POSEMBED_HUB_TIMEOUT", "inf"), ("POSEMBED_HUB_RETRIES", "many")])
def test_hub_settings_out_of_range_fail_at_once(monkeypatch, name, raw):
    from explorer.loaders import hub

    monkeypatch.setenv(name, raw)
    read = {"POSEMBED_HUB_RETRIES": hub.retries, "POSEMBED_HUB_RETRY_WAIT": hub.retry_wait,
            "POSEMBED_HUB_TIMEOUT": hub.timeout}[name]
    with pytest.raises(SettingError, match=name):
        read()


def test_a_bad_setting_is_one_line_from_the_command_line(monkeypatch):
    from click.testing import CliRunner

    from explorer.cli import cli

    monkeypatch.setenv("POSEMBED_TRACE_PLUGINS", "sometimes")
    result = CliRunner().invoke(cli, ["providers"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("posembed: error: POSEMBED_TRACE_PLUGINS='sometimes' is neither yes")


GLIBC = (getattr(__import__("os"), "confstr", lambda name: "")("CS_GNU_LIBC_VERSION") or "").startswith("glibc")


def test_giving_back_memory_is_the_command_processes_alone(monkeypatch):
    """The Python API (a notebook's process, this test's) keeps its C library's memory policy: nothing is called."""
    import ctypes

    def refuse(*args, **kwargs):
        raise AssertionError("give_back_memory reached the C library outside the posembed process")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert environment.give_back_memory() is False


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
@pytest.mark.parametrize("setting", [{"MALLOC_MMAP_THRESHOLD_": "65536"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=65536"},
                                     {}])
def test_a_mapping_threshold_the_user_set_is_left_alone(monkeypatch, setting):
    import ctypes

    calls = []

    class Libc:
        def mallopt(self, *args):
            calls.append(("mallopt", *args))

        def malloc_trim(self, *args):
            calls.append(("malloc_trim", *args))

    for name in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ctypes, "CDLL", lambda *args, **kwargs: Libc())
    monkeypatch.setattr(environment, "_command", True)  # as inside command_process, without its process-wide settings
    assert environment.give_back_memory() is True
    expected = [] if setting else [("mallopt", environment.M_MMAP_THRESHOLD, environment.MMAP_THRESHOLD)]
    assert calls == expected + [("malloc_trim", 0)]


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
def test_freed_arrays_go_back_to_the_system_once_memory_was_given_back():
    """In a fresh process: 4 MiB arrays freed after a 16 MiB one stay in glibc's heap by default (its mapping threshold
    rose to 16 MiB), below a 5 MiB array allocated after them; after ``give_back_memory`` in ``command_process`` every
    one was mapped on its own and goes back when freed."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from explorer.runtime import environment\n"
        "def rss():\n"
        "    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024\n"
        "with environment.command_process():\n"
        "    done = environment.give_back_memory() if sys.argv[1] == 'give' else None\n"
        "    big = np.ones(1 << 21); del big\n"
        "    before = rss()\n"
        "    arrays = [np.ones(1 << 19) for _ in range(16)]\n"
        "    top = np.ones(5 << 17)\n"
        "    del arrays\n"
        "    print(done, rss() - before)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    kept = {}
    for how in ("give", "keep"):
        done = subprocess.run([sys.executable, "-c", script, how], env=env, capture_output=True, text=True, check=True)
        flag, mib = done.stdout.split()
        kept[how] = (flag, int(mib))
    assert kept["give"][0] == "True" and kept["keep"][0] == "None"
    assert kept["keep"][1] >= 60 and kept["give"][1] <= 12, kept  # 64 MiB freed: kept by default, given back after


def test_a_report_lets_its_results_go_and_gives_their_memory_back_before_rendering(run, tmp_path, monkeypatch):
    """``posembed report -o FILE``: once the page is built, the tables' analysis results are gone (the document
    holds its own encoded copy), and memory is given back after the analyses and again before the HTML is made."""
    import gc
    import weakref

    import explorer.api
    from explorer.reporting import page

    analysed, asked, alive = [], [], []
    analyze_requests, render = explorer.api.analyze_requests, page.render

    def analyse_and_watch(*args, **kwargs):
        found = analyze_requests(*args, **kwargs)
        analysed.extend(weakref.ref(results["matrix"].values) for results in found[2])
        return found

    def render_and_look(*args, **kwargs):
        gc.collect()
        alive.append([ref() is not None for ref in analysed])
        return render(*args, **kwargs)

    monkeypatch.setattr(explorer.api, "analyze_requests", analyse_and_watch)
    monkeypatch.setattr(page, "render", render_and_look)
    monkeypatch.setattr(environment, "give_back_memory", lambda: asked.append(len(alive)))
    out = tmp_path / "two.html"
    result = run("report", "sinusoidal,positions=64,dim=16", "sinusoidal,positions=48,dim=16", "-o", str(out))
    assert result.exit_code == 0 and out.stat().st_size > 0
    assert alive == [[False, False]] and asked == [0, 0]
