"""tools.launch_check: the cases mutation testing (mutmut, docs/tools.md "Mutation testing") found untested: the
exact table and JSON a user reads, each check's edges, and the fix each message names.

With these tests and the other files of the selection in docs/tools.md, 21 of the 430 mutants of
tools/launch_check.py survive (mutmut 3.8.1, 2026-12-07). None changes anything a tool or a user can observe
(`mutmut show NAME`):
- x_shard_problem__mutmut_7, _8, _11: rsplit(".") / split(".", 1) / rsplit(".", 2) for rsplit(".", 1) on the
  file name: they differ only for a name with a second dot before ".bin" (fineweb_train_000002.000003.bin),
  which the downloader never writes; such a name gets the fix for chunk 1 or chunk 2.
- x_shard_problem__mutmut_42, _43: f.read(None) / f.read(1025) for f.read(1024): only the first 12 bytes are
  read from the header and a short header is still short; read(None) costs time, not a different answer.
- x_shard_token_count__mutmut_12, _15, _21: an unsigned count: shard_token_count runs only on a whole shard,
  whose size (1024 + 2 * count bytes) made the count non-negative, and the two readings agree below 2**31.
- x_signature_problems__mutmut_1, _2, _3, _8: other values bound to set_hparams's parameters: binding checks
  the parameters' number and names, never the values.
- x_directory_problems__mutmut_12, _14: NotADirectoryError without its errno: the message reads strerror,
  which is "Not a directory" either way (`e.strerror or e`).
- x_micro_batch_note__mutmut_15: `<=` for `<`: micro_batch_seqs equal to a rank's share divides it.
- x_main__mutmut_41, _42, _43: another module name for the loaded script (tiny.load_script's own default or
  another string): the name is only the key the script is loaded under.
- x_main__mutmut_55, _57, _70: json.dumps with indent None or 2 for 1: the same JSON, laid out otherwise.
"""
import json
import os
import re

import numpy as np
import pytest

from data.shards import write_shard
from tools import launch_check, tiny
from tools_logtext import ROOT

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")


def header_shard(path, ints, tokens):
    """A shard file whose first header ints are `ints` (the rest zero), then `tokens` uint16 tokens."""
    header = np.zeros(256, dtype="<i4")
    header[:len(ints)] = ints
    path.write_bytes(header.tobytes() + np.zeros(tokens, dtype="<u2").tobytes())
    return str(path)


def damaged(tmp_path, name):
    """A shard named `name` one token short of what its header promises."""
    return header_shard(tmp_path / name, [20240520, 1, 10], 9)


def fix_of(problem):
    return problem.rsplit("cached_fineweb10B.py ", 1)[1]


# -----------------------------------------------------------------------------
# shard_problem / shard_token_count: the chunk count each fix names, the header's signed count


@pytest.mark.parametrize("name, chunks", [
    ("fineweb_train_000001.bin", "1"), ("fineweb_train_000007.bin", "7"), ("fineweb_train_000150.bin", "103"),
    ("fineweb_val_000000.bin", "1"), ("fineweb_val_000005.bin", "1"), ("fineweb_train_\u0667.bin", "1"),
    ("shard.bin", "1")])
def test_the_fix_downloads_up_to_the_damaged_train_chunk(tmp_path, name, chunks):
    """A train shard's number is the chunk count to download again (at most 103); a val shard, a name without a
    number or with a non-ASCII digit (int() would read it) get 1."""
    problem = launch_check.shard_problem(damaged(tmp_path, name))
    assert problem.startswith(f"{tmp_path / name}: truncated or damaged: ") and \
        fix_of(problem) == f"{chunks} (it replaces only bad files)", problem


def test_a_negative_token_count_in_the_header_is_read_as_negative(tmp_path):
    path = header_shard(tmp_path / "fineweb_train_000001.bin", [20240520, 1, -1], 0)
    assert launch_check.shard_problem(path).startswith(
        f"{path}: truncated or damaged: 1024 bytes, but its header promises -1 tokens = 1022 bytes; "), \
        launch_check.shard_problem(path)


def test_only_the_count_field_of_the_header_is_read(tmp_path):
    """The header's fourth int is not part of the count (a reader of 5 bytes at offset 8 would add it)."""
    path = header_shard(tmp_path / "fineweb_train_000001.bin", [20240520, 1, 3, 5], 3)
    assert launch_check.shard_problem(path) is None
    assert launch_check.shard_token_count(path) == 3


# -----------------------------------------------------------------------------
# value_problems, env_problems: each bound, both sides


def module_with(**values):
    module = tiny.load_script(SCRIPT, "launch_check_values")
    for name, value in values.items():
        setattr(module, name, value)
    return module


