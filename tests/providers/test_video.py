"""Video transformers on their frames x rows x columns grid: VideoMAE's computed sinusoid, ViViT's learned table and
TimeSformer's space and time tables, each compared bit for bit with what transformers' own model computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {"hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}


def randomised(model):
    """Random position tables (transformers initialises them to zero, which would hide any layout mistake)."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "position_embeddings" in name or "time_embeddings" in name:
                parameter.normal_()
    return model.eval()


def positions_added(model, pixel_values):
    """What the model's embeddings add to its patch tokens, measured: the patch projection and the class token are
    zeroed, so the embeddings' output is the positions alone, in the model's own token order."""
    embeddings = model.embeddings
    with torch.no_grad():
        embeddings.patch_embeddings.projection.weight.zero_()
        embeddings.patch_embeddings.projection.bias.zero_()
        if hasattr(embeddings, "cls_token"):
            embeddings.cls_token.zero_()
        if isinstance(model, transformers.VideoMAEModel):
            return embeddings(pixel_values, None)[0].numpy()
        return embeddings(pixel_values)[0].numpy()


def videomae(tmp_path, **config):
    model = transformers.VideoMAEModel(transformers.VideoMAEConfig(
        **{**SMALL, "image_size": [32, 24], "patch_size": 8, "num_frames": 4, "tubelet_size": 2, **config}))
    model.save_pretrained(tmp_path / "videomae")
    return model.eval(), tmp_path / "videomae"


def vivit(tmp_path):
    model = randomised(transformers.VivitModel(transformers.VivitConfig(
        **SMALL, image_size=[32, 24], tubelet_size=[2, 8, 4], num_frames=6)))
    model.save_pretrained(tmp_path / "vivit")
    return model, tmp_path / "vivit"


def timesformer(tmp_path, **config):
    model = randomised(transformers.TimesformerModel(transformers.TimesformerConfig(
        **{**SMALL, "image_size": 24, "patch_size": 8, "num_frames": 3, **config})))
    model.save_pretrained(tmp_path / "timesformer")
    return model, tmp_path / "timesformer"


def test_videomae_is_the_sinusoid_the_model_computes_when_it_loads_bit_for_bit(tmp_path):
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    model, folder = videomae(tmp_path)
    emb = explorer.load(f"hf:{folder}")
    assert emb.grid == (2, 4, 3) and emb.kind == "formula" and emb.tensor is None  # 4 / 2 frames, 32 / 8, 24 / 8
    assert emb.matrix.tobytes() == model.embeddings.position_embeddings[0].numpy().tobytes()
    added = positions_added(model, torch.zeros(1, 4, 3, 32, 24))
    assert added.tobytes() == emb.matrix.tobytes()  # the rows in the model's token order: frame, row, column
    assert "get_sinusoid_encoding_table" in emb.description and "bit for bit" in emb.description
    # a base-sized table too (8 x 14 x 14 patches, 768 wide): transformers' own function, every bit
    from explorer.loaders.video import videomae_table

    assert videomae_table(1568, 768).tobytes() == get_sinusoid_encoding_table(1568, 768)[0].numpy().tobytes()


def test_vivit_is_its_learned_table_after_the_class_row_on_the_tubelet_grid(tmp_path):
    model, folder = vivit(tmp_path)
    emb = explorer.load(f"hf:{folder}")
    table = model.embeddings.position_embeddings[0].detach().numpy()
    assert emb.grid == (3, 4, 6) and emb.offset == 1 and emb.kind == "learned"  # 6 / 2 frames, 32 / 8, 24 / 4
    assert emb.matrix.tobytes() == table[1:].tobytes()
    added = positions_added(model, torch.zeros(1, 6, 3, 32, 24))
    assert added[1:].tobytes() == emb.matrix.tobytes()


def test_timesformer_reads_what_it_adds_to_each_patch_and_each_of_its_two_tables(tmp_path):
    model, folder = timesformer(tmp_path)
    space = model.embeddings.position_embeddings[0].detach().numpy()
    time = model.embeddings.time_embeddings[0].detach().numpy()
    emb = explorer.load(f"hf:{folder}")
    assert emb.grid == (3, 3, 3) and emb.offset == 1
    # the model's tokens after the class token run patch by patch (token 1 + p T + t): laid out frame by frame here
    added = positions_added(model, torch.zeros(1, 3, 3, 24, 24))[1:].reshape(9, 3, 24).transpose(1, 0, 2)
    assert emb.matrix.tobytes() == np.ascontiguousarray(added).reshape(27, 24).tobytes()
    alone = explorer.load(f"hf:{folder},table=space")
    assert alone.grid == (3, 3) and alone.matrix.tobytes() == space[1:].tobytes()
    frames = explorer.load(f"hf:{folder},table=time")
    assert frames.grid is None and frames.matrix.tobytes() == time.tobytes() and frames.positions == 3


def test_a_space_only_timesformer_has_its_space_table_alone(tmp_path):
    model, folder = timesformer(tmp_path, attention_type="space_only")
    emb = explorer.load(f"hf:{folder}")
    assert emb.grid == (3, 3) and emb.matrix.tobytes() == model.embeddings.position_embeddings[0, 1:].detach().numpy().tobytes()
    assert "space_only" in emb.description
    with pytest.raises(explorer.PosembedError, match="space_only: it has no time table"):
        explorer.load(f"hf:{folder},table=time")


