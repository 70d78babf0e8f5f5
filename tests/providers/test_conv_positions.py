"""Convolutional positions (Wav2Vec2, HuBERT, WavLM, UniSpeech) read through ``hf:`` and ``conv:``: the kernel equal
to the weight the model's own positional convolution uses, however the checkpoint stores it, and WavLM's relative
bias equal to ``WavLMAttention.compute_bias``; on tiny models made here with transformers' classes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.core.conv import ConvKernel
from explorer.core.relative import RelativePositionTerm

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOL = 1e-6
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, conv_dim=(8, 8),
             conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=12, num_conv_pos_embedding_groups=4)
FAMILIES = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
    "unispeech": ("UniSpeechConfig", "UniSpeechModel"),
    "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatModel"),
}
LEGACY = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}


def build(family: str, seed: int = 0, **change):
    config_name, model_name = FAMILIES[family]
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{**SIZES, **change})
    return getattr(transformers, model_name)(config).eval()


def saved(model, folder, layout: str = "safetensors"):
    """The model in ``folder``: as transformers saves it, as a pickled .bin, or with the keys older torch wrote
    (``weight_g``/``weight_v``) in a .bin."""
    model.save_pretrained(folder)
    if layout != "safetensors":
        from safetensors.torch import load_file

        state = load_file(folder / "model.safetensors")
        (folder / "model.safetensors").unlink()
        if layout == "legacy":
            state = {_legacy(k): v for k, v in state.items()}
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def _legacy(name: str) -> str:
    for new, old in LEGACY.items():
        name = name.replace(new, old)
    return name


def own_weight(model) -> np.ndarray:
    with torch.no_grad():
        return model.encoder.pos_conv_embed.conv.weight.detach().numpy()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_kernel_is_the_weight_the_models_own_convolution_uses(tmp_path, family):
    model = build(family)
    term = explorer.load(f"hf:{saved(model, tmp_path / family)}")
    assert isinstance(term, ConvKernel) and term.provider == "conv" and term.term == "conv"
    assert (term.groups, term.channels, term.group_channels, term.taps) == (4, 32, 8, 12)
    np.testing.assert_allclose(term.kernel, own_weight(model), rtol=0, atol=TOL)
    assert term.offsets.tolist() == list(range(-6, 6))
    # the kernel, the stored bias and the same padding give the module's own output
    module = model.encoder.pos_conv_embed
    frames = torch.randn(1, 20, 32)
    with torch.no_grad():
        expected = module(frames)
        out = torch.nn.functional.conv1d(frames.transpose(1, 2), torch.from_numpy(np.array(term.kernel)),
                                         module.conv.bias, padding=6, groups=4)[:, :, :-1]
        ours = torch.nn.functional.gelu(out).transpose(1, 2)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("layout", ["bin", "legacy"])
def test_a_bin_checkpoint_and_the_old_weight_g_weight_v_keys_give_the_same_kernel(tmp_path, layout):
    model = build("wav2vec2", seed=1)
    folder = saved(model, tmp_path / layout, layout)
    if layout == "legacy":  # the .bin holds the names older torch wrote
        names = torch.load(folder / "pytorch_model.bin", weights_only=True)
        assert "encoder.pos_conv_embed.conv.weight_g" in names and not any("parametrizations" in n for n in names)
    term = explorer.load(f"hf:{folder}")
    reloaded = transformers.Wav2Vec2Model.from_pretrained(folder).eval()  # transformers reads the old keys too
    np.testing.assert_allclose(term.kernel, own_weight(reloaded), rtol=0, atol=TOL)
    np.testing.assert_allclose(term.kernel, own_weight(model), rtol=0, atol=TOL)
    assert ("weight_g/weight_v" in term.description) == (layout == "legacy")


def test_an_even_and_an_odd_kernel_read_the_frames_the_model_reads(tmp_path):
    for taps in (7, 16):
        model = build("hubert", seed=taps, num_conv_pos_embeddings=taps)
        term = explorer.load(f"conv:{saved(model, tmp_path / str(taps))}")
        np.testing.assert_allclose(term.kernel, own_weight(model), rtol=0, atol=TOL)
        assert term.offsets[0] == -(taps // 2) and term.offsets[-1] == taps - 1 - taps // 2


def test_hubert_with_a_batch_norm_reads_the_plain_weight_and_says_so(tmp_path):
    model = build("hubert", seed=3, conv_pos_batch_norm=True)
    term = explorer.load(f"hf:{saved(model, tmp_path / 'bn')}")
    np.testing.assert_array_equal(term.kernel, own_weight(model))
    assert "conv_pos_batch_norm" in term.description and "without weight normalisation" in term.description


@pytest.mark.parametrize("length", [5, 60])
def test_wavlm_relative_bias_is_compute_bias_ungated(tmp_path, length):
    model = build("wavlm", seed=4, num_buckets=16, max_bucket_distance=40)
    with torch.no_grad():
        model.encoder.layers[0].attention.rel_attn_embed.weight.normal_()
        expected = model.encoder.layers[0].attention.compute_bias(length, length).numpy()
    term = explorer.load(f"conv:{saved(model, tmp_path / 'wavlm')},scheme=relative,positions={length}")
    assert isinstance(term, RelativePositionTerm) and term.heads == 4 and term.positions == length
    np.testing.assert_allclose(np.stack([term.query_key(h) for h in range(4)]), expected, rtol=0, atol=TOL)
    assert "ungated" in term.description and "depends on the input" in term.description
    kernel = explorer.load(f"hf:{tmp_path / 'wavlm'}")
    assert "scheme=relative" in kernel.description


def test_a_ctc_model_keeps_its_encoder_under_a_prefix_and_is_read_too(tmp_path):
    torch.manual_seed(9)
    model = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**SIZES, vocab_size=12)).eval()
    model.save_pretrained(tmp_path / "ctc")
    term = explorer.load(f"hf:{tmp_path / 'ctc'}")
    assert term.tensor == "wav2vec2.encoder.pos_conv_embed.conv"
    np.testing.assert_allclose(term.kernel, own_weight(model.wav2vec2), rtol=0, atol=TOL)


def test_the_kernel_is_read_by_its_bytes_alone_from_the_hub(hub, tmp_path):
    model = build("wav2vec2", seed=5, intermediate_size=4096)
    folder = saved(model, tmp_path / "w2v")
    hub.add("org/tiny-wav2vec2", folder)
    weights = (folder / "model.safetensors").stat().st_size
    before = hub.bytes_sent
    term = explorer.load("hf:org/tiny-wav2vec2")
    np.testing.assert_allclose(term.kernel, own_weight(model), rtol=0, atol=TOL)
    assert hub.bytes_sent - before < weights / 4  # config, header, the conv's g and v: not the model
    g, v = 12 * 4, 32 * 8 * 12 * 4
    assert sorted(int(b) - int(a) + 1 for a, b in (r[len("bytes="):].split("-") for r in
                                                    hub.ranges("model.safetensors")[1:])) == [g, v]
    assert term.source == "org/tiny-wav2vec2" and term.revision


def test_export_writes_the_kernel_and_file_reads_it_back(tmp_path):
    from safetensors.numpy import load_file

    folder = saved(build("wavlm", seed=6), tmp_path / "wavlm")
    term = explorer.load(f"hf:{folder}")
    runner = CliRunner()
    for suffix in ("npy", "safetensors", "csv"):
        result = runner.invoke(cli, ["export", f"hf:{folder}", "-o", str(tmp_path / f"kernel.{suffix}")])
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "kernel.npy").reshape(32, 8, 12), term.kernel)
    np.testing.assert_array_equal(load_file(tmp_path / "kernel.safetensors")["conv_kernel"], term.values)
    back = explorer.load(f"file:{tmp_path / 'kernel.safetensors'}")
    assert isinstance(back, ConvKernel) and back.taps == 12 and back.groups == 4
    np.testing.assert_array_equal(back.kernel, term.kernel)
    lines = (tmp_path / "kernel.csv").read_text().splitlines()
    assert lines[0] == "channel,input,group," + ",".join(f"t{k:+d}" for k in range(-6, 6)) and len(lines) == 1 + 32 * 8
    row = lines[1 + 9 * 8 + 3].split(",")  # channel 9 (group 1), input 3
    assert row[:3] == ["9", "3", "1"] and float(row[3 + 6]) == pytest.approx(float(term.kernel[9, 3, 6]), rel=1e-7)


def test_info_analyze_json_npz_and_the_report_carry_a_kernel(tmp_path):
    folder = saved(build("wav2vec2", seed=7), tmp_path / "w2v")
    runner = CliRunner()
    info = runner.invoke(cli, ["info", f"hf:{folder}", "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.stdout)
    assert data["term"] == "conv" and data["taps"] == 12 and data["groups"] == 4 and data["offsets"] == [-6, 5]
    result = runner.invoke(cli, ["analyze", f"hf:{folder}", "--json", "--npz", str(tmp_path / "a.npz")])
    assert result.exit_code == 0, result.output
    [table] = json.loads(result.stdout)["tables"]
    term = explorer.load(f"hf:{folder}")
    assert table["term"] == "conv" and table["scalars"]["conv_groups"] == 4 and table["scalars"]["conv_taps"] == 12
    norm = float(np.linalg.norm(term.per_group[2].astype(np.float64)))
    assert table["scalars"]["conv_norm_group2"] == pytest.approx(norm, rel=1e-6)
    with np.load(tmp_path / "a.npz") as arrays:
        strength = next(v for k, v in arrays.items() if k.endswith("conv_kernel.strength"))
    assert strength.shape == (4, 8, 12)
    html = explorer.report([term])
    assert "conv_kernel" in html and "conv_response" in html and "cycles per frame" in html


def test_conv_kernel_numbers_follow_their_formulas():
    from explorer.analysis.conv import conv_kernel

    kernel = np.zeros((3, 2, 2, 8))
    kernel[0, :, :, 4 + 2] = 1.0  # one tap, two frames later: centre 2, spread 0
    kernel[1] = 0.5  # constant over the taps: all its power at frequency 0
    kernel[2] = np.cos(np.pi * np.arange(8))  # alternating frames: all at 1/2 cycle per frame
    result = conv_kernel(kernel)
    assert result.offsets.tolist() == list(range(-4, 4)) and result.frequencies.tolist() == [k / 8 for k in range(5)]
    assert result.centroid[0] == pytest.approx(2) and result.spread[0] == pytest.approx(0, abs=1e-6)
    assert result.norm[0] == pytest.approx(2) and result.strength[0, :, 6].tolist() == [1, 1]
    assert result.peak_frequency.tolist() == [0.0, 0.0, 0.5]
    assert result.low_share[1] == pytest.approx(1) and result.low_share[2] == pytest.approx(0)
    np.testing.assert_allclose(result.response[1, :, 0], 4.0)  # |sum of 8 taps of 0.5|


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _write(folder, config):
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return saved(build("wav2vec2", seed=8), tmp_path_factory.mktemp("base") / "w2v")


def _changed_config(base, tmp_path, **change):
    folder = tmp_path / "m"
    shutil.copytree(base, folder)
    _write(folder, {**_config(folder), **change})
    return folder


def _changed_tensors(base, tmp_path, change):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "m"
    shutil.copytree(base, folder)
    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


G = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
V = "encoder.pos_conv_embed.conv.parametrizations.weight.original1"


def _zero_tap(state):
    state[V][:, :, 3] = 0


@pytest.mark.parametrize("make, message", [
    (lambda b, t: _changed_config(b, t, num_conv_pos_embeddings=5000), "a kernel of 5000 taps; posembed takes at most"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embeddings=10**9), "not a whole number from 1 to 1048576"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embedding_groups=5), "32 channels do not split into 5 groups"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embedding_groups=0), "not a whole number from 1"),
    (lambda b, t: _changed_config(b, t, hidden_size=4096, num_conv_pos_embedding_groups=4096),
     "a convolution of 4096 groups; posembed takes at most 1024"),
    (lambda b, t: _changed_config(b, t, hidden_size=2**20), "has shape [32, 8, 12], but config.json"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embeddings="12"), "num_conv_pos_embeddings is '12'"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embeddings=13), "has shape [32, 8, 12], but config.json"),
    (lambda b, t: _changed_config(b, t, num_conv_pos_embedding_groups=8), "has shape [32, 8, 12], but config.json"),
    (lambda b, t: _changed_tensors(b, t, _zero_tap), "v is zero at tap 3"),
    (lambda b, t: _changed_tensors(b, t, lambda s: s.update({G: s[G].reshape(12, 1, 1)})), "not [1, 1, 12]"),
    (lambda b, t: _changed_tensors(b, t, lambda s: s.pop(V)), "without the weight normalisation's v"),
    (lambda b, t: _changed_tensors(b, t, lambda s: [s.pop(G), s.pop(V)]), "no tensor of its"),
])
def test_hostile_configs_and_tensors_are_one_clear_line(base, tmp_path, make, message):
    folder = make(base, tmp_path)
    result = CliRunner().invoke(cli, ["info", f"hf:{folder}"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    [line] = [l for l in result.output.splitlines() if l.startswith("posembed: error:")]
    assert message in line, line


def test_relative_scheme_on_a_model_without_one_and_positions_on_a_kernel_are_refused(base):
    with pytest.raises(explorer.PosembedError, match="has no gated relative position bias"):
        explorer.load(f"conv:{base},scheme=relative")
    with pytest.raises(explorer.PosembedError, match="positions applies to scheme=relative"):
        explorer.load(f"conv:{base},positions=10")


def test_a_model_of_another_type_is_refused_by_conv(tmp_path):
    _write(tmp_path, {"model_type": "bert"})
    with pytest.raises(explorer.PosembedError, match="a bert model without transformers' positional convolution"):
        explorer.load(f"conv:{tmp_path}")