@pytest.mark.parametrize("values", [dict(train_steps=1), dict(checkpoint_every=0), dict(checkpoint_every=0.5),
                                    dict(checkpoint_every=600), dict(micro_batch_seqs=1)])
def test_the_smallest_values_are_accepted(values):
    assert launch_check.value_problems(module_with(**values)) == []


def test_a_setup_value_the_script_lacks_is_reported_not_raised():
    module = module_with()
    del module.train_steps
    assert launch_check.value_problems(module) == ["train_steps = None: must be a whole number >= 1"]


@pytest.mark.parametrize("seed, ok", [("0", True), ("1234", True), (str(2 ** 63 - 1), True), (str(2 ** 63), False),
                                      (str(2 ** 64 - 1), False)])
def test_seed_bounds(seed, ok):
    problems = launch_check.env_problems(dict(SEED=seed))
    assert problems == ([] if ok else [f"SEED={seed!r}: must be a whole number from 0 to 2**63 - 1, such as the "
                                       "seed a log's 'trial i/n seed S' line names"])


def test_a_rank_without_a_world_size_is_one_rank_of_one():
    assert launch_check.env_problems(dict(RANK="1")) == [
        "world size 1 does not divide 8 (or rank 1 is not below it): launch with torchrun --nproc_per_node 1, 2, "
        "4 or 8"]
    assert launch_check.env_problems(dict(RANK="1", WORLD_SIZE="2")) == []


# -----------------------------------------------------------------------------
# data_problems: a missing val shard, a second val shard, the val shard's length at the bound


def data_module(tmp_path, val_names=("fineweb_val_000000.bin",)):
    """The script pointed at one train shard and val shards of exactly val_tokens + 2 tokens, the least it takes."""
    module = module_with()
    (tmp_path / "d").mkdir()
    write_shard(tmp_path / "d" / "fineweb_train_000001.bin", np.zeros(100, dtype=np.int64))
    for name in val_names:
        write_shard(tmp_path / "d" / name, np.zeros(module.val_tokens + 2, dtype=np.int64))
    module.train_files, module.val_files = (str(tmp_path / "d" / f"fineweb_{k}_*.bin") for k in ("train", "val"))
    return module


def test_train_shards_without_a_val_shard_name_the_val_files(tmp_path):
    module = data_module(tmp_path, val_names=())
    assert launch_check.data_problems(module) == [f"no shards at {module.val_files} (run from the repo root); "
                                                  "download them with: python data/cached_fineweb10B.py 20"]


def test_a_val_shard_of_exactly_val_tokens_plus_two_is_enough(tmp_path):
    assert launch_check.data_problems(data_module(tmp_path)) == []


def test_a_second_val_shard_is_one_problem_even_when_damaged(tmp_path):
    module = data_module(tmp_path)
    damaged(tmp_path / "d", "fineweb_val_000001.bin")
    (problem,) = launch_check.data_problems(module)
    assert "the val set is the one shard fineweb_val_000000.bin" in problem


# -----------------------------------------------------------------------------
# directory_problems: a directory that exists and cannot be written to


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_directory_where_no_file_can_be_created():
    """/proc exists and takes no new file (even for root, who may write any ordinary directory)."""
    module = module_with(log_dir="/proc/harness_logs", checkpoint_dir="/proc/harness_logs")
    (problem,) = launch_check.directory_problems(module)
    assert problem.startswith("cannot write to /proc/harness_logs (") and problem.endswith(
        "): the run's log and checkpoints go there; make it writable or set log_dir / checkpoint_dir in the "
        "Setup section"), problem


# -----------------------------------------------------------------------------
# torch_problems: torch 2.10, an A100, CUDA, all three needed


class FakeCuda:
    def __init__(self, capability):
        self.capability = capability

    def is_available(self):
        return True

    def get_device_capability(self):
        return self.capability


@pytest.mark.parametrize("version, capability, device_type, refused", [
    ("2.10.0+cu128", (8, 0), "cuda", True), ("2.11.0", (8, 0), "cuda", False),
    ("2.10.0", (9, 0), "cuda", False), ("2.10.0", (8, 0), "cpu", False)])
def test_torch_2_10_is_refused_on_an_a100_only(monkeypatch, version, capability, device_type, refused):
    import torch
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch, "cuda", FakeCuda(capability))
    problems = launch_check.torch_problems(module_with(device_type=device_type))
    assert problems == (["torch 2.10 with torch.compile gives NaN losses on A100 (public modded-nanogpt issue "
                         "#268): install torch 2.11 or newer"] if refused else [])


