"""2-D relative position biases (Swin, Swin v2, BEiT, Data2Vec-vision) read through ``hf:`` and ``window:``, each
equal to what transformers adds to the attention scores, on tiny models made here with its classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.core.window import CLASS_TOKEN_ENTRIES, WindowBias

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-6
SWIN = dict(image_size=32, patch_size=4, embed_dim=12, depths=[2, 2], num_heads=[3, 6], window_size=4)
BEIT = dict(image_size=24, patch_size=4, hidden_size=8, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=16)


def randomised(model):
    """Random bias tables (transformers initialises them to zero, which would hide any indexing mistake)."""
    torch.manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "relative_position_bias_table" in name:
                parameter.normal_()
    return model


def saved(model, folder):
    model.save_pretrained(folder)
    return str(folder)


def stacked(term: WindowBias) -> np.ndarray:
    return np.stack([term.attention_bias(h) for h in range(term.heads)])


@pytest.fixture(scope="module")
def swin(tmp_path_factory):
    model = randomised(transformers.SwinModel(transformers.SwinConfig(**SWIN, attn_implementation="eager"))).eval()
    return model, saved(model, tmp_path_factory.mktemp("swin"))


@pytest.mark.parametrize("layer, block", [(0, 0), (0, 1), (1, 1)])
def test_swin_bias_is_the_table_indexed_by_relative_position_index(swin, layer, block):
    model, folder = swin
    term = explorer.load(f"hf:{folder}" if (layer, block) == (0, 0) else f"window:{folder},layer={layer},block={block}")
    assert isinstance(term, WindowBias) and term.provider == "window" and term.window == (4, 4)
    assert term.heads == SWIN["num_heads"][layer] and term.extras == () and term.images.shape[1:] == (7, 7)
    with torch.no_grad():
        expected = model.encoder.layers[layer].blocks[block].attention.relative_position_bias()[0].numpy()
    np.testing.assert_allclose(stacked(term), expected, rtol=0, atol=TOL)


def test_swin_attention_of_zero_queries_and_keys_is_the_softmax_of_the_bias(swin):
    model, folder = swin
    term = explorer.load(f"hf:{folder}")
    attention = model.encoder.layers[0].blocks[0].attention
    caught = []  # block 0's attention weights (the model's attentions hold each stage's last block only)
    hook = attention.register_forward_hook(lambda module, args, out: caught.append(out[1]))
    with torch.no_grad():
        for projection in (attention.q_proj, attention.k_proj):
            projection.weight.zero_()
            projection.bias.zero_()
        model(torch.rand(1, 3, 32, 32), output_attentions=True)
    hook.remove()
    probs = caught[0].numpy()
    bias = stacked(term).astype(np.float64)
    softmax = np.exp(bias - bias.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    for window in probs:  # block 0 shifts nothing: every window sees the bias alone
        np.testing.assert_allclose(window, softmax, rtol=0, atol=TOL)


def test_the_bias_image_puts_the_key_below_right_of_the_query_at_positive_offsets(swin):
    _, folder = swin
    term = explorer.load(f"hf:{folder}")
    query, key = 5, 5 + 4 + 2  # query (1, 1), key (2, 3) of a 4 x 4 window: dy = 1, dx = 2
    assert term.attention_bias(1)[query, key] == term.images[1, 1 + 3, 2 + 3]


@pytest.mark.parametrize("layer, pretrained", [(0, 0), (1, 0), (1, 3)])
def test_swinv2_continuous_bias_is_the_mlp_on_its_coords_table_then_16_sigmoid(tmp_path, layer, pretrained):
    config = transformers.Swinv2Config(**{**SWIN, "window_size": 8}, pretrained_window_sizes=[0, pretrained])
    torch.manual_seed(3)
    model = transformers.Swinv2Model(config).eval()
    folder = saved(model, tmp_path / "swinv2")
    term = explorer.load(f"hf:{folder}" if layer == 0 else f"window:{folder},layer={layer}")
    attention = model.encoder.layers[layer].blocks[0].attention.self
    heads = attention.num_attention_heads
    assert term.window == attention.window_size == ((8, 8) if layer == 0 else (4, 4))  # stage 1 sees 4 x 4 patches
    side = attention.window_size[0] * attention.window_size[1]
    with torch.no_grad():  # Swinv2SelfAttention.forward's own lines, on its own buffers
        table = attention.continuous_position_bias_mlp(attention.relative_coords_table).view(-1, heads)
        bias = table[attention.relative_position_index.view(-1)].view(side, side, -1).permute(2, 0, 1)
        expected = (16 * torch.sigmoid(bias)).numpy()
    np.testing.assert_allclose(stacked(term), expected, rtol=0, atol=1e-5)
    assert term.kind == "window" and "16 * sigmoid" in term.description


@pytest.mark.parametrize("family", ["beit", "data2vec-vision"])
def test_beit_bias_has_its_class_token_entries_named_apart(tmp_path, family):
    config_class, model_class = {"beit": (transformers.BeitConfig, transformers.BeitModel),
                                 "data2vec-vision": (transformers.Data2VecVisionConfig,
                                                     transformers.Data2VecVisionModel)}[family]
    model = randomised(model_class(config_class(**BEIT, use_relative_position_bias=True))).eval()
    folder = saved(model, tmp_path / family)
    for layer in (0, 1):
        term = explorer.load(f"hf:{folder}" if layer == 0 else f"window:{folder},layer={layer}")
        assert term.window == (6, 6) and term.extras == CLASS_TOKEN_ENTRIES and term.shape == (4, 11 * 11 + 3)
        layers = model.layers if hasattr(model, "layers") else model.encoder.layer
        module = layers[layer].relative_position_bias if hasattr(layers[layer], "relative_position_bias") \
            else layers[layer].attention.attention.relative_position_bias
        with torch.no_grad():
            expected = module((6, 6))[0].numpy()  # class token first, then the patches
        np.testing.assert_allclose(stacked(term), expected, rtol=0, atol=TOL)
        np.testing.assert_array_equal(term.extra_values[:, 0], expected[:, 0, 1])  # class query to patch keys


def test_beit_shared_bias_is_read_too(tmp_path):
    model = randomised(transformers.BeitModel(transformers.BeitConfig(**BEIT, use_shared_relative_position_bias=True)))
    folder = saved(model.eval(), tmp_path / "beit")
    term = explorer.load(f"hf:{folder}")
    with torch.no_grad():
        expected = model.shared_position_bias((6, 6))[0].numpy()
    np.testing.assert_allclose(stacked(term), expected, rtol=0, atol=TOL)
    assert "shared by every layer" in term.description


def test_beit_without_relative_bias_is_not_claimed(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "beit", "use_relative_position_bias": False}))
    with pytest.raises(explorer.PosembedError, match="without a relative position bias"):
        explorer.load(f"window:{tmp_path}")


def test_a_missing_layer_or_block_names_the_ones_there_are(swin):
    _, folder = swin
    with pytest.raises(explorer.PosembedError, match=r"layer.block 0\.0, 0\.1, 1\.0, 1\.1, not layer 2, block 0"):
        explorer.load(f"window:{folder},layer=2")


def test_export_writes_the_offsets_and_the_class_entries_and_file_reads_them_back(tmp_path):
    from safetensors.numpy import load_file

    model = randomised(transformers.BeitModel(transformers.BeitConfig(**BEIT, use_relative_position_bias=True)))
    folder = saved(model, tmp_path / "beit")
    runner = CliRunner()
    for suffix in ("npy", "safetensors", "csv"):
        result = runner.invoke(cli, ["export", f"hf:{folder}", "-o", str(tmp_path / f"bias.{suffix}")])
        assert result.exit_code == 0, result.output
    term = explorer.load(f"hf:{folder}")
    np.testing.assert_array_equal(np.load(tmp_path / "bias.npy"), term.values)
    np.testing.assert_array_equal(load_file(tmp_path / "bias.safetensors")["window_bias"], term.values)
    back = explorer.load(f"file:{tmp_path / 'bias.safetensors'}")
    assert isinstance(back, WindowBias) and back.window == (6, 6) and back.extras == CLASS_TOKEN_ENTRIES
    np.testing.assert_array_equal(back.images, term.images)
    lines = (tmp_path / "bias.csv").read_text().splitlines()
    assert lines[0] == "entry,dy,dx,h0,h1,h2,h3" and len(lines) == 1 + 121 + 3
    first = lines[1].split(",")
    assert first[:3] == ["offset", "-5", "-5"] and float(first[4]) == pytest.approx(term.images[1, 0, 0], rel=1e-7)
    assert lines[-1].startswith('"class query to class key",,,')


def test_analyze_json_and_the_report_carry_a_window_bias(swin, tmp_path):
    _, folder = swin
    result = CliRunner().invoke(cli, ["analyze", f"hf:{folder}", "--json"])
    assert result.exit_code == 0, result.output
    [table] = json.loads(result.stdout)["tables"]
    assert table["term"] == "window" and table["shape"] == [3, 49]
    term = explorer.load(f"hf:{folder}")
    assert table["scalars"]["window_value_at_0_head2"] == pytest.approx(float(term.images[2, 3, 3]), rel=1e-6)
    assert table["scalars"]["window_heads"] == 3
    html = explorer.report([term])
    assert "bias per head over the offsets (dy, dx)" in html and "window_numbers" in html


def test_window_heads_numbers_follow_their_formulas():
    from explorer.analysis.window import window_heads

    dy, dx = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij")
    falling = -np.sqrt(dy * dy + dx * dx)  # symmetric, falls with distance, the same along both axes
    rows_only = np.abs(dy) * 1.0 + 0 * dx
    stats = window_heads(np.stack([falling, rows_only]).astype(np.float64))
    assert stats.value_at_0.tolist() == [0.0, 0.0]
    assert stats.symmetry[0] == pytest.approx(1) and stats.decay[0] == pytest.approx(-1)
    assert stats.anisotropy[0] == pytest.approx(0) and stats.anisotropy[1] == pytest.approx(1)
    assert stats.value_range[1] == 2


@pytest.mark.parametrize("family, change, message", [
    ("swin", {"window_size": "7"}, "window_size is '7', not a whole number"),
    ("swin", {"window_size": 5}, "expected [81 offsets, heads]"),
    ("swinv2", {"window_size": 100000, "image_size": 10**6, "patch_size": 1}, "posembed takes at most 512"),
    ("swinv2", {"pretrained_window_sizes": "x"}, "pretrained_window_sizes is 'x', not a list"),
    ("swinv2", {"pretrained_window_sizes": [1, 0]}, "pretrained_window_sizes[0] is 1, not 0 or a whole number >= 2"),
    ("beit", {"patch_size": [0, 4]}, "patch_size is [0, 4], not a whole number or a pair of them"),
])
def test_a_config_that_does_not_fit_is_one_line(tmp_path, family, change, message):
    model = {"swin": lambda: transformers.SwinModel(transformers.SwinConfig(**SWIN)),
             "swinv2": lambda: transformers.Swinv2Model(transformers.Swinv2Config(**SWIN)),
             "beit": lambda: transformers.BeitModel(transformers.BeitConfig(**BEIT, use_relative_position_bias=True))}
    folder = saved(model[family](), tmp_path / family)
    config = json.loads((tmp_path / family / "config.json").read_text())
    (tmp_path / family / "config.json").write_text(json.dumps({**config, **change}))
    result = CliRunner().invoke(cli, ["info", f"hf:{folder}"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and message in line
