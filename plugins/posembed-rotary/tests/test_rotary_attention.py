"""rotary:MODEL,attention=L: each head's weight energy per frequency pair and the unit-input score against
distance, checked against transformers' own rotary embedding and projections."""

import numpy as np
import pytest

import explorer
from explorer.analysis.attention import rotary_attention
from explorer.errors import ProviderError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A tiny Llama with grouped-query attention (4 query heads, 2 key heads), partial nothing, random weights."""
    config = transformers.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                      num_hidden_layers=2, intermediate_size=64, vocab_size=50,
                                      max_position_embeddings=48, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.LlamaModel(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("rotary-attention") / "llama"
    model.save_pretrained(folder)
    return model, folder


def reference_scores(model, layer, distances):
    """sum over the D basis inputs e_j (unit variance in every coordinate after the norm, whose weight g scales
    them) of q_m . k_n * scale, with transformers' own q_proj, k_proj, rotary embedding and apply_rotary_pos_emb,
    the query at position m = d and the key at n = 0."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attention = model.layers[layer].self_attn
    width, heads, groups, head_dim = 32, 4, 2, 8
    out = np.zeros((heads, len(distances)))
    with torch.no_grad():
        inputs = torch.eye(width) * model.layers[layer].input_layernorm.weight  # row j: g * e_j
        q = attention.q_proj(inputs).view(width, heads, 1, head_dim).expand(width, heads, 2, head_dim)
        k = attention.k_proj(inputs).view(width, groups, 1, head_dim).repeat_interleave(heads // groups, dim=1)
        k = k.expand(width, heads, 2, head_dim)
        for index, d in enumerate(distances):
            cos, sin = model.rotary_emb(inputs[None], torch.tensor([[int(d), 0]]))
            rq, rk = apply_rotary_pos_emb(q, k, cos, sin)
            out[:, index] = (rq[:, :, 0] * rk[:, :, 1]).sum(dim=(0, 2)).numpy() * head_dim ** -0.5
    return out


@pytest.mark.parametrize("layer", [0, 1])
def test_unit_input_score_equals_transformers_rotary_projections(llama, layer):
    model, folder = llama
    emb = explorer.load(f"rotary:{folder},attention={layer}")
    assert emb.attention.rotary == "half" and emb.attention.heads == 4
    result = rotary_attention(emb.matrix, emb.attention)
    expected = reference_scores(model, layer, result.distance)
    np.testing.assert_allclose(result.score, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.abs(result.score[:, 0] - result.score[:, -1]).max() > 1e-3  # it does depend on distance


def test_energy_per_pair_is_each_pairs_share_of_the_heads_squared_weights(llama):
    model, folder = llama
    emb = explorer.load(f"rotary:{folder},attention=0")
    result = rotary_attention(emb.matrix, emb.attention)
    g = model.layers[0].input_layernorm.weight.detach().numpy()[None, :]
    q = model.layers[0].self_attn.q_proj.weight.detach().numpy() * g  # (heads * d) x D
    k = model.layers[0].self_attn.k_proj.weight.detach().numpy() * g
    for h in range(4):
        rows = (q[h * 8:(h + 1) * 8] ** 2).sum(axis=1)
        np.testing.assert_allclose(result.query_energy[h], (rows[:4] + rows[4:]) / rows.sum(), rtol=1e-5)
        group = h // 2  # query heads 0, 1 share key head 0; 2, 3 key head 1
        rows = (k[group * 8:(group + 1) * 8] ** 2).sum(axis=1)
        np.testing.assert_allclose(result.key_energy[h], (rows[:4] + rows[4:]) / rows.sum(), rtol=1e-5)
    np.testing.assert_allclose(result.query_energy.sum(axis=1), 1.0, rtol=1e-5)
    scalars = explorer.analyze(emb).scalars()
    assert "rotary_long_share_h3" in scalars and "attention_distance_h0" not in scalars


def test_hf_hands_attention_to_the_rotary_provider_and_bad_layers_are_one_error(llama):
    _, folder = llama
    emb = explorer.load(f"hf:{folder},attention=1")
    assert emb.provider == "rotary" and emb.attention.layer == 1
    with pytest.raises(explorer.errors.SpecError, match="has 2 layers"):
        explorer.load(f"rotary:{folder},attention=2")
    with pytest.raises(explorer.errors.SpecError, match="attention apply to a model"):
        explorer.load("rotary,attention=0")
