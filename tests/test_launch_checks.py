"""What train_gpt_simple.py refuses before any work, and what it survives while training.

Each refusal is one line (SystemExit) that names the cause and the fix, raised before the log or the
model exists; each survival keeps the log and the previous checkpoint. Runs go through tools.tiny.run
(the script's own main() on the tiny model). What only explains a fault (the Setup values' types, SEED,
set_hparams's arguments, each shard's header, the val shard, the directories) is tools.launch_check's,
tested here on the same inputs.
"""
import errno
import functools
import json
import glob
import os
import re

import numpy as np
import pytest
import torch

import ckpt_instruments as ci
from data.shards import write_shard
from tools import launch_check, tiny
from tools_logtext import ROOT

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
VAL_LINE = re.compile(r"^step:(\d+)/(\d+) val_loss:(\d+\.\d{5}) ", re.M)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny.tiny_data(str(tmp_path_factory.mktemp("data")), 90)  # shards of 40 steps: 3 train shards


def overrides(data, tmp, steps=6, **extra):
    train, val = data
    over = dict(tiny.TINY, train_files=train, val_files=val, train_steps=steps, log_dir=str(tmp / "logs"),
                checkpoint_dir=str(tmp / "ckpt"))
    over.update(extra)
    return over


def run(tmp, over, script=SCRIPT, world=1, trials=1, instrument=None, resume=""):
    return tiny.run(script, world, over, trials, instrument, env=dict(SEED="5", RESUME=resume))


def refusal(tmp, over, script=SCRIPT):
    """The one line a refused launch raises; nothing was written to the log directory."""
    error = run(tmp, over, script)[0]["error"]
    assert error is not None and error.startswith("SystemExit: "), error
    assert not os.path.exists(over["log_dir"]) or not os.listdir(over["log_dir"])
    return error.split("\n")[0][len("SystemExit: "):]


def copy_script(tmp, *replacements):
    """A copy of the script with each (old, new) replaced (old must be there)."""
    code = open(SCRIPT).read()
    for old, new in replacements:
        assert old in code, old
        code = code.replace(old, new)
    path = tmp / "train_gpt_simple.py"
    path.write_text(code)
    return str(path)


def checked(over, script=SCRIPT, name="launch_checked"):
    """The script loaded with the overrides set, as tools.launch_check sees it."""
    module = tiny.load_script(script, name)
    for key, value in over.items():
        setattr(module, key, value)
    return module


def shards(tmp, numbers, steps_each=40):
    folder = tmp / "shards"
    folder.mkdir(exist_ok=True)
    tokens = np.arange(steps_each * tiny.TINY["batch_size"] + 64) % tiny.TINY["vocab_size"]
    for i in numbers:
        write_shard(folder / f"fineweb_train_{i:06d}.bin", tokens)
    return str(folder / "fineweb_train_*.bin")


# -----------------------------------------------------------------------------
# the stream is the benchmark's or the script refuses


def test_a_gap_in_the_train_shards_is_refused(tmp_path, data):
    over = overrides(data, tmp_path, steps=60, train_files=shards(tmp_path, [1, 3, 4]))
    msg = refusal(tmp_path, over)
    assert msg.startswith("train shard fineweb_train_000002.bin is missing (next: ") and "fineweb_train_000003.bin" in msg
    assert msg.endswith("would skip it: python data/cached_fineweb10B.py 4"), msg


def test_a_gap_after_the_last_shard_the_run_needs_is_fine(tmp_path, data):
    over = overrides(data, tmp_path, steps=30, train_files=shards(tmp_path, [1, 3]))  # shard 1 holds 40 steps
    assert run(tmp_path, over)[0]["error"] is None


def test_a_missing_first_shard_is_a_gap(tmp_path, data):
    msg = refusal(tmp_path, overrides(data, tmp_path, steps=6, train_files=shards(tmp_path, [2, 3])))
    assert msg.startswith("train shard fineweb_train_000001.bin is missing")


def test_the_val_set_is_the_one_benchmark_shard(tmp_path, data):
    assert launch_check.data_problems(checked(overrides(data, tmp_path))) == []
    other = tmp_path / "val"
    other.mkdir()
    write_shard(other / "fineweb_val_000001.bin", np.zeros(1000, dtype=np.int64))
    (msg,) = launch_check.data_problems(checked(overrides(data, tmp_path, val_files=str(other / "fineweb_val_*.bin"))))
    assert "fineweb_val_000001.bin: the val set is the one shard fineweb_val_000000.bin" in msg
    write_shard(other / "fineweb_val_000000.bin", np.zeros(1000, dtype=np.int64))  # and a second one
    (msg,) = launch_check.data_problems(checked(overrides(data, tmp_path, val_files=str(other / "fineweb_val_*.bin"))))
    assert "fineweb_val_000000.bin, " in msg and "the val set is the one shard" in msg


