"""attention=L on GPT-Neo (local layers, unscaled scores), BART and mBART (the encoder's self-attention), CLIP and
SigLIP (the vision tower's patches): equal to transformers' eager attention; the hub reads only the layer's
tensors, within a tenth of their bytes; the families left out are refused in one line naming them."""

from __future__ import annotations

import numpy as np
import pytest

import explorer
from explorer.analysis.attention import layer_attention
from explorer.errors import ProviderError, SpecError
from model_kit import EAGER, padded_on_the_hub, randomised  # tests/model_kit.py

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")

def gpt_neo(width=16, positions=24, window=5):
    return T.GPTNeoModel(T.GPTNeoConfig(hidden_size=width, num_layers=2, num_heads=4, vocab_size=40,
                                        max_position_embeddings=positions, attention_types=[[["global", "local"], 1]],
                                        window_size=window, intermediate_size=2 * width, **EAGER))


def bart(cls=T.BartModel, config=T.BartConfig, width=16, **extra):
    return cls(config(d_model=width, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                      decoder_attention_heads=4, encoder_ffn_dim=2 * width, decoder_ffn_dim=2 * width, vocab_size=40,
                      max_position_embeddings=30, **extra, **EAGER))


VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=12,
              patch_size=2, **EAGER)


def text_attentions(model, layer, embeds):
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            return model.get_encoder()(inputs_embeds=embeds, output_attentions=True).attentions[layer][0].numpy()
        return model(inputs_embeds=embeds, output_attentions=True).attentions[layer][0].numpy()


@pytest.mark.parametrize("layer", [0, 1])
def test_gpt_neo_global_and_local_layers_equal_transformers_unscaled(tmp_path, layer):
    model = randomised(gpt_neo())
    model.save_pretrained(tmp_path / "neo")
    emb = explorer.load(f"hf:{tmp_path / 'neo'},attention={layer}")
    result = layer_attention(emb.matrix, emb.attention)
    expected = text_attentions(model, layer, torch.zeros(1, 24, 16))
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5, rtol=0)
    assert emb.attention.scale == 1.0 and emb.attention.window == (5 if layer == 1 else None)
    if layer == 1:  # local: a query sees its last 5 keys only
        i, j = np.indices((24, 24))
        assert np.all(result.probabilities[:, (i - j >= 5) | (j > i)] == 0)
        assert "local" in emb.attention.note


@pytest.mark.parametrize("family", ["bart", "mbart"])
def test_bart_and_mbart_encoder_self_attention_equals_transformers(tmp_path, family):
    model = randomised(bart() if family == "bart" else bart(T.MBartModel, T.MBartConfig, scale_embedding=True))
    model.save_pretrained(tmp_path / family)
    for layer in (0, 1):
        emb = explorer.load(f"hf:{tmp_path / family},attention={layer}")
        assert emb.offset == 2 and not emb.attention.causal
        expected = text_attentions(model, layer, torch.zeros(1, emb.positions, 16))
        np.testing.assert_allclose(layer_attention(emb.matrix, emb.attention).probabilities, expected, atol=1e-5,
                                   rtol=0)
    emb = explorer.load(f"hf:{tmp_path / family},attention=0,tokens=mean")
    mean = model.get_input_embeddings().weight.detach().mean(dim=0) * (16 ** 0.5 if family == "mbart" else 1.0)
    expected = text_attentions(model, 0, mean.expand(1, emb.positions, 16).clone())
    np.testing.assert_allclose(layer_attention(emb.matrix, emb.attention).probabilities, expected, atol=1e-5, rtol=0)
    with pytest.raises(ProviderError, match="the encoder's self-attention"):
        explorer.load(f"hf:{tmp_path / family},table=decoder,attention=0")


