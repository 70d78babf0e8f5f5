"""Vision transformers: tiny ViT, DeiT, DINOv2, CLIP and SigLIP checkpoints made with transformers' own classes
and save_pretrained; posembed must read each one's patch table bit for bit, with its offset rows and its grid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import explorer
from explorer.errors import ProviderError, SpecError


@dataclass(frozen=True)
class TinyVision:
    """A saved tiny vision model, the table posembed must return (from the model in memory), offset and grid."""

    path: Path
    expected: np.ndarray
    offset: int
    grid: tuple[int, int]
    text: np.ndarray | None = None


def _cases():
    import transformers as T

    vit = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, num_channels=3)
    clip_vision = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                       image_size=12, patch_size=4)
    clip_text = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                     vocab_size=40, max_position_embeddings=10)
    # (name, model, attribute path of the table, its rows before the patches, grid, text tower's table)
    return [
        # a non-square image: rows of patches must come out row by row (2 rows of 3)
        ("vit", T.ViTModel(T.ViTConfig(image_size=[8, 12], patch_size=4, **vit)),
         "embeddings.position_embeddings", 1, (2, 3), None),
        ("deit", T.DeiTModel(T.DeiTConfig(image_size=12, patch_size=4, **vit)),
         "embeddings.position_embeddings", 2, (3, 3), None),
        ("dinov2", T.Dinov2Model(T.Dinov2Config(image_size=16, patch_size=4, mlp_ratio=2, **vit)),
         "embeddings.position_embeddings", 1, (4, 4), None),
        ("clip", T.CLIPModel(T.CLIPConfig(vision_config=clip_vision, text_config=clip_text, projection_dim=8)),
         "vision_model.embeddings.position_embedding.weight", 1, (3, 3),
         "text_model.embeddings.position_embedding.weight"),
        ("clip-vision", T.CLIPVisionModel(T.CLIPVisionConfig(**clip_vision)),
         "embeddings.position_embedding.weight", 1, (3, 3), None),
        ("siglip", T.SiglipModel(T.SiglipConfig(vision_config=clip_vision, text_config=clip_text)),
         "vision_model.embeddings.position_embedding.weight", 0, (3, 3),
         "text_model.embeddings.position_embedding.weight"),
    ]


def _tensor(model, dotted: str):
    import torch

    value = model.get_parameter(dotted)
    with torch.no_grad():  # random, distinct rows everywhere (DeiT starts at zeros), so a wrong row cannot match
        value.normal_()
    return value


@pytest.fixture(scope="module")
def tiny_vision(tmp_path_factory):
    """Every vision family as a tiny random model saved with save_pretrained (built once per module)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("tiny-vision")
    models = {}
    for seed, (name, model, dotted, offset, grid, text) in enumerate(_cases()):
        torch.manual_seed(seed)
        table = _tensor(model, dotted)
        text_table = _tensor(model, text).detach().numpy().copy() if text else None
        model.save_pretrained(root / name)
        stored = table.detach().numpy().reshape(-1, table.shape[-1]).copy()  # (1, N, D) or (N, D)
        models[name] = TinyVision(root / name, stored[offset:], offset, grid, text_table)
    return models


@pytest.mark.parametrize("name", ["vit", "deit", "dinov2", "clip", "clip-vision", "siglip"])
def test_each_vision_family_reads_the_models_own_patch_table_with_offset_and_grid(tiny_vision, name):
    model = tiny_vision[name]
    emb = explorer.load(f"hf:{model.path}")
    assert emb.matrix.tobytes() == model.expected.astype(np.float32).tobytes()  # bit for bit
    assert emb.offset == model.offset and emb.grid == model.grid and emb.kind == "learned"
    assert emb.provenance()["grid"] == list(model.grid) and emb.provenance()["offset"] == model.offset