def test_a_val_shard_shorter_than_val_tokens_plus_two(tmp_path, data):
    val = tmp_path / "short" / "fineweb_val_000000.bin"
    val.parent.mkdir()
    write_shard(val, np.zeros(tiny.TINY["val_tokens"] + 1, dtype=np.int64))
    over = overrides(data, tmp_path, val_files=str(val))
    assert launch_check.data_problems(checked(over)) == [
        f"{val}: {tiny.TINY['val_tokens'] + 1} tokens, fewer than val_tokens + 2 = {tiny.TINY['val_tokens'] + 2}"]
    assert refusal(tmp_path, over) == launch_check.data_problems(checked(over))[0]  # the script stops it too


@pytest.mark.parametrize("kind", ["directory", "dangling link"])
def test_a_shard_path_that_is_not_a_file(tmp_path, data, kind):
    pattern = shards(tmp_path, [1])
    bad = tmp_path / "shards" / "fineweb_train_000002.bin"
    if kind == "directory":
        bad.mkdir()
    else:
        bad.symlink_to(tmp_path / "nowhere.bin")
    over = overrides(data, tmp_path, steps=60, train_files=pattern)
    reason = "Is a directory" if kind == "directory" else "No such file or directory"
    assert refusal(tmp_path, over) == f"{bad}: {reason}"  # the script stops; the tool says what to do
    assert launch_check.data_problems(checked(over)) == [
        f"{bad}: cannot read it ({reason}); re-download it with: python data/cached_fineweb10B.py 2 "
        "(it replaces only bad files)"]


def test_a_damaged_train_shard_is_refused(tmp_path, data):
    pattern = shards(tmp_path, [1, 2])
    bad = tmp_path / "shards" / "fineweb_train_000002.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    over = overrides(data, tmp_path, steps=60, train_files=pattern)
    assert refusal(tmp_path, over) == (f"{bad}: not a whole token shard of this benchmark (python -m "
                                       "tools.launch_check says what is wrong and how to fix it)")
    (msg,) = launch_check.data_problems(checked(over))
    assert msg.startswith(f"{bad}: truncated or damaged: ") and msg.endswith("cached_fineweb10B.py 2 (it replaces "
                                                                             "only bad files)")


def test_too_many_steps_for_the_whole_dataset(tmp_path, data):
    msg = refusal(tmp_path, overrides(data, tmp_path, steps=20000))
    assert msg.endswith("train shards hold only 120: all 103 shards of the benchmark hold 19570 steps"), msg
    msg = refusal(tmp_path, overrides(data, tmp_path, steps=1000))
    assert msg.endswith("hold only 120: python data/cached_fineweb10B.py 6"), msg  # 1000 / 190 steps per shard


# -----------------------------------------------------------------------------
# values of the wrong type or sign


@pytest.mark.parametrize("value", [-5, 0, 2.5, True])
def test_train_steps_of_the_wrong_type_or_sign_stops_the_launch(tmp_path, data, value):
    msg = refusal(tmp_path, overrides(data, tmp_path, steps=value))
    assert msg == f"train_steps = {value!r}: must be a whole number >= 1"
    assert launch_check.value_problems(checked(overrides(data, tmp_path, steps=value))) == [msg]


@pytest.mark.parametrize("name, value, want", [
    ("micro_batch_seqs", 2.5, "None or a whole number >= 1"), ("micro_batch_seqs", 0, "None or a whole number >= 1"),
    ("micro_batch_seqs", -4, "None or a whole number >= 1"), ("micro_batch_seqs", "64", "None or a whole number >= 1"),
    ("checkpoint_every", -1, "None or seconds >= 0"), ("checkpoint_every", "600", "None or seconds >= 0"),
    ("checkpoint_every", float("nan"), "None or seconds >= 0"),
])
def test_a_value_of_the_wrong_type_or_sign(tmp_path, data, name, value, want):
    module = checked(overrides(data, tmp_path, **{name: value}))
    assert launch_check.value_problems(module) == [f"{name} = {value!r}: must be {want}"]
    assert launch_check.script_problems(module) == [f"{name} = {value!r}: must be {want}"]  # the preflight's


