"""rotary:MODEL,attention=L: a rotary model's layer from its own weights, read through explorer.open_model, equal
to what transformers' own modules compute (input norm, q/k projections, rotary embedding, eager attention)."""

import json

import numpy as np
import pytest

import explorer
import posembed_rotary
from explorer.errors import ProviderError, SpecError
from explorer.testing import registry_with

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")

POSITIONS = 40
COMMON = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64, vocab_size=50,
              max_position_embeddings=POSITIONS, attn_implementation="eager")
MODELS = {
    "llama": lambda: T.LlamaModel(T.LlamaConfig(num_key_value_heads=2, **COMMON)),
    "mistral": lambda: T.MistralModel(T.MistralConfig(num_key_value_heads=2, sliding_window=None, **COMMON)),
    "qwen2": lambda: T.Qwen2Model(T.Qwen2Config(num_key_value_heads=2, **COMMON)),  # q/k biases
    "gpt_neox": lambda: T.GPTNeoXModel(T.GPTNeoXConfig(rotary_pct=0.5, **COMMON)),  # partial rotary, fused qkv
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny(request, tmp_path_factory):
    torch.manual_seed(0)
    model = MODELS[request.param]().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("rotary") / request.param
    model.save_pretrained(folder)
    return request.param, model, folder


def load(spec):
    return explorer.load(spec, registry=registry_with(posembed_rotary))


def analysed(emb):
    return explorer.analyze(emb, registry=registry_with(posembed_rotary))["rotary_attention"]


def project(family, model, layer, hidden):
    """Queries and keys (1 x heads x N x d) of ``layer`` for the normed stream ``hidden``, rotated, by the model's
    own modules; key heads repeated as repeat_kv does."""
    block = model.layers[layer]
    positions = torch.arange(hidden.shape[1])[None]
    cos, sin = model.rotary_emb(hidden, positions)
    if family == "gpt_neox":
        from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

        qkv = block.attention.query_key_value(hidden).view(1, hidden.shape[1], -1, 3 * 8).transpose(1, 2)
        q, k, _ = qkv.chunk(3, dim=-1)
        return apply_rotary_pos_emb(q, k, cos, sin)
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q = block.self_attn.q_proj(hidden).view(1, hidden.shape[1], -1, 8).transpose(1, 2)
    k = block.self_attn.k_proj(hidden).view(1, hidden.shape[1], -1, 8).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    return q, k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)