@pytest.mark.parametrize("family", ["clip", "clip_vision_model", "siglip", "siglip_vision_model"])
def test_clip_and_siglip_vision_towers_equal_their_own_layers_on_the_patch_positions(tmp_path, family):
    if family == "clip":
        model = T.CLIPModel(T.CLIPConfig(vision_config=VISION, projection_dim=8, text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=40,
            max_position_embeddings=20, bos_token_id=0, eos_token_id=1, pad_token_id=1), **EAGER))
    elif family == "siglip":
        model = T.SiglipModel(T.SiglipConfig(vision_config=VISION, text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=40,
            max_position_embeddings=20), **EAGER))
    else:
        model = {"clip_vision_model": T.CLIPVisionModel(T.CLIPVisionConfig(**VISION)),
                 "siglip_vision_model": T.SiglipVisionModel(T.SiglipVisionConfig(**VISION))}[family]
    randomised(model).save_pretrained(tmp_path / family)
    tower = getattr(model, "vision_model", model)
    from explorer.loaders.attention_stack import _layer_list

    layers = _layer_list(tower, 0, family)
    with torch.no_grad():
        table = tower.embeddings.position_embedding.weight
        x = table[table.shape[0] - 36:][None]  # the patch rows: no class token
        if hasattr(tower, "pre_layrnorm"):
            x = tower.pre_layrnorm(x)
        for layer in (0, 1):
            emb = explorer.load(f"hf:{tmp_path / family},attention={layer}")
            assert emb.grid == (6, 6)
            result = layer_attention(emb.matrix, emb.attention, grid=emb.grid)
            expected = layers[layer].self_attn(layers[layer].layer_norm1(x))[1][0].numpy()
            np.testing.assert_allclose(result.probabilities, expected, atol=1e-5, rtol=0)
            x = layers[layer](x, None)
            x = x[0] if isinstance(x, tuple) else x
    if family.startswith("clip"):
        with pytest.raises(SpecError, match="use tokens=zero"):
            explorer.load(f"hf:{tmp_path / family},attention=0,tokens=mean")
    else:  # SigLIP's mean image: the patch embedding's bias added to every patch
        emb = explorer.load(f"hf:{tmp_path / family},attention=0,tokens=mean")
        with torch.no_grad():
            x = table[None] + tower.embeddings.patch_embedding.bias
            expected = layers[0].self_attn(layers[0].layer_norm1(x))[1][0].numpy()
        np.testing.assert_allclose(layer_attention(emb.matrix, emb.attention).probabilities, expected, atol=1e-5)
    if family in ("clip", "siglip"):
        with pytest.raises(ProviderError, match="the vision tower's self-attention"):
            explorer.load(f"hf:{tmp_path / family},tower=text,attention=0")


def test_whisper_and_other_families_are_refused_in_one_line_naming_them(tmp_path, run):
    whisper = T.WhisperConfig(d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                              decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, vocab_size=40,
                              max_source_positions=16, max_target_positions=24, num_mel_bins=8, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, suppress_tokens=None,
                              begin_suppress_tokens=None)
    T.WhisperModel(whisper).save_pretrained(tmp_path / "whisper")
    result = run("analyze", f"hf:{tmp_path / 'whisper'},attention=0")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "attention= is not available for whisper models" in result.output and "gpt_neo" in result.output


@pytest.mark.parametrize("family", ["gpt_neo", "bart", "clip_vision_model"])
def test_the_hub_reads_the_new_families_layer_tensors_within_a_tenth(hub, st_tools, tmp_path, family):
    from explorer.loaders.hub import HEADER_FIRST_READ

    model = {"gpt_neo": lambda: gpt_neo(width=128, positions=64), "bart": lambda: bart(width=128),
             "clip_vision_model": lambda: T.CLIPVisionModel(T.CLIPVisionConfig(
                 **{**VISION, "hidden_size": 128, "intermediate_size": 256}))}[family]()
    tensors, folder = padded_on_the_hub(hub, st_tools, tmp_path, model, f"org/{family}")
    emb = explorer.load(f"hf:org/{family},attention=0")
    local = explorer.load(f"hf:{tmp_path / 'small'},attention=0")
    np.testing.assert_array_equal(layer_attention(emb.matrix, emb.attention).probabilities,
                                  layer_attention(local.matrix, local.attention).probabilities)
    needed = sum(tensors[name].nbytes for name in (emb.tensor, *emb.attention.tensors))
    ranges = [r for r in hub.requests if r["file"] == "model.safetensors" and r["method"] == "GET"]
    assert len(ranges) == 2 + len(emb.attention.tensors)  # the header, the table, one range per layer tensor
    overhead = HEADER_FIRST_READ + (folder / "config.json").stat().st_size
    assert needed < hub.bytes_sent <= 1.1 * needed + overhead
