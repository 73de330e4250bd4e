"""Checkpoint and resume of train_gpt_simple.py, through its own main() on the CPU (tools.tiny):
a SIGTERM'd run resumed with RESUME ends bit-identical to an uninterrupted one (1 and 2 gloo
processes, 2 trials), the log is appended to and its clock continues, the checkpoint file is
whole and refuses another script or a damaged file, periodic checkpoints are exact, and another
world size can resume.

Runs are shared through the module-scoped `lab` fixture (about 30 s on 2 busy cores).
"""
import functools
import glob
import hashlib
import os
import re
import shutil
import sys
import zipfile

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_instruments as ci  # noqa: E402
from tools_logtext import ROOT  # noqa: E402  (also puts the repo root on sys.path)

from tools import tiny  # noqa: E402
from tools.logs import parse_file  # noqa: E402

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
STEPS = 26  # val at steps 0, 25 and 26 of each trial
TRIALS = 2
SEED = 4321
STOP_AT = {1: 24, 2: 13}  # SIGTERM during this training forward (step N-1); its flag is read during step N,
# which completes: the checkpoint holds the state after step N, and the run resumes at step N + 1
RESUME_AT = {w: n + 1 for w, n in STOP_AT.items()}  # 1 process: 25, a val step the resumed run logs once
# (25: a val step, logged before the stop, that the resumed run must not log again)
SEP = "=" * 100
VAL_RE = re.compile(r"^step:(\d+)/(\d+) val_loss:(\S+) train_time:([0-9.]+)s step_avg:")
# A 2-process checkpoint at step 13 resumed by 1 process, val losses at steps 25 and 26 against the
# 2-process run: measured |difference| 0 and 3e-5 (seeds 4321, 7, 99: at most 3e-5). Resuming with
# half of Muon's momentum or all of Adam's state dropped measured 1.7e-4 and 2.1e-4, so the bound
# still catches a lost optimizer state. (Whole 1- vs 2-process trials differ by up to 2e-4.)
OTHER_WORLD_VAL_TOL = 1e-4


def val_lines(text, header=True):
    """[(step, train_steps, val_loss as printed, train_time)] of the val lines (after the header of a log)."""
    body = text.split("\n" + SEP + "\n", 1)[1] if header else text
    return [(int(m[1]), int(m[2]), m[3], float(m[4])) for m in map(VAL_RE.match, body.splitlines()) if m]


def losses(text, header=True):
    return [(step, loss) for step, _, loss, _ in val_lines(text, header)]


def read(path):
    with open(path) as f:
        return f.read()


def only_file(directory, pattern="*"):
    files = glob.glob(os.path.join(directory, pattern))
    assert len(files) == 1, files
    return files[0]


def errors(results):
    return [r["error"] for r in results]


def assert_same_params(a, b, trials=TRIALS):
    assert len(a) == len(b) == trials
    for pa, pb in zip(a, b):
        assert pa.keys() == pb.keys()
        for k in pa:
            assert torch.equal(pa[k], pb[k]), (k, (pa[k].double() - pb[k].double()).abs().max().item())


def assert_same_states(a, b, trials=TRIALS):
    """Optimizer states of every trial bitwise equal: the same parameters hold state, with the same keys and values."""
    assert len(a) == len(b) == trials
    for ta, tb in zip(a, b):
        assert len(ta) == len(tb)
        for sa, sb in zip(ta, tb):
            assert sa.keys() == sb.keys() and sa, (sorted(sa), sorted(sb))
            for name in sa:
                assert sa[name].keys() == sb[name].keys(), name
                for key in sa[name]:
                    x, y = sa[name][key], sb[name][key]
                    assert torch.equal(x, y) if torch.is_tensor(x) else x == y, (name, key)


