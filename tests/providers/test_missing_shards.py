"""A shard index that names a shard the model does not have (a half-uploaded repository is normal, not an attack):
one line naming the index and the shard, locally and on the hub, for safetensors and pickled ``.bin`` shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import assert_one_error_line, run_cli

INDEXES = {"safetensors": ("model.safetensors.index.json", "model-00002-of-00002.safetensors"),
           "bin": ("pytorch_model.bin.index.json", "pytorch_model-00002-of-00002.bin")}


def half_uploaded(folder, kind, st_tools):
    """A GPT-2-like model whose index puts the table in shard 2 of 2, and only shard 1 is there."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 4, "n_embd": 2}))
    index, missing = INDEXES[kind]
    present = missing.replace("00002-of", "00001-of")
    if kind == "safetensors":
        st_tools.write(folder / present, {"wte.weight": np.ones((3, 2), np.float32)})
    else:
        torch = pytest.importorskip("torch")
        torch.save({"wte.weight": torch.ones(3, 2)}, folder / present)
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": {"wte.weight": present,
                                                                           "wpe.weight": missing}}))
    return f"{index} names the shard {missing!r}, which is missing"


@pytest.mark.parametrize("kind", sorted(INDEXES))
def test_a_local_index_naming_a_missing_shard_is_one_line(tmp_path, st_tools, kind):
    fragment = half_uploaded(tmp_path / "half", kind, st_tools)
    assert_one_error_line(run_cli(["info", f"hf:{tmp_path / 'half'}"]), fragment)


@pytest.mark.parametrize("kind", sorted(INDEXES))
def test_a_hub_index_naming_a_missing_shard_is_one_line(hub, tmp_path, st_tools, kind):
    """The hub answers 404 EntryNotFound for the shard: posembed's internal not-found error must not escape."""
    fragment = half_uploaded(tmp_path / "half", kind, st_tools)
    hub.add("org/half", tmp_path / "half")
    line = assert_one_error_line(run_cli(["info", "hf:org/half"]), fragment)
    assert line.startswith("posembed: error: org/half: ")
