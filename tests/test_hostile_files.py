"""Hostile local files and sizes (issue 13): one clear line, bounded memory, nothing read for ever.

Every row of ``CASES`` runs ``posembed`` in-process and must give exactly one ``posembed: error:`` line holding
the row's fragment, the row's exit code and no traceback. ``docs/reliability.md`` lists the rows
(``docs/make_reliability.py``). Sizes claimed in terabytes are refused before anything is allocated:
``test_claims_are_refused_before_allocating`` measures the peak with tracemalloc.
"""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from cli_run import Case, run_case
from cli_run import run_cli as run

import explorer
from explorer.errors import PosembedError, ProviderError, SizeLimitError
from explorer.loaders import safetensors_io as st
from explorer.runtime import limits

SMALL_TABLE = np.arange(32, dtype=np.float32).reshape(8, 4)
ROTARY, RANDOM_WALK = "posembed-rotary", "posembed-random-walk"


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")
    monkeypatch.delenv(limits.ENV, raising=False)


# ---------------------------------------------------------------------------------------------------------------------
# builders


def _header_file(path: Path, header: dict | str, tail: bytes = b"") -> Path:
    raw = header.encode() if isinstance(header, str) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + tail)
    return path


def _entry(begin: int, end: int, shape=(2, 2)) -> dict:
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, end]}


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header claiming ``shape`` of float32, followed by 16 bytes, not the data."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + b"\0" * 16


def _claiming_npz(tmp: Path) -> Path:
    path = tmp / "claims.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("wpe.npy", _npy_header((1_000_000, 1_000_000)))
    assert path.stat().st_size < 400
    return path


def _claiming_npy(tmp: Path) -> Path:
    path = tmp / "claims.npy"
    path.write_bytes(_npy_header((1_000_000, 1_000_000)))
    return path


def _spec_file(tmp: Path, lines: list[str]) -> Path:
    path = tmp / "specs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _model(tmp: Path, name: str, config: str | dict | None = None, special: str | None = None) -> Path:
    """A model folder whose config.json is ``config`` (text or dict), or a ``special`` file: zero, fifo, folder."""
    folder = tmp / name
    folder.mkdir()
    target = folder / "config.json"
    if special is not None:
        _special(target, special)
    else:
        target.write_text(config if isinstance(config, str) else json.dumps(config or {"model_type": "gpt2"}))
    return folder


def _special(path: Path, kind: str) -> Path:
    if kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


def _sharded(tmp: Path, kind: str) -> Path:
    """A gpt2 folder whose index sends the position table to a shard that is /dev/zero, a FIFO or a folder."""
    folder = _model(tmp, f"sharded-{kind}")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"wpe.weight": "s1.safetensors"}}))
    _special(folder / "s1.safetensors", kind)
    return folder


T5 = {"model_type": "t5", "num_heads": 4, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20}
HUGE = 10**400  # a whole number past float's range: JSON and a spec both read it


def _t5(tmp: Path, name: str, heads: int = 4, **config) -> Path:
    """A T5 folder: its config (T5 updated by ``config``) and its two 8-bucket x ``heads`` bias tensors."""
    from safetensors.numpy import save_file

    folder = _model(tmp, name, {**T5, **config})
    bias = np.zeros((8, heads), np.float32)
    save_file({f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight": bias
               for stack in ("encoder", "decoder")}, folder / "model.safetensors")
    return folder


LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
         "intermediate_size": 128, "vocab_size": 32, "max_position_embeddings": 128}


def _torch_file(tmp: Path, name: str, make: Callable[[], object]) -> Path:
    import torch

    path = tmp / name
    torch.save(make(), path)
    return path


def _sparse():
    import torch

    return {"wpe.weight": torch.eye(4).to_sparse()}


def _meta():
    import torch

    return {"wpe.weight": torch.empty(8, 4, device="meta")}


def _nested():
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the prototype-stage warning
        return {"wpe.weight": torch.nested.nested_tensor([torch.zeros(2, 4), torch.zeros(3, 4)])}