class Lab:
    def __init__(self, root):
        self.root = str(root)
        self.train, self.val = tiny.tiny_data(os.path.join(self.root, "data"), STEPS)
        self.script_text = read(SCRIPT)
        self.cache = {}

    def dirs(self, name):
        return os.path.join(self.root, name, "logs"), os.path.join(self.root, name, "checkpoints")

    def run(self, name, world_size, instrument=None, resume="", script=None, **extra):
        log_dir, checkpoint_dir = self.dirs(name)
        overrides = dict(tiny.TINY, micro_batch_seqs=8, train_steps=STEPS, train_files=self.train,
                         val_files=self.val, log_dir=log_dir, checkpoint_dir=checkpoint_dir, **extra)
        return tiny.run(script or SCRIPT, world_size, overrides, TRIALS, instrument, env=dict(SEED=str(SEED), RESUME=resume))

    def baseline(self, world_size):
        """The uninterrupted run: per-rank results (params per trial) and its log."""
        key = ("baseline", world_size)
        if key not in self.cache:
            results = self.run(f"base{world_size}", world_size, ci.capture_trials)
            assert errors(results) == [None] * world_size
            log_path = only_file(self.dirs(f"base{world_size}")[0])
            self.cache[key] = dict(results=results, log_path=log_path, log=read(log_path))
        return self.cache[key]

    def stopped(self, world_size):
        """The run SIGTERM'd on its last rank only: results, checkpoint path, a copy of it, its log."""
        key = ("stopped", world_size)
        if key not in self.cache:
            name = f"stop{world_size}"
            results = self.run(name, world_size, functools.partial(ci.signal_at, STOP_AT[world_size], {world_size - 1}))
            log_dir, checkpoint_dir = self.dirs(name)
            log_path, ckpt_path = only_file(log_dir), only_file(checkpoint_dir)
            saved = os.path.join(self.root, name, "saved.pt")
            shutil.copyfile(ckpt_path, saved)
            self.cache[key] = dict(results=results, log_path=log_path, ckpt_path=ckpt_path, saved=saved,
                                   checkpoint_files=sorted(os.listdir(checkpoint_dir)), log=read(log_path),
                                   ckpt=torch.load(saved, weights_only=True))
        return self.cache[key]

    def resumed(self, world_size):
        """The stopped run resumed with RESUME=<its checkpoint> and the same launch: results, combined log."""
        key = ("resumed", world_size)
        if key not in self.cache:
            stopped = self.stopped(world_size)
            results = self.run(f"stop{world_size}", world_size, ci.capture_trials, resume=stopped["ckpt_path"])
            self.cache[key] = dict(results=results, log=read(stopped["log_path"]),
                                   logs=os.listdir(self.dirs(f"stop{world_size}")[0]))
        return self.cache[key]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("world_size", [1, 2])
def test_sigterm_leaves_whole_checkpoint_and_log(lab, world_size):
    s, base = lab.stopped(world_size), lab.baseline(world_size)
    k = RESUME_AT[world_size]
    for err in errors(s["results"]):
        assert err is not None and err.startswith("SystemExit: 143\n"), err
    # one checkpoint named after the log, no leftover .tmp
    assert s["checkpoint_files"] == [os.path.basename(s["log_path"])[:-4] + ".pt"]
    ckpt = s["ckpt"]  # loaded with weights_only=True
    assert ckpt["step"] == k and ckpt["trial"] == 0 and ckpt["num_trials"] == TRIALS and ckpt["seed0"] == SEED
    assert ckpt["script_sha256"] == hashlib.sha256(lab.script_text.encode()).hexdigest()
    assert ckpt["log_path"] == s["log_path"]
    assert ckpt["train_time"] > 0 and ckpt["reached"] is None
    assert set(ckpt["model"]) == set(base["results"][0]["params"][0])
    muon, adam = ckpt["optimizers"]
    n_muon = sum(len(g["params"]) for g in muon["param_groups"])
    n_adam = sum(len(g["params"]) for g in adam["param_groups"])
    # Muon's momentum is sharded over ranks: the file holds every matrix's, gathered on rank 0
    assert sorted(muon["state"]) == sorted(i for g in muon["param_groups"] for i in g["params"]) and n_muon == 12
    assert all(st["momentum_buffer"].abs().sum() > 0 for st in muon["state"].values())
    assert len(adam["state"]) == n_adam and all({"exp_avg", "exp_avg_sq", "step"} <= set(st) for st in adam["state"].values())
    # the log: the script, the header, every val line up to the stop, and the stop line last
    log = s["log"]
    assert log.startswith(lab.script_text + "\n" + SEP + "\n")
    assert f"world_size {world_size} |" in log
    assert losses(log) == [(step, loss) for step, loss in losses(base["log"])[:3] if step < k]
    assert log.splitlines()[-1] == (f"trial 1/{TRIALS} stopped by signal 15 at step {k}; checkpoint {s['ckpt_path']}; "
                                    f"resume with: RESUME={s['ckpt_path']} and the same launch command")


