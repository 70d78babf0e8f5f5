"""explorer.open_model: a model's tensors read one at a time, locally or from the hub by range, with the limits a
table read has."""

from __future__ import annotations

import numpy as np
import pytest

import explorer
from explorer.errors import ProviderError, SizeLimitError
from model_kit import padded_on_the_hub  # tests/model_kit.py

T = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    config = T.GPT2Config(n_embd=16, n_layer=2, n_head=4, n_positions=32, vocab_size=40, bos_token_id=0,
                          eos_token_id=0)
    torch.manual_seed(0)
    model = T.GPT2Model(config)
    folder = tmp_path_factory.mktemp("tensors") / "gpt2"
    model.save_pretrained(folder)
    return model, folder


def test_a_local_folder_reads_named_tensors_and_one_layers_names(tiny):
    model, folder = tiny
    opened = explorer.open_model(str(folder))
    assert opened.config["model_type"] == "gpt2" and opened.folder == folder
    assert sorted(opened.names(layer=1)) == sorted(n for n in model.state_dict() if n.startswith("h.1."))
    assert "h.10.attn.c_attn.weight" not in opened.names(layer=1)
    array, dtype = opened.read("h.1.attn.c_attn.weight")
    np.testing.assert_array_equal(array, model.h[1].attn.c_attn.weight.detach().numpy())
    assert dtype == "float32" and array.dtype == np.float32
    bias = opened.tensor("attn.c_attn.bias", shape=(48,))  # by suffix: the shortest name (layer 0's)
    np.testing.assert_array_equal(bias, model.h[0].attn.c_attn.bias.detach().numpy())
    assert opened.read_names == ["h.1.attn.c_attn.weight", "h.0.attn.c_attn.bias"]
    assert opened.tensor("q_proj.weight", required=False) is None


def test_a_missing_tensor_a_wrong_shape_and_a_missing_folder_are_one_line(tiny, tmp_path):
    _, folder = tiny
    opened = explorer.open_model(str(folder))
    with pytest.raises(ProviderError, match="no tensor ending in 'q_proj.weight'"):
        opened.tensor("q_proj.weight")
    with pytest.raises(ProviderError, match=r"'h.0.ln_1.weight' has shape \[16\], expected \[8\]"):
        opened.tensor("h.0.ln_1.weight", shape=(8,))
    with pytest.raises(ProviderError, match="no such model folder"):
        explorer.open_model(str(tmp_path / "nothing"))
    with pytest.raises(ProviderError, match="no tensor"):
        opened.read("h.9.ln_1.weight")


def test_the_hub_reads_only_the_asked_tensors_bytes_by_range(hub, st_tools, tmp_path, monkeypatch):
    from explorer.loaders.hub import HEADER_FIRST_READ

    config = T.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=64, vocab_size=50, bos_token_id=0,
                          eos_token_id=0)
    tensors, folder = padded_on_the_hub(hub, st_tools, tmp_path, T.GPT2Model(config), "org/tiny")
    opened = explorer.open_model("org/tiny")
    wanted = ["h.1.attn.c_attn.weight", "h.1.ln_1.weight"]
    for name in wanted:
        np.testing.assert_array_equal(opened.read(name)[0], tensors[name])
    needed = sum(tensors[name].nbytes for name in wanted)
    ranges = [r for r in hub.requests if r["file"] == "model.safetensors" and r["method"] == "GET"]
    assert len(ranges) == 1 + len(wanted)  # the header, then one range per tensor
    overhead = HEADER_FIRST_READ + (folder / "config.json").stat().st_size
    assert needed < hub.bytes_sent <= 1.1 * needed + overhead
    assert opened.folder is None and len(opened.names()) == len(tensors) + 2
    monkeypatch.setenv("POSEMBED_MAX_DOWNLOAD_MB", "1")
    with pytest.raises((ProviderError, SizeLimitError), match="a.filler"):  # 64 MB: refused before any byte
        explorer.open_model("org/tiny").read("a.filler")


def test_a_rotary_layer_on_the_hub_reads_its_tensors_by_range_within_a_tenth(hub, st_tools, tmp_path):
    """posembed-rotary's attention=L reads through open_model: the layer's norm and projections, one range each."""
    rotary = pytest.importorskip("posembed_rotary_attention")
    from explorer.loaders.hub import HEADER_FIRST_READ

    config = T.LlamaConfig(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                           intermediate_size=256, vocab_size=64, max_position_embeddings=64)
    tensors, folder = padded_on_the_hub(hub, st_tools, tmp_path, T.LlamaModel(config), "org/tiny-llama")
    inputs = rotary.read_layer("org/tiny-llama", None, 1, None, 16)
    assert inputs.tensors == ("layers.1.input_layernorm.weight", "layers.1.self_attn.q_proj.weight",
                              "layers.1.self_attn.k_proj.weight")
    needed = sum(tensors[name].nbytes for name in inputs.tensors)
    ranges = [r for r in hub.requests if r["file"] == "model.safetensors" and r["method"] == "GET"]
    assert len(ranges) == 1 + len(inputs.tensors)
    overhead = HEADER_FIRST_READ + (folder / "config.json").stat().st_size
    assert needed < hub.bytes_sent <= 1.1 * needed + overhead