def _recursive():
    loop: dict = {}
    loop["model"] = loop
    return loop


def _wrapped_deep():
    import torch

    inner: object = torch.zeros(4, 2)
    for _ in range(200):
        inner = {"state_dict": inner}
    return inner


# ---------------------------------------------------------------------------------------------------------------------
# the table


def _info(builder: Callable[[Path], Path | str], prefix: str = "file:", suffix: str = "") -> Callable[[Path], list[str]]:
    return lambda tmp: ["info", f"{prefix}{builder(tmp)}{suffix}"]


CASES = [
    # -- sizes, refused before allocating --
    Case("sinusoidal-positions", "`sinusoidal,positions=1000000000` (3 TB of float32)",
         lambda tmp: ["info", "sinusoidal,positions=1000000000"], "sinusoidal: a table of 1000000000 x 768 needs"),
    Case("sinusoidal-dim", "`sinusoidal,dim=1000000000`",
         lambda tmp: ["info", "sinusoidal,dim=1000000000"], "sinusoidal: a table of 1024 x 1000000000 needs"),
    Case("rotary-positions", "`rotary,positions=1000000000` (the plugin calls `explorer.check_shape`)",
         lambda tmp: ["info", "rotary,positions=1000000000"], "rotary: a table of 1000000000 x 128 needs",
         plugin=ROTARY),
    Case("rotary-dim", "`rotary,dim=1000000000`, refused before the frequencies are computed",
         lambda tmp: ["info", "rotary,dim=1000000000"], "rotary: a table of 2048 x 1000000000 needs", plugin=ROTARY),
    Case("random-walk-positions", "`random-walk,positions=1000000000`",
         lambda tmp: ["info", "random-walk,positions=1000000000"], "random-walk: a table of 1000000000 x 768 needs",
         plugin=RANDOM_WALK),
    Case("random-walk-dim", "`random-walk,dim=1000000000`",
         lambda tmp: ["info", "random-walk,dim=1000000000"], "random-walk: a table of 1024 x 1000000000 needs",
         plugin=RANDOM_WALK),
    Case("random-walk-negative-seed", "`random-walk,seed=-1` (numpy refuses negative seeds)",
         lambda tmp: ["info", "random-walk,seed=-1"], "parameter 'seed' must be >= 0, got -1", 2, plugin=RANDOM_WALK),
    Case("resolution-report", "`report --resolution 200000`: an R x R image of 160 GB",
         lambda tmp: ["report", "sinusoidal,positions=8,dim=4", "--resolution", "200000", "-o", str(tmp / "r.html")],
         "resolution 200000: an image of 200000 x 200000 needs 160 GB"),
    Case("resolution-analyze", "`analyze --resolution 200000`",
         lambda tmp: ["analyze", "sinusoidal,positions=8,dim=4", "--resolution", "200000"],
         "resolution 200000: an image of 200000 x 200000 needs"),
    Case("npz-claims-terabytes", "a 300-byte .npz whose member header claims 10^6 x 10^6 float32",
         _info(_claiming_npz), "wpe: an array of 1000000 x 1000000 needs 4 TB"),
    Case("npy-claims-terabytes", "a .npy whose header claims 10^6 x 10^6 float32",
         _info(_claiming_npy), "an array of 1000000 x 1000000 needs 4 TB"),
    Case("run-npy-claims-terabytes", "a spec file whose third line is a .npy claiming 10^6 x 10^6 float32, its "
         "first a missing file: refused from the header before the first is loaded",
         lambda tmp: ["analyze", "--specs", str(_spec_file(tmp, ["file:/nonexistent/a.npy", "sinusoidal,positions=8,dim=4",
                                                                  f"file:{_claiming_npy(tmp)}"]))],
         "line 3): a table of 1000000 x 1000000 needs 4 TB"),
    Case("tensor-over-the-limit", "a 4 MB safetensors table with `POSEMBED_MAX_ARRAY_BYTES=1e6`",
         _info(lambda tmp: _header_file(tmp / "big.safetensors", {"wpe.weight": _entry(0, 4_000_000, (1000, 1000))},
                                        b"\0" * 4_000_000)),
         "a tensor of 1000 x 1000 needs 4 MB, more than the 1 MB one array may take (set POSEMBED_MAX_ARRAY_BYTES",
         env={limits.ENV: "1e6"}),
    Case("limit-setting-not-a-number", "`POSEMBED_MAX_ARRAY_BYTES=lots`",
         lambda tmp: ["info", "sinusoidal"], "POSEMBED_MAX_ARRAY_BYTES='lots'", 2, env={limits.ENV: "lots"}),
    # -- files that are not regular files --
    Case("config-dev-zero", "a model folder whose config.json is a symlink to /dev/zero",
         _info(lambda tmp: _model(tmp, "zero", special="zero"), "hf:"), "config.json: is a character device"),
    Case("config-fifo", "a model folder whose config.json is a FIFO with no writer",
         _info(lambda tmp: _model(tmp, "fifo", special="fifo"), "hf:"), "config.json: is a FIFO", needs_fifo=True),
    Case("config-folder", "a model folder whose config.json is a folder",
         _info(lambda tmp: _model(tmp, "folder", special="folder"), "hf:"), "config.json: is a folder"),
    Case("rotary-config-dev-zero", "`rotary:FOLDER` whose config.json is /dev/zero",
         _info(lambda tmp: _model(tmp, "zero", special="zero"), "rotary:"), "config.json: is a character device",
         plugin=ROTARY),
    Case("rotary-config-fifo", "`rotary:FOLDER` whose config.json is a FIFO",
         _info(lambda tmp: _model(tmp, "fifo", special="fifo"), "rotary:"), "config.json: is a FIFO",
         plugin=ROTARY, needs_fifo=True),
    Case("shard-dev-zero", "an index whose shard is /dev/zero",
         _info(lambda tmp: _sharded(tmp, "zero"), "hf:"), "s1.safetensors: is a character device"),
    Case("shard-fifo", "an index whose shard is a FIFO",
         _info(lambda tmp: _sharded(tmp, "fifo"), "hf:"), "s1.safetensors: is a FIFO", needs_fifo=True),
    Case("shard-folder", "an index whose shard is a folder",
         _info(lambda tmp: _sharded(tmp, "folder"), "hf:"), "s1.safetensors: is a folder"),
    Case("file-fifo", "`file:` naming a FIFO",
         _info(lambda tmp: _special(tmp / "table.npy", "fifo")), "table.npy: is a FIFO", needs_fifo=True),
    # -- torch files --
    Case("torch-text", "a .pt file holding text",
         _info(lambda tmp: (tmp / "text.pt").write_text("hello, not a pickle\n") and tmp / "text.pt"),
         "not a PyTorch file"),
    Case("torch-sparse", "a .pt file whose table is a sparse tensor",
         _info(lambda tmp: _torch_file(tmp, "sparse.pt", _sparse)), "wpe.weight is a sparse_coo tensor"),
    Case("torch-meta", "a .pt file whose table is a meta tensor (a shape, no data)",
         _info(lambda tmp: _torch_file(tmp, "meta.pt", _meta)), "wpe.weight is a meta tensor"),
    Case("torch-nested", "a .pt file whose table is a nested tensor, chosen with key=",
         _info(lambda tmp: _torch_file(tmp, "nested.pt", _nested), suffix=",key=wpe.weight"),
         "wpe.weight is a nested tensor"),
    Case("torch-recursive", "a .pt file holding a dict that contains itself",
         _info(lambda tmp: _torch_file(tmp, "loop.pt", _recursive)), "holds no tensors"),
    Case("torch-wrapped-deep", "a .pt table wrapped in 200 nested state_dict dicts",
         _info(lambda tmp: _torch_file(tmp, "deep.pt", _wrapped_deep)), "holds no tensors"),
    # -- JSON nested too deeply --
    Case("safetensors-deep-json", "a safetensors header nested 100,000 deep",
         _info(lambda tmp: _header_file(tmp / "deep.safetensors", '{"a": ' + _deep(100_000) + "}")),
         "the safetensors header nests more than 64 levels deep"),
    Case("safetensors-deep-metadata", "__metadata__ nested 500 deep (parses, but deeper than the limit)",
         _info(lambda tmp: _header_file(tmp / "deepmeta.safetensors", '{"__metadata__": {"x": ' + _deep(500) + "}}")),
         "nests more than 64 levels deep"),
    Case("config-deep-json", "a config.json nested 100,000 deep",
         _info(lambda tmp: _model(tmp, "deep", '{"model_type": "gpt2", "x": ' + _deep(100_000) + "}"), "hf:"),
         "config.json nests more than 64 levels deep"),
    Case("index-deep-json", "a shard index nested 100,000 deep",
         _info(lambda tmp: (_model(tmp, "deepindex") / "model.safetensors.index.json").write_text(
             '{"weight_map": ' + _deep(100_000) + "}") and tmp / "deepindex", "hf:"),
         "the index nests more than 64 levels deep"),
    Case("rope-config-deep-json", "`rotary:FOLDER` whose config.json nests 100,000 deep",
         _info(lambda tmp: _model(tmp, "deep", json.dumps(LLAMA)[:-1] + ', "x": ' + _deep(100_000) + "}"), "rotary:"),
         "config.json nests more than 64 levels deep", plugin=ROTARY),
    # -- relative terms: T5's buckets, ALiBi's heads, positions --
    Case("t5-buckets-zero", "`hf:FOLDER` of a T5 with `relative_attention_num_buckets: 0`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=0), "hf:"),
         "config.json's relative_attention_num_buckets is 0, not a whole number from 2 to 1e+09"),
    Case("t5-buckets-negative", "a T5 decoder (`table=decoder`) with `relative_attention_num_buckets: -5`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=-5), "hf:", ",table=decoder"),
         "relative_attention_num_buckets is -5, not a whole number"),
    Case("t5-buckets-fraction", "a T5 with `relative_attention_num_buckets: 8.5` (a whole 8.0 is read as 8)",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=8.5), "hf:"),
         "relative_attention_num_buckets is 8.5, not a whole number"),
    Case("t5-buckets-nan", "a T5 with `relative_attention_num_buckets: NaN`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=float("nan")), "hf:"),
         "relative_attention_num_buckets is nan, not a whole number"),
    Case("t5-buckets-bool", "a T5 with `relative_attention_num_buckets: true`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=True), "hf:"),
         "relative_attention_num_buckets is True, not a whole number"),
    Case("t5-max-distance-float-huge", "a T5 with `relative_attention_max_distance: 1e300` (whole, out of range)",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_max_distance=1e300), "hf:"),
         "relative_attention_max_distance is 1e+300, not a whole number from 2 to 1e+09"),
    Case("t5-buckets-string", 'a T5 with `"relative_attention_num_buckets": "32"` (a string)',
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets="32"), "hf:"),
         "relative_attention_num_buckets is '32', not a whole number"),
    Case("t5-buckets-huge", "a T5 with `relative_attention_num_buckets: 10^30`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=10**30), "hf:"),
         "relative_attention_num_buckets is 1000000000000000000000000000000, not a whole number from 2 to 1e+09"),
    Case("t5-max-distance-zero", "a T5 with `relative_attention_max_distance: 0`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_max_distance=0), "t5:"),
         "relative_attention_max_distance is 0, not a whole number"),
    Case("t5-max-distance-past-float", "a T5 with `relative_attention_max_distance: 10^400` and `positions=40`",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_max_distance=HUGE), "hf:", ",positions=40"),
         "0000, not a whole number from 2 to 1e+09"),
    Case("t5-max-distance-within-exact", "a T5 decoder whose max distance 3 does not pass its 4 exact buckets",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_max_distance=3), "hf:", ",table=decoder"),
         "relative_attention_max_distance 3 must exceed the 4 exact buckets"),
    Case("t5-encoder-without-exact-buckets", "a T5 encoder of 3 buckets, whose bidirectional half has none exact",
         _info(lambda tmp: _t5(tmp, "t5", relative_attention_num_buckets=3), "hf:"),
         "relative_attention_num_buckets 3 leaves the encoder no exact bucket (it needs at least 4)"),
    Case("config-number-of-5000-digits", "a config.json holding a whole number of 5,000 digits",
         _info(lambda tmp: _model(tmp, "digits", '{"model_type": "bloom", "n_head": ' + "9" * 5000 + "}"), "hf:"),
         "config.json holds a number of more than"),
    Case("alibi-heads-zero", "`hf:FOLDER` of a BLOOM with `n_head: 0`",
         _info(lambda tmp: _model(tmp, "bloom", {"model_type": "bloom", "n_head": 0}), "hf:"),
         "config.json's n_head is 0, not a whole number >= 1"),
    Case("alibi-heads-string", 'a Falcon with `"alibi": true, "num_attention_heads": "12"`',
         _info(lambda tmp: _model(tmp, "falcon", {"model_type": "falcon", "alibi": True,
                                                   "num_attention_heads": "12"}), "hf:"),
         "config.json's num_attention_heads is '12', not a whole number >= 1"),
    Case("alibi-heads-huge", "a BLOOM with `n_head: 10^9`",
         _info(lambda tmp: _model(tmp, "bloom", {"model_type": "bloom", "n_head": 10**9}), "hf:"),
         "alibi: a relative term of 1000000000 heads; posembed takes at most 1024"),
    Case("alibi-heads-many", "`alibi,heads=50000000,positions=1` (small enough in bytes, hours of per-head work)",
         lambda tmp: ["info", "alibi,heads=50000000,positions=1"],
         "alibi: a relative term of 50000000 heads; posembed takes at most 1024"),
    Case("alibi-heads-past-float", "`alibi,heads=10^400`",
         lambda tmp: ["info", f"alibi,heads={HUGE}"], "heads; posembed takes at most 1024"),
    Case("t5-heads-many", "a T5 whose bias tensor has 8 buckets x 2000 heads",
         _info(lambda tmp: _t5(tmp, "t5", heads=2000), "hf:"),
         "t5: a relative term of 2000 heads; posembed takes at most 1024"),
    Case("alibi-bias-max-huge", "`alibi,scheme=mpt,alibi_bias_max=1e308`",
         lambda tmp: ["info", "alibi,scheme=mpt,alibi_bias_max=1e308"],
         "parameter 'alibi_bias_max' must be < 1e+06, got 1e+308", 2),
    Case("relative-positions-huge", "`t5:FOLDER,positions=10^12` (distances -(L-1)..L-1)",
         _info(lambda tmp: _t5(tmp, "t5"), "t5:", ",positions=1000000000000"),
         "t5: a table of 4 x 1999999999999 needs 32 TB"),
    Case("relative-positions-past-float", "`t5:FOLDER,table=decoder,positions=10^400`",
         _info(lambda tmp: _t5(tmp, "t5"), "t5:", f",table=decoder,positions={HUGE}"), "needs more than 1e+293 PB"),
    # -- config fields that are not numbers --
    Case("rope-theta-not-a-number", '`rotary:FOLDER` with `"rope_theta": "abc"`',
         _info(lambda tmp: _model(tmp, "abc", {**LLAMA, "rope_theta": "abc"}), "rotary:"),
         "config's rope_theta is 'abc', not a number > 0", plugin=ROTARY),
    Case("partial-rotary-factor-string", '`rotary:FOLDER` with `"partial_rotary_factor": "0.5"` (a string)',
         _info(lambda tmp: _model(tmp, "half", {**LLAMA, "partial_rotary_factor": "0.5"}), "rotary:"),
         "config's partial_rotary_factor is '0.5', not a number", plugin=ROTARY),
    Case("hf-rope-theta-not-a-number", '`hf:FOLDER` of a llama with `"rope_theta": "abc"` (still says: RoPE)',
         _info(lambda tmp: _model(tmp, "abc", {**LLAMA, "rope_theta": "abc", "partial_rotary_factor": "0.5"}), "hf:"),
         "llama has no position table: it uses rotary position embedding"),
    # -- strict safetensors, as the safetensors library --
    Case("safetensors-duplicate-key", "a header naming the same tensor twice",
         _info(lambda tmp: _header_file(tmp / "dup.safetensors", '{"wpe.weight": %s, "wpe.weight": %s}' % (
             json.dumps(_entry(0, 16)), json.dumps(_entry(16, 32))), b"\0" * 32)),
         "the safetensors header names 'wpe.weight' twice"),
    Case("safetensors-duplicate-field", "a tensor entry giving `dtype` twice",
         _info(lambda tmp: _header_file(tmp / "dupfield.safetensors",
                                        '{"wpe.weight": {"dtype": "F32", "dtype": "I32", "shape": [2, 2], '
                                        '"data_offsets": [0, 16]}}', b"\0" * 16)),
         "names 'dtype' twice"),
    Case("safetensors-overlapping-offsets", "two tensors on the same bytes",
         _info(lambda tmp: _header_file(tmp / "overlap.safetensors",
                                        {"wpe.weight": _entry(0, 16), "wte.weight": _entry(8, 24)}, b"\0" * 24)),
         "the data of tensors 'wpe.weight' and 'wte.weight' overlap"),
    Case("safetensors-metadata-not-a-string", "`__metadata__` with a number as a value",
         _info(lambda tmp: _header_file(tmp / "meta.safetensors",
                                        {"__metadata__": {"format": 1}, "wpe.weight": _entry(0, 16)}, b"\0" * 16)),
         "the safetensors __metadata__ value of 'format' is int, not a string"),
    Case("safetensors-metadata-nested", "`__metadata__` with an object as a value",
         _info(lambda tmp: _header_file(tmp / "metaobj.safetensors",
                                        {"__metadata__": {"x": {"y": "z"}}, "wpe.weight": _entry(0, 16)}, b"\0" * 16)),
         "value of 'x' is dict, not a string"),
    Case("safetensors-lone-surrogate", "a tensor name holding the JSON escape `\\ud800` (not valid UTF-8)",
         _info(lambda tmp: _header_file(tmp / "surrogate.safetensors",
                                        '{"wpe\\ud800": %s}' % json.dumps(_entry(0, 16)), b"\0" * 16)),
         "tensor name 'wpe\\ud800' holds a lone surrogate"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_file_gives_one_clear_line(case, tmp_path, monkeypatch):
    run_case(case, tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------------------------------------
# the limit itself


def test_limit_is_an_eighth_of_available_memory(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 8_000_000_000)
    assert limits.max_array_bytes() == 1_000_000_000
    monkeypatch.setattr(limits, "available_memory", lambda: None)
    assert limits.max_array_bytes() == limits.FALLBACK_BYTES
    monkeypatch.setenv(limits.ENV, "4e9")
    assert limits.max_array_bytes() == 4_000_000_000


def test_available_memory_respects_ulimit_v(monkeypatch):
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(resource, "getrlimit", lambda which: (3_000_000_000, resource.RLIM_INFINITY))
    monkeypatch.setattr(limits, "_read_int", lambda path: 1000 if path == "/proc/self/statm" else None)
    left = limits._address_space_left()
    assert left == 3_000_000_000 - 1000 * os.sysconf("SC_PAGE_SIZE")
    assert limits.available_memory() <= left


def test_check_shape_is_public_and_counts_itemsize(monkeypatch):
    monkeypatch.setenv(limits.ENV, "1000")
    explorer.check_shape((10, 25), "mine")  # 1000 bytes of float32: exactly the limit
    with pytest.raises(SizeLimitError, match=r"^mine: a table of 10 x 25 needs 2 kB, more than the 1 kB"):
        explorer.check_shape((10, 25), "mine", itemsize=8)
    assert issubclass(SizeLimitError, PosembedError)


def test_the_default_limit_lets_ordinary_tables_through():
    assert limits.max_array_bytes() >= 1024 * 768 * 4  # GPT-2's table, even on a small machine
    explorer.load("sinusoidal,positions=4096,dim=1024")


@pytest.mark.parametrize("spec", ["sinusoidal,positions=1000000000", "sinusoidal,dim=1000000000",
                                  "file:{npz}", "file:{npy}"])
def test_claims_are_refused_before_allocating(spec, tmp_path):
    spec = spec.format(npz=_claiming_npz(tmp_path), npy=_claiming_npy(tmp_path))
    tracemalloc.start()
    try:
        with pytest.raises(SizeLimitError):
            explorer.load(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


def test_a_resolution_is_checked_wherever_it_is_given():
    with pytest.raises(SizeLimitError, match="resolution 200000"):
        explorer.analyze(explorer.load("sinusoidal,positions=8,dim=4"), resolution=200_000)


# ---------------------------------------------------------------------------------------------------------------------
# the one JSON reader and strict headers, directly


def test_json_depth_guard_lets_ordinary_nesting_through():
    data = st.json_object(json.dumps({"a": {"b": {"c": [[1, 2], {"d": None}]}}}).encode(), "x", "config.json")
    assert data["a"]["b"]["c"][1] == {"d": None}
    depth_64 = "[" * 63 + "]" * 63
    assert st.json_object(b'{"x": ' + depth_64.encode() + b"}", "x", "config.json")
    with pytest.raises(ProviderError, match="nests more than 64"):
        st.json_object(b'{"x": [' + depth_64.encode() + b"]}", "x", "config.json")


def test_duplicate_keys_are_refused_only_where_asked():
    raw = b'{"a": 1, "a": 2}'
    assert st.json_object(raw, "config.json", "config.json") == {"a": 2}  # as transformers reads a config
    with pytest.raises(ProviderError, match="names 'a' twice"):
        st.json_object(raw, "h", "the safetensors header", unique_keys=True)


def test_files_the_safetensors_library_reads_are_read_the_same(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "lib.safetensors"
    save_file({"wpe.weight": SMALL_TABLE, "empty": np.zeros((0, 4), np.float32), "b": np.ones(3, np.float32)},
              path, metadata={"format": "np", "note": "é"})
    header = st.read_header(path)
    assert header.metadata == {"format": "np", "note": "é"}
    np.testing.assert_array_equal(explorer.load(f"file:{path},key=wpe.weight").matrix, load_file(path)["wpe.weight"])


@pytest.mark.parametrize("case", [c for c in CASES if c.id.startswith("safetensors-") and "deep" not in c.id],
                         ids=lambda c: c.id)
def test_the_safetensors_library_refuses_what_posembed_refuses(case, tmp_path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(case.argv(tmp_path)[1].removeprefix("file:").split(",")[0])
    with pytest.raises(SafetensorError):
        load_file(path)


# ---------------------------------------------------------------------------------------------------------------------
# lone surrogates in tensor names


def test_lone_surrogate_in_a_torch_tensor_name_is_escaped_everywhere(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.save({"wpe.weight\ud800": torch.ones(8, 4)}, tmp_path / "surrogate.pt")
    spec = f"file:{tmp_path / 'surrogate.pt'}"
    emb = explorer.load(spec)
    assert emb.tensor == "wpe.weight\\ud800"
    info = run(["info", spec])
    assert info.exit_code == 0 and "wpe.weight\\ud800" in info.stdout, info.stderr
    exported = run(["export", spec, "-o", str(tmp_path / "out.safetensors")])
    assert exported.exit_code == 0, exported.stderr
    assert st.read_header(tmp_path / "out.safetensors").metadata["posembed.tensor"] == "wpe.weight\\ud800"
    report = run(["report", spec, "-o", str(tmp_path / "out.html")])
    assert report.exit_code == 0, report.stderr
    assert "ud800" in (tmp_path / "out.html").read_text(encoding="utf-8")  # spelled out (JSON may escape the \\)
