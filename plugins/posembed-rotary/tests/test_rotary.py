"""The rotary provider: the formula, Hugging Face configs against transformers' own RoPE, and posembed integration."""

import json
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import posembed_rotary
from explorer.errors import ProviderError, SpecError
from posembed_rotary import load

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=1, intermediate_size=128, vocab_size=100,
             max_position_embeddings=64)  # head_dim 16: 8 frequencies


def rotary(model=None, revision=None, positions=None, dim=None, base=None, layer=None):
    return load(model, revision, positions, dim, base, layer)


def saved(tmp_path, config_class, **overrides):
    """A model folder holding only config.json, as save_pretrained writes it."""
    config_class(**{**SMALL, **overrides}).save_pretrained(tmp_path)
    return str(tmp_path)


def raw_config(tmp_path, **fields):
    """A model folder whose config.json is exactly ``fields`` (older hub files spell RoPE differently)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(fields), encoding="utf-8")
    return str(tmp_path)


def model_cos_sin(rotary_class, folder, positions):
    """What the model itself computes: its rotary module's (inv_freq, [cos | sin] without the duplicated half)."""
    rope = rotary_class(transformers.AutoConfig.from_pretrained(folder))
    cos, sin = rope(torch.zeros(1, positions, 1), torch.arange(positions)[None])
    half = rope.inv_freq.shape[0]
    table = torch.cat([cos[0, :, :half], sin[0, :, :half]], dim=1)
    return rope.inv_freq.numpy(), table.numpy()


def assert_matches_model(embedding, rotary_class, folder):
    inv_freq, table = model_cos_sin(rotary_class, folder, embedding.positions)
    assert embedding.dim == 2 * len(inv_freq)
    # cos and sin of the same float32 angles: ours in float64 rounded once, torch's in float32
    np.testing.assert_allclose(embedding.matrix, table, rtol=0, atol=2.5e-7)


# --- plain parameters -------------------------------------------------------------------------------------------

def test_plain_table_is_cos_then_sin_of_position_times_inverse_frequency():
    emb = rotary(positions=32, dim=8, base=100.0)
    inv_freq = 100.0 ** (-np.arange(0, 8, 2) / 8)
    p = np.arange(32)[:, None]
    expected = np.concatenate([np.cos(p * inv_freq), np.sin(p * inv_freq)], axis=1)
    np.testing.assert_allclose(emb.matrix, expected, atol=1e-6)
    assert emb.kind == "rotary" and emb.shape == (32, 8)
    assert emb.params == {"positions": 32, "dim": 8, "base": 100.0}


def test_plain_table_is_the_split_sinusoid_with_halves_swapped():
    """RoPE's angles are the sinusoidal table's: cos half = the sinusoid's cosines, sin half = its sines."""
    import explorer

    sinusoid = explorer.load("sinusoidal,positions=512,dim=64,layout=split").matrix
    emb = rotary(positions=512, dim=64, base=10000.0)
    np.testing.assert_allclose(emb.matrix[:, :32], sinusoid[:, 32:], atol=1e-4)  # float32 angles vs float64 ones
    np.testing.assert_allclose(emb.matrix[:, 32:], sinusoid[:, :32], atol=1e-4)


def test_plain_defaults_are_128_dimensions_base_10000_and_2048_positions():
    emb = rotary()
    assert emb.shape == (2048, 128)
    assert "theta 10000" in emb.description


@pytest.mark.parametrize("kwargs, message", [
    (dict(dim=7), "dim must be even"),
    (dict(layer="full_attention"), "apply to a model"),
])
def test_bad_plain_parameters_are_spec_errors(kwargs, message):
    with pytest.raises(SpecError, match=message):
        rotary(**kwargs)


# --- Hugging Face configs against transformers' own rotary modules -----------------------------------------------

LLAMA_ROPE = {
    "default": {"rope_type": "default", "rope_theta": 500000.0},
    "linear": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 10000.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 500000.0},
}


@pytest.mark.parametrize("rope_type", sorted(LLAMA_ROPE))
def test_llama_config_matches_llama_rotary_embedding(tmp_path, rope_type):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    folder = saved(tmp_path, LlamaConfig, rope_parameters=dict(LLAMA_ROPE[rope_type]))
    emb = rotary(folder)
    assert emb.shape == (64, 16)  # max_position_embeddings x head_dim
    assert f"RoPE {rope_type}" in emb.description
    assert_matches_model(emb, LlamaRotaryEmbedding, folder)


def test_yarn_applies_its_attention_scaling(tmp_path):
    from transformers import LlamaConfig

    emb = rotary(saved(tmp_path, LlamaConfig, rope_parameters=dict(LLAMA_ROPE["yarn"])))
    scaling = 0.1 * np.log(4.0) + 1.0  # yarn's default mscale for factor 4
    np.testing.assert_allclose(np.linalg.norm(emb.matrix, axis=1), scaling * np.sqrt(8), rtol=1e-6)
    assert f"attention scaling {scaling:.6g}" in emb.description


