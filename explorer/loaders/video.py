"""Video transformers' positions on a 3-D grid (frames x rows x columns), read as transformers computes them.

- **VideoMAE** stores no position table: ``VideoMAEEmbeddings`` computes ``get_sinusoid_encoding_table`` when the
  model is built, a 1-D sinusoid over its (num_frames / tubelet_size) * H * W patches numbered frame by frame, row
  by row (the Conv3d's flattened output), in float64 and rounded once to float32. ``videomae_table`` repeats that
  arithmetic step by step (a position divided by 10000^(2 floor(j/2) / d), then sin at even and cos at odd
  columns), so the table is the model's bit for bit; it is computed, not read (``tensor`` is None).
- **ViViT** learns ``embeddings.position_embeddings``, (1, 1 + T H W, D): its class token's row, then the
  tubelets' in the Conv3d's order, T = num_frames / tubelet_size[0], H and W = image_size / tubelet_size[1:].
- **TimeSformer** learns a space table ``embeddings.position_embeddings`` (1, 1 + H W, D), added to every frame's
  patches, and a time table ``embeddings.time_embeddings`` (1, num_frames, D), added to every patch of a frame.
  ``table=space`` reads the first on its H x W grid (class-token row dropped), ``table=time`` the second as a
  sequence of frames, and ``auto`` (the default) what the model adds to patch (t, r, c): space(r, c) + time(t), in
  float32, on the T x H x W grid. Its token sequence after the time embedding runs patch by patch (token
  1 + p T + t is frame t of patch p); posembed lays it out frame by frame like the others. A ``space_only``
  model has no time table: ``auto`` reads its space table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from explorer.errors import ProviderError, SpecError
from explorer.loaders.config_values import pair, sides, whole

VIDEO_TYPES = ("videomae", "vivit", "timesformer")
#: The ``table=`` values a video model takes (``auto`` everywhere; ``space`` and ``time`` for TimeSformer).
VIDEO_TABLES = ("auto", "space", "time")
_SPACE, _TIME = "embeddings.position_embeddings", "embeddings.time_embeddings"


def is_video(config: dict[str, Any]) -> bool:
    """Whether ``config`` is a VideoMAE, ViViT or TimeSformer model's."""
    return config.get("model_type") in VIDEO_TYPES