def test_vit_patches_are_row_major_as_the_patch_embedding_flattens_them(tiny_vision):
    import torch
    from transformers import ViTModel

    model = ViTModel.from_pretrained(tiny_vision["vit"].path)
    conv = model.embeddings.patch_embeddings.projection(torch.zeros(1, 3, 8, 12))
    assert tuple(conv.shape[-2:]) == explorer.load(f"hf:{tiny_vision['vit'].path}").grid == (2, 3)


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_tower_text_reads_the_text_towers_one_dimensional_table(tiny_vision, name):
    model = tiny_vision[name]
    emb = explorer.load(f"hf:{model.path},tower=text")
    assert emb.matrix.tobytes() == model.text.tobytes() and emb.grid is None and emb.offset == 0
    assert emb.tensor == "text_model.embeddings.position_embedding.weight"


def test_tower_and_table_together_are_one_clear_error(tiny_vision):
    with pytest.raises(SpecError, match="give table=encoder or tower=text, not both"):
        explorer.load(f"hf:{tiny_vision['clip'].path},tower=text,table=encoder")


def test_config_grid_that_disagrees_with_the_table_is_refused_in_one_line(tiny_vision, tmp_path):
    import shutil

    folder = tmp_path / "wrong"
    shutil.copytree(tiny_vision["dinov2"].path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["image_size"] = 20  # 5 x 5 = 25 patches, but the table has 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ProviderError, match=r"5 x 5 patch grid \(25 patches\), but .* has 17 rows, 16 after"):
        explorer.load(f"hf:{folder}")


def test_explicit_offset_keeps_the_rows_as_a_sequence(tiny_vision):
    emb = explorer.load(f"hf:{tiny_vision['vit'].path},offset=0")
    assert emb.positions == 7 and emb.grid is None


def test_remote_vision_model_reads_only_the_tables_bytes(hub, tiny_vision):
    model = tiny_vision["dinov2"]
    hub.add("org/tiny-dinov2", model.path)
    emb = explorer.load("hf:org/tiny-dinov2")
    assert emb.matrix.tobytes() == model.expected.tobytes() and emb.grid == (4, 4)
    table_range = [r for r in hub.ranges("model.safetensors") if r != "bytes=0-99999"]
    size = (model.path / "model.safetensors").stat().st_size
    assert len(table_range) == 1
    first, last = (int(v) for v in table_range[0].removeprefix("bytes=").split("-"))
    assert last - first + 1 == 17 * 8 * 4 < size  # exactly the (1, 17, 8) float32 parameter's bytes


def test_vit_mae_stored_sin_cos_table_equals_the_sinusoidal2d_provider_bit_for_bit(tmp_path):
    torch = pytest.importorskip("torch")
    import transformers as T

    model = T.ViTMAEModel(T.ViTMAEConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=16, image_size=16, patch_size=4))
    model.embeddings.patch_embeddings.projection._is_hf_initialized = False  # let transformers fill the sin-cos
    with torch.no_grad():
        model.embeddings.initialize_weights()
    model.save_pretrained(tmp_path / "mae")
    emb = explorer.load(f"hf:{tmp_path / 'mae'}")
    assert emb.kind == "formula" and emb.offset == 1 and emb.grid == (4, 4)
    assert emb.matrix.tobytes() == explorer.load("sinusoidal2d,grid=4x4,dim=16").matrix.tobytes()


@pytest.mark.parametrize("name, key", [("vit", "image_size"), ("clip", "vision_config.patch_size")])
def test_config_without_image_or_patch_size_is_one_clear_error(tiny_vision, tmp_path, name, key):
    import shutil

    folder = tmp_path / name
    shutil.copytree(tiny_vision[name].path, folder)
    config = json.loads((folder / "config.json").read_text())
    where = config["vision_config"] if "." in key else config
    where[key.rsplit(".", 1)[-1]] = "sixteen"  # untrusted text where a number belongs
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ProviderError, match=r"config.json needs whole numbers .*image_size and .*patch_size"):
        explorer.load(f"hf:{folder}")
