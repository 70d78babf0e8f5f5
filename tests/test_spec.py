import pytest

from explorer.errors import SpecError
from explorer.loading.spec import Spec, parse_spec


@pytest.mark.parametrize("text, expected", [
    ("sinusoidal", Spec("sinusoidal")),
    ("sinusoidal,positions=2048,dim=512", Spec("sinusoidal", None, {"positions": "2048", "dim": "512"})),
    ("hf:facebook/opt-350m", Spec("hf", "facebook/opt-350m")),
    ("hf:facebook/opt-350m,revision=main", Spec("hf", "facebook/opt-350m", {"revision": "main"})),
    ("file:C:\\data\\a,b.npy,key=wpe", Spec("file", "C:\\data\\a,b.npy", {"key": "wpe"})),
    ("file:/tmp/x:y.npz", Spec("file", "/tmp/x:y.npz")),
    (" gpt2-medium ", Spec("gpt2-medium")),
    ("x,a= 1 ,b=", Spec("x", None, {"a": "1", "b": ""})),
    ("hf:", Spec("hf")),  # as the docs name a provider: no target
    ("hf:,revision=v1", Spec("hf", None, {"revision": "v1"})),
])
def test_parses_name_target_and_options(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    (":x", "start with a provider name"),
    ("sin;x", "expected ':' or ','"),
    ("sin,positions", "is not key=value"),
    ("sin,a=1,a=2", "given twice"),
])
def test_malformed_specs_say_why(text, fragment):
    with pytest.raises(SpecError, match=fragment):
        parse_spec(text)


def test_str_round_trips():
    spec = parse_spec("hf:org/model,revision=v1")
    assert parse_spec(str(spec)) == spec


def test_a_provider_named_with_its_colon_is_that_provider_with_no_target(run):
    assert run("info", "sinusoidal:,positions=8,dim=4").exit_code == 0
    result = run("info", "hf:")
    assert result.exit_code == 1
    assert result.stderr == "posembed: error: hf needs a model: hf:ORG/NAME (a hub id) or hf:PATH (a local folder)\n"
