"""Odd values a person may type at launch get one clear line, never a traceback."""
import os
import subprocess
import sys

import pytest

from tools_logtext import ROOT

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


@pytest.mark.parametrize("world_size, rank, expected", [
    ("abc", "0", "RANK and WORLD_SIZE must be whole numbers (torchrun sets them); got RANK='0' WORLD_SIZE='abc'"),
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
