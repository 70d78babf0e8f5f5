"""Relative schemes read through ``hf:``, ``t5:`` and ``alibi``, each equal to what transformers itself computes
(within 1e-6) on tiny real-architecture checkpoints made here with its classes and ``save_pretrained``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explorer
from explorer.core.relative import RelativePositionTerm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-6
T5_SIZES = dict(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=20)
L = 40  # beyond max_distance 20: the far buckets are covered too


def saved(model, folder):
    model.save_pretrained(folder)
    return str(folder)


def all_heads(term: RelativePositionTerm) -> np.ndarray:
    return np.stack([term.query_key(h) for h in range(term.heads)])


def t5_family():
    from functools import partial

    from transformers.models.longt5.modeling_longt5 import LongT5Model
    from transformers.models.umt5.modeling_umt5 import UMT5Model

    # Switch Transformers: a T5 whose feed-forward layers are partly experts; one sparse layer per stack here
    switch = partial(transformers.SwitchTransformersConfig, num_experts=2, expert_capacity=4,
                     num_sparse_encoder_layers=1, num_sparse_decoder_layers=1)
    return [
        ("t5", transformers.T5Config, transformers.T5Model, "SelfAttention"),
        ("mt5", transformers.MT5Config, transformers.MT5Model, "SelfAttention"),
        ("umt5", transformers.UMT5Config, UMT5Model, "SelfAttention"),
        ("longt5", transformers.LongT5Config, LongT5Model, "LocalSelfAttention"),
        ("longt5_tglobal", partial(transformers.LongT5Config, encoder_attention_type="transient-global"), LongT5Model,
         "TransientGlobalSelfAttention"),  # its local bias; the global one (global_relative_attention_bias) is not read
        ("switch_transformers", switch, transformers.SwitchTransformersModel, "SelfAttention"),
    ]


@pytest.mark.parametrize("family", ["t5", "mt5", "umt5", "longt5", "longt5_tglobal", "switch_transformers"])
def test_t5_family_encoder_bias_equals_transformers_compute_bias(tmp_path, family):
    [(_, config_class, model_class, attention)] = [f for f in t5_family() if f[0] == family]
    torch.manual_seed(1)
    model = model_class(config_class(**T5_SIZES))
    folder = saved(model, tmp_path / family)
    term = explorer.load(f"hf:{folder},positions={L}")
    assert isinstance(term, RelativePositionTerm) and not term.causal and term.shape == (4, 2 * L - 1)
    layer = getattr(model.encoder.block[0].layer[0], attention)
    with torch.no_grad():
        if family.startswith("longt5"):  # local attention: queries of one block against keys of three blocks around it
            block = 8
            bias = layer.compute_bias(block)[0, 0].numpy()  # heads x block x 3 block
            i, m = np.indices((block, 3 * block))
            ours = term.values[:, (m - i - block) + L - 1]
        else:
            bias, ours = layer.compute_bias(L, L)[0].numpy(), all_heads(term)
    np.testing.assert_allclose(ours, bias, rtol=0, atol=TOL)
    assert term.tensor.startswith("encoder.block.0.") and term.kind == "bucketed"


@pytest.mark.parametrize("family", ["t5", "mt5", "umt5", "longt5", "longt5_tglobal", "switch_transformers"])
def test_t5_family_decoder_bias_is_causal_and_equals_transformers_compute_bias(tmp_path, family):
    [(_, config_class, model_class, _)] = [f for f in t5_family() if f[0] == family]
    torch.manual_seed(2)
    model = model_class(config_class(**T5_SIZES))
    folder = saved(model, tmp_path / family)
    term = explorer.load(f"t5:{folder},table=decoder,positions={L}")
    assert term.causal and term.shape == (4, L) and term.distances[-1] == 0
    with torch.no_grad():
        bias = model.decoder.block[0].layer[0].SelfAttention.compute_bias(L, L)[0].numpy()
    lower = np.tril(np.ones((L, L), dtype=bool))  # a decoder's query sees no later key
    np.testing.assert_allclose(all_heads(term)[:, lower], bias[:, lower], rtol=0, atol=TOL)
    assert np.isnan(all_heads(term)[:, ~lower]).all()


def test_umt5_reads_the_bias_of_the_block_asked_for(tmp_path):
    from transformers.models.umt5.modeling_umt5 import UMT5Model

    torch.manual_seed(3)
    model = UMT5Model(transformers.UMT5Config(**T5_SIZES))
    folder = saved(model, tmp_path / "umt5")
    term = explorer.load(f"t5:{folder},layer=1,positions={L}")
    with torch.no_grad():
        bias = model.encoder.block[1].layer[0].SelfAttention.compute_bias(L, L)[0].numpy()
    np.testing.assert_allclose(all_heads(term), bias, rtol=0, atol=TOL)
    with pytest.raises(explorer.PosembedError, match="block"):
        explorer.load(f"t5:{folder},layer=5")


def test_t5_config_numbers_written_as_whole_floats_are_read_as_whole_numbers(tmp_path):
    torch.manual_seed(5)
    model = transformers.T5Model(transformers.T5Config(**T5_SIZES))
    folder = saved(model, tmp_path / "t5")
    config = tmp_path / "t5" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "relative_attention_num_buckets": 8.0,
                                  "relative_attention_max_distance": 20.0}))
    term = explorer.load(f"hf:{folder},positions={L}")
    with torch.no_grad():
        bias = model.encoder.block[0].layer[0].SelfAttention.compute_bias(L, L)[0].numpy()
    np.testing.assert_allclose(all_heads(term), bias, rtol=0, atol=TOL)
    assert "8 bidirectional buckets up to distance 20 " in term.description


def test_a_t5_encoder_and_decoder_term_are_told_apart_by_their_labels(tmp_path):
    from explorer.reporting.page import Page

    folder = saved(transformers.T5Model(transformers.T5Config(**T5_SIZES)), tmp_path / "t5")
    encoder, decoder = explorer.load(f"hf:{folder},positions=10"), explorer.load(f"hf:{folder},table=decoder")
    assert encoder.label == f"t5: {folder}" and decoder.label == f"t5: {folder} (decoder)"
    assert explorer.load(f"t5:{folder},table=encoder").label == f"t5: {folder} (encoder)"
    results, _ = explorer.api.analyze_all([encoder, decoder])
    page = Page([encoder, decoder], results)
    assert [page.label_of(k) for k in range(2)] == [f"t5: {folder}", f"t5: {folder} (decoder)"]
    assert f"t5: {folder} (decoder)" in explorer.report([encoder, decoder])


def test_t5_bias_is_read_by_its_bytes_alone_from_the_hub(hub, tmp_path):
    torch.manual_seed(4)
    folder = tmp_path / "t5"
    transformers.T5Model(transformers.T5Config(**{**T5_SIZES, "d_model": 64, "d_ff": 256})).save_pretrained(folder)
    hub.add("org/tiny-t5", folder)
    weights = (folder / "model.safetensors").stat().st_size
    before = hub.bytes_sent
    term = explorer.load(f"hf:org/tiny-t5,positions={L}")
    assert term.heads == 4
    assert hub.bytes_sent - before < weights / 4  # the config, the header and 8 x 4 floats, not the model


@pytest.mark.parametrize("heads", [8, 12, 32, 112])  # BLOOM-7b1 has 32 heads, BLOOM 176B 112
def test_bloom_alibi_equals_build_alibi_tensor(tmp_path, heads):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    transformers.BloomConfig(n_head=heads, hidden_size=4 * heads, n_layer=1, vocab_size=10).save_pretrained(tmp_path)
    term = explorer.load(f"hf:{tmp_path},positions={L}")  # a folder holding config.json alone: no weights read
    assert term.provider == "alibi" and term.causal and term.heads == heads
    bloom = build_alibi_tensor(torch.ones(1, L, dtype=torch.long), heads, torch.float32)[:, 0].numpy()  # heads x key j: m_h * j
    # BLOOM adds m_h * j to every query's row, which softmax sees as m_h * (j - i) (a constant per row):
    # m_h * j = -b_h(-j).
    np.testing.assert_allclose(bloom, -term.values[:, ::-1], rtol=TOL, atol=TOL)


def attention_of_position_alone(model, length: int) -> np.ndarray:
    """heads x query x key attention of ``model``'s first layer when queries and keys are zero: softmax of the
    position bias and the causal mask alone, as the model computes them (eager attention)."""
    with torch.no_grad():
        out = model(torch.zeros(1, length, dtype=torch.long), output_attentions=True)
    return out.attentions[0][0].double().numpy()


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values.astype(np.float64) - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def test_mpt_alibi_is_what_mpt_model_adds_with_alibi_bias_max_8_whatever_the_config_says(tmp_path):
    from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

    config = transformers.MptConfig(n_heads=6, d_model=24, n_layers=1, vocab_size=10, max_seq_len=L,
                                    attn_config={"alibi_bias_max": 6}, attn_implementation="eager")
    config.save_pretrained(tmp_path)
    term = explorer.load(f"hf:{tmp_path}")
    assert term.positions == L and term.heads == 6  # positions from max_seq_len
    model = transformers.MptModel(config).eval()
    with torch.no_grad():
        model.blocks[0].attn.Wqkv.weight.zero_()
    probs = attention_of_position_alone(model, L)
    for query in range(L):  # MPT's bias is m_h * k exactly for every query
        np.testing.assert_allclose(probs[:, query, :query + 1], softmax(term.values[:, L - 1 - query:]),
                                   rtol=0, atol=TOL)
    assert "MptModel uses alibi_bias_max 8" in term.description
    other = explorer.load("alibi,heads=6,scheme=mpt,alibi_bias_max=6,positions=40")  # the spec the note names
    assert "alibi,heads=6,scheme=mpt,alibi_bias_max=6" in term.description
    np.testing.assert_allclose(other.values, build_mpt_alibi_tensor(6, L, alibi_bias_max=6)[:, 0].numpy(),
                               rtol=TOL, atol=TOL)
    assert not np.allclose(other.values, term.values)


def test_mpt_alibi_with_a_large_alibi_bias_max_is_zero_as_in_transformers_and_warns_of_nothing():
    import warnings

    from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 2^2000 overflows: no numpy warning may reach the user
        term = explorer.load("alibi,heads=4,scheme=mpt,alibi_bias_max=2000,positions=8")
    mpt = build_mpt_alibi_tensor(4, 8, alibi_bias_max=2000)[:, 0].numpy()
    np.testing.assert_array_equal(term.values, mpt)


@pytest.mark.parametrize("length", [40, 300])  # past 256 the key positions themselves round in bfloat16
def test_falcon_alibi_is_what_falcon_model_adds_for_the_last_query(tmp_path, length):
    config = transformers.FalconConfig(alibi=True, num_attention_heads=12, hidden_size=96, num_hidden_layers=1,
                                       vocab_size=10, bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    config.save_pretrained(tmp_path)
    term = explorer.load(f"hf:{tmp_path},positions={length}")
    assert term.provider == "alibi" and "sqrt(8)" in term.description  # head_dim = 96 / 12
    torch.manual_seed(3)
    model = transformers.FalconModel(config).eval()
    with torch.no_grad():
        model.h[0].self_attention.query_key_value.weight.zero_()
    probs = attention_of_position_alone(model, length)
    np.testing.assert_allclose(probs[:, -1, :], softmax(term.values), rtol=0, atol=TOL)
    same = explorer.load(f"alibi,heads=12,scheme=falcon,head_dim=8,positions={length}")
    np.testing.assert_array_equal(same.values, term.values)


@pytest.mark.parametrize("length, documented", [(64, 0.03125), (512, 0.625)])  # docs/providers.md, Falcon
def test_falcon_queries_before_the_last_differ_from_the_term_by_bfloat16_rounding(length, documented):
    import math

    from transformers.models.falcon.modeling_falcon import build_alibi_tensor

    added = build_alibi_tensor(torch.ones(1, length, dtype=torch.long), 12, torch.float32)[:, 0].numpy() / math.sqrt(64)
    term = explorer.load(f"alibi,heads=12,scheme=falcon,head_dim=64,positions={length}").values
    worst = max(np.abs((added[:, :i + 1] - added[:, i:i + 1]) - term[:, length - 1 - i:]).max() for i in range(length))
    assert worst == pytest.approx(documented, abs=1e-5)


def test_alibi_from_heads_alone_needs_no_model_and_its_slopes_halve_per_head():
    term = explorer.load("alibi,heads=4,positions=5")
    np.testing.assert_array_equal(term.value_at(-1), -(2.0 ** -(2 * np.arange(1, 5))))
    assert term.source == "formula, 4 heads (bloom)"


def test_deberta_v2_rel_embeddings_are_read_byte_for_byte_as_a_relative_kind_table(tmp_path):
    torch.manual_seed(5)
    model = transformers.DebertaV2Model(transformers.DebertaV2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=30,
        relative_attention=True, position_buckets=8, max_relative_positions=32, position_biased_input=False))
    folder = saved(model, tmp_path / "deberta")
    emb = explorer.load(f"hf:{folder}")
    expected = model.encoder.rel_embeddings.weight.detach().numpy()
    assert emb.matrix.tobytes() == expected.tobytes()
    assert emb.kind == "relative" and emb.tensor == "encoder.rel_embeddings.weight"
    assert "r - S" in emb.description


# --- RoPE through hf:, handed to the rotary plugin by provider_for_config ----------------------------------------

def _rotary_cases():
    return [
        ("llama", transformers.LlamaConfig, transformers.LlamaModel, {}),
        ("qwen2", transformers.Qwen2Config, transformers.Qwen2Model, {}),
        ("gpt_neox", transformers.GPTNeoXConfig, transformers.GPTNeoXModel, {"rotary_pct": 0.5}),
    ]


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt_neox"])
def test_rotary_models_through_hf_equal_their_rotary_embedding(tmp_path, family):
    rotary = pytest.importorskip("posembed_rotary")
    if not hasattr(rotary, "provider_for_config"):
        pytest.skip("the installed posembed-rotary predates provider_for_config")
    [(_, config_class, model_class, extra)] = [c for c in _rotary_cases() if c[0] == family]
    torch.manual_seed(6)
    model = model_class(config_class(hidden_size=64, num_attention_heads=4, num_hidden_layers=1, intermediate_size=128,
                                     vocab_size=100, max_position_embeddings=64, **extra))
    folder = saved(model, tmp_path / family)
    emb = explorer.load(f"hf:{folder}")
    assert emb.provider == "rotary" and emb.kind == "rotary" and emb.positions == 64
    with torch.no_grad():
        cos, sin = model.rotary_emb(torch.zeros(1, 64, 1), torch.arange(64)[None])
    half = model.rotary_emb.inv_freq.shape[0]
    table = torch.cat([cos[0, :, :half], sin[0, :, :half]], dim=1).numpy()
    np.testing.assert_allclose(emb.matrix, table, rtol=0, atol=TOL)


def test_hf_passes_positions_on_to_the_claiming_provider(tmp_path):
    transformers.BloomConfig(n_head=4, hidden_size=16, n_layer=1, vocab_size=10).save_pretrained(tmp_path)
    assert explorer.load(f"hf:{tmp_path},positions=7").positions == 7
    with pytest.raises(explorer.PosembedError, match="takes no table"):
        explorer.load(f"hf:{tmp_path},table=decoder")


def test_hf_positions_on_a_model_with_its_own_table_is_one_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(explorer.PosembedError, match="positions applies to relative terms"):
        explorer.load(f"hf:{tmp_path},positions=4")
