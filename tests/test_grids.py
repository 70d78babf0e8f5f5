"""Grids in the core: PositionEmbedding's optional (H, W), file:'s grid=HxW and timm's (1, N, D) pos_embed, and the
sinusoidal2d provider against MAE's own definition."""

from __future__ import annotations

import numpy as np
import pytest

import explorer
from explorer.errors import EmbeddingError, ProviderError, SpecError


def mae_2d_sincos(embed_dim: int, grid_size: int, cls_token: bool = False) -> np.ndarray:
    """MAE's util/pos_embed.py (He et al. 2022), transcribed: the reference the provider must equal."""
    def from_1d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64)
        omega /= dim / 2.0
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([from_1d(embed_dim // 2, grid[0]), from_1d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


@pytest.mark.parametrize("size, dim", [(14, 768), (4, 16), (1, 8)])
def test_sinusoidal2d_equals_maes_definition(size, dim):
    emb = explorer.load(f"sinusoidal2d,grid={size}x{size},dim={dim}")
    assert emb.grid == (size, size) and emb.kind == "formula"
    assert emb.matrix.tobytes() == mae_2d_sincos(dim, size).astype(np.float32).tobytes()


def test_sinusoidal2d_on_a_rectangle_puts_the_column_in_the_first_half_and_the_row_in_the_second():
    table = explorer.load("sinusoidal2d,grid=2x3,dim=8").matrix.reshape(2, 3, 8)
    np.testing.assert_array_equal(table[0, :, 4:], np.broadcast_to(table[0, 0, 4:], (3, 4)))  # along row 0
    np.testing.assert_array_equal(table[:, 1, :4], np.stack([table[0, 1, :4]] * 2))  # down column 1
    assert not np.array_equal(table[0, 0, 4:], table[1, 0, 4:])


@pytest.mark.parametrize("spec, message", [
    ("sinusoidal2d,dim=10", "dim must be a multiple of 4"),
    ("sinusoidal2d,grid=14", "grid must be HxW"),
    ("sinusoidal2d,grid=0x3", "grid must be HxW"),
])
def test_bad_sinusoidal2d_parameters_are_one_clear_error(spec, message):
    with pytest.raises(SpecError, match=message):
        explorer.load(spec)


def test_grid_must_cover_every_position():
    with pytest.raises(EmbeddingError, match="a 3 x 3 grid has 9 patches, but the table has 8 positions"):
        explorer.PositionEmbedding(np.ones((8, 2)), provider="p", source="s", grid=(3, 3))
    assert explorer.PositionEmbedding(np.ones((6, 2)), provider="p", source="s", grid=(2, 3)).grid == (2, 3)


def test_timm_pos_embed_with_grid_drops_the_class_row_and_records_it(tmp_path):
    from safetensors.numpy import save_file

    table = np.random.default_rng(0).normal(size=(1, 1 + 12, 8)).astype(np.float32)
    save_file({"pos_embed": table, "cls_token": np.zeros((1, 1, 8), np.float32),
               "blocks.0.attn.qkv.weight": np.zeros((24, 8), np.float32)}, tmp_path / "vit.safetensors")
    emb = explorer.load(f"file:{tmp_path / 'vit.safetensors'},grid=3x4")
    assert emb.matrix.tobytes() == table[0, 1:].tobytes() and emb.offset == 1 and emb.grid == (3, 4)
    assert emb.tensor == "pos_embed"
    plain = explorer.load(f"file:{tmp_path / 'vit.safetensors'}")  # no grid: the 13 rows as a sequence
    assert plain.positions == 13 and plain.grid is None


def test_file_grid_that_does_not_fit_the_rows_is_one_clear_error(tmp_path):
    np.save(tmp_path / "t.npy", np.ones((20, 4), np.float32))
    with pytest.raises(ProviderError, match="a 5 x 5 grid has 25 patches, but the table has 20 rows"):
        explorer.load(f"file:{tmp_path / 't.npy'},grid=5x5")
    assert explorer.load(f"file:{tmp_path / 't.npy'},grid=4x5").grid == (4, 5)