def test_remote_video_models_arrive_bit_for_bit_and_videomae_reads_no_weights(hub, tmp_path):
    model, folder = vivit(tmp_path)
    hub.add("org/tiny-vivit", folder)
    emb = explorer.load("hf:org/tiny-vivit")
    assert emb.grid == (3, 4, 6) and emb.matrix.tobytes() == model.embeddings.position_embeddings[0, 1:].detach().numpy().tobytes()
    mae, mae_folder = videomae(tmp_path)
    hub.add("org/tiny-videomae", mae_folder)
    ranges_before = len(hub.ranges("model.safetensors"))
    remote = explorer.load("hf:org/tiny-videomae")
    assert remote.matrix.tobytes() == mae.embeddings.position_embeddings[0].numpy().tobytes()
    assert len(hub.ranges("model.safetensors")) == ranges_before  # computed from config.json alone


@pytest.mark.parametrize("family, change, message", [
    ("vivit", {"num_frames": "6"}, "num_frames is '6', not a whole number"),
    ("vivit", {"tubelet_size": [2, 8]}, "tubelet_size is [2, 8], not a whole number or a list of 3 of them"),
    ("vivit", {"num_frames": 8}, "has shape [1, 73, 24], expected [1, 97, D]"),
    ("videomae", {"image_size": 4}, "sizes give a 2 x 0 x 0 grid of patches"),
    ("videomae", {"hidden_size": True}, "hidden_size is True, not a whole number"),
    ("videomae", {"num_frames": 1 << 20, "image_size": 1 << 14, "patch_size": 1, "tubelet_size": 1},
     "more than the"),
    ("timesformer", {"num_frames": 5}, "embeddings.time_embeddings has shape [1, 3, 24], expected [1, 5, D]"),
])
def test_a_config_that_does_not_fit_is_one_line(tmp_path, family, change, message):
    folder = {"vivit": vivit, "videomae": videomae, "timesformer": timesformer}[family](tmp_path)[1]
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    result = CliRunner().invoke(cli, ["info", f"hf:{folder}"], env={"POSEMBED_LOAD_PLUGINS": ""})
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and message in line, line


@pytest.mark.parametrize("option, message", [
    ("table=space", "table=space applies to TimeSformer's separate tables; vivit has one"),
    ("table=encoder", "vivit takes table=auto, not encoder"),
    ("positions=4", "is a video model (vivit), which takes no positions"),
    ("attention=0", "which takes no attention"),
])
def test_options_a_video_model_does_not_take_are_refused_in_one_line(tmp_path, option, message):
    folder = vivit(tmp_path)[1]
    result = CliRunner().invoke(cli, ["info", f"hf:{folder},{option}"], env={"POSEMBED_LOAD_PLUGINS": ""})
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and message in line, line


def test_a_video_grid_goes_through_export_info_json_and_npz_and_comes_back(tmp_path):
    folder = vivit(tmp_path)[1]
    runner = CliRunner(env={"POSEMBED_LOAD_PLUGINS": ""})
    emb = explorer.load(f"hf:{folder}")
    exported = tmp_path / "vivit.safetensors"
    assert runner.invoke(cli, ["export", f"hf:{folder}", "-o", str(exported)]).exit_code == 0
    back = explorer.load(f"file:{exported}")
    assert back.grid == (3, 4, 6) and back.matrix.tobytes() == emb.matrix.tobytes() and back.kind == "learned"
    np.save(tmp_path / "vivit.npy", emb.matrix)
    assert explorer.load(f"file:{tmp_path / 'vivit.npy'},grid=3x4x6").grid == (3, 4, 6)
    info = runner.invoke(cli, ["info", f"hf:{folder}", "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["grid"] == [3, 4, 6]
    assert "3 x 4 x 6 (frames x rows x columns) grid" in json.loads(info.stdout)["description"]
    result = runner.invoke(cli, ["analyze", f"hf:{folder}", "--json", "--npz", str(tmp_path / "a.npz")])
    assert result.exit_code == 0, result.output
    [table] = json.loads(result.stdout)["tables"]
    assert {"frame_cosine_adjacent", "separability_frames", "grid_translation_invariance"} <= set(table["scalars"])
    with np.load(tmp_path / "a.npz") as arrays:
        cosine = next(arrays[k] for k in arrays.files if k.endswith("frame_similarity.cosine"))
        assert cosine.shape == (3, 3) and np.allclose(np.diag(cosine), 1, atol=1e-6)
        assert next(arrays[k] for k in arrays.files if k.endswith("grid_offset.mean")).shape == (5, 7, 11)


def test_a_video_page_shows_the_views_per_frame_and_along_time(tmp_path):
    emb = explorer.load(f"hf:{vivit(tmp_path)[1]}")
    html = explorer.report([emb])
    for name in ("frame_similarity", "patch_frame", "patch_picked", "grid_offset", "grid_pc1"):
        assert f'"name":"{name}"' in html.replace(" ", ""), name
    assert "3 x 4 x 6 frames x rows x columns" in html and "the same patch across frames" in html
