"""Local training runs as series: a glob target (hf:runs/out/checkpoint-*) in step order, read as carefully as any
other input; two swept things at once."""

import json
import os
import warnings

import numpy as np
import pytest

from cli_run import assert_one_error_line, run_cli
from explorer.errors import PosembedWarning, SpecError
from explorer.loading import globs, series


def folders(root, *names):
    for name in names:
        (root / name).mkdir(parents=True)
    return root


def members(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosembedWarning)
        return series.expand_series(text)


def test_a_glob_of_checkpoint_folders_is_a_series_in_step_order_not_name_order(tmp_path):
    folders(tmp_path, "checkpoint-1000", "checkpoint-500", "checkpoint-10000", "checkpoint-1500")
    (tmp_path / "config.json").write_text("{}")  # a Trainer's run folder holds files too: not matched by the glob
    assert members(f"hf:{tmp_path}/checkpoint-*") == [
        f"hf:{tmp_path}/checkpoint-{step}" for step in (500, 1000, 1500, 10000)]


def test_seeds_by_steps_go_seed_by_seed_each_in_step_order(tmp_path):
    for seed in (2, 1):
        folders(tmp_path, *(f"seed-{seed}/checkpoint-{step}" for step in (200, 100)))
    assert members(f"hf:{tmp_path}/seed-*/checkpoint-*,table=auto") == [
        f"hf:{tmp_path}/seed-{seed}/checkpoint-{step},table=auto" for seed in (1, 2) for step in (100, 200)]


def test_two_swept_options_make_every_pair_the_first_outer():
    assert members("sinusoidal,base=100|10000,dim=8|16|32") == [
        f"sinusoidal,base={b},dim={d}" for b in (100, 10000) for d in (8, 16, 32)]
    with pytest.raises(SpecError, match="at most two things"):
        series.expand_series("sinusoidal,base=1|2,dim=8|16,positions=4|8")


def test_a_target_may_list_folders_with_a_bar(tmp_path):
    folders(tmp_path, "a", "b")
    assert members(f"hf:{tmp_path}/b|{tmp_path}/a") == [f"hf:{tmp_path}/b", f"hf:{tmp_path}/a"]


def test_symbolic_links_among_the_matches_are_left_out_with_a_warning(tmp_path):
    folders(tmp_path, "run/checkpoint-1", "elsewhere/checkpoint-9")
    os.symlink(tmp_path / "elsewhere" / "checkpoint-9", tmp_path / "run" / "checkpoint-2")
    os.symlink(tmp_path / "elsewhere", tmp_path / "linked")  # a matched folder that is a link is not walked into
    with pytest.warns(PosembedWarning, match="left out 1 symbolic link"):
        assert series.expand_series(f"hf:{tmp_path}/run/checkpoint-*") == [f"hf:{tmp_path}/run/checkpoint-1"]
    with pytest.warns(PosembedWarning, match="left out 2 symbolic links"):  # linked/ and run/checkpoint-2
        assert series.expand_series(f"hf:{tmp_path}/*/checkpoint-*") == [
            f"hf:{tmp_path}/elsewhere/checkpoint-9", f"hf:{tmp_path}/run/checkpoint-1"]


@pytest.mark.parametrize("layout,pattern,reason", [
    ((), "checkpoint-*", "matches no folder or file"),
    (("checkpoint-1/", "checkpoint-2"), "checkpoint-*", "matches 1 folder and 1 file"),
    (("checkpoint-1,revision=x/",), "checkpoint-*", "does not read back as itself"),
    (("checkpoint-1\nx/",), "checkpoint-*", "control character"),
    (("checkpoint-1|2/",), "checkpoint-*", "control character or '|'"),
    ((".checkpoint-1/",), "*", "matches no folder or file"),  # hidden names only when the pattern asks
])
def test_a_glob_that_cannot_be_a_clean_series_is_one_error_line(tmp_path, layout, pattern, reason):
    for name in layout:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text("x")
    out = tmp_path / "report.html"
    result = run_cli(["report", f"hf:{tmp_path}/{pattern}", "-o", str(out)])
    assert_one_error_line(result, reason, exit_code=2)
    assert not out.exists()


def test_a_fifo_or_socket_is_never_matched(tmp_path):
    os.mkfifo(tmp_path / "checkpoint-1")
    with pytest.raises(SpecError, match="matches no folder or file"):
        series.expand_series(f"file:{tmp_path}/checkpoint-*")


def test_too_many_matches_or_entries_are_refused_before_anything_loads(tmp_path, monkeypatch):
    folders(tmp_path, *(f"checkpoint-{k}" for k in range(6)))
    monkeypatch.setattr(globs, "MAX_MATCHES", 5)
    with pytest.raises(SpecError, match="more than 5 entries"):
        series.expand_series(f"hf:{tmp_path}/checkpoint-*")
    monkeypatch.setattr(globs, "MAX_MATCHES", 100)
    monkeypatch.setattr(globs, "MAX_SCANNED", 3)
    with pytest.raises(SpecError, match="more than 3 directory entries"):
        series.expand_series(f"hf:{tmp_path}/checkpoint-*")


def test_a_path_really_named_with_a_star_is_read_as_it_is(tmp_path):
    folders(tmp_path, "odd*name", "odd-other")
    assert members(f"hf:{tmp_path}/odd*name") == [f"hf:{tmp_path}/odd*name"]


@pytest.mark.parametrize("name,step", [("checkpoint-500", 500), ("step1000", 1000), ("global_step_2000", 2000),
                                       ("multiberts-seed_3-step_20k", 20000), ("seed-7", 7), ("main", None)])
def test_the_step_is_read_from_a_name(name, step):
    assert globs.step_of(name) == step


def tiny_gpt2(path, seed):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_positions=24, n_embd=8, n_layer=1, n_head=2, vocab_size=32))
    model.save_pretrained(path)
    return model.transformer.wpe.weight.detach().numpy().copy()


def test_a_trainers_run_folder_is_analysed_checkpoint_by_checkpoint_in_step_order(tmp_path):
    run = tmp_path / "out"
    tables = {step: tiny_gpt2(run / f"checkpoint-{step}", seed) for seed, step in enumerate((1000, 500, 1500))}
    (run / "trainer_state.json").write_text("{}")
    result = run_cli(["analyze", f"hf:{run}/checkpoint-*", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [t["spec"] for t in data["tables"]] == [f"hf:{run}/checkpoint-{s}" for s in (500, 1000, 1500)]
    for table, step in zip(data["tables"], (500, 1000, 1500)):
        assert table["scalars"]["value_max"] == pytest.approx(float(np.max(tables[step])), rel=1e-6)
    assert len(data["comparisons"]) == 3
