import numpy as np
import pytest

from explorer.core.embedding import PositionEmbedding
from explorer.errors import EmbeddingError


def make(matrix, **kw):
    return PositionEmbedding(matrix, provider="test", source="unit", **kw)


def test_matrix_is_float32_c_contiguous_and_read_only():
    source = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    emb = make(source)
    assert emb.matrix.dtype == np.float32
    assert emb.matrix.flags.c_contiguous
    assert not emb.matrix.flags.writeable
    assert emb.dtype == "float64"  # the original dtype is recorded
    assert emb.shape == (3, 4) and emb.positions == 3 and emb.dim == 4
    np.testing.assert_array_equal(emb.matrix, source.astype(np.float32))


def test_caller_array_is_not_aliased_or_frozen():
    source = np.ones((2, 2), dtype=np.float32)
    emb = make(source)
    source[0, 0] = 5
    assert source.flags.writeable
    assert emb.matrix[0, 0] == 1


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros(5), "2-D"),
    (np.zeros((2, 2, 2)), "2-D"),
    (np.zeros((0, 4)), "empty"),
    (np.zeros((4, 0)), "empty"),
    (np.array([["a"]]), "dtype"),
])
def test_refuses_tables_that_are_not_2d_numeric_and_non_empty(bad, fragment):
    with pytest.raises(EmbeddingError, match=fragment):
        make(bad)


def test_refuses_nan_and_inf_naming_the_first_place():
    matrix = np.zeros((4, 3), dtype=np.float32)
    matrix[2, 1] = np.nan
    matrix[3, 0] = np.inf
    with pytest.raises(EmbeddingError, match=r"2 NaN or Inf.*position 2, dimension 1"):
        make(matrix)


def test_provenance_is_plain_json():
    import json

    emb = make(np.eye(3), kind="learned", offset=2, tensor="wpe.weight", params={"dim": 3})
    info = json.loads(json.dumps(emb.provenance()))
    assert info["offset"] == 2 and info["tensor"] == "wpe.weight" and info["shape"] == [3, 3]
    assert info["params"] == {"dim": 3} and info["kind"] == "learned"
