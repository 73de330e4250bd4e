"""Odd values a person may type at launch get one clear line, never a traceback."""
import os
import subprocess
import sys

import pytest
import torch

from tools_logtext import ROOT

from tools import launch_check, tiny

import train_gpt_simple as tgs

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")


@pytest.mark.parametrize("arg", ["²", "0", "-1", "three", "1.5", "٣"])
def test_odd_trial_counts(tmp_path, arg):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, SCRIPT, arg], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == f"usage: torchrun --standalone --nproc_per_node=N {SCRIPT} [num_trials]  (got {arg!r})"
    assert os.listdir(tmp_path) == []


def test_a_world_size_that_is_not_a_number(monkeypatch):
    """The script stops on int()'s own error; tools.launch_check says what torchrun sets."""
    monkeypatch.setenv("WORLD_SIZE", "abc")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="'abc'"):
        tgs.main()
    assert launch_check.env_problems(dict(RANK="0", WORLD_SIZE="abc")) == [
        "RANK and WORLD_SIZE must be whole numbers (torchrun sets them); got RANK='0' WORLD_SIZE='abc'"]


@pytest.mark.parametrize("world_size, rank, expected", [
    ("0", "0", "world size 0 does not divide 8 (or rank 0 is not below it)"),
    ("2", "2", "world size 2 does not divide 8 (or rank 2 is not below it)"),
    ("3", "0", "world size 3 does not divide 8"),
])
def test_odd_world_sizes(monkeypatch, world_size, rank, expected):
    monkeypatch.setenv("WORLD_SIZE", world_size)
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(SystemExit) as e:
        tgs.main()
    assert str(e.value).startswith(expected), str(e.value)
    (msg,) = launch_check.env_problems(dict(RANK=rank, WORLD_SIZE=world_size))
    assert msg.startswith(expected)


def _oom_in_the_forward(module, result):
    forward = module.GPT.forward

    def forward_that_runs_out(self, *args, **kwargs):
        if torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.07 GiB")
        return forward(self, *args, **kwargs)
    module.GPT.forward = forward_that_runs_out


def test_out_of_memory_names_the_setting_to_lower(tmp_path):
    train, val = tiny.tiny_data(str(tmp_path / "data"), 4)
    over = dict(tiny.TINY, micro_batch_seqs=4, train_steps=4, train_files=train, val_files=val,
                log_dir=str(tmp_path / "logs"), checkpoint_dir=str(tmp_path / "ckpt"))
    result = tiny.run(SCRIPT, 1, over, 1, _oom_in_the_forward, env=dict(SEED="1"))[0]
    assert result["error"].startswith(
        "SystemExit: out of GPU memory with micro_batch_seqs = 4 sequences per forward: set micro_batch_seqs = 2 "
        "in the Setup section (same math)"), result["error"]
    (log,) = os.listdir(tmp_path / "logs")  # what was logged stays
    assert "step:0/4 val_loss:" in (tmp_path / "logs" / log).read_text()