def test_micro_batch_seqs_that_does_not_divide_is_refused_with_the_valid_values(tmp_path, data):
    msg = refusal(tmp_path, overrides(data, tmp_path, micro_batch_seqs=3))  # 8 sequences per step on 1 rank
    assert msg == "micro_batch_seqs = 3 does not divide the 8 sequences each of the 1 ranks takes per step: " \
                  "use one of 1, 2, 4, 8"


def test_micro_batch_seqs_above_a_ranks_share_says_so(tmp_path, data):
    over = overrides(data, tmp_path, micro_batch_seqs=16)
    assert run(tmp_path, over)[0]["error"] is None
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    assert "| micro_batch_seqs 8 (micro_batch_seqs = 16 is more than the 8 sequences of a rank)\n" in open(log).read()


def test_a_two_argument_set_hparams_gets_one_line(tmp_path, data):
    script = copy_script(tmp_path, ("def set_hparams(step, optimizers, state):", "def set_hparams(step, optimizers):"))
    assert launch_check.signature_problems(checked(overrides(data, tmp_path), script, "two_args")) == [
        "set_hparams must take (step, optimizers, state): the trial's state is its third argument now; "
        "write def set_hparams(step, optimizers, state)"]
    assert launch_check.signature_problems(checked(overrides(data, tmp_path))) == []


# -----------------------------------------------------------------------------
# directories that cannot be written: tools.launch_check names them before a launch


@pytest.mark.parametrize("setting", ["log_dir", "checkpoint_dir"])
def test_a_directory_that_cannot_be_written(tmp_path, data, setting):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    over = overrides(data, tmp_path, **{setting: str(blocker / "sub")})
    (msg,) = launch_check.directory_problems(checked(over))
    assert msg.startswith(f"cannot write to {blocker / 'sub'} (Not a directory): the run's log and checkpoints go "
                          "there"), msg
    assert blocker.read_text() == "not a directory"
    assert launch_check.directory_problems(checked(overrides(data, tmp_path))) == []
    assert not os.path.exists(tmp_path / "logs")  # the check creates nothing
    assert run(tmp_path, over)[0]["error"].startswith("NotADirectoryError: ")  # the script's own, before any work


# -----------------------------------------------------------------------------
# the trial's state, the final val, the trial count of a resumed run


def test_state_that_a_checkpoint_cannot_hold_is_named_at_the_first_step(tmp_path, data):
    script = copy_script(tmp_path, (
        '    """Runs after the optimizers\' step `step`, e.g. an EMA of the weights."""\n',
        '    """Runs after the optimizers\' step `step`, e.g. an EMA of the weights."""\n'
        '    state.setdefault("ema", {"decay": 0.99, "noise": (x for x in range(3))})\n'))
    over = overrides(data, tmp_path)
    error = run(tmp_path, over, script)[0]["error"]
    assert error.startswith("SystemExit: state['ema']['noise'] is a generator: a checkpoint holds only tensors, "
                            "numbers, strings and lists, tuples and dicts of them"), error
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    assert [int(m[1]) for m in VAL_LINE.finditer(open(log).read())] == [0]  # found at step 0, not at a checkpoint


def test_a_key_of_state_that_a_checkpoint_cannot_hold_is_named():
    """torch.load(weights_only=True) refuses a dict key of an arbitrary type as it does a value: a key is checked."""
    module = tiny.load_script(os.path.join(ROOT, "train_gpt_simple.py"), "check_state_keys")
    module.check_state({"ema": {"decay": 0.99, (1, "a"): torch.zeros(2)}, "steps": [1, 2.5, None]})
    with pytest.raises(SystemExit) as e:
        module.check_state({"ema": {tiny.ScriptError: 0.99}})
    assert str(e.value.code).startswith("a key of state['ema'] is a type: a checkpoint holds only tensors, numbers, "
                                        "strings and lists, tuples and dicts of them"), e.value.code


def test_every_trial_validates_after_its_last_step(tmp_path, data):
    script = copy_script(tmp_path, ("    return step % (125 if step / train_steps < 0.9 else 25) == 0",
                                    "    return step == 0  # never at the end"))
    over = overrides(data, tmp_path, steps=7)
    assert run(tmp_path, over, script)[0]["error"] is None
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    text = open(log).read()
    vals = [(int(m[1]), m[3]) for m in VAL_LINE.finditer(text)]
    assert [s for s, _ in vals] == [0, 7]
    assert f"summary: steps 7 final_val_loss {vals[-1][1]} " in text


