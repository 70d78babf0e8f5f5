"""Remote reads against a fake hub on 127.0.0.1: byte counts, the cache, offline mode, auth and revisions."""

import json

import numpy as np
import pytest

import explorer
from explorer.errors import ProviderError

MB = 1_000_000


def gpt2_config(folder, positions, dim):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": positions, "n_embd": dim}))
    return folder


@pytest.fixture
def big_checkpoint(tmp_path, st_tools):
    """A 600 MB single-file GPT-2-like checkpoint (sparse on disk) whose table (2048 x 768 f32) sits in the middle."""
    folder = gpt2_config(tmp_path / "big", 2048, 768)
    table = np.random.default_rng(0).normal(size=(2048, 768)).astype(np.float32)
    st_tools.write(folder / "model.safetensors", {
        "h.0.mlp.c_fc.weight": ("F32", (8192, 8192)),  # 268 MB of zeros before the table
        "wpe.weight": table,
        "h.1.mlp.c_fc.weight": ("F32", (8192, 8192)),
        "wte.weight": ("F32", (50257, 768)),
    })
    assert (folder / "model.safetensors").stat().st_size > 600 * MB
    return folder, table


def test_large_checkpoint_transfers_about_the_tables_size(hub, big_checkpoint, capfd):
    folder, table = big_checkpoint
    hub.add("big-org/big-model", folder)
    emb = explorer.load("hf:big-org/big-model")
    np.testing.assert_array_equal(emb.matrix, table)
    assert emb.tensor == "wpe.weight" and emb.source == "big-org/big-model" and len(emb.revision) == 40
    # 6.3 MB of table out of a 600 MB file: the header (<100 kB) and config are all that is added.
    assert table.nbytes <= hub.bytes_sent < table.nbytes + 150_000
    assert len(hub.ranges("model.safetensors")) == 2  # one header read, one table read
    assert "downloading wpe.weight from big-org/big-model (6.3 MB)" in capfd.readouterr().err


def test_second_run_reads_the_cache_with_the_hub_stopped(hub, big_checkpoint):
    folder, table = big_checkpoint
    hub.add("big-org/big-model", folder)
    first = explorer.load("hf:big-org/big-model")
    hub.stop()
    before = len(hub.requests)
    second = explorer.load("hf:big-org/big-model")
    np.testing.assert_array_equal(second.matrix, table)
    assert second.revision == first.revision
    assert len(hub.requests) == before  # nothing reached a server


