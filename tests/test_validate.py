"""The one table check: what PositionEmbedding and the analyses both accept and refuse, with the same words."""

import numpy as np
import pytest

from explorer.analysis.table import as_table
from explorer.core import validate
from explorer.core.embedding import PositionEmbedding
from explorer.errors import EmbeddingError

BAD = [
    (np.zeros(4, np.float32), "must be 2-D"),
    (np.zeros((2, 3, 4), np.float32), "must be 2-D"),
    (np.zeros((0, 4), np.float32), "the table is empty"),
    (np.zeros((4, 0), np.float32), "the table is empty"),
    (np.array([["a", "b"]]), "expected numbers"),
    ([[1.0, 2.0], [3.0]], "not an array"),
    (np.array([[1.0, np.nan], [np.inf, 0.0]]), r"2 NaN or Inf value\(s\).*position 0, dimension 1"),
    (np.array([[1.0, 1e300]]), r"1 NaN or Inf value\(s\) \(in float32\).*position 0, dimension 1"),
]


@pytest.mark.parametrize("bad, fragment", BAD)
def test_table_refuses_with_one_embedding_error(bad, fragment):
    with pytest.raises(EmbeddingError, match=fragment):
        validate.table(bad)


@pytest.mark.parametrize("bad, fragment", BAD)
def test_embedding_and_analyses_refuse_the_same_tables_with_the_same_words(bad, fragment):
    with pytest.raises(EmbeddingError) as from_analysis:
        as_table(bad)
    with pytest.raises(EmbeddingError) as from_embedding:
        PositionEmbedding(bad, provider="prov", source="unit")
    assert str(from_embedding.value) == f"prov: {from_analysis.value}"


def test_where_starts_every_message():
    with pytest.raises(EmbeddingError, match="^gpt2: the table is empty"):
        validate.table(np.zeros((0, 3)), "gpt2")


def test_table_is_c_contiguous_float32_with_the_same_values():
    source = np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4))
    result = validate.table(source)
    assert result.dtype == np.float32 and result.flags.c_contiguous
    np.testing.assert_array_equal(result, source)


def test_embedding_never_freezes_memory_the_caller_owns():
    owner = np.ones((4, 3), np.float32)
    for given in (owner, owner[1:], owner[:, :]):
        embedding = PositionEmbedding(given, provider="p", source="s")
        assert not np.shares_memory(embedding.matrix, owner)
    assert owner.flags.writeable