@pytest.mark.parametrize("tokens", ["zero", "mean"])
def test_token_scores_and_attention_numbers_equal_transformers(tiny, tokens):
    family, model, folder = tiny
    emb = load(f"rotary:{folder},attention=0,tokens={tokens}")
    result = analysed(emb)
    width = COMMON["hidden_size"]
    token = model.get_input_embeddings().weight.mean(dim=0) if tokens == "mean" else torch.zeros(width)
    embeds = token.expand(1, POSITIONS, width).clone()
    with torch.no_grad():
        q, k = project(family, model, 0, model.layers[0].input_layernorm(embeds))
        scores = (q @ k.transpose(2, 3))[0].numpy() * 8 ** -0.5
        probabilities = model(inputs_embeds=embeds, output_attentions=True).attentions[0][0].numpy().astype(np.float64)
    assert list(result.distance) == list(range(POSITIONS))
    np.testing.assert_allclose(result.token_score, scores[:, :, 0], rtol=1e-5, atol=1e-5)  # query at d, key at 0
    m, n = np.tril_indices(POSITIONS)
    np.testing.assert_allclose(scores[:, m, n], result.token_score[:, m - n], rtol=1e-5, atol=1e-5)  # by d alone
    i, j = np.indices((POSITIONS, POSITIONS))
    np.testing.assert_allclose(result.mean_distance, (probabilities * (i - j)).sum(axis=2).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(result.previous, probabilities[:, np.arange(1, POSITIONS), np.arange(POSITIONS - 1)]
                               .mean(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.diagonal, np.einsum("hii->hi", probabilities).mean(axis=1), rtol=1e-5)
    logs = np.log(np.where(probabilities > 0, probabilities, 1.0))
    np.testing.assert_allclose(result.entropy, -(probabilities * logs).sum(axis=2).mean(axis=1), rtol=1e-5)
    if tokens == "mean" or family in ("gpt_neox", "qwen2"):  # a zero token is q = k = 0 without norm or q/k biases
        assert np.ptp(result.token_score) > 1e-3
    scalars = explorer.analyze(emb, registry=registry_with(posembed_rotary)).scalars()
    assert scalars["attention_previous_h3"] == pytest.approx(result.previous[3])
    assert scalars["attention_previous_max"] == pytest.approx(result.previous.max())


@pytest.mark.parametrize("layer", [0, 1])
def test_unit_input_score_is_the_expectation_over_isotropic_inputs_after_the_norm(tiny, layer):
    """E over x (E x = 0, E x x^T = I) of the score of g * x + beta at distance d, from the model's own modules:
    sum_j (s(beta + g e_j) + s(beta - g e_j)) / 2 - (D - 1) s(beta)."""
    family, model, folder = tiny
    result = analysed(load(f"rotary:{folder},attention={layer}"))
    norm = model.layers[layer].input_layernorm
    g = norm.weight.detach()
    beta = norm.bias.detach() if getattr(norm, "bias", None) is not None else torch.zeros_like(g)
    width = len(g)
    expected = np.zeros((4, POSITIONS))
    with torch.no_grad():
        for sign in (1.0, -1.0):
            for j in range(width):
                x = beta + sign * g * torch.eye(width)[j]
                q, k = project(family, model, layer, x.expand(1, POSITIONS, width).clone())
                expected += (q @ k.transpose(2, 3))[0, :, :, 0].numpy() * 8 ** -0.5 / 2
        q, k = project(family, model, layer, beta.expand(1, POSITIONS, width).clone())
        expected -= (width - 1) * (q @ k.transpose(2, 3))[0, :, :, 0].numpy() * 8 ** -0.5
    np.testing.assert_allclose(result.score, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    energy = result.query_energy.sum(axis=1)
    rotating = 8 if family != "gpt_neox" else 4  # half of each head's 8 dimensions rotate in GPT-NeoX
    assert result.query_energy.shape == (4, rotating // 2) and np.all(energy <= 1 + 1e-6)
    assert (layer == 0) == (result.previous.size == 4)  # the token's numbers are layer 0's only


def test_the_reader_reads_only_the_layers_tensors_and_bad_requests_are_one_line(tiny, tmp_path):
    family, _, folder = tiny
    emb = load(f"rotary:{folder},attention=1")
    assert emb.attention.tensors and all(".1." in name for name in emb.attention.tensors)
    assert emb.params["attention"] == 1 and emb.attention.rotary == "half"
    assert "embed" in " ".join(load(f"rotary:{folder},attention=0,tokens=mean").attention.tensors)
    with pytest.raises(SpecError, match="the model has 2 layers"):
        load(f"rotary:{folder},attention=2")
    with pytest.raises(SpecError, match="tokens=mean describes layer 0"):
        load(f"rotary:{folder},attention=1,tokens=mean")
    with pytest.raises(SpecError, match="give attention=L too"):
        load(f"rotary:{folder},tokens=mean")
    with pytest.raises(SpecError, match="apply to a model"):
        load("rotary,attention=0")
    if family == "llama":
        through_hf = explorer.load(f"hf:{folder},attention=0,tokens=mean")  # hf: hands it to the installed plugin
        assert through_hf.provider == "rotary" and through_hf.attention.tensors == load(
            f"rotary:{folder},attention=0,tokens=mean").attention.tensors
        other = tmp_path / "phi"
        T.PhiModel(T.PhiConfig(hidden_size=16, num_attention_heads=2, num_hidden_layers=1, intermediate_size=32,
                               vocab_size=40)).save_pretrained(other)
        with pytest.raises(ProviderError, match="not available for phi models"):
            load(f"rotary:{other},attention=0")
        assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"


def test_an_atlas_of_rotary_checkpoints_shows_their_attention_numbers(tmp_path):
    """The token's attention numbers are scalars under the absolute models' names: the atlas's columns."""
    from explorer.reporting.page import build_document

    registry = registry_with(posembed_rotary)
    tables = []
    for seed in range(3):  # three "checkpoints" of one model, as a training series would give
        torch.manual_seed(seed)
        folder = tmp_path / f"step{seed}"
        T.LlamaModel(T.LlamaConfig(**{**COMMON, "num_hidden_layers": 1})).save_pretrained(folder)
        tables.append(explorer.load(f"rotary:{folder},attention=0,tokens=mean", registry=registry))
    results, pairs = explorer.api.analyze_all(tables, registry=registry)
    doc = build_document(tables, results, pairs)
    numbers = next(m for m in doc.models if getattr(m, "name", None) == "atlas_numbers_source").data
    assert numbers["attention_previous_max"] == pytest.approx(
        [float(r["rotary_attention"].previous.max()) for r in results])
    assert numbers["attention_distance_mean"] == pytest.approx(
        [float(r["rotary_attention"].mean_distance.mean()) for r in results])
    assert len(set(numbers["attention_previous_max"])) == 3