def test_a_checkpoint_in_the_shared_cache_is_read_from_there_by_seek(hub, big_checkpoint, tmp_path, monkeypatch):
    """A model transformers downloaded (huggingface_hub's layout under HF_HOME/hub: refs/main names the commit, the
    files under snapshots/COMMIT/) is read there: online, only config.json is asked for; offline, nothing; and
    posembed caches no slice of it."""
    folder, table = big_checkpoint
    commit = hub.add("big-org/big-model", folder)
    repo = tmp_path / "hf-home" / "hub" / "models--big-org--big-model"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("config.json", "model.safetensors"):
        (repo / "snapshots" / commit / name).symlink_to(folder / name)
    np.testing.assert_array_equal(explorer.load("hf:big-org/big-model").matrix, table)
    assert [r["file"] for r in hub.requests] == ["config.json"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.stop()
    np.testing.assert_array_equal(explorer.load("hf:big-org/big-model").matrix, table)
    assert len(hub.requests) == 1
    assert not list((tmp_path / "hf-home" / "posembed").rglob("*.bin"))


def test_offline_mode_uses_the_cache_and_sends_nothing(hub, big_checkpoint, monkeypatch):
    folder, table = big_checkpoint
    hub.add("big-org/big-model", folder)
    explorer.load("hf:big-org/big-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    np.testing.assert_array_equal(explorer.load("hf:big-org/big-model").matrix, table)
    assert len(hub.requests) == before  # the hub is up, but offline means offline


def test_offline_mode_without_a_cache_says_so(hub, big_checkpoint, monkeypatch):
    hub.add("big-org/big-model", big_checkpoint[0])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProviderError, match="not in the cache.*HF_HUB_OFFLINE"):
        explorer.load("hf:big-org/big-model")
    assert hub.requests == []


def test_sharded_bf16_checkpoint_reads_one_range_of_one_shard(hub, tmp_path, st_tools):
    folder = gpt2_config(tmp_path / "sharded", 1024, 512)
    table = st_tools.round_to_bf16(np.random.default_rng(1).normal(size=(1024, 512)).astype(np.float32))
    shards = {
        "model-00001-of-00003.safetensors": {"h.0.w": ("BF16", (12000, 12000))},
        "model-00002-of-00003.safetensors": {"h.1.w": ("BF16", (12000, 12000)), "transformer.wpe.weight": ("BF16", table)},
        "model-00003-of-00003.safetensors": {"h.2.w": ("BF16", (12000, 12000))},
    }
    weight_map = {}
    for shard, tensors in shards.items():
        st_tools.write(folder / shard, tensors)
        weight_map.update({name: shard for name in tensors})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    hub.add("org/sharded", folder)
    emb = explorer.load("hf:org/sharded")
    np.testing.assert_array_equal(emb.matrix, table)  # bf16 decoded exactly
    assert emb.dtype == "bfloat16" and emb.tensor == "transformer.wpe.weight"
    assert hub.ranges("model-00001-of-00003.safetensors") == hub.ranges("model-00003-of-00003.safetensors") == []
    assert len(hub.ranges("model-00002-of-00003.safetensors")) == 2
    assert hub.bytes_sent < table.size * 2 + 150_000  # of 864 MB in three shards


def test_token_is_sent_with_every_request(hub, big_checkpoint, monkeypatch):
    hub.add("big-org/big-model", big_checkpoint[0])
    monkeypatch.setenv("HF_TOKEN", "hf_posembed_test_token")
    explorer.load("hf:big-org/big-model")
    assert hub.requests and all(r["auth"] == "Bearer hf_posembed_test_token" for r in hub.requests)


def test_implicit_tokens_can_be_turned_off_and_the_user_agent_is_posembeds(hub, big_checkpoint, monkeypatch):
    hub.add("big-org/big-model", big_checkpoint[0])
    monkeypatch.setenv("HF_TOKEN", "hf_posembed_test_token")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    explorer.load("hf:big-org/big-model")
    assert hub.requests and all(r["auth"] is None for r in hub.requests)
    from explorer.loaders.hub import request_headers

    assert request_headers()["user-agent"].startswith(f"posembed-explorer/{explorer.__version__}; hf_hub/")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "2")  # as huggingface_hub reads it: not a yes, so off
    assert request_headers()["authorization"] == "Bearer hf_posembed_test_token"


def test_huggingface_hubs_header_builder_is_not_used(hub, big_checkpoint, monkeypatch):
    """huggingface_hub's build_hf_headers also fetches the hub's agent registry through its own client, with a name
    lookup no deadline bounds: posembed builds its headers itself, and every request goes through its exchange.
    Both doors are shut: the header builder, and the library's HTTP client itself (its factory refuses, so any call
    of huggingface_hub that would make a request fails, wherever it imported its session from)."""
    import huggingface_hub.utils
    from huggingface_hub.utils import _http, close_session

    def refuse(*args, **kwargs):
        raise AssertionError("a request outside posembed's exchange")

    monkeypatch.setattr(huggingface_hub.utils, "build_hf_headers", refuse)
    close_session()  # the next get_session() builds its client from the factory: the refusing one
    monkeypatch.setattr(_http, "_GLOBAL_CLIENT_FACTORY", refuse)  # a test's patch; restored, then closed below
    hub.add("big-org/big-model", big_checkpoint[0])
    try:
        explorer.load("hf:big-org/big-model")
    finally:
        close_session()
    assert hub.requests and all(r["path"].split("?")[0].split("/")[3:4] == ["resolve"] or "/api/" in r["path"]
                                for r in hub.requests)


def test_revision_branch_tag_and_commit_are_honoured(hub, tmp_path, st_tools):
    tables = {}
    for n, branch in enumerate(["v1", "main"]):
        folder = gpt2_config(tmp_path / branch, 16, 4)
        tables[branch] = np.full((16, 4), n + 1, dtype=np.float32)
        st_tools.write(folder / "model.safetensors", {"wpe.weight": tables[branch]})
        commit = hub.add("org/revised", folder, revision=branch, tags=("release-1",) if branch == "v1" else ())
    assert explorer.load("hf:org/revised").matrix[0, 0] == 2
    assert explorer.load("hf:org/revised,revision=v1").matrix[0, 0] == 1
    assert explorer.load("hf:org/revised,revision=release-1").matrix[0, 0] == 1
    by_commit = explorer.load(f"gpt2:org/revised,revision={commit}")
    assert by_commit.revision == commit and by_commit.matrix[0, 0] == 2
    with pytest.raises(ProviderError, match="no revision 'nope'"):
        explorer.load("hf:org/revised,revision=nope")