def test_launch_problems_is_the_scripts_own_line(tmp_path):
    module = module_with(train_files=str(tmp_path / "none_*.bin"))
    with pytest.raises(SystemExit) as refusal:
        module.check_launch()
    assert launch_check.launch_problems(module) == [str(refusal.value.code)]


# -----------------------------------------------------------------------------
# micro_batch_note: every world size named, integer shares


def test_micro_batch_note_names_each_world_size_it_does_not_divide():
    module = module_with(micro_batch_seqs=48)  # 512 sequences a step: 512, 256, 128, 64 a rank
    assert launch_check.micro_batch_note(module) == [
        f"on {w} GPU(s): micro_batch_seqs = 48 does not divide the {512 // w} sequences of a rank" for w in (1, 2, 4, 8)]
    assert launch_check.micro_batch_note(module_with(micro_batch_seqs=100)) == [
        f"on {w} GPU(s): micro_batch_seqs = 100 does not divide the {512 // w} sequences of a rank" for w in (1, 2, 4)]
    assert launch_check.micro_batch_note(module_with(micro_batch_seqs=64)) == []
    assert launch_check.micro_batch_note(module_with(micro_batch_seqs=None)) == []
    assert launch_check.micro_batch_note(module_with(micro_batch_seqs=48, train_steps=0)) == []  # values first


# -----------------------------------------------------------------------------
# main(): the table, the JSON, the default script, the error line, --help


def good_copy(tmp_path):
    """A copy of the script with 30 steps on tiny shards: every check passes."""
    train = tmp_path / "d" / "fineweb_train_000001.bin"
    train.parent.mkdir()
    steps, batch = 30, tiny.TINY["batch_size"]
    write_shard(train, np.zeros((steps + 1) * batch + 1, dtype=np.int64))
    write_shard(tmp_path / "d" / "fineweb_val_000000.bin", np.zeros(tiny.TINY["val_tokens"] + 2, dtype=np.int64))
    setup = "".join(f"{k} = {v!r}\n" for k, v in dict(
        tiny.TINY, train_files=str(tmp_path / "d" / "fineweb_train_*.bin"), log_dir=str(tmp_path / "logs"),
        val_files=str(tmp_path / "d" / "fineweb_val_*.bin"), checkpoint_dir=str(tmp_path / "ckpt")).items())
    marker = "\n# -----------------------------------------------------------------------------\n# Init & Optim"
    code = open(SCRIPT).read().replace(marker, "\n" + setup + marker).replace("train_steps = 3250\n",
                                                                              f"train_steps = {steps}\n")
    path = tmp_path / "train_gpt_simple.py"
    path.write_text(code)
    return str(path)


def test_the_table_and_the_json(tmp_path, capsys, monkeypatch):
    for name in ("SEED", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    script = good_copy(tmp_path)
    assert launch_check.main([script]) == 0
    width = max(len(name) for name, _, _ in launch_check.CHECKS)
    assert capsys.readouterr().out.splitlines() == [f"{name:<{width}}  PASS  {what}" for name, what, _ in
                                                    launch_check.CHECKS] + ["8 of 8 checks pass"]
    monkeypatch.setenv("SEED", "x")
    assert launch_check.main([script]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[3] == f"{'environment':<{width}}  FAIL  SEED, RANK, WORLD_SIZE"
    assert lines[4] == " " * (width + 8) + launch_check.env_problems()[0]
    assert lines[-1] == "7 of 8 checks pass; failing: environment"
    assert launch_check.main([script, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["script"] == script and report["ok"] is False
    assert [(r["check"], r["what"], r["ok"]) for r in report["checks"]] == [
        (name, what, name != "environment") for name, what, _ in launch_check.CHECKS]
    monkeypatch.delenv("SEED")
    assert launch_check.main([script, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_the_default_script_is_train_gpt_simple_in_the_current_directory(tmp_path, capsys, monkeypatch):
    for name in ("SEED", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    good_copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert launch_check.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["script"] == "train_gpt_simple.py"


def test_a_script_that_does_not_load_is_one_line_on_stderr(tmp_path, capsys):
    assert launch_check.main([str(tmp_path / "nope.py")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: ") and out.err.count("\n") == 1
    assert str(tmp_path / "nope.py") in out.err


def test_help_names_the_command(capsys):
    with pytest.raises(SystemExit):
        launch_check.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tools.launch_check [-h] [--json] [script]")
    assert "Check a launch of train_gpt_simple.py" in out and "The script itself stops" not in out  # one paragraph
    assert any(re.fullmatch(r" +--json +print the checks as JSON", line) for line in out.splitlines()), out
