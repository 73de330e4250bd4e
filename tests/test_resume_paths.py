"""RESUME from another working directory continues the same log; a checkpoint whose log is gone is
refused before any work, and nothing (log, checkpoint) is lost. Through the script's main() on CPU."""
import functools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_instruments as ci  # noqa: E402
from tools_logtext import ROOT  # noqa: E402

from tools import tiny  # noqa: E402

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
STEPS = 12


def run(data, instrument=None, resume=""):
    train, val = data
    over = dict(tiny.TINY, micro_batch_seqs=8, train_steps=STEPS, train_files=train, val_files=val,
                log_dir="logs", checkpoint_dir="checkpoints")  # relative, as in the script
    return tiny.run(SCRIPT, 1, over, 1, instrument, env=dict(SEED="5", RESUME=resume))[0]


def stopped_run(tmp_path, monkeypatch):
    data = tiny.tiny_data(str(tmp_path / "data"), STEPS)
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    monkeypatch.chdir(launch_dir)
    result = run(data, functools.partial(ci.signal_at, 5, {0}))
    assert result["error"].startswith("SystemExit: 143"), result["error"]
    (log,), (ckpt,) = os.listdir(launch_dir / "logs"), os.listdir(launch_dir / "checkpoints")
    return data, launch_dir / "logs" / log, str(launch_dir / "checkpoints" / ckpt)


def test_resume_from_another_directory_appends_to_the_same_log(tmp_path, monkeypatch):
    data, log, ckpt = stopped_run(tmp_path, monkeypatch)
    before = log.read_text()
    assert torch.load(ckpt, weights_only=True)["log_path"] == str(log)  # absolute
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run(data, resume=ckpt)
    assert result["error"] is None, result["error"]
    after = log.read_text()
    assert after.startswith(before) and f"trial 1/1 resumed from {ckpt} at step 6" in after
    assert after.count(" summary: steps 12 ") == 1
    assert not os.path.exists(elsewhere / "logs")  # no second, partial log
    assert not os.path.exists(ckpt)  # the finished run's checkpoint is removed: its log got the rest


def test_a_checkpoint_whose_log_is_gone_is_refused_and_kept(tmp_path, monkeypatch):
    data, log, ckpt = stopped_run(tmp_path, monkeypatch)
    moved = log.with_name("moved.txt")
    log.rename(moved)
    result = run(data, resume=ckpt)
    assert result["error"].startswith(f"SystemExit: cannot resume from {ckpt}: its log {log} is not there"), \
        result["error"]
    assert os.path.exists(ckpt) and moved.exists() and not log.exists()