@pytest.mark.parametrize("positions", [16, 64])
def test_longrope_uses_short_or_long_factors_by_length_as_the_model_does(tmp_path, positions):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    folder = saved(tmp_path, LlamaConfig, rope_parameters={
        "rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 16, "factor": 4.0,
        "short_factor": [1.0 + i / 10 for i in range(8)], "long_factor": [2.0 + i / 4 for i in range(8)]})
    assert_matches_model(rotary(folder, positions=positions), LlamaRotaryEmbedding, folder)


def test_dynamic_ntk_rescales_beyond_max_positions_as_the_model_does(tmp_path):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    folder = saved(tmp_path, LlamaConfig, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4})
    within, beyond = rotary(folder), rotary(folder, positions=200)
    np.testing.assert_allclose(within.matrix, rotary(positions=64, dim=16).matrix, atol=1e-6)  # unscaled inside
    assert not np.allclose(beyond.matrix[:64], within.matrix, atol=1e-3)  # rescaled beyond 64
    assert_matches_model(beyond, LlamaRotaryEmbedding, folder)


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 1e6}, LLAMA_ROPE["yarn"]],
                         ids=["default", "yarn"])
def test_qwen2_config_matches_qwen2_rotary_embedding(tmp_path, rope):
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    folder = saved(tmp_path, Qwen2Config, rope_parameters=dict(rope))
    assert_matches_model(rotary(folder, positions=48), Qwen2RotaryEmbedding, folder)


def test_gpt_neox_partial_rotary_matches_gpt_neox_rotary_embedding(tmp_path):
    from transformers import GPTNeoXConfig
    from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding

    folder = saved(tmp_path, GPTNeoXConfig, rotary_pct=0.25)
    emb = rotary(folder)
    assert emb.dim == 4  # a quarter of head_dim 16 rotates
    assert "rotary dim 4 of head_dim 16" in emb.description
    assert_matches_model(emb, GPTNeoXRotaryEmbedding, folder)


