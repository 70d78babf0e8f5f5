"""The rotary_attention analysis: each head's weight energy per frequency pair and the unit-input score against
distance, from a tiny Llama's own weights and rotary table, checked against transformers' q_proj, k_proj, rotary
embedding and apply_rotary_pos_emb."""

import numpy as np
import pytest

from explorer.analysis.attention import rotary_attention
from explorer.core.attention import AttentionInputs, Norm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
WIDTH, HEADS, GROUPS, HEAD_DIM, POSITIONS = 32, 4, 2, 8, 48


@pytest.fixture(scope="module")
def llama():
    """A tiny Llama with grouped-query attention (4 query heads, 2 key heads) and random weights."""
    config = transformers.LlamaConfig(hidden_size=WIDTH, num_attention_heads=HEADS, num_key_value_heads=GROUPS,
                                      num_hidden_layers=2, intermediate_size=64, vocab_size=50,
                                      max_position_embeddings=POSITIONS, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.LlamaModel(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    return model


def inputs_of(model, layer):
    """The model's rotary table [cos | sin] (without the duplicated half) and layer ``layer``'s inputs, key heads
    repeated as transformers' repeat_kv repeats them."""
    with torch.no_grad():
        cos, sin = model.rotary_emb(torch.zeros(1, POSITIONS, 1), torch.arange(POSITIONS)[None])
        table = torch.cat([cos[0, :, :HEAD_DIM // 2], sin[0, :, :HEAD_DIM // 2]], dim=1).numpy()
        attention = model.layers[layer].self_attn
        query = attention.q_proj.weight.numpy()
        key = attention.k_proj.weight.numpy().reshape(GROUPS, HEAD_DIM, WIDTH)
        key = np.repeat(key, HEADS // GROUPS, axis=0).reshape(HEADS * HEAD_DIM, WIDTH)
        norm = Norm(model.layers[layer].input_layernorm.weight.numpy(), None, 0.0)
    return table, AttentionInputs(layer, HEADS, query.T, key.T, scale=HEAD_DIM ** -0.5, causal=True,
                                  pre_norm=norm, rotary="half")


def reference_scores(model, layer, distances):
    """sum over the D basis inputs e_j (unit variance in every coordinate after the norm, whose weight g scales
    them) of q_m . k_n * scale, with transformers' own modules, the query at position m = d and the key at n = 0."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attention = model.layers[layer].self_attn
    out = np.zeros((HEADS, len(distances)))
    with torch.no_grad():
        inputs = torch.eye(WIDTH) * model.layers[layer].input_layernorm.weight  # row j: g * e_j
        q = attention.q_proj(inputs).view(WIDTH, HEADS, 1, HEAD_DIM).expand(WIDTH, HEADS, 2, HEAD_DIM)
        k = attention.k_proj(inputs).view(WIDTH, GROUPS, 1, HEAD_DIM).repeat_interleave(HEADS // GROUPS, dim=1)
        k = k.expand(WIDTH, HEADS, 2, HEAD_DIM)
        for index, d in enumerate(distances):
            cos, sin = model.rotary_emb(inputs[None], torch.tensor([[int(d), 0]]))
            rq, rk = apply_rotary_pos_emb(q, k, cos, sin)
            out[:, index] = (rq[:, :, 0] * rk[:, :, 1]).sum(dim=(0, 2)).numpy() * HEAD_DIM ** -0.5
    return out


@pytest.mark.parametrize("layer", [0, 1])
def test_unit_input_score_equals_transformers_rotary_projections(llama, layer):
    table, inputs = inputs_of(llama, layer)
    result = rotary_attention(table, inputs)
    expected = reference_scores(llama, layer, result.distance)
    np.testing.assert_allclose(result.score, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.abs(result.score[:, 0] - result.score[:, -1]).max() > 1e-3  # it does depend on distance


def test_energy_per_pair_is_each_pairs_share_of_the_heads_squared_weights(llama):
    table, inputs = inputs_of(llama, 0)
    result = rotary_attention(table, inputs)
    g = llama.layers[0].input_layernorm.weight.detach().numpy()[None, :]
    q = llama.layers[0].self_attn.q_proj.weight.detach().numpy() * g  # (heads * d) x D
    k = llama.layers[0].self_attn.k_proj.weight.detach().numpy() * g
    for h in range(HEADS):
        rows = (q[h * 8:(h + 1) * 8] ** 2).sum(axis=1)
        np.testing.assert_allclose(result.query_energy[h], (rows[:4] + rows[4:]) / rows.sum(), rtol=1e-5)
        group = h // 2  # query heads 0, 1 share key head 0; 2, 3 key head 1
        rows = (k[group * 8:(group + 1) * 8] ** 2).sum(axis=1)
        np.testing.assert_allclose(result.key_energy[h], (rows[:4] + rows[4:]) / rows.sum(), rtol=1e-5)


def test_a_zero_token_without_biases_gives_uniform_causal_attention(llama):
    """q = k = 0 (no biases, the norm of a zero row is zero even with eps 0): every score 0, so query m spreads
    evenly over its m + 1 keys; the numbers are those of uniform causal attention, finite."""
    table, inputs = inputs_of(llama, 0)
    result = rotary_attention(table, inputs)
    m = np.arange(POSITIONS)
    assert np.all(result.token_score == 0)
    np.testing.assert_allclose(result.mean_distance, (m / 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(result.diagonal, (1 / (m + 1)).mean(), rtol=1e-6)
    np.testing.assert_allclose(result.previous, (1 / (m[1:] + 1)).mean(), rtol=1e-6)
    np.testing.assert_allclose(result.entropy, np.log(m + 1).mean(), rtol=1e-6)
