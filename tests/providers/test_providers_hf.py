"""The `hf` and `gpt2` providers on local folders: every family, offsets, dtypes, shards, fallbacks, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import explorer
from explorer.cli import cli
from explorer.errors import ProviderError
from explorer.loaders.families import FAMILIES

FAMILIES_TESTED = ["gpt2", "distilgpt2", "gpt_neo", "opt", "bert", "roberta", "xlm-roberta", "distilbert",
                   "electra", "bart-encoder", "bart-decoder", "mbart-encoder", "mbart-decoder", "whisper-encoder",
                   "whisper-decoder", "biogpt"]


@pytest.mark.parametrize("family", FAMILIES_TESTED)
def test_every_family_reads_the_models_own_table(tiny_models, family):
    model = tiny_models[family]
    emb = explorer.load(f"hf:{model.path},table={model.table}")
    np.testing.assert_array_equal(emb.matrix, model.expected)
    assert emb.offset == model.offset and emb.kind in ("learned", "formula") and emb.tensor.endswith(".weight")
    assert emb.provider == "hf" and emb.source == str(model.path)


def test_opt_offset_rows_are_the_ones_position_zero_skips(tiny_models):
    import torch
    from transformers import OPTForCausalLM

    path = tiny_models["opt"].path
    module = OPTForCausalLM.from_pretrained(path).model.decoder.embed_positions
    used = module(attention_mask=torch.ones(1, 24, dtype=torch.long)).detach()[0].numpy()
    emb = explorer.load(f"hf:{path}")
    np.testing.assert_array_equal(emb.matrix, used)  # row i of the result is what OPT adds at position i
    assert emb.offset == 2 and emb.provenance()["offset"] == 2


def test_roberta_offset_follows_padding_idx(tiny_models):
    import torch
    from transformers import XLMRobertaModel

    path = tiny_models["xlm-roberta"].path
    model = XLMRobertaModel.from_pretrained(path)
    pad = model.config.pad_token_id
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    positions = model.embeddings.create_position_ids_from_input_ids(ids, pad)
    used = model.embeddings.position_embeddings(positions).detach()[0].numpy()
    emb = explorer.load(f"hf:{path}")
    assert emb.offset == pad + 1 == 4
    np.testing.assert_array_equal(emb.matrix[:5], used)


@pytest.mark.parametrize("dtype, name", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_half_precision_tables_decode_exactly(tmp_path, dtype, name):
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.GPT2Model(transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2, n_positions=16,
                                                           vocab_size=20)).to(getattr(torch, dtype))
    with torch.no_grad():
        model.wpe.weight[0, :4] = torch.tensor([1e-40, -0.0, 3e38 if dtype == "bfloat16" else 6e4, 1 / 3])
    model.save_pretrained(tmp_path / "half")
    emb = explorer.load(f"gpt2:{tmp_path / 'half'}")
    expected = model.wpe.weight.detach().float().numpy()
    assert emb.matrix.tobytes() == expected.tobytes()  # bit for bit, subnormals and -0 included
    assert emb.dtype == name


def test_sharded_local_checkpoint_reads_one_shard(tmp_path):
    import torch
    import transformers

    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=4, n_head=2, n_positions=64,
                                                                 vocab_size=50))
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    emb = explorer.load(f"hf:{tmp_path / 'sharded'}")
    np.testing.assert_array_equal(emb.matrix, model.transformer.wpe.weight.detach().numpy())


def test_folder_with_only_a_pickled_bin_loads_with_weights_only(tmp_path):
    import torch

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    table = torch.randn(10, 6, dtype=torch.bfloat16)
    torch.save({"bert.embeddings.position_embeddings.weight": table}, folder / "pytorch_model.bin")
    emb = explorer.load(f"hf:{folder}")
    np.testing.assert_array_equal(emb.matrix, table.float().numpy())
    assert emb.dtype == "bfloat16"


@pytest.mark.parametrize("model_type, extra, scheme, hint", [
    ("llama", {"hidden_size": 64, "num_attention_heads": 4, "rope_theta": 500000.0}, "rotary position embedding",
     "sinusoidal,base=500000,dim=16,layout=split"),
    ("xlnet", {}, "relative position biases", "relative_attention_bias"),
    ("transfo-xl", {}, "relative position biases", "file:"),
    ("mpt", {"attn_config": {"alibi": False}}, "ALiBi", "alibi"),
])
def test_model_no_provider_claims_names_its_scheme_in_one_line(tmp_path, monkeypatch, model_type, extra, scheme, hint):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, **extra}))
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    result = CliRunner().invoke(cli, ["info", f"hf:{tmp_path}"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("posembed: error: ") and "has no position table" in line
    assert scheme in line and hint in line


def test_unknown_model_type_falls_back_to_the_structure_on_the_meta_device(tmp_path):
    import torch
    import transformers

    assert "mpnet" not in FAMILIES and "ernie" not in FAMILIES
    torch.manual_seed(2)
    mpnet = transformers.MPNetModel(transformers.MPNetConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                             intermediate_size=16, vocab_size=30,
                                                             max_position_embeddings=20, pad_token_id=1))
    mpnet.save_pretrained(tmp_path / "mpnet")
    emb = explorer.load(f"hf:{tmp_path / 'mpnet'}")
    # MPNet's position ids start at padding_idx + 1, which the structure tells (module.padding_idx).
    np.testing.assert_array_equal(emb.matrix, mpnet.embeddings.position_embeddings.weight.detach().numpy()[2:])
    assert emb.offset == 2 and "structure" in emb.description


def test_explicit_tensor_and_offset_override_the_family_rules(tiny_models):
    model = tiny_models["bart-decoder"]
    emb = explorer.load(f"hf:{model.path},tensor=model.decoder.embed_positions.weight,offset=0")
    assert emb.offset == 0 and emb.positions == model.expected.shape[0] + 2
    np.testing.assert_array_equal(emb.matrix[2:], model.expected)
    with pytest.raises(ProviderError, match="no tensor 'model.decoder.embed_position'.*did you mean"):
        explorer.load(f"hf:{model.path},tensor=model.decoder.embed_position")


def test_single_table_family_refuses_decoder(tiny_models):
    with pytest.raises(ProviderError, match="single position table"):
        explorer.load(f"hf:{tiny_models['bert'].path},table=decoder")


def test_a_models_encoder_and_decoder_tables_are_told_apart_by_their_labels(tiny_models):
    from explorer.api import document

    path = tiny_models["bart-decoder"].path
    encoder, decoder = explorer.load(f"hf:{path}"), explorer.load(f"hf:{path},table=decoder")
    assert encoder.label == f"hf: {path}" and decoder.label == f"hf: {path} (decoder)"
    assert explorer.load(f"hf:{path},table=encoder").label == f"hf: {path} (encoder)"
    doc = document([encoder, decoder, explorer.load("sinusoidal,positions=24,dim=8")])  # an atlas
    [numbers] = [m for m in doc.models if getattr(m, "name", None) == "atlas_numbers_source"]
    assert numbers.data["table"][:2] == [f"1. hf: {path}", f"2. hf: {path} (decoder)"]


def test_real_gpt2_table_loads_bit_identically_through_gpt2_and_hf(gpt2_layout, gpt2_wpe):
    for spec in (f"gpt2:{gpt2_layout}", f"hf:{gpt2_layout}"):
        emb = explorer.load(spec)
        assert emb.matrix.tobytes() == gpt2_wpe.astype(np.float32).tobytes(), spec
        assert emb.tensor == "wpe.weight" and emb.offset == 0 and emb.kind == "learned"


def test_gpt2_provider_refuses_other_families(tiny_models):
    with pytest.raises(ProviderError, match="is a bert model, not GPT-2; use hf:"):
        explorer.load(f"gpt2:{tiny_models['bert'].path}")


def test_gpt2_short_names_map_to_the_hub_repositories(monkeypatch):
    from explorer.providers import huggingface

    opened = []
    monkeypatch.setattr(huggingface, "open_checkpoint", lambda model, revision=None: opened.append(model) or 1 / 0)
    for short in ("gpt2", "gpt2-medium", "large", "gpt2-xl", "distilgpt2"):
        with pytest.raises(ZeroDivisionError):
            explorer.load("gpt2" if short == "gpt2" else f"gpt2:{short}")
    assert opened == ["openai-community/gpt2", "openai-community/gpt2-medium", "openai-community/gpt2-large",
                      "openai-community/gpt2-xl", "distilbert/distilgpt2"]


@pytest.mark.parametrize("spec, message", [
    ("hf:./no/such/folder", "no such model folder"),
    ("hf", "hf needs a model"),
])
def test_bad_model_arguments_are_clear(spec, message):
    with pytest.raises(ProviderError, match=message):
        explorer.load(spec)


def test_model_folder_without_weights_says_what_it_looked_for(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ProviderError, match="no weights found"):
        explorer.load(f"hf:{tmp_path}")


def test_local_read_imports_neither_torch_transformers_nor_huggingface_hub(gpt2_layout):
    code = (f"import sys, explorer\nemb = explorer.load('hf:{gpt2_layout}')\n"
            "print(emb.shape, sorted(m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1024, 768) []"


def test_revision_on_a_local_folder_is_reported_not_silently_ignored(gpt2_layout):
    from explorer.errors import PosembedWarning

    with pytest.warns(PosembedWarning, match="revision=v2 applies to hub models"):
        emb = explorer.load(f"hf:{gpt2_layout},revision=v2")
    assert emb.revision is None