def test_older_config_spellings_rope_scaling_and_rotary_pct_are_read(tmp_path):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    llama31 = raw_config(tmp_path / "llama", model_type="llama", hidden_size=64, num_attention_heads=4,
                         max_position_embeddings=64, rope_theta=500000.0,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    emb = rotary(llama31)
    assert "RoPE llama3, theta 500000" in emb.description
    assert_matches_model(emb, LlamaRotaryEmbedding, llama31)
    neox = raw_config(tmp_path / "neox", model_type="gpt_neox", hidden_size=64, num_attention_heads=4,
                      max_position_embeddings=32, rotary_pct=0.5, rotary_emb_base=1000)
    emb = rotary(neox)
    assert emb.shape == (32, 8) and "theta 1000," in emb.description


def test_per_layer_type_rope_is_chosen_with_layer(tmp_path):
    from transformers import Gemma3TextConfig

    folder = saved(tmp_path, Gemma3TextConfig, head_dim=16, num_hidden_layers=6, intermediate_size=64)
    assert "full_attention layers), theta 1e+06" in rotary(folder).description
    assert "sliding_attention layers), theta 10000" in rotary(folder, layer="sliding_attention").description
    with pytest.raises(SpecError, match="layer must be one of full_attention, sliding_attention"):
        rotary(folder, layer="global")


def test_gpt_j_style_rotary_dim_without_rope_parameters(tmp_path):
    folder = raw_config(tmp_path, model_type="gptj", n_embd=64, n_head=4, rotary_dim=8, n_positions=32)
    emb = rotary(folder)
    assert emb.shape == (32, 8)
    np.testing.assert_allclose(emb.matrix, rotary(positions=32, dim=8).matrix)


def test_a_model_without_rope_is_a_provider_error(tmp_path):
    folder = raw_config(tmp_path, model_type="gpt2", n_embd=64, n_head=4, n_positions=32)
    with pytest.raises(ProviderError, match="gpt2 config has no RoPE parameters"):
        rotary(folder)


def test_default_positions_are_the_configs_up_to_a_cap(tmp_path, monkeypatch):
    from transformers import LlamaConfig

    monkeypatch.setattr(posembed_rotary, "MAX_DEFAULT_POSITIONS", 40)
    folder = saved(tmp_path, LlamaConfig)  # max_position_embeddings 64
    assert rotary(folder).positions == 40
    assert rotary(folder, positions=100).positions == 100  # asked for explicitly


def test_dim_and_base_come_from_the_config_when_a_model_is_given(tmp_path):
    from transformers import LlamaConfig

    with pytest.raises(SpecError, match="dim and base come from the model's config"):
        rotary(saved(tmp_path, LlamaConfig), dim=8, base=10.0)


def test_missing_folder_is_a_provider_error(tmp_path):
    with pytest.raises(ProviderError, match="no such model folder"):
        rotary(str(tmp_path / "nowhere"))
    with pytest.raises(ProviderError, match="cannot read the config"):
        rotary(str(tmp_path))  # a folder without config.json


def test_remote_code_in_a_config_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    folder = raw_config(tmp_path, model_type="evil-rope", auto_map={"AutoConfig": "configuration_evil.EvilConfig"},
                        rope_theta=10000.0, hidden_size=64, num_attention_heads=4)
    with pytest.raises(ProviderError, match="cannot read the config"):
        rotary(folder)
    assert not marker.exists()


# --- as a posembed plugin ----------------------------------------------------------------------------------------

def test_installed_as_an_entry_point_of_group_posembed():
    points = {ep.name: ep for ep in metadata.entry_points(group="posembed")}
    assert points["rotary"].value == "posembed_rotary"
    assert points["rotary"].dist.metadata["Name"] == "posembed-rotary"


def test_every_command_works_on_a_rotary_table(tmp_path, monkeypatch):
    """Through the real plugin manager and CLI: info, analyze and report on a config's table."""
    from click.testing import CliRunner
    from transformers import Qwen2Config

    from explorer.cli import cli

    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "posembed-rotary")
    folder = saved(tmp_path / "qwen", Qwen2Config, max_position_embeddings=128)
    runner = CliRunner()
    info = runner.invoke(cli, ["info", f"rotary:{folder}", "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["kind"] == "rotary"
    analyze = runner.invoke(cli, ["analyze", "rotary,positions=128,dim=16", "--json"])
    assert analyze.exit_code == 0, analyze.output
    out = tmp_path / "rope.html"
    report = runner.invoke(cli, ["report", f"rotary:{folder}", "-o", str(out), "--resources", "cdn"])
    assert report.exit_code == 0, report.output
    assert "rotary" in out.read_text(encoding="utf-8")


def test_importing_the_plugin_imports_neither_torch_nor_transformers():
    code = ("import sys, posembed_rotary\n"
            "print(sorted(m for m in ('torch', 'transformers', 'bokeh') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_module_docstring_documents_the_layout():
    assert "[s*cos(p*inv_freq[0])" in posembed_rotary.__doc__


@pytest.mark.parametrize("spelling", ["nested", "legacy"])
def test_qwen2_vl_mrope_text_view_equals_its_rotary_embedding_and_says_so(tmp_path, spelling):
    import explorer
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

    text = {**SMALL, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}}
    if spelling == "nested":  # as transformers 5 saves it: RoPE inside text_config
        transformers.Qwen2VLConfig(text_config=text).save_pretrained(tmp_path)
    else:  # as Qwen2-VL's hub config.json spells it
        raw_config(tmp_path, model_type="qwen2_vl", **SMALL, rope_theta=1e6,
                   rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    emb = explorer.load(f"hf:{tmp_path},positions=40")
    assert emb.provider == "rotary" and "mrope_section [2, 3, 3]" in emb.description
    assert "temporal pairs 0-1, height pairs 2-4, width pairs 5-7" in emb.description
    assert "1-D text view" in emb.description
    config = transformers.AutoConfig.from_pretrained(tmp_path).get_text_config()
    with torch.no_grad():  # text tokens: the same position id in all three sections
        cos, sin = Qwen2VLRotaryEmbedding(config=config)(torch.zeros(1), torch.arange(40)[None])
    table = torch.cat([cos[0, :, :8], sin[0, :, :8]], dim=1).numpy()
    np.testing.assert_allclose(emb.matrix, table, rtol=0, atol=1e-6)


# --- M-RoPE: sections and image tokens ------------------------------------------------------------------------------

MROPE_TEXT = {**SMALL, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}}
VISION = dict(depth=1, embed_dim=16, num_heads=2, hidden_size=64, spatial_merge_size=2, patch_size=4)


def multimodal(tmp_path, family):
    """A tiny Qwen2-VL or Qwen2.5-VL model saved with its config, and the model (for get_rope_index)."""
    config_class, model_class = {"qwen2_vl": (transformers.Qwen2VLConfig, transformers.Qwen2VLModel),
                                 "qwen2_5_vl": (transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLModel)}[family]
    vision = {**VISION, **({"out_hidden_size": 64, "intermediate_size": 32} if family == "qwen2_5_vl" else {})}
    config = config_class(text_config=MROPE_TEXT, vision_config=vision, image_token_id=99, video_token_id=98,
                          vision_start_token_id=97)
    config.save_pretrained(tmp_path)
    return str(tmp_path), model_class(config)


def model_mrope_rows(folder, family, position_ids):
    """What the model's rotary module computes for tokens of these (3, n) position ids: [cos | sin], first half."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRotaryEmbedding
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

    rotary_class = Qwen2VLRotaryEmbedding if family == "qwen2_vl" else Qwen2_5_VLRotaryEmbedding
    config = transformers.AutoConfig.from_pretrained(folder).get_text_config()
    with torch.no_grad():
        cos, sin = rotary_class(config=config)(torch.zeros(1), position_ids[:, None, :])
    return torch.cat([cos[0, :, :8], sin[0, :, :8]], dim=1).numpy()


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("grid_thw, before", [((1, 4, 6), 3), ((2, 4, 4), 0), ((1, 6, 2), 5)])
def test_an_images_position_ids_are_get_rope_index_s_and_its_rows_the_models(tmp_path, family, grid_thw, before):
    folder, model = multimodal(tmp_path, family)
    tokens = grid_thw[0] * (grid_thw[1] // 2) * (grid_thw[2] // 2)
    types = torch.tensor([[0] * before + [1] * tokens + [0] * 2])
    input_ids = torch.where(types == 1, 99, 5)
    ids, _ = model.get_rope_index(input_ids, types, image_grid_thw=torch.tensor([grid_thw]))
    image_ids = ids[:, 0, before:before + tokens]
    assert np.array_equal(posembed_rotary.mrope_position_ids(grid_thw, 2, before), image_ids.numpy())
    emb = load(folder, None, None, None, None, None, image="x".join(map(str, grid_thw)), start=before or None)
    frames, height, width = grid_thw[0], grid_thw[1] // 2, grid_thw[2] // 2
    assert emb.grid == ((frames, height, width) if frames > 1 else (height, width))
    np.testing.assert_allclose(emb.matrix, model_mrope_rows(folder, family, image_ids), rtol=0, atol=1e-6)
    assert "get_rope_index" in emb.description and "1-D text view" not in emb.description


def test_each_section_is_its_own_pairs_over_its_own_position_ids(tmp_path):
    folder, _ = multimodal(tmp_path, "qwen2_vl")
    full = load(folder, None, 40, None, None, None)
    assert "shown is the 1-D text view" in full.description
    columns = []
    for name, pairs in (("temporal", [0, 1]), ("height", [2, 3, 4]), ("width", [5, 6, 7])):
        emb = load(folder, None, 40, None, None, None, section=name)
        cos_sin = pairs + [8 + p for p in pairs]
        assert emb.matrix.tobytes() == np.ascontiguousarray(full.matrix[:, cos_sin]).tobytes()
        assert f"section {name} alone ({name} pairs {pairs[0]}-{pairs[-1]})" in emb.description
        assert "1-D text view" in emb.description and emb.grid is None
        columns += cos_sin
    assert sorted(columns) == list(range(16))
    # an image's tokens under one section: that section's pairs turn by that section's id alone
    height = load(folder, None, None, None, None, None, section="height", image="1x4x6")
    full_image = load(folder, None, None, None, None, None, image="1x4x6")
    assert height.matrix.tobytes() == np.ascontiguousarray(full_image.matrix[:, [2, 3, 4, 10, 11, 12]]).tobytes()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(positions=10, image="1x4x4"), SpecError, "drop positions"),
    (dict(start=3), SpecError, "start applies to an image"),
    (dict(image="1x4"), SpecError, "image must be TxHxW"),
    (dict(image="1x1x1"), SpecError, "fewer patches a side than the spatial_merge_size 2"),
])
def test_bad_mrope_options_are_one_error(tmp_path, kwargs, error, message):
    folder, _ = multimodal(tmp_path, "qwen2_vl")
    with pytest.raises(error, match=message):
        load(folder, None, kwargs.pop("positions", None), None, None, None, **kwargs)


def test_sections_and_images_need_an_mrope_model(tmp_path):
    folder = saved(tmp_path, transformers.Qwen2Config)
    with pytest.raises(ProviderError, match="has no mrope_section: section and image apply to multimodal RoPE"):
        load(folder, None, None, None, None, None, section="height")
    with pytest.raises(SpecError, match="apply to a model"):
        load(None, None, None, None, None, None, section="height")


def test_an_images_table_has_the_grid_views_and_no_rope_kernel(tmp_path):
    import explorer

    folder, _ = multimodal(tmp_path, "qwen2_vl")
    image = explorer.analyze(load(folder, None, None, None, None, None, image="1x8x8"))
    assert image.rope_kernel is None and image.grid_offset is not None  # its rows are patches, not a line
    assert explorer.analyze(load(folder, None, 16, None, None, None, section="width")).rope_kernel is not None
