"""What posembed says a model's positions are: sinusoids stored as tables are named so, a scheme posembed knows but
cannot read is named instead of "found no position table", and an unknown model type is offered to the
``provider_for_config`` hook before its structure is searched."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer import hookimpl
from explorer.cli import cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("family", ["pegasus", "marian"])
def test_a_stored_sinusoid_found_in_the_structure_is_a_formula_not_learned(tmp_path, family):
    config_class, model_class = {"pegasus": (transformers.PegasusConfig, transformers.PegasusModel),
                                 "marian": (transformers.MarianConfig, transformers.MarianModel)}[family]
    model = model_class(config_class(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                                     decoder_ffn_dim=16, max_position_embeddings=24, pad_token_id=0,
                                     decoder_start_token_id=0))
    model.save_pretrained(tmp_path)
    emb = explorer.load(f"hf:{tmp_path}")
    np.testing.assert_array_equal(emb.matrix, model.encoder.embed_positions.weight.detach().numpy())
    assert emb.kind == "formula" and "sinusoidal table, stored and frozen" in emb.description
    assert "learned" not in emb.description


def test_distilbert_with_sinusoidal_positions_is_described_as_a_sinusoid(tmp_path):
    model = transformers.DistilBertModel(transformers.DistilBertConfig(
        dim=8, n_layers=1, n_heads=2, hidden_dim=16, max_position_embeddings=24, vocab_size=40,
        sinusoidal_pos_embds=True))
    model.save_pretrained(tmp_path)
    emb = explorer.load(f"hf:{tmp_path}")
    np.testing.assert_array_equal(emb.matrix, model.embeddings.position_embeddings.weight.detach().numpy())
    assert emb.kind == "formula" and "sinusoidal" in emb.description and "learned" not in emb.description
    learned = tmp_path / "learned"
    transformers.DistilBertModel(transformers.DistilBertConfig(
        dim=8, n_layers=1, n_heads=2, hidden_dim=16, max_position_embeddings=24, vocab_size=40)).save_pretrained(learned)
    assert "learned absolute positions" in explorer.load(f"hf:{learned}").description


@pytest.mark.parametrize("model_type, scheme", [
    ("sew", "convolutional position embedding"),  # Wav2Vec2, HuBERT and WavLM are read: providers/test_conv_positions
    ("sew-d", "convolutional position embedding"),
    ("reformer", "axial position embeddings"),
    ("wav2vec2-bert", "relative position keys"),  # position_embeddings_type relative_key
    ("wav2vec2-bert:relative", "Transformer-XL relative positions"),
    ("wav2vec2-bert:rotary", "rotary position embedding"),
    ("wav2vec2-bert:null", "no position embedding"),
])
def test_a_model_type_whose_scheme_posembed_knows_names_it_in_one_line(tmp_path, monkeypatch, model_type, scheme):
    model_type, _, kind = model_type.partition(":")
    config = {"model_type": model_type}
    if model_type == "wav2vec2-bert":  # the scheme is the config's, as Wav2Vec2BertConfig writes it
        config = transformers.Wav2Vec2BertConfig(
            position_embeddings_type=None if kind == "null" else kind or "relative_key").to_dict()
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    result = CliRunner().invoke(cli, ["info", f"hf:{tmp_path}"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and f"{model_type} has no position table: it" in line
    assert scheme in line and "found no position table" not in line


def test_an_unknown_model_type_is_offered_to_provider_for_config(tmp_path):
    from explorer import Param, PositionEmbedding, Provider
    from explorer.testing import installed

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "brand-new-arch", "hidden_size": 8}))
    seen = []
    plugin = types.ModuleType("posembed_claims_new")

    @hookimpl
    def provider_for_config(config):
        seen.append(config.get("model_type"))
        return "newarch" if config.get("model_type") == "brand-new-arch" else None

    @hookimpl
    def register_providers(register):
        register(Provider("newarch", "a model type posembed does not know", params=(Param("model", str),),
                          target="model", load=lambda model: PositionEmbedding(np.eye(3), "newarch", model)))

    plugin.provider_for_config, plugin.register_providers = provider_for_config, register_providers
    with pytest.raises(explorer.PosembedError, match="not among posembed's known families"):
        explorer.load(f"hf:{tmp_path}")  # nobody claims it: the structure is searched, as before
    with installed(plugin):
        emb = explorer.load(f"hf:{tmp_path}")
    assert emb.provider == "newarch" and emb.source == str(tmp_path) and seen == ["brand-new-arch"]
