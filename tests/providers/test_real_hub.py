"""posembed against a fake hub that answers as huggingface.co does (``RealHub`` in conftest.py): 307s to
``/api/resolve-cache/``, 302s to a signed Xet-bridge URL on another host that answers ranges with 206,
``X-Error-Code``/``X-Error-Message``, ``RateLimit`` headers, and a mirror that 308s to the hub.

These are the needs in docs/architecture.md's table ("the hub client: what huggingface_hub offers"), each
checked here against the answers the library itself is written for."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from cli_run import assert_one_error_line, run_cli
from modules import by_path

import explorer

_helpers = by_path(Path(__file__).with_name("conftest.py"), "_posembed_fake_hub")
Mirror, RealHub, point_environment_at = _helpers.Mirror, _helpers.RealHub, _helpers.point_environment_at

TOKEN = "hf_posembed_real_hub_token"


@pytest.fixture
def real(monkeypatch, tmp_path):
    """A RealHub serving org/m (a GPT-2-like 16 x 4 table), the environment pointed at it, the user's token set."""
    fake = RealHub().start()
    point_environment_at(monkeypatch, fake, tmp_path / "hf-home")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("POSEMBED_HUB_DEADLINE", "2")
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "0")
    yield _helpers.publish_small_gpt2(fake, tmp_path / "m", seed=5)
    fake.stop()


def test_the_table_arrives_bit_for_bit_and_the_token_stays_off_the_cdn(real, gpt2_layout, gpt2_wpe):
    real.add("openai-community/gpt2", gpt2_layout)
    emb = explorer.load("gpt2")
    assert emb.matrix.tobytes() == gpt2_wpe.astype(np.float32).tobytes()
    hub_paths = [r["path"] for r in real.requests]
    assert any(p.startswith("/api/resolve-cache/models/openai-community/gpt2/") for p in hub_paths)  # config: 307
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in real.requests)
    cdn = real.cdn.requests
    assert len(cdn) == 2 and all(r["path"].startswith("/xet-bridge-us/") for r in cdn)  # the header, the table
    assert all(r["auth"] is None for r in cdn)  # the signed URL is on another host: the token is dropped
    assert all(r["range"] for r in cdn) and real.cdn.bytes_sent < gpt2_wpe.nbytes + 150_000


def test_a_mirror_that_redirects_to_the_hub_keeps_the_token_for_the_hubs_own_hosts(real, monkeypatch):
    """hf-mirror.com outside China answers 308 to huggingface.co: the token must reach the hub (a gated or private
    model needs it), as huggingface_hub keeps it for its known hub hosts; here the fake hub plays huggingface.co."""
    from explorer.loaders import hub

    mirror = Mirror(real.url).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setattr(hub, "HUB_ORIGINS", (real.url,))
        np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, real.table)
        assert mirror.requests and all(r["auth"] == f"Bearer {TOKEN}" for r in mirror.requests)
        assert real.requests and all(r["auth"] == f"Bearer {TOKEN}" for r in real.requests)
        assert real.cdn.requests and all(r["auth"] is None for r in real.cdn.requests)
    finally:
        mirror.stop()


def test_a_redirect_off_a_mirror_to_an_unknown_host_drops_the_token(real, monkeypatch, tmp_path):
    from explorer.loaders import hub

    mirror = Mirror(real.url).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "other-home"))
        monkeypatch.setattr(hub, "HUB_ORIGINS", ())
        np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, real.table)
        assert all(r["auth"] == f"Bearer {TOKEN}" for r in mirror.requests)
        assert real.requests and all(r["auth"] is None for r in real.requests)
    finally:
        mirror.stop()


def test_host_and_host_443_are_one_origin_and_the_public_hub_is_trusted():
    from explorer.loaders.exchange import same_origin
    from explorer.loaders.hub_settings import HUB_ORIGINS

    assert same_origin("https://huggingface.co:443/a", "https://huggingface.co/b")
    assert same_origin("http://HUB.test:80/a", "http://hub.test/b")
    assert not same_origin("https://hub.test:80/a", "https://hub.test/b")
    assert {"https://huggingface.co", "https://hf.co"} <= set(HUB_ORIGINS)


@pytest.mark.parametrize("busy", ["rate_limited", "down"])
def test_a_cached_model_is_read_from_the_cache_while_the_hub_is_busy(real, capsys, monkeypatch, busy):
    """huggingface_hub returns the cached file when the hub answers 429 or 5xx; so does posembed, after one
    request (no quick retries spending the quota), and it says which commit it used."""
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, real.table)
    capsys.readouterr()
    real.requests.clear()
    monkeypatch.setenv("POSEMBED_HUB_RETRY_WAIT", "0.2")
    setattr(real, busy, 99)
    started = time.monotonic()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, real.table)
    assert time.monotonic() - started < 1.5
    assert len(real.requests) == 1
    assert f"using the cached commit {real.commit[:12]} for 'main'" in capsys.readouterr().err


def test_a_rate_limit_that_fits_the_deadline_is_waited_for_once(real, capsys):
    real.rate_limited, real.rate_reset = 1, 1
    started = time.monotonic()
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, real.table)
    assert 1.0 <= time.monotonic() - started < 4
    assert [r["file"] for r in real.requests[:2]] == [None, "config.json"]  # the 429, then the one retry
    assert "answered HTTP 429 for config.json; trying again in 1 s" in capsys.readouterr().err


def test_a_rate_limit_longer_than_the_deadline_says_when_to_try_again_without_retrying(real):
    real.rate_limited, real.rate_reset = 99, 120
    started = time.monotonic()
    line = assert_one_error_line(run_cli(["info", "hf:org/m"]), "answered HTTP 429 for config.json and asks to "
                                 "wait 120 s; posembed waits at most 2 s (POSEMBED_HUB_DEADLINE), so try again after ")
    assert line.endswith(" UTC") and time.monotonic() - started < 2
    assert len(real.requests) == 1


def test_an_invalid_token_does_not_read_like_a_missing_one(real):
    real.valid_tokens = {"hf_another"}
    line = assert_one_error_line(run_cli(["info", "hf:org/m"]), "refused access to config.json (HTTP 401); the "
                                 "token posembed sent (HF_TOKEN or the saved login) may not read it, or is not valid")
    assert line.endswith("(the hub said: Invalid credentials in Authorization header)")


def test_a_missing_model_with_a_token_sent_says_the_token_may_not_read_it(real):
    line = assert_one_error_line(run_cli(["info", "hf:org/nothing"]), "org/nothing: no such model on http://127")
    assert "or the token sent may not read it" in line and line.endswith("(the hub said: RepoNotFound)")
