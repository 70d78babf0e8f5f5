"""DeBERTa's ``rel_embeddings`` rows through ``hf:``, labelled with the key - query distances they serve: each label
checked against the rows transformers' own attention gathers, on tiny checkpoints made with its classes."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

import explorer
from explorer.errors import ProviderError
from explorer.loaders.deberta import AXIS_NAME, log_bucket_position, row_axis

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=30,
            relative_attention=True, position_biased_input=False, pos_att_type=["c2p", "p2c"])
V3 = dict(position_buckets=256, max_position_embeddings=512, max_relative_positions=-1, share_att_key=True,
          norm_rel_ebd="layer_norm", pos_att_type="p2c|c2p")
# (name, model class, config, input length): every length reaches past the clamp to both end rows
CASES = [
    ("v2, no buckets", "DebertaV2", dict(max_relative_positions=12), 30),
    ("v2, 8 buckets up to 32", "DebertaV2", dict(position_buckets=8, max_relative_positions=32), 80),
    ("v2, 16 buckets up to 10: unused rows", "DebertaV2", dict(position_buckets=16, max_relative_positions=10), 24),
    ("v3-like, 256 buckets up to 512", "DebertaV2", V3, 560),
    ("v1, span 12, long input", "Deberta", dict(max_relative_positions=12), 30),
    ("v1, span 12, short input", "Deberta", dict(max_relative_positions=12), 7),
    ("v1, span = max_position_embeddings", "Deberta", dict(max_position_embeddings=20), 26),
]


def tiny(family: str, settings: dict, folder) -> object:
    torch.manual_seed(7)
    config = getattr(transformers, f"{family}Config")(**{**TINY, **settings})
    model = getattr(transformers, f"{family}Model")(config).eval()
    model.save_pretrained(folder)
    return model


def gathered_rows(model, length: int, monkeypatch) -> list[np.ndarray]:
    """Run ``model`` on ``length`` tokens; for its c2p and p2c terms, the ``rel_embeddings`` row each query q and key
    k read (``rows[q, k]``), as its attention really gathers them: the index of each ``torch.gather`` call, offset by
    where the rows it projects start in the table (v1 slices them around the middle for short inputs)."""
    table = model.encoder.get_rel_embedding().detach()
    starts, indices = [], []

    def projected(module, args):
        rows = args[0].detach().reshape(-1, args[0].shape[-1])
        match = torch.nonzero((table == rows[0]).all(dim=1)).flatten().tolist()
        if match and torch.equal(table[match[0]:match[0] + len(rows)], rows):
            starts.append(match[0])

    real = torch.gather

    def gather(values, dim, index, **kw):
        indices.append(index.detach().reshape(-1, length, length)[0].numpy())
        return real(values, dim, index, **kw)

    attention = model.encoder.layer[0].attention.self
    hooks = [m.register_forward_pre_hook(projected) for m in attention.modules() if isinstance(m, torch.nn.Linear)]
    monkeypatch.setattr(torch, "gather", gather)
    try:
        with torch.no_grad():
            model(input_ids=torch.randint(1, 30, (1, length)))
    finally:
        monkeypatch.undo()
        for hook in hooks:
            hook.remove()
    assert len(indices) == 2 and len(set(starts)) == 1  # c2p then p2c, both over the same rows
    c2p, p2c = (starts[0] + index for index in indices)
    return [c2p, p2c.T]  # p2c gathers key by query, then transposes


def label_bounds(label: str) -> tuple[float, float] | None:
    """The distances a label names, as (low, high) with infinite open ends; None for ``unused``."""
    if label == "unused":
        return None
    if label.startswith((">= ", "<= ")):
        value = int(label[3:])
        return (value, math.inf) if label[0] == ">" else (-math.inf, value)
    low, _, high = label.partition("..")
    return int(low), int(high or low)


@pytest.mark.parametrize("name, family, settings, length", CASES, ids=[c[0] for c in CASES])
def test_each_row_label_holds_exactly_the_distances_transformers_reads_that_row_for(
        tmp_path, monkeypatch, name, family, settings, length):
    model = tiny(family, settings, tmp_path)
    emb = explorer.load(f"hf:{tmp_path}")
    assert emb.matrix.tobytes() == model.encoder.rel_embeddings.weight.detach().numpy().tobytes()
    assert emb.rows is not None and emb.rows.name == AXIS_NAME and emb.rows.reverse
    assert emb.rows.name == AXIS_NAME and "rows labelled with" in emb.description
    bounds = [label_bounds(label) for label in emb.rows.labels]
    # the labels split the integers: each distance is named by exactly one row, in descending order
    named = [b for b in bounds if b is not None]
    assert named[0][1] == math.inf and named[-1][0] == -math.inf
    assert all(upper[0] == lower[1] + 1 for upper, lower in zip(named, named[1:]))
    distance = np.subtract.outer(np.arange(length), np.arange(length)).T  # distance[q, k] = k - q
    gathered = gathered_rows(model, length, monkeypatch)
    for rows in gathered:
        for q in range(length):
            for k in range(length):
                low, high = bounds[rows[q, k]]
                assert low <= distance[q, k] <= high, (name, q, k, emb.rows.labels[rows[q, k]])
    # and every row a label says serves a distance of this input is read for it
    read = set(gathered[0].flatten().tolist())
    for row, bound in enumerate(bounds):
        reached = bound is not None and max(bound[0], 1 - length) <= min(bound[1], length - 1)
        assert (row in read) == reached, (name, row, emb.rows.labels[row])


def test_v3_labels_read_exact_near_zero_then_log_buckets_then_open_ends():
    config = {"model_type": "deberta-v2", "relative_attention": True, **V3}
    labels = row_axis(config, 512).labels
    assert [labels[r] for r in (0, 1, 127, 128, 255, 256, 257, 383, 384, 510, 511)] == [
        ">= 512", "506..511", "129", "128", "1", "0", "-1", "-127", "-128", "-505..-500", "<= -506"]
    assert row_axis({**config, "model_type": "deberta"}, 1024).labels[:2] == (">= 512", "511")  # v1: no buckets


@pytest.mark.parametrize("buckets, max_position", [(256, 512), (8, 32), (16, 64), (128, 512), (64, 256),
                                                   (512, 4096), (6, 1000)])
def test_log_buckets_equal_transformers_make_log_bucket_position(buckets, max_position):
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    distances = torch.arange(-5000, 5001)
    theirs = make_log_bucket_position(distances, buckets, max_position).to(torch.long).numpy()
    np.testing.assert_array_equal(log_bucket_position(distances.numpy(), buckets, max_position), theirs)


def test_log_buckets_equal_transformers_up_to_the_clamp_for_many_settings():
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    # numpy's log and torch's float32 log may round apart; below the end rows' clamp no bucket may differ
    for buckets in (4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 384, 512):
        for max_position in {buckets // 2 + 2, buckets, 2 * buckets, 4 * buckets, 8 * buckets, 512, 4096}:
            clamp = int(np.flatnonzero(log_bucket_position(np.arange(100_000), buckets, max_position) >= buckets)[0])
            distances = torch.arange(-clamp, clamp + 1)
            theirs = make_log_bucket_position(distances, buckets, max_position).to(torch.long).numpy()
            np.testing.assert_array_equal(log_bucket_position(distances.numpy(), buckets, max_position), theirs)


def test_rows_past_twice_the_span_are_unused_and_too_few_rows_are_refused():
    config = {"model_type": "deberta", "relative_attention": True, "max_relative_positions": 3}
    assert row_axis(config, 9).labels == (">= 3", "2", "1", "0", "-1", "<= -2", "unused", "unused", "unused")
    with pytest.raises(ProviderError, match="gives 6 distance rows, but the table has 5"):
        row_axis(config, 5)


HOSTILE = [
    ({"position_buckets": "8"}, "position_buckets is '8', not a whole number"),
    ({"position_buckets": 8.0}, "position_buckets is 8.0"),
    ({"max_relative_positions": -1, "max_position_embeddings": None}, "no max_position_embeddings"),
    ({"max_relative_positions": True}, "max_relative_positions is True"),
    ({"max_relative_positions": 2**40}, "between -2^31 and 2^31"),
    ({"max_relative_positions": 10**400}, "between -2^31 and 2^31"),
    ({"max_relative_positions": 2**31 - 1}, "reach the end rows beyond distance"),
    ({"position_buckets": 2**30}, "gives 2147483648 distance rows, but the table has 16"),
    ({"position_buckets": 3}, "make no logarithmic buckets"),
    ({"max_relative_positions": 4}, "make no logarithmic buckets"),
    ({"position_buckets": -5, "max_relative_positions": -5, "max_position_embeddings": -5}, "not a number >= 1"),
    ({"relative_attention": "yes"}, "relative_attention: true"),
    ({"position_buckets": "x" * 10**6}, "position_buckets is '" + "x" * 39 + "..., not"),
]


@pytest.mark.parametrize("change, reason", HOSTILE, ids=[r[:40] for _, r in HOSTILE])
def test_a_hostile_config_reads_the_table_without_row_labels_and_says_why_fast(tmp_path, change, reason):
    model = tiny("DebertaV2", dict(position_buckets=8, max_relative_positions=32), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    start = time.perf_counter()
    emb = explorer.load(f"hf:{tmp_path}")
    assert time.perf_counter() - start < 5
    assert emb.rows is None and emb.matrix.tobytes() == model.encoder.rel_embeddings.weight.detach().numpy().tobytes()
    note = emb.description.split("; rows not labelled: ")[1]
    assert reason in note and "\n" not in note and len(note) < 200


def test_offset_rows_drop_their_labels_too(tmp_path):
    tiny("DebertaV2", dict(max_relative_positions=3), tmp_path)
    emb = explorer.load(f"hf:{tmp_path},offset=2")
    assert emb.rows.labels == ("1", "0", "-1", "<= -2")
