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
