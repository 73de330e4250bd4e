"""tools.preflight: the baseline passes; each deliberately broken copy fails its check and only that one.

The runs use --steps 30 (baseline) and 12 (broken copies); the default (every one of the script's
3250 steps) takes over a minute on a 2-core CPU and is left to the command line.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import preflight

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "train_gpt_simple.py"
STEPS = 12  # the broken copies: past the step-5 faults below, and 2 val points


def statuses(info):
    return {c["id"]: c["status"] for c in info["checks"]}


def failed(info):
    return [c["id"] for c in info["checks"] if c["status"] == "FAIL"]


def broken_copy(tmp_path, old, new, count=1):
    text = BASELINE.read_text()
    assert text.count(old) == count, f"substitution target {old!r} found {text.count(old)} times"
    path = tmp_path / "train_gpt_simple.py"
    path.write_text(text.replace(old, new))
    return path


def test_baseline_passes_and_cli_json(capsys):
    code = preflight.main([str(BASELINE), "--steps", "30", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0, preflight.format_report(info)
    assert info["ok"] and info["train_steps"] == 30 and info["steps_source"] == "--steps"
    assert set(statuses(info).values()) == {"PASS"}, preflight.format_report(info)
    assert [r["train_steps"] for r in info["runs"]] == [30, 10] and all(r["completed"] for r in info["runs"])
    text = preflight.format_report(info)
    assert "PASS: all 16 checks" in text and "Wall time" in text and "--steps overrode train_steps" in text


BROKEN = {
    "architecture": ("vocab_size, num_layers, model_dim = 50304, 12, 768",
                     "vocab_size, num_layers, model_dim = 50304, 12, 1024"),
    "one_pass": ("                    loss.backward()\n",  # a second forward and backward over each microbatch
                 "                    loss.backward()\n"
                 "                    model(inputs[i:i + micro], targets[i:i + micro]).backward()\n"),
    "constants": ("val_tokens = 20 * 524288", "val_tokens = 10 * 524288"),
    "imports": ("import uuid\n", "import uuid\nimport numpy\n"),
    "run": ("        params = list(self.offset)\n",
            "        params = list(self.offset)\n        self.calls = getattr(self, 'calls', 0) + 1\n"
            "        if self.calls > 5:\n            raise RuntimeError('preflight test: the optimizer fails at step 5')\n"),
    "run@0": ("        params = list(self.offset)\n",  # before any parameter could change: updates must not be judged
              "        raise RuntimeError('preflight test: the optimizer fails at step 0')\n"),
    "optimizers": ("                              dict(params=[model.proj.weight], lr=0.004),\n", ""),
    "finite": ("                    loss = model(inputs[i:i + micro], targets[i:i + micro])\n",
               "                    loss = model(inputs[i:i + micro], targets[i:i + micro])"
               " * (float('nan') if step >= 5 else 1.0)\n"),
    "ranks": ("                            torch._foreach_copy_(vectors, [s.view_as(g) for s, g in zip(sums, vectors)])\n",
              "                            pass  # the summed gradients of biases and gains never reach .grad\n"),
    "lr": ("    return 1.0 if x < 0.3 else (1 - x) / 0.7\n",  # a typo: below 0 in the last 10% of the steps
           "    return 1.0 if x < 0.3 else (0.9 - x) / 0.7\n"),
}


@pytest.mark.parametrize("check", list(BROKEN))
def test_broken_copy_fails_only_its_check(tmp_path, check):
    path = broken_copy(tmp_path, *BROKEN[check])
    info = preflight.preflight(str(path), steps=STEPS)
    report = preflight.format_report(info)
    check = check.split("@")[0]
    assert failed(info) == [check], report
    assert not info["ok"]
    assert all(status in ("PASS", "SKIP") for cid, status in statuses(info).items() if cid != check), report
    if check != "run":  # the script ran to its end: everything else had its evidence
        assert [cid for cid, s in statuses(info).items() if s == "SKIP"] == [], report
    if check == "run":
        detail = next(c["detail"] for c in info["checks"] if c["id"] == "run")
        assert "preflight test: the optimizer fails at step" in detail and str(path) in detail, detail
        assert "raise RuntimeError" in detail  # the script's own line
    if check == "ranks":
        detail = next(c["detail"] for c in info["checks"] if c["id"] == "ranks")
        assert "the ranks end with different" in detail and "bias" in detail and "gains" in detail, detail
    if check == "optimizers":
        assert "proj.weight" in next(c["detail"] for c in info["checks"] if c["id"] == "optimizers")


def test_hang_is_killed_and_reported(tmp_path, monkeypatch):
    """A rank that never returns (here: only in the 2-rank run) is killed at the deadline, not waited for."""
    path = broken_copy(tmp_path, "                inputs, targets = next(train_loader)\n",
                       "                if world_size > 1 and step == 3:\n                    time.sleep(600)\n"
                       "                inputs, targets = next(train_loader)\n")
    monkeypatch.setattr(preflight, "TIMEOUT_BASE_S", 10)
    monkeypatch.setattr(preflight, "TIMEOUT_PER_STEP_S", 0)
    info = preflight.preflight(str(path), steps=STEPS)
    assert failed(info) == ["run"], preflight.format_report(info)
    assert "did not finish within 10 s" in info["checks"][1]["detail"]
    assert info["wall_s"] < 60


def test_missing_names_fail_cleanly(tmp_path, capsys):
    path = tmp_path / "train.py"
    path.write_text("import torch\n\ndef main(num_trials=1):\n    pass\n")
    assert preflight.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  load" in out and "lacks GPT" in out and "Traceback" not in out
    assert "FAIL: 1 of 16 checks (load)" in out


def test_syntax_error_fails_cleanly(tmp_path):
    path = broken_copy(tmp_path, "def init_params(model):", "def init_params(model)")
    info = preflight.preflight(str(path))
    assert failed(info) == ["load"]
    assert "syntax error at line" in info["checks"][0]["detail"]


def test_nonexistent_path_via_module_entry_point(tmp_path):
    missing = tmp_path / "nope.py"
    proc = subprocess.run([sys.executable, "-m", "tools.preflight", str(missing)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "FAIL  load" in proc.stdout and "No such file" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


# static checks, on source text only (fast)

def hardcoded(src):
    return preflight.check_hardcoded(ast.parse(src))


def test_hardcoded_allows_the_baseline_idioms():
    assert hardcoded(BASELINE.read_text()) == []
    assert hardcoded("import os\nos.environ['CUDA_LAUNCH_BLOCKING'] = '1'\nos.environ.setdefault('NCCL_X', '1')\n") == []
    assert hardcoded("from os import environ as E\nx = E.get('LOCAL_RANK')\n") == []


@pytest.mark.parametrize("src", [
    "import argparse\n",
    "from click import command\n",
    "import sys\nlr = float(sys.argv[1])\n",
    "import sys\nargs = sys.argv[1:]\n",
    "from sys import argv\nlr = argv[2]\n",
    "import os\nlr = float(os.environ.get('LR', '0.02'))\n",
    "import os as o\nlr = o.environ['LR']\n",
    "import os\nlr = os.getenv('LR')\n",
    "import os\nk = 'LR'\nlr = os.environ[k]\n",
    "import os\nif 'WARMUP' in os.environ: pass\n",
    "import os\nenv = dict(os.environ)\n",
])
def test_hardcoded_flags(src):
    assert hardcoded(src), src


def test_imports_scan():
    ok = ("import os, math\nimport torch.nn as nn\nfrom torch import optim\nimport triton.language as tl\n"
          "from __future__ import annotations\n")
    assert preflight.check_imports(ast.parse(ok)) == []
    for src in ["import numpy\n", "from lion_pytorch import Lion\n", "import importlib\nimportlib.import_module('scipy')\n",
                "__import__('numpy')\n", "import importlib\nimportlib.import_module(name)\n", "from . import helper\n",
                "import runpy\nrunpy.run_path('opt.py')\n"]:
        assert preflight.check_imports(ast.parse(src)), src


def test_script_val_lines():
    assert preflight.script_val_lines(BASELINE.read_text()) == []
    assert preflight.script_val_lines("# e.g. step:125/3250 val_loss:4.585\nx = 1\n") != []