def test_a_resume_keeps_the_checkpoints_trial_count(tmp_path, data):
    """A 2-trial run stopped in trial 1 and resumed with another count on the command line still runs trial 2/2."""
    over = overrides(data, tmp_path, steps=8, micro_batch_seqs=8)
    stopped = run(tmp_path, over, trials=2, instrument=functools.partial(ci.signal_at, 4, {0}))
    assert stopped[0]["error"].startswith("SystemExit: 143"), stopped[0]["error"]
    (ckpt,) = glob.glob(os.path.join(over["checkpoint_dir"], "*.pt"))
    assert run(tmp_path, over, trials=1, resume=ckpt)[0]["error"] is None
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    text = open(log).read()
    assert "trial 2/2 seed 6\n" in text and text.count(" summary: steps 8 ") == 2


# -----------------------------------------------------------------------------
# a checkpoint that cannot be written does not end a healthy run


def failing_save(after, module, result):
    """torch.save in the script writes `after` checkpoints, then half a file and a full disk (ENOSPC)."""
    save, calls = module.torch.save, [0]

    class Torch:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def save(obj, path):
            calls[0] += 1
            if calls[0] <= after:
                return save(obj, path)
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
    module.torch = Torch()


def test_a_full_disk_at_a_checkpoint_keeps_training(tmp_path, data):
    over = overrides(data, tmp_path, steps=6, checkpoint_every=0)  # a checkpoint after every step
    result = run(tmp_path, over, instrument=functools.partial(failing_save, 0))[0]
    assert result["error"] is None, result["error"]
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    text = open(log).read()
    assert ("trial 1/1 checkpoint at step 2 not written (OSError: [Errno 28] No space left on device); the last one "
            "is none, so the steps since are unprotected; training goes on\n") in text
    assert "summary: steps 6 " in text and VAL_LINE.findall(text)[-1][0] == "6"
    assert os.listdir(over["checkpoint_dir"]) == []  # no partial file


def test_a_full_disk_at_the_stop_signal_keeps_the_previous_checkpoint(tmp_path, data):
    over = overrides(data, tmp_path, steps=12, checkpoint_every=0, micro_batch_seqs=8)  # one forward per step
    instrument = functools.partial(ci.chain, [functools.partial(failing_save, 2), functools.partial(ci.signal_at, 6, {0})])
    result = run(tmp_path, over, instrument=instrument)[0]
    assert result["error"].startswith("SystemExit: 143"), result["error"]  # the stop still ends the run cleanly
    (log,) = glob.glob(os.path.join(over["log_dir"], "*.txt"))
    (ckpt,) = glob.glob(os.path.join(over["checkpoint_dir"], "*"))  # the last whole one, no .tmp
    lines = open(log).read().splitlines()
    assert lines[-2] == ("trial 1/1 checkpoint at step 7 not written (OSError: [Errno 28] No space left on device); "
                         "the last one is trial 1 step 3, so the steps since are unprotected")
    assert lines[-1] == (f"trial 1/1 stopped by signal 15 at step 7; checkpoint {ckpt}; resume with: RESUME={ckpt} "
                         "and the same launch command (from trial 1 step 3)")
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    assert run(tmp_path, over, resume=ckpt)[0]["error"] is None  # and it resumes


# -----------------------------------------------------------------------------
# a stop under torchrun (documented in docs/checkpoints.md)


