"""attention=L: a layer's attention from positions alone equals transformers' own, family by family, at display
resolution as block means; the hub reads only that layer's tensors; bad requests are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explorer
from explorer.analysis.attention import layer_attention
from explorer.errors import ProviderError, SpecError
from model_kit import EAGER, randomised  # tests/model_kit.py

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")

def saved(model, folder):
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    config = T.GPT2Config(n_embd=16, n_layer=2, n_head=4, n_positions=40, vocab_size=50, bos_token_id=0,
                          eos_token_id=0, **EAGER)
    folder = tmp_path_factory.mktemp("attention") / "gpt2"
    return saved(randomised(T.GPT2Model(config)), folder), folder


def text_attentions(model, positions, layer, embeds=None):
    width = model.get_input_embeddings().weight.shape[1]
    inputs = torch.zeros(1, positions, width) if embeds is None else embeds
    with torch.no_grad():
        return model(inputs_embeds=inputs, output_attentions=True).attentions[layer][0].numpy()


@pytest.mark.parametrize("layer", [0, 1])
def test_gpt2_probabilities_equal_transformers_eager_attention_on_zero_tokens(gpt2, layer):
    model, folder = gpt2
    emb = explorer.load(f"gpt2:{folder},attention={layer}")
    result = layer_attention(emb.matrix, emb.attention)
    expected = text_attentions(model, 40, layer)
    assert result.probabilities.shape == expected.shape == (4, 40, 40)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5, rtol=0)
    assert np.all(result.probabilities[:, np.triu_indices(40, 1)[0], np.triu_indices(40, 1)[1]] == 0)  # causal
    assert emb.attention.tensors == (f"h.{layer}.attn.c_attn.weight", f"h.{layer}.attn.c_attn.bias",
                                     f"h.{layer}.ln_1.weight", f"h.{layer}.ln_1.bias")


def test_mean_tokens_equal_transformers_with_the_mean_token_embedding_everywhere(gpt2):
    model, folder = gpt2
    emb = explorer.load(f"hf:{folder},attention=0,tokens=mean")
    mean = model.get_input_embeddings().weight.detach().mean(dim=0)
    expected = text_attentions(model, 40, 0, mean.expand(1, 40, 16).clone())
    np.testing.assert_allclose(layer_attention(emb.matrix, emb.attention).probabilities, expected, atol=1e-5, rtol=0)
    zero = layer_attention(emb.matrix, explorer.load(f"hf:{folder},attention=0").attention).probabilities
    assert np.abs(zero - expected).max() > 1e-3  # the option changes the answer
    assert "wte.weight" in emb.attention.tensors and emb.params["tokens"] == "mean"


def test_per_head_numbers_follow_their_formulas_on_transformers_probabilities(gpt2):
    model, folder = gpt2
    emb = explorer.load(f"hf:{folder},attention=0")
    result = layer_attention(emb.matrix, emb.attention)
    a = text_attentions(model, 40, 0).astype(np.float64)
    i, j = np.indices((40, 40))
    np.testing.assert_allclose(result.mean_distance, (a * np.abs(i - j)).sum(axis=2).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(result.previous, a[:, np.arange(1, 40), np.arange(39)].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(result.diagonal, a[:, np.arange(40), np.arange(40)].mean(axis=1), rtol=1e-5)
    entropy = -(np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0)).sum(axis=2).mean(axis=1)
    np.testing.assert_allclose(result.entropy, entropy, rtol=1e-5)
    scalars = explorer.analyze(emb).scalars()
    assert scalars["attention_previous_h3"] == pytest.approx(float(result.previous[3]))
    assert scalars["attention_layer"] == 0.0


@pytest.mark.parametrize("resolution", [7, 16])
def test_above_the_resolution_the_maps_are_block_means_and_the_numbers_stay_exact(gpt2, resolution):
    _, folder = gpt2
    emb = explorer.load(f"hf:{folder},attention=0")
    exact = layer_attention(emb.matrix, emb.attention, resolution=1024)
    small = layer_attention(emb.matrix, emb.attention, resolution=resolution)
    bounds = small.bounds
    assert len(bounds) == resolution + 1 and bounds[0] == 0 and bounds[-1] == 40
    for name in ("probabilities", "scores"):
        full = getattr(exact, name)
        means = np.array([[[full[h, bounds[a]:bounds[a + 1], bounds[b]:bounds[b + 1]].mean()
                            for b in range(resolution)] for a in range(resolution)] for h in range(4)])
        np.testing.assert_allclose(getattr(small, name), means, atol=1e-6)
    for name in ("mean_distance", "previous", "diagonal", "entropy"):
        np.testing.assert_allclose(getattr(small, name), getattr(exact, name), rtol=1e-6)


def test_bert_includes_token_type_zero_as_bertmodel_does_with_zero_inputs_embeds(tmp_path):
    config = T.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                          vocab_size=40, max_position_embeddings=30, **EAGER)
    model = saved(randomised(T.BertModel(config)), tmp_path / "bert")
    for layer in (0, 1):
        emb = explorer.load(f"hf:{tmp_path / 'bert'},attention={layer}")
        result = layer_attention(emb.matrix, emb.attention)
        np.testing.assert_allclose(result.probabilities, text_attentions(model, 30, layer), atol=1e-5, rtol=0)
        assert not result.causal
    assert "embeddings.token_type_embeddings.weight" in explorer.load(
        f"hf:{tmp_path / 'bert'},attention=0").attention.tensors


@pytest.mark.parametrize("family", ["opt", "opt-post-ln", "roberta", "distilbert"])
def test_other_text_families_equal_transformers(tmp_path, family):
    common = dict(num_hidden_layers=2, num_attention_heads=4, vocab_size=40, max_position_embeddings=30, **EAGER)
    model = {
        "opt": lambda: T.OPTModel(T.OPTConfig(hidden_size=16, ffn_dim=32, word_embed_proj_dim=16, **common)),
        "opt-post-ln": lambda: T.OPTModel(T.OPTConfig(hidden_size=16, ffn_dim=32, word_embed_proj_dim=8,
                                                      do_layer_norm_before=False, **common)),
        "roberta": lambda: T.RobertaModel(T.RobertaConfig(hidden_size=16, intermediate_size=32, pad_token_id=1,
                                                          **common)),
        "distilbert": lambda: T.DistilBertModel(T.DistilBertConfig(dim=16, n_layers=2, n_heads=4, hidden_dim=32,
                                                                   vocab_size=40, max_position_embeddings=30, **EAGER)),
    }[family]()
    saved(randomised(model), tmp_path / family)
    emb = explorer.load(f"hf:{tmp_path / family},attention=0")
    expected = text_attentions(model, emb.positions, 0)
    np.testing.assert_allclose(layer_attention(emb.matrix, emb.attention).probabilities, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["vit", "deit", "dinov2"])
def test_grid_families_equal_their_own_layer_on_the_patch_positions(tmp_path, family):
    common = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, image_size=12, patch_size=2, **EAGER)
    model = {"vit": lambda: T.ViTModel(T.ViTConfig(intermediate_size=32, **common)),
             "deit": lambda: T.DeiTModel(T.DeiTConfig(intermediate_size=32, **common)),
             "dinov2": lambda: T.Dinov2Model(T.Dinov2Config(**common))}[family]()
    saved(randomised(model), tmp_path / family)
    from explorer.loaders.attention_stack import _layer_list

    layers = _layer_list(model, 0, family)
    norm = "norm1" if family == "dinov2" else "layernorm_before"
    with torch.no_grad():
        table = model.embeddings.position_embeddings[0]
        x = table[table.shape[0] - 36:][None]  # the patch rows: no class (or distillation) token
        for layer in (0, 1):
            emb = explorer.load(f"hf:{tmp_path / family},attention={layer}")
            assert emb.grid == (6, 6)
            result = layer_attention(emb.matrix, emb.attention, grid=emb.grid)
            expected = layers[layer].attention(getattr(layers[layer], norm)(x))[1][0].numpy()
            np.testing.assert_allclose(result.probabilities, expected, atol=1e-5, rtol=0)
            rows, cols = np.divmod(np.arange(36), 6)
            apart = np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])
            np.testing.assert_allclose(result.patch_distance, (expected * apart).sum(axis=2).mean(axis=1), rtol=1e-5)
            k = list(result.patch_index).index(3 * 6 + 3)
            np.testing.assert_allclose(result.patch_maps[:, k], expected[:, 21].reshape(4, 6, 6), atol=1e-5)
            x = layers[layer](x)
            x = x[0] if isinstance(x, tuple) else x


def test_bad_requests_are_one_clear_error(gpt2, tmp_path, run):
    _, folder = gpt2
    with pytest.raises(SpecError, match="the model has 2 layers"):
        explorer.load(f"hf:{folder},attention=2")
    with pytest.raises(SpecError, match="give attention=L too"):
        explorer.load(f"hf:{folder},tokens=mean")
    with pytest.raises(SpecError, match="tokens"):
        explorer.load(f"hf:{folder},attention=0,tokens=average")
    whisper = T.WhisperConfig(d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                              decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, vocab_size=40,
                              max_source_positions=16, max_target_positions=24, num_mel_bins=8,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                              suppress_tokens=None, begin_suppress_tokens=None)
    T.WhisperModel(whisper).save_pretrained(tmp_path / "whisper")
    with pytest.raises(ProviderError, match="not available for whisper"):
        explorer.load(f"hf:{tmp_path / 'whisper'},attention=0")
    result = run("analyze", f"hf:{folder},attention=7")
    assert result.exit_code != 0 and result.output.count("\n") == 1 and "posembed: error:" in result.output


def test_analyze_prints_the_per_head_numbers_and_saves_the_maps(gpt2, run, tmp_path):
    _, folder = gpt2
    result = run("analyze", f"hf:{folder},attention=1", "--json")
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    flat = json.dumps(numbers)
    for key in ("attention_distance_h0", "attention_previous_h3", "attention_diagonal_h2", "attention_entropy_h1"):
        assert key in flat
    npz = tmp_path / "out.npz"
    assert run("analyze", f"hf:{folder},attention=0", "--npz", str(npz)).exit_code == 0
    with np.load(npz) as saved_arrays:
        keys = [k for k in saved_arrays.files if ".attention." in k or k.startswith("attention.")]
        names = {k.rsplit(".", 1)[-1] for k in keys}
        assert {"probabilities", "scores", "bounds", "mean_distance", "previous", "diagonal", "entropy"} <= names
        probabilities = saved_arrays[next(k for k in keys if k.endswith(".probabilities"))]
        assert probabilities.shape == (4, 40, 40) and probabilities.dtype == np.float32


def test_the_hub_reads_the_layers_tensors_by_range_and_refuses_deeper_layers(hub, st_tools, tmp_path):
    from safetensors.numpy import load_file

    from explorer.loaders.hub import HEADER_FIRST_READ

    config = T.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=512, vocab_size=50, bos_token_id=0,
                          eos_token_id=0)
    randomised(T.GPT2Model(config)).save_pretrained(tmp_path / "small")
    tensors = load_file(tmp_path / "small" / "model.safetensors")
    folder = tmp_path / "padded"
    folder.mkdir()
    (folder / "config.json").write_bytes((tmp_path / "small" / "config.json").read_bytes())
    # 64 MB of zeros (a hole on disk) before and between the tensors a layer-0 read needs
    padded = {"a.filler": ("F32", (4096, 4096)), **{k: tensors[k] for k in sorted(tensors) if k.startswith("h.1")},
              "wpe.weight": tensors["wpe.weight"], "b.filler": ("F32", (4096, 4096)),
              **{k: tensors[k] for k in sorted(tensors) if not k.startswith("h.1") and k != "wpe.weight"}}
    st_tools.write(folder / "model.safetensors", padded, {"format": "pt"})
    hub.add("org/tiny-gpt2", folder)
    emb = explorer.load("hf:org/tiny-gpt2,attention=0")
    needed = sum(tensors[name].nbytes for name in ("wpe.weight", *emb.attention.tensors))
    ranges = [r for r in hub.requests if r["file"] == "model.safetensors" and r["method"] == "GET"]
    assert len(ranges) == 2 + len(emb.attention.tensors)  # the header, the table, one range per layer tensor
    overhead = HEADER_FIRST_READ + (folder / "config.json").stat().st_size
    assert needed < hub.bytes_sent <= 1.1 * needed + overhead
    local = explorer.load(f"hf:{folder},attention=0")
    np.testing.assert_array_equal(layer_attention(emb.matrix, emb.attention).probabilities,
                                  layer_attention(local.matrix, local.attention).probabilities)
    with pytest.raises(ProviderError, match="only for a local checkpoint"):
        explorer.load("hf:org/tiny-gpt2,attention=1")


def test_an_atlas_of_checkpoints_shows_their_attention_numbers(tmp_path):
    from explorer.reporting.page import build_document

    tables = []
    for seed in range(3):  # three "checkpoints" of one model, as a training series would give
        config = T.GPT2Config(n_embd=16, n_layer=1, n_head=4, n_positions=24, vocab_size=50, bos_token_id=0,
                              eos_token_id=0)
        torch.manual_seed(seed)
        folder = tmp_path / f"step{seed}"
        T.GPT2Model(config).save_pretrained(folder)
        tables.append(explorer.load(f"hf:{folder},attention=0"))
    results, pairs = explorer.api.analyze_all(tables)
    doc = build_document(tables, results, pairs)
    numbers = next(m for m in doc.models if getattr(m, "name", None) == "atlas_numbers_source").data
    assert numbers["attention_previous_max"] == [float(r["attention"].previous.max()) for r in results]
    assert numbers["attention_distance_mean"] == pytest.approx(
        [float(r["attention"].mean_distance.mean()) for r in results])
    assert len(set(numbers["attention_previous_max"])) == 3
