"""The sinusoidal provider against transformers' own implementations and the closed form."""

import numpy as np
import pytest

import explorer
from explorer.providers.sinusoidal import sinusoidal_table


@pytest.mark.parametrize("positions, dim", [(64, 32), (50, 7), (9, 1)])
def test_interleaved_matches_transformers_distilbert(positions, dim):
    torch = pytest.importorskip("torch")
    from transformers.models.distilbert.modeling_distilbert import _create_sinusoidal_embeddings

    out = torch.empty(positions, dim)
    _create_sinusoidal_embeddings(positions, dim, out)
    np.testing.assert_allclose(sinusoidal_table(positions, dim), out.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("positions, dim", [(64, 32), (50, 7)])
def test_split_matches_transformers_marian(positions, dim):
    pytest.importorskip("torch")
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    reference = MarianSinusoidalPositionalEmbedding(positions, dim).create_weight().numpy()
    np.testing.assert_allclose(sinusoidal_table(positions, dim, layout="split"), reference, atol=1e-6, rtol=0)


def test_split_is_a_column_permutation_of_interleaved():
    inter, split = sinusoidal_table(100, 11), sinusoidal_table(100, 11, layout="split")
    order = np.r_[np.arange(0, 11, 2), np.arange(1, 11, 2)]
    np.testing.assert_array_equal(split, inter[:, order])


def test_cosine_depends_only_on_distance():
    # p_i . p_j = sum_k cos((i - j) w_k) for even dim, and every |p_i|^2 = dim / 2.
    table = sinusoidal_table(200, 64, base=10000.0).astype(np.float64)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cos = unit @ unit.T
    inv_freq = 10000.0 ** (-np.arange(32) * 2 / 64)
    for k in (0, 1, 5, 37, 150):
        expected = np.cos(k * inv_freq).sum() / 32
        np.testing.assert_allclose(np.diagonal(cos, offset=k), expected, atol=1e-6)


def test_provider_records_parameters_and_kind(builtin_registry):
    emb = explorer.load("sinusoidal,positions=10,dim=6,base=100,layout=split", registry=builtin_registry)
    assert emb.shape == (10, 6) and emb.kind == "formula"
    assert emb.params == {"positions": 10, "dim": 6, "base": 100.0, "layout": "split"}
    np.testing.assert_array_equal(emb.matrix, sinusoidal_table(10, 6, 100.0, "split"))


def test_default_is_1024_by_768(builtin_registry):
    assert explorer.load(registry=builtin_registry).shape == (1024, 768)