@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_ends_exactly_like_uninterrupted_run(lab, world_size):
    base, s, r = lab.baseline(world_size), lab.stopped(world_size), lab.resumed(world_size)
    k = RESUME_AT[world_size]
    assert errors(r["results"]) == [None] * world_size
    for rank in range(world_size):  # every rank ends each trial with the uninterrupted run's parameters
        assert_same_params(r["results"][rank]["params"], base["results"][0]["params"])
        # and with the optimizer state that rank holds in the uninterrupted run (Muon's shard, all of AdamW's)
        assert_same_states(r["results"][rank]["opt_states"], base["results"][rank]["opt_states"])
    log = r["log"]
    assert r["logs"] == [os.path.basename(s["log_path"])]  # no second log: the same file, appended to
    assert log.startswith(s["log"])
    assert log.count(lab.script_text) == 1 and log.splitlines().count(SEP) == 2
    appended = log[len(s["log"]):].splitlines()
    assert appended[0] == (f"trial 1/{TRIALS} resumed from {s['ckpt_path']} at step {k} on world_size {world_size} "
                           f"(micro_batch_seqs {8 // world_size})")
    # the val lines: those of the uninterrupted run, each step once per trial
    assert losses(log) == losses(base["log"])
    assert [line.split(" summary: ")[0] for line in log.splitlines() if re.match(r"trial \d+/\d+ summary: ", line)] == \
           [f"trial {i + 1}/{TRIALS}" for i in range(TRIALS)]
    before = val_lines(s["log"])
    after = val_lines(log)[len(before):]
    # the training-time clock went on: no val line after the resume is below the stopped run's time
    assert after[0][3] >= before[-1][3] and after[0][3] >= s["ckpt"]["train_time"] - 5e-4
    parsed, parsed_base = parse_file(s["log_path"]), parse_file(base["log_path"])  # tools.logs reads it whole
    assert [t.seed for t in parsed.trials] == [SEED, SEED + 1] and all(t.complete for t in parsed.trials)
    assert [[(p.step, p.val_loss) for p in t.points] for t in parsed.trials] == \
           [[(p.step, p.val_loss) for p in t.points] for t in parsed_base.trials]


def test_checkpoint_of_an_edited_script_is_refused(lab, tmp_path):
    s = lab.stopped(1)
    ckpt = str(tmp_path / "ckpt.pt")
    shutil.copyfile(s["saved"], ckpt)
    copy = tmp_path / "train_gpt_simple.py"
    text = lab.script_text
    assert hashlib.sha256(text.encode()).hexdigest() == s["ckpt"]["script_sha256"]  # the copy wrote it, as it were
    edited = text.replace("# Dataloader", "# DataLoader", 1)
    assert edited != text and len(edited) == len(text)
    copy.write_text(edited)
    log_before, logs_before = read(s["log_path"]), os.listdir(os.path.dirname(s["log_path"]))
    results = lab.run("stop1", 1, resume=ckpt, script=str(copy))
    err = errors(results)[0]
    assert err is not None and err.startswith(f"SystemExit: cannot resume from {ckpt}: "), err
    assert "different script" in err and s["log_path"] in err.splitlines()[0]
    assert read(s["log_path"]) == log_before and os.listdir(os.path.dirname(s["log_path"])) == logs_before