def test_pickled_bin_only_repository_is_downloaded_whole(hub, tmp_path):
    torch = pytest.importorskip("torch")
    folder = gpt2_config(tmp_path / "pickled", 12, 4)
    table = torch.randn(12, 4)
    torch.save({"wpe.weight": table, "wte.weight": torch.zeros(30, 4)}, folder / "pytorch_model.bin")
    hub.add("org/pickled", folder)
    emb = explorer.load("hf:org/pickled")
    np.testing.assert_array_equal(emb.matrix, table.numpy())
    assert hub.bytes_sent >= (folder / "pytorch_model.bin").stat().st_size
    assert [r for r in hub.requests if r["file"] == "pytorch_model.bin" and r["method"] == "GET"]


def test_corrupt_cached_slice_is_fetched_again(hub, tmp_path, st_tools):
    folder = gpt2_config(tmp_path / "m", 16, 4)
    table = np.arange(64, dtype=np.float32).reshape(16, 4)
    st_tools.write(folder / "model.safetensors", {"wpe.weight": table})
    hub.add("org/m", folder)
    explorer.load("hf:org/m")
    [slice_file] = (tmp_path / "hf-home" / "posembed").rglob("wpe.weight.bin")
    assert slice_file.read_bytes() == table.tobytes()  # the cache holds exactly the tensor's bytes
    slice_file.write_bytes(b"\0" * 10)  # truncated, e.g. by a full disk
    np.testing.assert_array_equal(explorer.load("hf:org/m").matrix, table)
    assert slice_file.stat().st_size == table.nbytes


def test_absurd_header_length_is_refused_before_downloading(hub, tmp_path):
    folder = gpt2_config(tmp_path / "evil", 16, 4)
    (folder / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}" * 10)
    hub.add("org/evil", folder)
    with pytest.raises(ProviderError, match="header length"):
        explorer.load("hf:org/evil")
    assert hub.bytes_sent < 200_000


def test_unknown_repository_is_one_clear_error(hub):
    with pytest.raises(ProviderError, match=r"org/missing: no such model on http://127\.0\.0\.1"):
        explorer.load("hf:org/missing")


def test_every_tiny_family_through_the_hub(hub, tiny_models):
    for model in tiny_models.values():
        hub.add(f"tiny/{model.family}", model.path)
    for model in tiny_models.values():
        emb = explorer.load(f"hf:tiny/{model.family},table={model.table}")
        np.testing.assert_array_equal(emb.matrix, model.expected, err_msg=model.family)


def test_real_gpt2_table_through_the_hub_is_bit_identical(hub, gpt2_layout, gpt2_wpe):
    hub.add("openai-community/gpt2", gpt2_layout)
    emb = explorer.load("gpt2")  # the flagship default: openai-community/gpt2
    assert emb.source == "openai-community/gpt2" and emb.shape == (1024, 768)
    assert emb.matrix.tobytes() == gpt2_wpe.astype(np.float32).tobytes()
    assert hub.bytes_sent < gpt2_wpe.nbytes + 150_000


def test_flagship_command_line_through_the_hub(hub, gpt2_layout, monkeypatch):
    from click.testing import CliRunner

    from explorer.cli import cli

    hub.add("openai-community/gpt2", gpt2_layout)
    result = CliRunner().invoke(cli, ["info", "gpt2", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["source"] == "openai-community/gpt2" and info["shape"] == [1024, 768]
    assert info["tensor"] == "wpe.weight" and info["kind"] == "learned" and len(info["revision"]) == 40


def test_server_ignoring_ranges_is_refused_not_downloaded_whole(hub, big_checkpoint):
    hub.add("big-org/big-model", big_checkpoint[0])
    hub.ignore_ranges = True
    with pytest.raises(ProviderError, match="ignored the byte-range request.*refusing to download the whole file"):
        explorer.load("hf:big-org/big-model")


def test_offline_with_only_the_config_cached_names_the_weights_files_it_looked_for(hub, tmp_path, st_tools,
                                                                                   monkeypatch):
    from explorer.loaders.hub import RemoteCheckpoint

    folder = gpt2_config(tmp_path / "m", 16, 4)
    st_tools.write(folder / "model.safetensors", {"wpe.weight": np.ones((16, 4), np.float32)})
    hub.add("org/m", folder)
    RemoteCheckpoint("org/m")  # fetches and caches config.json only
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProviderError, match=r"org/m: a weights file \(model\.safetensors, model\.safetensors\.index"
                                            r"\.json or pytorch_model\.bin\) is not in the cache \(.*HF_HUB_OFFLINE"):
        explorer.load("hf:org/m")