def test_a_stop_under_torchrun_checkpoints_and_torchrun_reports_the_workers_exit(tmp_path):
    """torchrun forwards SIGTERM to the worker, which checkpoints and exits 143; torchrun itself exits non-zero
    with its own report. The log's last line is the record of the stop."""
    import signal
    import subprocess
    import sys
    import time
    train, val = tiny.tiny_data(str(tmp_path / "data"), 2000)  # 2000 steps: far more than the test waits for
    tiny_setup = "".join(f"{k} = {v!r}\n" for k, v in dict(tiny.TINY, micro_batch_seqs=8, train_files=train,
                         val_files=val, log_dir=str(tmp_path / "logs"), checkpoint_dir=str(tmp_path / "ckpt")).items())
    script = copy_script(tmp_path, ("\n# -----------------------------------------------------------------------------\n"
                                    "# Init & Optim Hyperparams", "\n" + tiny_setup + "\n# -----------------------------"
                                    "------------------------------------------------\n# Init & Optim Hyperparams"),
                         ("train_steps = 3250\n", "train_steps = 2000\n"))
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                             script, "1"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, SEED="3", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    try:
        for line in proc.stdout:  # the worker's echo of its log: it is training once step 0 is validated
            if line.startswith("step:0/2000 val_loss:"):
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        status = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    (log,) = glob.glob(str(tmp_path / "logs" / "*.txt"))
    (ckpt,) = glob.glob(str(tmp_path / "ckpt" / "*.pt"))
    last = open(log).read().splitlines()[-1]
    assert re.fullmatch(rf"trial 1/1 stopped by signal 15 at step \d+; checkpoint {re.escape(ckpt)}; resume with: "
                        rf"RESUME={re.escape(ckpt)} and the same launch command", last), last
    assert status == 1 and "SignalException: Process" in rest and "got signal: 15" in rest, (status, rest[-3000:])


@pytest.mark.parametrize("seed", ["abc", "-5", "1.5", "99999999999999999999999", "٣"])
def test_a_seed_that_is_not_a_seed(tmp_path, data, seed):
    (msg,) = launch_check.env_problems(dict(SEED=seed))
    assert msg.startswith(f"SEED={seed!r}: must be a whole number from 0 to 2**63 - 1"), msg
    assert launch_check.env_problems(dict(SEED="5")) == []


def test_a_home_directory_in_log_dir_is_expanded(tmp_path, data, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    over = overrides(data, tmp_path, log_dir="~/logs", checkpoint_dir="~/ckpt")
    assert run(tmp_path, over)[0]["error"] is None
    assert len(os.listdir(tmp_path / "home" / "logs")) == 1 and not os.path.exists("~")


# -----------------------------------------------------------------------------
# python -m tools.launch_check: a table, --json, exit status 1 on a failed check


def test_launch_check_command(tmp_path, data, capsys, monkeypatch):
    train, val = data
    setup = (f'train_files = {train!r}\nval_files = {val!r}\n' + "".join(
        f"{k} = {v!r}\n" for k, v in dict(tiny.TINY, log_dir=str(tmp_path / "logs")).items()))
    marker = "\n# -----------------------------------------------------------------------------\n# Init & Optim"
    good = copy_script(tmp_path, (marker, "\n" + setup + marker), ("train_steps = 3250\n", "train_steps = 30\n"))
    monkeypatch.delenv("SEED", raising=False)
    assert launch_check.main([good]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"{len(launch_check.CHECKS)} of {len(launch_check.CHECKS)} checks pass"
    monkeypatch.setenv("SEED", "x")
    assert launch_check.main([good, "--json"]) == 1
    rows = {r["check"]: r for r in json.loads(capsys.readouterr().out)["checks"]}
    assert [k for k, r in rows.items() if not r["ok"]] == ["environment"]
    assert rows["environment"]["problems"][0].startswith("SEED='x': must be a whole number")
    monkeypatch.delenv("SEED")
    monkeypatch.chdir(tmp_path)  # the repo's script from elsewhere: no shards here, and no GPU
    assert launch_check.main([SCRIPT]) == 1
    out = capsys.readouterr().out
    assert "no shards at data/fineweb10B/fineweb_train_*.bin" in out and out.splitlines()[-1].endswith("failing: "
                                                                                                       "script, data")
    assert launch_check.main([str(tmp_path / "nope.py")]) == 2


def test_the_preflight_fails_load_on_what_launch_check_finds_in_the_text(tmp_path):
    import ast
    from tools.preflight import core
    from tools.preflight.common import Report
    for name, replacement, want in (
            ("args", ("def set_hparams(step, optimizers, state):", "def set_hparams(step, optimizers):"),
             "set_hparams must take (step, optimizers, state)"),
            ("every", ("checkpoint_every = None ", "checkpoint_every = '600' "), "checkpoint_every = '600': must be")):
        script = copy_script(tmp_path, replacement)
        code = open(script).read()
        report = Report()
        assert core.load_user(report, script, script, code, ast.parse(code)) is None
        assert report.checks["load"]["status"] == "FAIL" and want in report.checks["load"]["detail"], report.checks
    code = open(SCRIPT).read()
    report = Report()
    assert core.load_user(report, SCRIPT, SCRIPT, code, ast.parse(code)) is not None
    assert report.checks["load"]["detail"] == "not run"