class Evil:
    """Pickles as a call that creates a file: weights_only loading must refuse it, not run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_damaged_or_foreign_checkpoint_is_refused(lab, tmp_path):
    s = lab.stopped(1)
    with open(s["saved"], "rb") as f:
        data = f.read()
    marker = tmp_path / "pwned"
    cases = dict(truncated=data[:len(data) // 2], cut_short=data[:-1], random=os.urandom(len(data)), empty=b"")
    for name, content in cases.items():
        (tmp_path / f"{name}.pt").write_bytes(content)
    torch.save(dict(step=1, model=Evil(str(marker))), tmp_path / "pickle.pt")
    log_before = read(s["log_path"])
    for name in [*cases, "pickle"]:
        path = str(tmp_path / f"{name}.pt")
        err = errors(lab.run("stop1", 1, ci.accept_only, resume=path))[0]
        assert err is not None and err.startswith(f"SystemExit: cannot resume from {path}: not a whole checkpoint ("), \
            (name, err)
    assert not marker.exists()
    assert read(s["log_path"]) == log_before


def test_bit_flipped_checkpoint_is_refused(lab, tmp_path):
    """A checkpoint whose tensor data rotted (one byte changed) must be refused, not silently loaded."""
    path = str(tmp_path / "flipped.pt")
    shutil.copyfile(lab.stopped(1)["saved"], path)
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        where = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 0x40]))
    err = errors(lab.run("stop1", 1, ci.accept_only, resume=path))[0]
    assert err is not None and err.startswith(f"SystemExit: cannot resume from {path}: "), err


def test_periodic_checkpoints_are_exact(lab, tmp_path):
    base = lab.baseline(1)
    copy_at = 12  # the training forward of step 11: the file then holds the state after step 10
    copy = str(tmp_path / "periodic_copy.pt")
    results = lab.run("periodic", 1, functools.partial(ci.chain, [ci.capture_trials, functools.partial(
        ci.copy_checkpoint_at, copy_at, copy)]), checkpoint_every=0)
    assert errors(results) == [None]
    assert_same_params(results[0]["params"], base["results"][0]["params"])  # checkpointing changes nothing
    log_dir, checkpoint_dir = lab.dirs("periodic")
    log_path = only_file(log_dir)
    log = read(log_path)
    assert losses(log) == losses(base["log"])
    # written at every step; the run finished, so the last one (and no .tmp) is gone: it would only replay the end
    ckpt_path = os.path.join(checkpoint_dir, os.path.basename(log_path)[:-4] + ".pt")
    assert os.listdir(checkpoint_dir) == []
    assert log.endswith(f"all trials done: removed the checkpoint {ckpt_path}\n")
    mid = torch.load(copy, weights_only=True)
    assert (mid["trial"], mid["step"]) == (0, copy_at - 1) and mid["log_path"] == log_path
    # resumed from the step-10 checkpoint, the run ends exactly as the uninterrupted one
    results = lab.run("periodic", 1, ci.capture_trials, resume=copy, checkpoint_every=0)
    assert errors(results) == [None]
    assert_same_params(results[0]["params"], base["results"][0]["params"])
    appended = read(log_path)[len(log):]
    assert appended.startswith(f"trial 1/{TRIALS} resumed from {copy} at step {copy_at - 1} on world_size 1 "
                               "(micro_batch_seqs 8)\n")
    assert losses(appended, header=False) == losses(base["log"])[1:]  # trial 1 from step 25 on, then trial 2
    assert not os.path.exists(copy) and appended.endswith(f"all trials done: removed the checkpoint {copy}\n")


def test_other_world_size_resumes(lab, tmp_path):
    """A checkpoint of 2 processes resumed by 1: the rest of trial 1 within float tolerance of the
    2-process run (summation order differs), and trial 2, a fresh 1-process trial, exactly the
    1-process run's."""
    base1, base2, s = lab.baseline(1), lab.baseline(2), lab.stopped(2)
    ckpt = torch.load(s["saved"], weights_only=True)
    log_path = tmp_path / "log.txt"  # append to a copy of the stopped log, not to the shared one
    log_path.write_text(s["log"])
    log_path = str(log_path)
    ckpt["log_path"] = log_path
    path = str(tmp_path / "ckpt.pt")
    torch.save(ckpt, path)
    results = lab.run("other_world", 1, ci.capture_trials, resume=path)
    assert errors(results) == [None]
    log = read(log_path)
    # the header says world_size 2; the resumed line says which world size wrote the rest
    assert f"trial 1/{TRIALS} resumed from {path} at step {RESUME_AT[2]} on world_size 1 (micro_batch_seqs 8)\n" in log
    got, want1, want2 = losses(log), losses(base1["log"]), losses(base2["log"])
    assert [step for step, _ in got] == [step for step, _ in want2] == [0, 25, 26] * TRIALS
    diffs = [abs(float(a) - float(b)) for (_, a), (_, b) in zip(got[:3], want2[:3])]
    assert max(diffs) <= OTHER_WORLD_VAL_TOL, (got, want2)
    assert got[3:] == want1[3:]
    assert_same_params(results[0]["params"][1:], base1["results"][0]["params"][1:], trials=1)