def videomae_table(positions: int, dim: int) -> np.ndarray:
    """transformers' ``get_sinusoid_encoding_table(positions, dim)`` as float32, with its own arithmetic: the
    angle of (position, j) is position / np.power(10000, 2 (j // 2) / dim) in float64 (a division by a power, where
    ``sinusoidal_table`` multiplies by a negative power, which can differ in the last bit), sin at even and cos at
    odd columns, then one rounding to float32."""
    from explorer.runtime.limits import check_shape

    check_shape((positions, dim), "videomae", itemsize=8, what="the sinusoid table's float64 angles")
    # the same scalar np.power calls as transformers' get_position_angle_vec, then the same float64 divisions
    denominators = np.array([np.power(10000, 2 * (j // 2) / dim) for j in range(dim)], dtype=np.float64)
    table = np.arange(positions, dtype=np.float64)[:, None] / denominators[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return table.astype(np.float32)


def _grid(config: dict[str, Any], source: str) -> tuple[tuple[int, int, int], str]:
    """The model's (T, H, W) from config.json, and how it follows from the config's sizes."""
    model_type = config["model_type"]
    frames = whole(config, "num_frames", source)
    image = pair(config, "image_size", source)
    if model_type == "vivit":
        tubelet = sides(config, "tubelet_size", source, 3)
        patch, step = tubelet[1:], tubelet[0]
        how = f"num_frames {frames} / tubelet {step}, image_size / tubelet_size[1:]"
    else:
        patch = pair(config, "patch_size", source)
        step = whole(config, "tubelet_size", source) if model_type == "videomae" else 1
        how = (f"num_frames {frames} / tubelet_size {step}, image_size / patch_size" if model_type == "videomae"
               else f"num_frames {frames}, image_size / patch_size")
    grid = (frames // step, image[0] // patch[0], image[1] // patch[1])
    if min(grid) < 1:
        raise ProviderError(f"{source}: config.json's sizes give a {' x '.join(map(str, grid))} grid of patches")
    return grid, how


def _learned(checkpoint: Any, suffix: str, rows: int) -> tuple[np.ndarray, str, str]:
    """The tensor ending in ``suffix`` as ``rows`` x D float32 (its leading batch axis of 1 dropped), its dtype and
    name; one error when it is missing or has another number of rows."""
    from explorer.loaders.families import find_tensor

    names = checkpoint.names()
    name = find_tensor(names, suffix)
    if name is None:
        raise ProviderError(f"{checkpoint.source}: none of its {len(names)} tensors ends in {suffix!r}")
    matrix, dtype = checkpoint.read(name)
    stored = list(matrix.shape)
    if matrix.ndim == 3 and matrix.shape[0] == 1:
        matrix = matrix[0]
    if matrix.ndim != 2 or matrix.shape[0] != rows:
        raise ProviderError(f"{checkpoint.source}: {name} has shape {stored}, expected [1, {rows}, D] "
                            f"from config.json's sizes")
    return matrix, dtype, name


def read_video(checkpoint: Any, which: str, provider: str, params: dict[str, Any]):
    """The position table ``which`` (``auto``, or TimeSformer's ``space`` or ``time``) of a video model, as a
    PositionEmbedding on its frames x rows x columns grid (see the module docstring)."""
    from explorer.core.embedding import PositionEmbedding, grid_text

    config, source = checkpoint.config, checkpoint.source
    model_type = config["model_type"]
    if which not in VIDEO_TABLES:
        raise SpecError(f"{provider}: {model_type} takes table=auto{', space or time' if model_type == 'timesformer' else ''}, "
                        f"not {which}")
    if which != "auto" and model_type != "timesformer":
        raise SpecError(f"{provider}: table={which} applies to TimeSformer's separate tables; {model_type} has one")
    grid, how = _grid(config, source)
    patches = math.prod(grid)
    common = {"provider": provider, "source": source, "params": params, "revision": checkpoint.revision}
    shape = f"{grid_text(grid)} (frames x rows x columns) grid from {how}"
    if model_type == "videomae":
        dim = whole(config, "hidden_size", source)
        return PositionEmbedding(
            videomae_table(patches, dim), kind="formula", dtype="float32", grid=grid, **common,
            description=f"videomae: stores no position table; computed as transformers' get_sinusoid_encoding_table "
                        f"computes it when the model loads (bit for bit): a 1-D sinusoid over the patches numbered "
                        f"frame by frame, row by row; {shape}")
    if model_type == "vivit":
        matrix, dtype, name = _learned(checkpoint, _SPACE, 1 + patches)
        return PositionEmbedding(matrix[1:], kind="learned", offset=1, dtype=dtype, tensor=name, grid=grid, **common,
                                 description=f"vivit: learned tubelet positions; class token row dropped; {shape}")
    space_grid = grid[1:]
    space, space_dtype, space_name = _learned(checkpoint, _SPACE, 1 + math.prod(space_grid))
    has_time = config.get("attention_type", "divided_space_time") != "space_only"
    if which == "time" and not has_time:
        raise ProviderError(f"{source}: its attention_type is space_only: it has no time table")
    if which == "space" or not has_time:
        return PositionEmbedding(space[1:], kind="learned", offset=1, dtype=space_dtype, tensor=space_name,
                                 grid=space_grid, **common,
                                 description=f"timesformer space: learned patch positions, added to every frame's "
                                             f"patches; class token row dropped; {grid_text(space_grid)} patch grid "
                                             f"from image_size / patch_size"
                                             + ("" if has_time else "; attention_type space_only: no time table"))
    time, time_dtype, time_name = _learned(checkpoint, _TIME, grid[0])
    if time.shape[1] != space.shape[1]:
        raise ProviderError(f"{source}: its time table has {time.shape[1]} dimensions, its space table "
                            f"{space.shape[1]}")
    if which == "time":
        return PositionEmbedding(time, kind="learned", dtype=time_dtype, tensor=time_name, **common,
                                 description=f"timesformer time: learned frame positions (row t is frame t), added "
                                             f"to every patch of frame t; num_frames {grid[0]}")
    from explorer.runtime.limits import check_shape

    check_shape((patches, space.shape[1]), source, what="the sum of the space and time tables")
    combined = (space[None, 1:, :] + time[:, None, :]).reshape(patches, -1)  # float32, as the model adds them
    dtype = space_dtype if space_dtype == time_dtype else f"{space_dtype}/{time_dtype}"
    return PositionEmbedding(
        combined, kind="learned", offset=1, dtype=dtype, tensor=f"{space_name} + {time_name}", grid=grid, **common,
        description=f"timesformer: what the model adds to patch (t, r, c), its space table's row (r, c) plus its time "
                    f"table's row t (class token row dropped; table=space or table=time reads one alone); the model's "
                    f"tokens run patch by patch, posembed lays them out frame by frame; {shape}")
