"""tools.preflight's judging code, fast: static scans, the float64 architecture verdict, the plan, the log format,
fingerprints and the resume, ranks, hyperparameter, weight and pass verdicts on synthetic run records.

No script runs here except the architecture check's forward passes, so this file is what mutation testing runs
(docs/preflight.md, Mutation testing). The end-to-end behaviour is in test_preflight.py.
"""
import ast
import math

import pytest
import torch

import preflight_copies as pc
from tools import preflight, tiny
from tools.preflight import (common, compare, fingerprint, logcheck, resume, static, trained,
                             trajectory, verdicts)
from tools.preflight import report as pf_report
from tools.preflight import runs as pf_runs
from tools.preflight import schedule as pf_schedule

BASELINE_TEXT = pc.BASELINE.read_text()
SEP = "=" * 100


# -----------------------------------------------------------------------------
# static scans

def hardcoded(src):
    return static.check_hardcoded(ast.parse(src))


def test_hardcoded_allows_the_baseline_idioms():
    assert hardcoded(BASELINE_TEXT) == []
    assert hardcoded("import os\nos.environ['CUDA_LAUNCH_BLOCKING'] = '1'\nos.environ.setdefault('NCCL_X', '1')\n") == []
    assert hardcoded("from os import environ as E\nx = E.get('LOCAL_RANK')\n") == []
    assert hardcoded("import sys\nn = int(sys.argv[-1]) if len(sys.argv) > 1 else 1\nname = sys.argv[0]\n") == []
    assert hardcoded("import os\nif 'SEED' in os.environ: pass\ndel os.environ['X']\n") == []


@pytest.mark.parametrize("src,problem", [
    ("import argparse\n", "line 1: import argparse (command-line parsing)"),
    ("from click import command\n", "line 1: from click import ... (command-line parsing)"),
    ("import sys\nlr = float(sys.argv[1])\n", "line 2: reads sys.argv beyond sys.argv[-1]"),
    ("import sys\nargs = sys.argv[1:]\n", "line 2: reads sys.argv beyond"),
    ("from sys import argv\nlr = argv[2]\n", "line 2: reads sys.argv beyond"),
    ("import os\nlr = float(os.environ.get('LR', '0.02'))\n", "line 2: os.environ.get() reads 'LR'"),
    ("import os as o\nlr = o.environ['LR']\n", "line 2: os.environ[...] reads 'LR'"),
    ("import os\nlr = os.getenv('LR')\n", "line 2: os.getenv() reads 'LR'"),
    ("from os import getenv\nlr = getenv('LR')\n", "line 2: os.getenv() reads 'LR'"),
    ("import os\nk = 'LR'\nlr = os.environ[k]\n", "line 3: os.environ[...] with a key computed at run time"),
    ("import os\nif 'WARMUP' in os.environ: pass\n", "line 2: '...' in os.environ reads 'WARMUP'"),
    ("import os\nenv = dict(os.environ)\n", "line 2: uses the whole os.environ"),
    ("import os\nx = os.environ.update({'A': '1'}) or 1\n", "line 2: uses the whole os.environ"),
])
def test_hardcoded_flags(src, problem):
    problems = hardcoded(src)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_imports_scan():
    ok = ("import os, math\nimport torch.nn as nn\nfrom torch import optim\nimport triton.language as tl\n"
          "from __future__ import annotations\nimport importlib\nimportlib.import_module('json')\n")
    assert static.check_imports(ast.parse(ok)) == []
    cases = {"import numpy\n": "line 1: import numpy",
             "from lion_pytorch import Lion\n": "line 1: from lion_pytorch import ...",
             "import importlib\nimportlib.import_module('scipy')\n": "line 2: importlib.import_module('scipy')",
             "__import__('numpy')\n": "line 1: __import__('numpy')",
             "import importlib\nimportlib.import_module(name)\n": "line 2: importlib.import_module() of a name computed",
             "import importlib\nimportlib.import_module(name='x' + y)\n": "line 2: importlib.import_module() of a name",
             "from . import helper\n": "line 1: relative import from .",
             "import runpy\nrunpy.run_path('opt.py')\n": "line 2: runpy.run_path() loads code from another file"}
    for src, problem in cases.items():
        problems = static.check_imports(ast.parse(src))
        assert len(problems) == 1 and problems[0].startswith(problem), (src, problems)


def test_script_val_lines():
    assert static.script_val_lines(BASELINE_TEXT) == []
    assert static.script_val_lines("x = 1\n# e.g. step:125/3250 val_loss:4.585\n") == [
        "line 2: # e.g. step:125/3250 val_loss:4.585"]


def test_import_time_work_and_the_public_format():
    assert static.import_time_work(ast.parse(BASELINE_TEXT)) == []
    src = ("import torch\nimport argparse\nargs = argparse.ArgumentParser().parse_args()\n"
           "if __name__ == '__main__':\n    torch.cuda.set_device(0)\n"
           "def f():\n    dist.init_process_group('nccl')\n"
           "torch.cuda.synchronize()\n"
           "for step in range(3):\n    opt.step()\n")
    assert static.import_time_work(ast.parse(src)) == [
        "line 3: parses the command line (...parse_args)",
        "line 8: starts distributed or CUDA work (torch.cuda.synchronize)", "line 9: a training loop"]
    assert static.public_format_problem(ast.parse("def main(num_trials=1):\n    pass\n"), "x.py") is None
    message = static.public_format_problem(ast.parse("x = 1\nmodel = net.cuda()\n"), "x.py")
    assert message.startswith("x.py: a script in the public repo's format, which runs when imported (line 2: starts "
                              "distributed or CUDA work (net.cuda); no main(num_trials))")
    message = static.public_format_problem(ast.parse("def main():\n    pass\nx = a.parse_known_args()\n"), "x.py")
    assert "(line 3: parses the command line (a.parse_known_args))." in message


# -----------------------------------------------------------------------------
# architecture: float64 math, not rounding

@pytest.fixture(scope="module")
def base_module():
    return tiny.load_script(str(pc.BASELINE), "judging_baseline")


def load_copy(tmp_path, name, substitutions):
    return tiny.load_script(str(pc.write(tmp_path, name, substitutions)), f"judging_{name}")


def test_architecture_accepts_the_baseline_and_float32_rmsnorm(tmp_path, base_module):
    status, text = compare.check_architecture(base_module, base_module)
    assert status == "PASS" and text.startswith("173 parameters with the baseline's names, shapes and dtypes at full "
                                                "size; in float64 the forward matches the baseline's within rounding "
                                                "(loss 0.0e+00 and gradient of embed.weight 0.0e+00")
    user = load_copy(tmp_path, "rmsnorm_fp32", pc.PASSING["rmsnorm_fp32"])
    status, text = compare.check_architecture(user, base_module)
    assert status == "PASS", text


@pytest.mark.parametrize("change", list(pc.MATH_CHANGES))
def test_architecture_rejects_a_change_of_the_math(tmp_path, base_module, change):
    user = load_copy(tmp_path, "math_" + str(abs(hash(change))), pc.MATH_CHANGES[change])
    status, text = compare.check_architecture(user, base_module)
    assert status == "FAIL" and text.startswith("in float64 on shared random weights at the tiny size the forward "
                                                "differs from the baseline's"), text
    assert text.endswith("this changes the math (RULES 4.3)")


def test_architecture_names_shapes_and_failures(tmp_path, base_module):
    user = load_copy(tmp_path, "wide", pc.BROKEN["architecture"][1])
    status, text = compare.check_architecture(user, base_module)
    assert status == "FAIL" and text.startswith("parameters at full size, GPT(50304, 12, 1024) vs the baseline's "
                                                "GPT(50304, 12, 768): differ: embed.weight (50304, 1024) bfloat16 "
                                                "(baseline (50304, 768) bfloat16)")
    user = load_copy(tmp_path, "renamed", [("self.fc, self.proj = Linear(dim, 4 * dim), Linear(4 * dim, dim)",
                                            "self.c_fc, self.proj = Linear(dim, 4 * dim), Linear(4 * dim, dim)"),
                                           ("F.relu(self.fc(x))", "F.relu(self.c_fc(x))")])
    status, text = compare.check_architecture(user, base_module)
    assert status == "FAIL" and "missing blocks.0.mlp.fc.weight" in text and "extra blocks.0.mlp.c_fc.weight" in text
    user = load_copy(tmp_path, "no_double", [("        x = self.norm1(self.embed(inputs))\n",
                                              "        x = self.norm1(self.embed(inputs).float().bfloat16())\n")])
    status, text = compare.check_architecture(user, base_module)
    assert status == "FAIL"  # a bfloat16 cast inside the model: float64 cannot tell it from a change of the math


def test_judge_architecture_tolerances():
    ref_loss, grads = torch.tensor(100.0, dtype=torch.float64), {"a": torch.ones(4, dtype=torch.float64)}
    ok = compare.judge_architecture(torch.tensor(100.0 + 1e-5, dtype=torch.float64), ref_loss,
                                      {"a": torch.ones(4, dtype=torch.float64) * (1 + 9e-6)}, grads, 1)
    assert ok[0] == "PASS" and "(loss 1.0e-07 and gradient of a 9.0e-06 relative to the baseline's)" in ok[1]
    loss_off = compare.judge_architecture(torch.tensor(100.0 + 2e-4, dtype=torch.float64), ref_loss, grads, grads, 1)
    assert loss_off[0] == "FAIL" and "loss 2.0e-06" in loss_off[1] and "gradients off" not in loss_off[1]
    grad_off = compare.judge_architecture(ref_loss, ref_loss, {"a": torch.ones(4, dtype=torch.float64) * 1.00002},
                                            grads, 1)
    assert grad_off[0] == "FAIL" and "(gradients off: a)" in grad_off[1]
    missing = compare.judge_architecture(ref_loss, ref_loss, {}, grads, 1)
    assert missing[0] == "FAIL" and "gradient of a inf" in missing[1]
    wrong = compare.judge_architecture(torch.ones(2), ref_loss, grads, grads, 1)
    assert wrong[0] == "FAIL" and wrong[1].startswith("the forward returned tensor([1., 1.]), not a loss")


def test_constants(base_module):
    class User:
        batch_size, seq_len, val_tokens = 8 * 64 * 1024, 1024, 10 * 524288
    assert compare.check_constants(base_module, base_module) == (
        "PASS", "batch_size 524288, seq_len 1024, val_tokens 10485760")
    assert compare.check_constants(User, base_module) == ("FAIL", "val_tokens = 5242880 (baseline 10485760)")
    del User.seq_len
    assert compare.check_constants(User, base_module)[1].startswith("seq_len = '(missing)' (baseline 1024); val_tokens")


# -----------------------------------------------------------------------------
# the plan, the val cadence, the table

def test_rule_val_steps_pin_the_threshold():
    """RULES 6.1: 0.9 exactly, and '<'. 250 steps: 225 = 0.9 * 250 validates only with '<' and a threshold of at
    most 0.9; 2750 steps: 2450 = 0.8909 * 2750 does not, so the threshold is above 0.8909."""
    assert logcheck.rule_val_steps(250) == [0, 125, 225, 250]
    steps = logcheck.rule_val_steps(2750)
    assert 2475 in steps and 2450 not in steps and steps[-5:] == [2650, 2675, 2700, 2725, 2750]
    steps = logcheck.rule_val_steps(3250)
    assert len(steps) == 38 and steps[:2] == [0, 125] and steps[22:25] == [2750, 2875, 2925] and steps[-1] == 3250
    assert logcheck.rule_val_steps(1) == [0, 1]


@pytest.mark.parametrize("train_steps", [250, 2750, 3250, 30, 12])
def test_the_baseline_script_validates_at_the_rule(base_module, monkeypatch, train_steps):
    monkeypatch.setattr(base_module, "train_steps", train_steps)
    # with the val the loop adds after the last step (RULES 6.1), whatever is_val_step says there
    assert [s for s in range(train_steps + 1) if s == train_steps or base_module.is_val_step(s)] == \
        logcheck.rule_val_steps(train_steps)


def test_cadence_note():
    assert logcheck.cadence_note([0, 125, 225, 250], 250) == "4 val steps per trial, the cadence of RULES 6.1"
    assert logcheck.cadence_note([0, 125, 250], 250) == ("3 val steps per trial, not the cadence of RULES 6.1 "
                                                          "(allowed by 6.4): drops 225")
    assert logcheck.cadence_note([125, 200, 225, 250], 250) == ("4 val steps per trial, not the cadence of RULES 6.1 "
                                                                 "(allowed by 6.4): adds 200; drops 0")


def test_plan_runs():
    plan = pf_runs.plan_runs(3250, logcheck.rule_val_steps(3250))
    assert plan == dict(n=10, k=5, a=3100, b1=3102, b=3125, c=3127)
    assert plan["a"] >= 0.8 * 3250  # late state that starts at 80% of the steps exists in the resumed checkpoints
    assert pf_runs.plan_runs(12, [0, 12]) == dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    assert pf_runs.plan_runs(12, [9, 10, 11, 12]) == dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    assert pf_runs.plan_runs(40, list(range(0, 41, 2))) == dict(n=10, k=5, a=36, b1=38, b=38, c=40)
    assert pf_runs.plan_runs(6, [0, 6]) == dict(n=6, k=3, a=2, b1=4, b=4, c=6)
    assert pf_runs.plan_runs(5, [0, 5]) == dict(n=5, k=2, a=None)
    assert pf_runs.plan_runs(3, [0, 3]) == dict(n=3, k=2, a=None)
    assert pf_runs.plan_runs(1, [0, 1]) == dict(n=1, k=None, a=None)


def test_table_steps():
    assert pf_runs.table_steps(3250) == [0, 975, 2275, 2925, 3249]
    assert pf_runs.table_steps(12) == [0, 4, 8, 11]
    assert pf_runs.table_steps(1) == [0]


def test_schedule_rows_merge_equal_groups_and_the_table():
    schedule = {(0, "Muon", "lr"): {g: {0: 0.02, 4: 0.015, 9: 0.01} for g in range(3)},
                (1, "AdamW", "lr"): {0: {0: 0.7, 4: 0.5, 9: 0.3}, 1: {0: 0.004, 4: 0.004, 9: 0.002},
                                     2: {0: 0.7, 4: 0.5, 9: 0.3}},
                (1, "AdamW", "betas[1]"): {0: {0: 0.95}}}
    rows = pf_schedule.schedule_rows(schedule, [0, 9])
    assert [(r["optimizer"], r["groups"], r["key"], r["values"]) for r in rows] == [
        ("0 Muon", [0, 1, 2], "lr", [0.02, 0.01]), ("1 AdamW", [0, 2], "lr", [0.7, 0.3]),
        ("1 AdamW", [1], "lr", [0.004, 0.002]), ("1 AdamW", [0], "betas[1]", [0.95, None])]
    assert [(r["min"], r["min_step"], r["max"], r["max_step"]) for r in rows] == [
        (0.01, 9, 0.02, 0), (0.3, 9, 0.7, 0), (0.002, 9, 0.004, 0), (0.95, 0, 0.95, 0)]  # ties: the first step
    assert common._groups([0, 1, 2]) == "0-2" and common._groups([0, 2]) == "0,2" and common._groups([3]) == "3"
    info = dict(train_steps=10, hparams=dict(steps=[0, 9], rows=rows))
    lines = pf_report.format_table(info)
    assert lines[0] == ("Hyperparameters at the optimizer step of (the long run: 10 steps, rank 0; min and max over every "
                        "step):")
    assert lines[1] == ("  optimizer     groups  key                0 (0.00)   9 (0.90)        min (step)        max "
                        "(step)")
    assert lines[2] == "  0 Muon        0-2     lr                     0.02       0.01          0.01 (9)          0.02 (0)"
    assert lines[5] == "  1 AdamW       0       betas[1]               0.95          -          0.95 (0)          0.95 (0)"
    assert pf_report.format_table(dict(train_steps=10, hparams=dict(steps=[0], rows=[]))) == []


def test_find_spikes_the_trial_example_and_what_is_not_one():
    """A momentum of 0.95 with 0.5 at steps 1600-1604 of 3250 (the researcher trial's example) is a spike; a linear
    decay, a warmup and a step of a schedule are not."""
    steps = list(range(3250))
    mu = [0.5 if 1600 <= s <= 1604 else 0.95 for s in steps]
    assert pf_schedule.find_spikes(steps, mu) == [(1600, 1604, 0.5, 0.95)]
    lr = [1.0 if s < 975 else (1 - s / 3250) / 0.7 for s in steps]  # the baseline's schedule
    assert pf_schedule.find_spikes(steps, lr) == []
    warm = [min(1.0, s / 300) * (1 - s / 3250) for s in steps]  # a rise, then a fall
    assert pf_schedule.find_spikes(steps, warm) == []
    assert pf_schedule.find_spikes(steps, [0.95 if s < 2000 else 0.85 for s in steps]) == []  # a step
    assert pf_schedule.find_spikes(list(range(12)), [0.95] * 6 + [0.5] + [0.95] * 5) == [(6, 6, 0.5, 0.95)]
    assert pf_schedule.find_spikes(steps, [0.95] * 3250) == [] and pf_schedule.find_spikes([0, 1], [1.0, 0.0]) == []
    too_long = [0.5 if 1600 <= s < 1600 + pf_schedule.SPIKE_MAX_STEPS + 1 else 0.95 for s in steps]
    assert pf_schedule.find_spikes(steps, too_long) == []  # a phase, not a spike
    row = pf_schedule.schedule_rows({(0, "Muon", "mu"): {0: dict(zip(steps, mu)), 1: dict(zip(steps, mu))}}, [0])[0]
    assert row["spikes"] == [dict(first=1600, last=1604, value=0.5, around=0.95)]
    assert pf_schedule.spike_text(row, row["spikes"][0]) == "0 Muon groups 0-1 mu = 0.5 at steps 1600-1604 (0.95 around it)"


def test_scale_mismatches_tell_absolute_steps_from_fractions():
    """Under --steps N the run's schedule is compared with the script's own (T steps) at the same fraction: a schedule
    of step / train_steps (thresholds included) matches; `if step > 2000`, or a warmup of 300 steps, does not."""
    def series(T, f):
        return {(0, "AdamW", "lr"): {0: {s: f(s, T) for s in range(T)}}}

    baseline = lambda s, T: 1.0 if s / T < 0.3 else (1 - s / T) / 0.7  # noqa: E731
    assert pf_schedule.scale_mismatches(series(300, baseline), 300, series(3250, baseline), 3250) == []
    assert pf_schedule.scale_mismatches(series(12, baseline), 12, series(3250, baseline), 3250) == []
    absolute = lambda s, T: 0.1 if s > 2000 else 1.0  # noqa: E731
    found = pf_schedule.scale_mismatches(series(300, absolute), 300, series(3250, absolute), 3250)
    assert found == [("0 AdamW", 0, "lr", 185, 1.0, (2004, 2014), (0.1, 0.1))]
    warmup = lambda s, T: min(1.0, s / 300)  # noqa: E731
    assert pf_schedule.scale_mismatches(series(12, warmup), 12, series(3250, warmup), 3250)[0][3] == 1


def test_hyperparameter_keys_and_problems():
    group = dict(params=[1], lr=0.1, betas=(0.9, 0.99), eps=1e-8, fused=True, foreach=None, mu=torch.tensor(0.95),
                 name="x", weight_decay=0)
    assert list(fingerprint.numeric_hparams(group)) == [("lr", 0.1), ("betas[0]", 0.9), ("betas[1]", 0.99), ("eps", 1e-8),
                                                   ("mu", pytest.approx(0.95)), ("weight_decay", 0.0)]
    for key in ("mu", "momentum", "rho", "betas[1]", "beta2", "muon_mu", "nesterov_momentum", "ema_beta"):
        assert fingerprint.is_momentum(key), key
    for key in ("lr", "eps", "weight_decay", "alpha", "mult"):
        assert not fingerprint.is_momentum(key), key
    problem = pf_schedule.problem
    assert problem("lr", 0.1) is None and problem("lr", -0.1) == "negative" and problem("lr", math.nan) == "not finite"
    assert problem("mu", 1.0) == "a momentum or beta at or above 1" and problem("mu", 0.999) is None
    assert problem("weight_decay", 1.5) is None and problem("eps", -1e-8) == "negative"
    assert problem("betas[0]", math.inf) == "not finite"
    assert pf_schedule.hparam_value(group, "betas[1]") == 0.99 and pf_schedule.hparam_value(group, "mu") == pytest.approx(
        0.95) and pf_schedule.hparam_value(group, "fused") is None and pf_schedule.hparam_value(group, "betas[5]") is None


# -----------------------------------------------------------------------------
# logs

def val(step, total, loss="4.85000", extra=""):
    return f"step:{step}/{total} val_loss:{loss}{extra} train_time:1.234s step_avg:5.67ms"


def log_text(trials, total, extra="", resumed_at=None):
    lines = ["PyTorch x", SEP]
    for i, steps in enumerate(trials, 1):
        lines.append(f"trial {i}/{len(trials)} seed {i}")
        for s in steps:
            if resumed_at is not None and i == 1 and s == resumed_at:
                lines.append(f"trial 1/{len(trials)} stopped by signal 15 at step {s}; checkpoint c.pt")
                lines.append(f"trial 1/{len(trials)} resumed from c.pt at step {s}")
            lines.append(val(s, total, extra=extra))
        lines.append(f"trial {i}/{len(trials)} target val_loss<=3.28 not reached")
    return "\n".join(lines) + "\n"


def test_check_log_format_accepts_the_scripts_own_val_steps():
    check = logcheck.check_log_format
    assert check(log_text([[0, 5, 10], [0, 5, 10]], 10), [0, 5, 10], 10, 2) is None
    # no step 0 and readout columns (RULES 6.4): split by the trial lines; a resumed trial goes on
    assert check(log_text([[7, 8, 9, 10]] * 2, 10, extra=" val_ema_loss:4.12345", resumed_at=8), [7, 8, 9, 10], 10,
                 2) is None
    # no trial lines: split where the step does not go up
    assert check("\n".join([val(0, 4), val(4, 4), val(0, 4), val(4, 4)]), [0, 4], 4, 2) is None
    assert check(log_text([[0, 5]], 10), [0, 5, 10], 10, 1, nonfinite=True) is None  # a trial cut by a nan loss


@pytest.mark.parametrize("text,expected,problem", [
    (log_text([[0, 5, 10]], 10).replace("val_loss:", "val loss:", 1), [0, 5, 10],
     "a val line not in the layout of RULES 6.2 ('step:S/N val_loss:L [name:value ...] train_time:Ts step_avg:Mms'): "
     "'step:0/10 val loss:4.85000 train_time:1.234s step_avg:5.67ms'"),
    (log_text([[0, 5, 10]], 10).replace("val_loss:4.85000", "val_loss:4.85", 1), [0, 5, 10], "a val line not in"),
    (log_text([[0, 5, 10]], 10).replace("train_time:1.234s", "train_time:1.2s", 1), [0, 5, 10], "a val line not in"),
    (log_text([[0, 5, 10]], 10, extra=" val_ema_loss:"), [0, 5, 10], "a val line not in"),
    ("note step:3/10 val_loss:4.85000 train_time:1.234s step_avg:5.67ms\n", [3], "a val line not in"),
    (log_text([[0, 5, 10]], 10), [0, 5, 10, 11], "trial 1 validates at steps other than the script's is_val_step says: "
                                                 "missing 11"),
    (log_text([[0, 5, 7, 10]], 10), [0, 5, 10], "trial 1 validates at steps other than the script's is_val_step says: "
                                                "extra 7"),
    (log_text([[0, 5, 5, 10]], 10), [0, 5, 10], "trial 1 validates at steps other than the script's is_val_step says: "
                                                "twice 5"),
    (log_text([[0, 10, 5]], 10), [0, 5, 10], "trial 1 validates at steps other than the script's is_val_step says: "
                                             "; out of order"),
    (log_text([[0, 5, 10]], 12), [0, 5, 10], "trial 1 has val lines whose total is not train_steps = 10: 12"),
    (log_text([[0, 5, 10]], 10), [0, 5, 10], "1 trials found in the log (trials 1), expected 2"),
    (val(0, 10) + "\n" + log_text([[0, 5, 10]] * 2, 10), [0, 5, 10], "3 trials found in the log (trials None, 1, 2)"),
])
def test_check_log_format_rejects(text, expected, problem):
    n_trials = 2 if "expected 2" in problem or "trials None" in problem else 1
    got = logcheck.check_log_format(text, expected, 10, n_trials)
    assert got is not None and got.startswith(problem), got


def test_check_log_format_nonfinite_allows_only_a_prefix():
    assert logcheck.check_log_format(log_text([[0, 10]], 10), [0, 5, 10], 10, 1, nonfinite=True).startswith(
        "trial 1 validates at steps other than the script's is_val_step says: missing 5")


def test_split_trials():
    lines = ["trial 1/2 seed 1", val(0, 4), "trial 1/2 resumed from x at step 2", val(4, 4), "trial 2/2 seed 2", val(0, 4)]
    assert {k: [s for s, _ in v] for k, v in logcheck.split_trials(lines).items()} == {1: [0, 4], 2: [0]}
    lines = [val(0, 4), val(2, 4), val(2, 4), val(4, 4), "other", val(1, 4)]
    assert {k: [s for s, _ in v] for k, v in logcheck.split_trials(lines).items()} == {1: [0, 2], 2: [2, 4], 3: [1]}


def test_check_log_script():
    code = "print('hi')\n"
    run = dict(logs=[code + SEP + "\nrest\n"], completed=True)
    assert logcheck.check_log_script(code, run) is None
    assert logcheck.check_log_script(code, dict(run, logs=[code + "\n" + SEP + "\n"])) is None
    assert logcheck.check_log_script(code, dict(run, logs=[])) == "the run wrote no log into log_dir"
    assert logcheck.check_log_script(code, dict(run, logs=[], completed=False)) == common.SKIP
    assert logcheck.check_log_script(code, dict(run, logs=["a", "b"])) == ("the run wrote 2 files into log_dir, "
                                                                             "expected one log")
    assert logcheck.check_log_script("a\nb\nc\n", dict(run, logs=["a\nb\nX\n" + SEP])) == (
        "the log does not start with the script's exact text (first difference at line 3 of the script)")
    assert logcheck.check_log_script(code, dict(run, logs=[code + "=" * 99 + "\n"])) == (
        "the script's text in the log is not followed by a line of 100 '='")


def test_after_script_and_nonfinite_lines():
    code = "x = 'stopped: training loss is nan or inf'\n"
    log = code + SEP + "\nhead\n" + SEP + "\n" + val(0, 4) + "\nstep:2/4 val_loss:nan train_time:1.000s step_avg:1.00ms\n"
    assert logcheck.after_script(log, code).startswith(SEP + "\nhead")
    assert logcheck.after_script("other\n" + SEP + "\nrest", code) == "rest"
    assert logcheck.after_script("no separator", code) == "no separator"
    assert logcheck.nonfinite_lines(logcheck.after_script(log, code)) == [
        "step:2/4 val_loss:nan train_time:1.000s step_avg:1.00ms"]
    assert logcheck.nonfinite_lines("trial 1/1 stopped: training loss is nan or inf at step 3; going on\n"
                                     "step:1/4 val_loss:inf x\nstep:1/4 val_loss:4.5.6 x\n") == [
        "trial 1/1 stopped: training loss is nan or inf at step 3; going on", "step:1/4 val_loss:inf x"]
    run = dict(log_new=log, fresh=True)
    assert logcheck.run_nonfinite_lines(run, code) == ["step:2/4 val_loss:nan train_time:1.000s step_avg:1.00ms"]
    assert logcheck.run_nonfinite_lines(dict(run, fresh=False), code)[0] == "x = 'stopped: training loss is nan or inf'"


def test_val_records_and_compare_val_lines():
    want = log_text([[0, 5, 10], [0, 10]], 10, extra=" val_ema_loss:4.00000")
    assert resume.val_records(want)[(2, 10)] == "step:10/10 val_loss:4.85000 val_ema_loss:4.00000"
    got = want.replace("train_time:1.234s", "train_time:9.999s")
    assert resume.compare_val_lines(got, want, range(11)) is None  # the clock is not compared
    got = want.replace("step:5/10 val_loss:4.85000 val_ema_loss:4.00000", "step:5/10 val_loss:4.85000 val_ema_loss:4.1")
    assert resume.compare_val_lines(got, want, range(11)) == (
        "val lines differ from trial 1 step 5 on (1 lines): 'step:5/10 val_loss:4.85000 val_ema_loss:4.1' vs "
        "'step:5/10 val_loss:4.85000 val_ema_loss:4.00000'")
    assert resume.compare_val_lines(got, want, range(6, 11)) is None
    assert "(no val line)" in resume.compare_val_lines("", want, [10])


# -----------------------------------------------------------------------------
# fingerprints

def test_bitwise_equal_and_diff_fingerprints():
    eq = verdicts._bitwise_equal
    assert eq(torch.tensor([1.0, math.nan]), torch.tensor([1.0, math.nan]))
    assert not eq(torch.tensor([0.0]), torch.tensor([-0.0]))  # bitwise: the sign of zero counts
    assert not eq(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.float64))
    assert not eq(torch.tensor([1.0]), torch.tensor([[1.0]]))
    assert eq(torch.tensor([1, 2]), torch.tensor([1, 2])) and not eq(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert eq(math.nan, math.nan) and eq(3, 3) and not eq(3, 3.0) and not eq(None, 0) and eq(None, None)
    want = {"parameter a": torch.ones(2), "state['x']": 1, "module global G": torch.zeros(1), "RNG state": torch.ones(1)}
    got = {"parameter a": torch.ones(2), "state['x']": 2, "optimizer 0 (Muon) attribute m": 1}
    assert verdicts.diff_fingerprints(got, want) == ["state['x']", "module global G", "RNG state",
                                                      "optimizer 0 (Muon) attribute m"]
    assert verdicts.diff_fingerprints(got, want, ("parameter ", "state")) == ["state['x']"]
    assert verdicts._largest_difference({"p": torch.tensor([1.0, 5.0])}, {"p": torch.tensor([1.5, 1.0])},
                                         ["p", "q"]) == 4.0
    assert verdicts._largest_difference({"p": 1}, {"p": 2}, ["p"]) is None


def test_describe_paths():
    paths = ["parameter embed.weight", "optimizer 1 (AdamW) state exp_avg of embed.weight",
             "optimizer 0 (Muon) attribute momenta[blocks.0.attn.q.weight]", "optimizer 0 (Muon) group 2 mu",
             "state['ema'][0]", "state['ema'][1]", "module global EMA[0]", "module global EMA[1]", "module global step",
             "RNG state", "something else"]
    assert verdicts.describe_paths(paths) == (
        "parameters: embed.weight; optimizer 1 (AdamW) state: exp_avg of embed.weight; optimizer 0 (Muon) attributes "
        "(not in a checkpoint): momenta[blocks.0.attn.q.weight]; optimizer 0 (Muon) param groups: 2 mu; the extension "
        "points' `state`: state['ema'][i] (2 entries); module globals (not in a checkpoint): EMA[i] (2 entries), step; "
        "the RNG state: RNG state; other: something else")


def test_fingerprint_of_a_trial(base_module):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.extra = {model.weight: torch.ones(2, 2)}
    model.weight.grad, model.bias.grad = torch.ones(2, 2), torch.ones(2)
    opt.step()

    class Module:
        __name__ = "m"
        G = [torch.zeros(1)]
        train_steps = 5  # set by the harness: not state
        number = 3
        text = "x"
    fp = fingerprint.fingerprint(Module, model, [opt], {"ema": [torch.ones(1)], "n": 2})
    assert set(fp) == {"parameter weight", "parameter bias", "optimizer 0 (SGD) state momentum_buffer of weight",
                       "optimizer 0 (SGD) state momentum_buffer of bias", "optimizer 0 (SGD) group 0 lr",
                       "optimizer 0 (SGD) group 0 momentum", "optimizer 0 (SGD) group 0 dampening",
                       "optimizer 0 (SGD) group 0 weight_decay", "optimizer 0 (SGD) attribute extra[weight]",
                       "state['ema'][0]", "state['n']", "module global G[0]", "module global number", "RNG state"}
    assert fp["parameter weight"] is not model.weight and torch.equal(fp["parameter weight"], model.weight.detach())


# -----------------------------------------------------------------------------
# verdicts on synthetic runs

def result(**kw):
    r = dict(rank=0, error=None, completed=True, trials=1, steps=2, none=set(), multi=set(), no_grad={},
             unchanged=set(), zero_grad=set(), nonfinite=set(), first_nonfinite=None, bad_hparams={}, finals=[],
             saves={}, restores={}, train_batches=2, val_batches=1, stream_errors=[], n_stream_errors=0,
             weight_changes=[], n_weight_changes=0, bad_passes=[], n_bad_passes=0, val_steps=[0, 2])
    r.update(kw)
    return r


def make_run(label="long", world=1, results=None, **kw):
    run = dict(label=label, what=f"{label} things", world=world, train_steps=2, trials=1, layers=1, microbatches=1,
               results=results or [result(rank=r) for r in range(world)], logs=[], log_files=[], log_new="",
               outputs=[""] * world, seconds=1.0, completed=True, stopped=None, fresh=True, start=0, stop=None,
               copies={}, nonfinite=False)
    run.update(kw)
    return run


def verdict(judge, *args):
    report = common.Report()
    judge(report, *args)
    return report.checks


def test_judge_run():
    checks = verdict(verdicts.judge_run, [make_run(), make_run("ranks", 2)], {"tail": ("no room", False)})
    assert checks["run"]["status"] == "PASS"
    assert checks["run"]["detail"] == ("long (long things, 1 microbatch): 1.0 s\n"
                                       "ranks (ranks things, 1 microbatch per rank): 1.0 s\ntail: not run, no room")
    bad = [result(rank=0, error="RuntimeError: Connection closed by peer"),
           result(rank=1, error="ValueError: x", traceback="Traceback (the script's frames):\nValueError: x")]
    runs = [make_run("ranks", 2, bad), make_run("tail", 2, [dict(r) for r in bad])]
    checks = verdict(verdicts.judge_run, runs, {})
    assert checks["run"]["status"] == "FAIL"
    assert checks["run"]["detail"] == ("ranks (ranks things) and tail (tail things): rank 1 failed (rank 0 too):\n"
                                       "Traceback (the script's frames):\nValueError: x")
    run = make_run(results=[result(error="SystemExit: 3")], outputs=["a\nb\n"])
    assert verdict(verdicts.judge_run, [run], {})["run"]["detail"] == ("long (long things): rank 0 failed:\n"
                                                                        "SystemExit: 3\n  last output:\na\nb")


def test_judge_finite():
    code = "script\n"
    first = dict(trial=1, when="step 6, after the optimizers' step and after_step",
                 names=["optimizer 0 (Muon) state momentum_buffer of w", "parameter w"])
    runs = [make_run("short", results=[result(first_nonfinite=dict(first, when="step 3"))]),
            make_run(results=[result(first_nonfinite=first, nonfinite={"w"})],
                     log_new=code + SEP + "\nstep:2/2 val_loss:nan x\n")]
    checks = verdict(verdicts.judge_finite, runs, code)
    assert checks["finite"]["status"] == "FAIL"
    assert checks["finite"]["detail"] == (
        "first non-finite tensors: long run, trial 1, step 6, after the optimizers' step and after_step: "
        "optimizer 0 (Muon) state: momentum_buffer of w; parameters: w; long: step:2/2 val_loss:nan x; "
        "non-finite parameters at the end: w")
    assert verdict(verdicts.judge_finite, [make_run()], code)["finite"]["status"] == "PASS"
    assert verdict(verdicts.judge_finite, [make_run(completed=False)], code)["finite"]["status"] == "SKIP"


def final(trial, **fp):
    return dict(trial=trial, normal=True, resumed=False, fingerprint=fp)


def test_judge_ranks():
    same = [result(rank=r, finals=[final(1, **{"parameter w": torch.ones(2), "state['x']": 1})]) for r in range(2)]
    assert verdict(verdicts.judge_ranks, [make_run("ranks", 2, same)])["ranks"]["detail"] == (
        "parameters and `state` bitwise equal on all 2 ranks at the end of every trial of the 2-rank runs (1 trials)")
    drift = [result(rank=0, finals=[final(1, **{"parameter w": torch.ones(2), "state['x']": 1, "RNG state": 1})]),
             result(rank=1, finals=[final(1, **{"parameter w": torch.tensor([1.0, 1.5]), "state['x']": 2,
                                                "RNG state": 2})])]
    checks = verdict(verdicts.judge_ranks, [make_run("ranks", 2, drift), make_run("tail", 2, [dict(r) for r in drift])])
    assert checks["ranks"]["status"] == "FAIL"
    assert checks["ranks"]["detail"] == ("the ranks end with different parameters: w; the extension points' `state`: "
                                         "state['x'] (largest difference 0.5) in ranks trial 1, tail trial 1")
    assert verdict(verdicts.judge_ranks, [make_run()])["ranks"]["status"] == "SKIP"


def test_judge_membership():
    runs = [make_run(results=[result(none={"b"}, multi={"a"}, no_grad={"c": 3}, unchanged={"d"},
                                     zero_grad={"d", "e"})])]
    checks = verdict(verdicts.judge_membership, runs)
    assert checks["optimizers"]["detail"] == "in no optimizer: b; in more than one optimizer: a"
    assert checks["gradients"]["detail"] == "no gradient at an optimizer step: c (3 steps)"
    assert checks["updates"]["detail"] == ("never changed: d; not judged, their gradients were always exactly zero (cut "
                                           "off by a parameter that does not train?): e")
    checks = verdict(verdicts.judge_membership, [make_run(results=[result(trials=0)])])
    assert checks["optimizers"]["status"] == "FAIL" and checks["optimizers"]["detail"] == ("main() never called "
                                                                                           "make_optimizers")
    checks = verdict(verdicts.judge_membership, [make_run(results=[result(trials=0)], completed=False)])
    assert checks["optimizers"]["status"] == "SKIP"
    checks = verdict(verdicts.judge_membership, [make_run(results=[result(zero_grad={"e"})])])
    assert checks["updates"]["status"] == "PASS" and "not judged" in checks["updates"]["detail"]


def test_judge_hparams():
    bad = {(0, "Muon", "mu", "a momentum or beta at or above 1"): dict(trial=1, step=9, value=1.0, groups={0, 1, 2},
                                                                       count=9),
           (1, "AdamW", "lr", "negative"): dict(trial=1, step=11, value=-0.5, groups={1}, count=3)}
    runs = [make_run("short", results=[result(bad_hparams={(0, "Muon", "mu", "a momentum or beta at or above 1"): dict(
        trial=2, step=3, value=1.2, groups={0}, count=1)})]), make_run(results=[result(bad_hparams=bad)])]
    checks = verdict(verdicts.judge_hparams, runs)
    assert checks["hparams"]["detail"] == ("long run: optimizer 0 (Muon) mu = 1 at step 9 of trial 1 in groups 0-2, "
                                           "9 values in all: a momentum or beta at or above 1")
    assert checks["lr"]["detail"] == ("long run: optimizer 1 (AdamW) lr = -0.5 at step 11 of trial 1 in group 1, "
                                      "3 values in all: negative")
    checks = verdict(verdicts.judge_hparams, [make_run()])
    assert checks["lr"]["status"] == checks["hparams"]["status"] == "PASS"


def test_judge_weights_and_passes():
    change = dict(trial=1, where="step 7: readouts", names=["w", "b"], fix="put them back")
    runs = [make_run(results=[result(weight_changes=[change, change], n_weight_changes=5)])]
    checks = verdict(verdicts.judge_weights, runs)
    assert checks["weights"]["detail"] == ("long trial 1, step 7: readouts changed w, b; long trial 1, step 7: readouts "
                                           "changed w, b (5 times in all)")
    assert checks["weights"]["fix"] == "put them back"
    assert verdict(verdicts.judge_weights, [make_run()])["weights"]["status"] == "PASS"
    # a copy kept in bfloat16 is told apart from an alias (WeightProbe sorts the names)
    rounded = dict(change, rounded=["q", "k"], names=["embed"])
    checks = verdict(verdicts.judge_weights, [make_run(results=[result(weight_changes=[rounded], n_weight_changes=1)])])
    assert checks["weights"]["detail"] == ("long trial 1, step 7: readouts: the weights came back rounded to bfloat16: q, "
                                           "k; it also changed embed")
    rounded = dict(change, rounded=["q"], names=[])
    checks = verdict(verdicts.judge_weights, [make_run(results=[result(weight_changes=[rounded], n_weight_changes=1)])])
    assert checks["weights"]["detail"] == "long trial 1, step 7: readouts: the weights came back rounded to bfloat16: q"
    runs = [make_run(results=[result(bad_passes=["a", "b", "c"], n_bad_passes=4)])]
    assert verdict(verdicts.judge_passes, runs)["one_pass"]["detail"] == "4 steps wrong (counted per rank), e.g. a; b"
    assert verdict(verdicts.judge_passes, [make_run(results=[result(steps=0)])])["one_pass"]["detail"] == (
        "no optimizer step was seen")
    assert verdict(verdicts.judge_passes, [make_run()])["one_pass"]["detail"].endswith("2 rank-steps checked")


def test_judge_data():
    checks = verdict(verdicts.judge_data, [make_run()], True, "stream ok")
    assert checks["data"] == dict(checks["data"], status="PASS",
                                  detail="stream ok; main() trained and validated on that stream")
    checks = verdict(verdicts.judge_data, [make_run(results=[result(val_batches=0)])], True, "stream ok")
    assert checks["data"]["detail"] == ("main() did not fetch its train batches and val set through "
                                        "distributed_data_generator")
    checks = verdict(verdicts.judge_data, [make_run(results=[result(stream_errors=["e1", "e2", "e3"])])], False, "bad")
    assert checks["data"]["detail"] == "bad; e1; e2"
    assert verdict(verdicts.judge_data, [make_run(completed=False)], True, "ok")["data"]["status"] == "SKIP"


# resume

W = {"parameter w": torch.ones(2), "state['ema'][0]": torch.zeros(1), "RNG state": torch.ones(1)}


def fp(**changes):
    out = dict(W)
    out.update(changes)
    return out


def test_judge_resume_short():
    ref = make_run("short", results=[result(saves={(1, 5): fp()}, finals=[final(1, **fp()), final(2, **fp())])],
                   logs=[log_text([[0, 10], [0, 10]], 10)], train_steps=10)
    stop = make_run("short_stop", results=[result(saves={(1, 5): fp()})], stopped=True)
    res = make_run("short_resume", results=[result(restores={(1, 5): fp()}, finals=[final(1, **fp()), final(2, **fp())])],
                   logs=[log_text([[0, 10], [0, 10]], 10)], fresh=False)
    assert resume.judge_resume_short(ref, stop, res, 5) == ([], [])
    lost = {"module global EMA[0]": torch.ones(1)}
    res["results"][0].update(restores={(1, 5): fp()}, finals=[final(1, **fp(**lost)), final(2, **fp(**lost))])
    ref["results"][0]["saves"][(1, 5)] = fp(**{"module global EMA[0]": torch.zeros(1)})
    res["logs"] = [log_text([[0, 10], [0, 10]], 10).replace("val_loss:4.85000", "val_loss:4.90000", 2)]
    problems, notes = resume.judge_resume_short(ref, stop, res, 5)
    assert problems == [
        "the state saved on SIGTERM at step 5 differs from the run that went on: module globals (not in a checkpoint): "
        "EMA[i]",
        "at the end of trial 1 and 2 the state differs from the run that went on: module globals (not in a checkpoint): "
        "EMA[i]",
        "val lines differ from trial 1 step 0 on (2 lines): 'step:0/10 val_loss:4.90000' vs 'step:0/10 val_loss:4.85000'"]
    assert notes == ["right after the restore at step 5, already different (lost at the resume): module globals (not in "
                     "a checkpoint): EMA[i]"]
    assert resume.judge_resume_short(ref, dict(stop, stopped=None), res, 5) == (
        ["SIGTERM during step 3 did not stop short_stop with a checkpoint at step 5 (keep main()'s signal handlers and "
         "the checkpoint code of the Training and Validation section)"], [])
    res["results"][0]["finals"] = res["results"][0]["finals"][:1]
    assert "the resumed run ended 1 trials, the run that went on 2" in resume.judge_resume_short(ref, stop, res, 5)[0]


def test_judge_resume_late():
    log = log_text([[8, 9, 10, 11, 12]], 12)
    ref = make_run("tail", 2, [result(rank=r, saves={(1, 10): fp(), (1, 12): fp()}) for r in range(2)], log_new=log,
                   fresh=False, train_steps=12)
    res = make_run("tail_resume", 2, [result(rank=r, restores={(1, 10): fp()}, saves={(1, 12): fp()}) for r in range(2)],
                   log_new=log, stopped=True, fresh=False)
    assert resume.judge_resume_late(ref, res, 10, 12) == ([], [])
    res["results"][1]["saves"][(1, 12)] = fp(**{"parameter w": torch.tensor([1.0, 1.25])})
    res["results"][1]["restores"][(1, 10)] = fp(**{"optimizer 0 (X) attribute m": torch.ones(1)})
    problems, notes = resume.judge_resume_late(ref, res, 10, 12)
    assert problems == ["at step 12 on rank 1 the state differs from the run that went on: parameters: w (parameters "
                        "off by up to 0.25)"]
    assert notes == ["right after the restore at step 10 on rank 1, already different (lost at the resume): "
                     "optimizer 0 (X) attributes (not in a checkpoint): m"]
    # ranks that already disagree at the resume: a checkpoint holds rank 0's copy; the ranks check reports it
    ref["results"][1]["saves"][(1, 10)] = fp(**{"parameter w": torch.zeros(2)})
    assert resume.judge_resume_late(ref, res, 10, 12) == ([], [])
    del ref["results"][0]["saves"][(1, 12)]
    ref["results"][1]["saves"][(1, 10)] = fp()
    assert resume.judge_resume_late(ref, res, 10, 12)[0][0] == ("tail wrote no checkpoint at step 12 on rank 0 "
                                                                   "although checkpoint_every = 0 made one due")


def test_judge_resume_verdicts():
    plan = dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    checks = verdict(resume.judge_resume, [make_run()], plan, {"tail": ("no room", False)})
    assert checks["resume"]["status"] == "SKIP" and checks["resume"]["detail"] == "no resume ran; tail: no room"
    checks = verdict(resume.judge_resume, [make_run()], plan, {"tail": ("long wrote no checkpoint", True)})
    assert checks["resume"]["status"] == "FAIL" and checks["resume"]["detail"] == "tail: long wrote no checkpoint"
    ref = make_run("long", results=[result(saves={(1, 8): fp(), (1, 10): fp()})], logs=[log_text([[0, 12]], 12)])
    res = make_run("long_resume", results=[result(saves={(1, 10): fp()})], stopped=True, fresh=False)
    checks = verdict(resume.judge_resume, [ref, res], plan, {})
    assert checks["resume"]["status"] == "PASS" and checks["resume"]["detail"].endswith(
        "1 rank, late, resumed at step 8, stopped by SIGTERM at 10")
    checks = verdict(resume.judge_resume, [ref, dict(res, nonfinite=True)], plan, {})
    assert checks["resume"]["detail"].endswith("1 rank, late: not judged, the loss went non-finite (see finite)")
    res["results"][0]["saves"][(1, 10)] = fp(**{"state['ema'][0]": torch.ones(1)})
    checks = verdict(resume.judge_resume, [ref, res], plan, {})
    assert checks["resume"]["detail"] == (
        "lost at a resume: a key of `state`\n"
        "1 rank, late, resumed at step 8, stopped by SIGTERM at 10: at step 10 the state differs from the run that went "
        "on: the extension points' `state`: state['ema'][i]")
    assert checks["resume"]["fix"].startswith("a key of `state`: `state` comes back from torch.load as copies: a value "
                                              "that shares memory with a parameter")
    # a value that no checkpoint can hold, named by its path: that comes first, and the fix says what to keep
    bad = make_run("short", results=[result(uncheckpointable=dict(step=0, when="after_step", found=[
        ("state['it']", "generator")]))])
    checks = verdict(resume.judge_resume, [bad, ref, res], plan, {"x": ("y", True)})
    assert checks["resume"]["detail"].splitlines()[0] == (
        "at step 0 (after after_step) `state` holds what a checkpoint cannot hold: state['it'] (a generator); a "
        "checkpoint keeps tensors, numbers, strings, lists, tuples and dicts (torch.load with weights_only=True)")
    assert "x: y" not in checks["resume"]["detail"] and "a torch.Generator's get_state()" in checks["resume"]["fix"]


def test_lost_kinds_and_their_hints():
    assert resume.lost_kinds("module globals (not in a checkpoint): EMA") == [
        ("a module global", resume.LOST_KINDS[2][2])]
    assert [k for k, _ in resume.lost_kinds("optimizer 0 (Muon) attributes (not in a checkpoint): m; the RNG state: "
                                            "RNG state")] == ["the RNG", "an optimizer attribute"]
    assert [k for k, _ in resume.lost_kinds("module globals (not in a checkpoint): NOISE (a torch.Generator's state); "
                                            "the RNG state: x")] == ["the RNG of a torch.Generator", "a module global"]
    assert resume.lost_kinds("parameters: w") == []


# logs verdict

def test_judge_logs():
    code = "the script\n"
    text = code + SEP + "\nhead\n" + SEP + "\n"
    short = make_run("short", logs=[text + log_text([[0, 2], [0, 2]], 2)], trials=2)
    long = make_run("long", logs=[text + log_text([[0, 2]], 2)])
    checks = verdict(logcheck.judge_logs, [short, long], code, [])
    assert checks["log_script"]["detail"] == "the logs of 2 runs start with the script's exact text and a line of 100 '='"
    assert checks["log_format"]["status"] == "PASS" and checks["log_format"]["detail"] == (
        "2 logs: every val line in the layout of RULES 6.2, each trial at exactly the script's val steps; 2 val steps "
        "per trial, the cadence of RULES 6.1; no line of the script matches the public pattern")
    checks = verdict(logcheck.judge_logs, [dict(short, logs=["x" + text]), dict(long, logs=["y"])], code, ["line 3: v"])
    assert checks["log_script"]["detail"] == ("short, long: the log does not start with the script's exact text (first "
                                              "difference at line 1 of the script)")
    assert checks["log_format"]["detail"].startswith("lines of the script match the public val pattern: line 3: v; ")
    stopped = make_run("short_stop", logs=[text + "trial 1/2 seed 0\n" + val(0, 2)], trials=2)
    resumed = make_run("short_resume", logs=[text + log_text([[0, 2], [0]], 2)], trials=2, fresh=False)
    checks = verdict(logcheck.judge_logs, [short, stopped, resumed], code, [])
    assert checks["log_format"]["detail"] == ("short_stop + short_resume: trial 2 has no val after its last step 2: "
                                              "every trial validates at train_steps (RULES 6.1), and its final val "
                                              "loss is that val")
    checks = verdict(logcheck.judge_logs, [dict(long, completed=False)], code, [])
    assert checks["log_format"]["status"] == "SKIP" and checks["log_script"]["status"] == "PASS"


def test_merge():
    assert common._merge([("a", "x"), ("b", "x"), ("c", "y"), ("d", "z")]) == [
        "a, b: x", "c: y", "and 1 more like these"]


def test_format_report_lists_failures_with_fixes():
    info = dict(script="s.py", sha256="ab" * 32, train_steps=12, steps_source="--steps",
                runs=[dict(label="long", what="12 steps")], ok=False, wall_s=1.25,
                checks=[dict(id="run", rule="-", check="runs", status="PASS", detail="long: 1 s", fix=""),
                        dict(id="lr", rule="-", check="lr ok", status="FAIL", detail="bad\nlr", fix="fix lr"),
                        dict(id="data", rule="2.1", check="data", status="SKIP", detail="no run", fix="")])
    text = preflight.format_report(info)
    assert text.splitlines() == [
        f"preflight s.py (sha256 {'ab' * 32})", "  12 steps (--steps); tiny model of width 16, synthetic data, CPU; "
        "runs: long: 12 steps", "  PASS  run          runs", "        long: 1 s", "  FAIL  lr           lr ok",
        "        bad", "        lr", "        fix: fix lr", "  SKIP  data         data  [rule 2.1]", "        no run",
        "FAIL: 1 of 3 checks (lr). Wall time 1.2 s.",
        "Note: --steps overrode train_steps; the default runs every step of the script's own train_steps."]


# -----------------------------------------------------------------------------
# edges found by mutation testing: each assertion below failed for at least one changed copy of the code

def test_clip_and_describe():
    assert common._clip(range(5)) == "0, 1, 2, 3, 4"
    assert common._clip(range(6)) == "0, 1, 2, 3, 4 and 1 more"
    assert common._clip(range(7), 2) == "0, 1 and 5 more"
    run = make_run("ranks", 2, microbatches=2)
    assert verdicts._describe(run) == "ranks (ranks things)"
    assert verdicts._describe(run, True) == "ranks (ranks things, 2 microbatches per rank)"
    assert verdicts._describe(make_run(), True) == "long (long things, 1 microbatch)"


def test_report_starts_with_every_check_skipped():
    report = common.Report()
    assert list(report.checks) == [cid for cid, *_ in preflight.CHECKS]
    row = next(c for c in preflight.CHECKS if c[0] == "resume")
    assert report.checks["resume"] == dict(id="resume", rule="-", check=row[2], status="SKIP", detail="not run",
                                           fix=row[3])
    assert report.warnings == []
    report.warn("learns", "slow")
    report.warn("learns", "slow")  # said once
    assert report.warnings == [dict(check="learns", text="slow")] and report.ok()
    assert report.checks["data"]["rule"] == "2.1" and report.ok()
    report.set("data", "FAIL", "x", fix="y")
    assert not report.ok() and report.checks["data"]["fix"] == "y"


def test_verdict_and_merge():
    checks = verdict(verdicts._verdict, "lr", [], [make_run(completed=False)], "fine")
    assert checks["lr"]["status"] == "SKIP"
    assert checks["lr"]["detail"] == "a run did not complete (see run); no problem in the steps that ran"
    checks = verdict(verdicts._verdict, "lr", [], [make_run(completed=False)], "fine", False)
    assert checks["lr"]["status"] == "PASS" and checks["lr"]["detail"] == "fine"
    assert common._merge([("a", "x"), ("b", "y")]) == ["a: x", "b: y"]


CRASHED = dict(rank=0, error="SystemExit: 2")  # a rank that failed before the probes were set up


def test_verdicts_survive_a_rank_without_records():
    runs = [make_run(results=[result(), dict(CRASHED, rank=1)], world=2, completed=False)]
    report = common.Report()
    verdicts.judge_finite(report, runs, "code")
    verdicts.judge_ranks(report, runs)
    verdicts.judge_membership(report, runs)
    verdicts.judge_hparams(report, runs)
    verdicts.judge_weights(report, runs)
    verdicts.judge_passes(report, runs)
    verdicts.judge_data(report, runs, True, "ok")
    assert {cid: c["status"] for cid, c in report.checks.items() if c["status"] != "SKIP"} == {}
    assert report.checks["optimizers"]["detail"] == "the run failed before make_optimizers returned"
    assert report.checks["data"]["detail"] == "ok; a run did not complete (see run)"
    assert verdicts._count(runs, "weight_changes") == 0 and verdicts._examples(runs, "bad_passes") == []
    runs = [make_run(results=[result(steps=3, n_bad_passes=1, bad_passes=["x"]), dict(CRASHED, rank=1)], world=2)]
    assert verdict(verdicts.judge_passes, runs)["one_pass"]["detail"] == "1 steps wrong (counted per rank), e.g. x"
    runs = [make_run(results=[result(steps=3), dict(CRASHED, rank=1)], world=2)]
    assert verdict(verdicts.judge_passes, runs)["one_pass"]["detail"].endswith("over the step's batch, 3 rank-steps "
                                                                                "checked")


def test_hardcoded_more_channels():
    flagged = {
        "lr = os.environ['LR']\n": "line 1: os.environ[...] reads 'LR'",  # no import seen: the usual names
        "n = sys.argv[1]\n": "line 1: reads sys.argv beyond",
        "import click.core\n": "line 1: import click.core (command-line parsing)",
        "from click.core import x\n": "line 1: from click.core import ... (command-line parsing)",
        "from os import environ\nx = environ['LR']\n": "line 2: os.environ[...] reads 'LR'",
        "from os import environ as E\nx = E['LR']\n": "line 2: os.environ[...] reads 'LR'",
        "from os import environb\nx = environb['LR']\n": "line 2: os.environ[...] reads 'LR'",
        "import os\nx = os.environb['LR']\n": "line 2: os.environ[...] reads 'LR'",
        "import os\nf = os.environ.get\n": "line 2: uses the whole os.environ",
        "import os\nx = os.environ.pop('LR')\n": "line 2: os.environ.pop() reads 'LR'",
        "import os\nx = os.environ.__getitem__('LR')\n": "line 2: os.environ.__getitem__() reads 'LR'",
        "import os\nx = os.environ.__contains__('LR')\n": "line 2: os.environ.__contains__() reads 'LR'",
        "import os\nx = os.environ.get()\n": "line 2: os.environ.get() with a key computed at run time",
        "import os\nx = os.getenv()\n": "line 2: os.getenv() with a key computed at run time",
        "import os\nx = os.getenvb(b'LR')\n": "line 2: os.getenv() with a key computed at run time",
        "import os as o, sys as s\nx = s.argv[1]\n": "line 2: reads sys.argv beyond",
    }
    for src, problem in flagged.items():
        problems = hardcoded(src)
        assert len(problems) == 1 and problems[0].startswith(problem), (src, problems)
    # after an allowed use, the scan goes on
    assert len(hardcoded("import sys, os\nn = sys.argv[-1]\nlr = os.environ['LR']\n")) == 1
    assert len(hardcoded("import sys, os\nn = len(sys.argv)\nlr = os.environ['LR']\n")) == 1
    assert hardcoded("import os\nos.environ.update({'A': '1'})\n") == []
    assert hardcoded("import math as m\nx = m.argv[1]\n") == []  # m is math, not sys


def test_imports_more_channels():
    cases = {"import numpy\nimport scipy\n": ["line 1: import numpy", "line 2: import scipy"],
             "import os, numpy.linalg\n": ["line 1: import numpy.linalg"],
             "from .. import x\n": ["line 1: relative import from .."],
             "from .mod import x\n": ["line 1: relative import from .mod"],
             "from scipy.sparse import x\n": ["line 1: from scipy.sparse import ..."],
             "import importlib\nimportlib.import_module(name='scipy')\n": ["line 2: importlib.import_module('scipy')"],
             "import importlib\nimportlib.import_module(package='x', name='json')\n": [],
             "import importlib\nimportlib.import_module('scipy.sparse')\n": [
                 "line 2: importlib.import_module('scipy.sparse')"],
             "import importlib\nimportlib.import_module('os.path')\n": []}
    for src, problems in cases.items():
        assert static.check_imports(ast.parse(src)) == problems, src


def test_import_time_work_more():
    src = ("import torch\ncuda()\nset_device(0)\ninit_process_group('gloo')\nx.cuda.foo()\n"
           "while True:\n    loss.backward()\nfor i in range(2):\n    print(i)\n(lambda: 0)()\n")
    assert static.import_time_work(ast.parse(src)) == [
        "line 2: starts distributed or CUDA work (cuda)", "line 3: starts distributed or CUDA work (set_device)",
        "line 4: starts distributed or CUDA work (init_process_group)", "line 6: a training loop"]
    message = static.public_format_problem(ast.parse("a.cuda()\nb.cuda()\nc.cuda()\nd.cuda()\n"), "x.py")
    assert "(line 1: starts distributed or CUDA work (a.cuda); line 2: starts distributed or CUDA work (b.cuda); line 3: " \
           "starts distributed or CUDA work (c.cuda); no main(num_trials))." in message
    assert static.script_val_lines("# step:1/2 val_loss:3 " + "x" * 200)[0] == "line 1: # step:1/2 val_loss:3 " + \
        "x" * 78


def test_plan_runs_boundaries():
    assert pf_runs.plan_runs(2, [0, 2])["k"] == 2
    assert pf_runs.plan_runs(20, [19, 20]) == dict(n=10, k=5, a=16, b1=18, b=18, c=20)  # 0.95 * 20 = 19: too late
    assert pf_runs.plan_runs(100, [95, 96, 100]) == dict(n=10, k=5, a=95, b1=97, b=97, c=99)  # 95 = 0.95 * 100
    assert pf_runs.plan_runs(100, [96, 98]) == dict(n=10, k=5, a=96, b1=98, b=98, c=100)  # 96 = T - 4, 98 = T - 2
    assert pf_runs.plan_runs(7, [2, 7]) == dict(n=7, k=3, a=3, b1=5, b=5, c=7)
    assert pf_runs.plan_runs(6, [2, 6]) == dict(n=6, k=3, a=2, b1=4, b=4, c=6)  # a val step at 2 is late enough
    assert pf_runs.plan_runs(100, [95, 97, 100])["b"] == 97  # b = a + 2 exactly
    assert logcheck.rule_val_steps(3) == [0, 3]


def test_judge_run_more():
    bad = dict(rank=1, error="ValueError: y")
    runs = [make_run(), make_run("ranks", 3, [result(rank=0), bad, dict(rank=2, error="RuntimeError: Broken pipe")],
                                 outputs=["\n".join(f"line {i}" for i in range(12))]),
            make_run("tail", results=[dict(rank=0, error="OSError: z")])]
    checks = verdict(verdicts.judge_run, runs, {})
    assert checks["run"]["detail"] == (
        "ranks (ranks things): rank 1 failed (rank 2 too):\nValueError: y\n  last output:\n"
        + "\n".join(f"line {i}" for i in range(2, 12)) + "\ntail (tail things): rank 0 failed:\nOSError: z")


def test_judge_membership_more():
    runs = [make_run(results=[result(none={"x"}), result(trials=0)])]
    assert verdict(verdicts.judge_membership, runs)["optimizers"]["detail"] == "in no optimizer: x"
    runs = [make_run(results=[result(trials=2), result(trials=1)])]
    checks = verdict(verdicts.judge_membership, runs)
    assert checks["optimizers"]["detail"] == "every parameter in exactly one optimizer"
    assert checks["gradients"]["detail"] == "every optimized parameter had a gradient at every optimizer step"
    assert checks["updates"]["detail"] == ("every optimized parameter with a non-zero gradient changed; no step turned "
                                           "one around (new value against the old, cosine below -0.71)")
    runs = [make_run(results=[result(multi={"m"})], completed=False)]
    assert verdict(verdicts.judge_membership, runs)["optimizers"]["status"] == "FAIL"  # evidence, whatever the end
    runs = [make_run(results=[result(no_grad={"a": 1}), result(no_grad={"a": 2, "b": 1})])]
    assert verdict(verdicts.judge_membership, runs)["gradients"]["detail"] == (
        "no gradient at an optimizer step: a (3 steps), b (1 steps)")


def test_format_report_more():
    checks = [dict(id="load", rule="-", check="loads", status="PASS", detail="ok", fix=""),
              dict(id="log_format", rule="6", check="log", status="PASS", detail="4 logs fine", fix=""),
              dict(id="updates", rule="-", check="up", status="PASS", detail="all; not judged: x", fix=""),
              dict(id="data", rule="2.1", check="data", status="SKIP", detail="not run: the script did not load", fix="")]
    info = dict(script="s.py", train_steps=3250, steps_source="the script's train_steps", ok=True, wall_s=40.0,
                checks=checks, kept_logs=["a", "b", "c"], instrument_error="Traceback: boom",
                hparams=dict(steps=[0], rows=[dict(optimizer="0 Muon", groups=[0], key="lr", values=[0.025], min=0.0,
                                                   min_step=3249, max=0.025, max_step=0, spikes=[])]),
                warnings=[dict(check="learns", text="slow")])
    assert preflight.format_report(info).splitlines() == [
        "preflight s.py", "  3250 steps (the script's train_steps); tiny model of width 16, synthetic data, CPU; runs: ",
        "  PASS  load         loads", "  PASS  log_format   log  [rule 6]", "        4 logs fine",
        "  PASS  updates      up", "        all; not judged: x", "  SKIP  data         data  [rule 2.1]",
        "  WARN  learns       slow",
        "Hyperparameters at the optimizer step of (the long run: 3250 steps, rank 0; min and max over every step):",
        "  optimizer     groups  key                0 (0.00)        min (step)        max (step)",
        "  0 Muon        0       lr                    0.025          0 (3249)         0.025 (0)",
        "SKIP: not run: the script did not load.", "Logs kept: 3 files, e.g. a, b and 1 more",
        "PASS: all 4 checks (1 skipped), 1 warning. Wall time 40.0 s.",
        "Note: the preflight's own instrumentation failed (a bug in tools.preflight):", "Traceback: boom"]
    info = dict(script="s.py", ok=True, wall_s=0.0, checks=checks[:1], kept_logs=[])
    assert preflight.format_report(info).splitlines() == [
        "preflight s.py", "  PASS  load         loads", "Logs kept: 0 files, e.g. ", "PASS: all 1 checks. Wall time 0.0 s."]


def test_judge_resume_more():
    plan = dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    log = log_text([[8, 9, 10, 11, 12]], 12)
    short = make_run("short", results=[result(saves={(1, 5): fp()}, finals=[final(1, **fp())])], logs=[log],
                     train_steps=12)
    stop = make_run("short_stop", results=[result(saves={(1, 5): fp()})], stopped=True)
    res = make_run("short_resume", results=[result(restores={(1, 5): fp()}, finals=[final(1, **fp())])], logs=[log])
    tail = make_run("tail", 2, [result(rank=r, saves={(1, 10): fp(), (1, 12): fp()}) for r in range(2)], log_new=log)
    tail_res = make_run("tail_resume", 2, [result(rank=r, saves={(1, 12): fp()}) for r in range(2)], log_new=log,
                        stopped=True)
    checks = verdict(resume.judge_resume, [short, stop, res, tail, tail_res], plan, {"x": ("why", False)})
    assert checks["resume"]["detail"] == (
        "bitwise equal to the runs that went on (parameters, every optimizer's state and attributes, `state`, module "
        "globals, RNG, val lines): 1 rank, stopped by SIGTERM at step 5 and resumed to the end; 2 ranks, late, resumed "
        "at step 10, stopped by SIGTERM at 12")
    tail_res["results"][1]["saves"][(1, 12)] = fp(**{"RNG state": torch.zeros(1)})
    short["results"][0]["finals"] = [final(1, **fp(**{"state['n']": 1}))]
    checks = verdict(resume.judge_resume, [short, stop, res, tail, tail_res], plan, {"x": ("why", True)})
    assert checks["resume"]["detail"].splitlines() == [
        "lost at a resume: the RNG, a key of `state`",
        "1 rank, stopped by SIGTERM at step 5 and resumed to the end: at the end of trial 1 the state differs from the "
        "run that went on: the extension points' `state`: state['n']",
        "2 ranks, late, resumed at step 10, stopped by SIGTERM at 12: at step 12 on rank 1 the state differs from the run "
        "that went on: the RNG state: RNG state", "x: why"]
    # a stop run that did not complete: nothing judged; a resumed short run missing: only the stop is judged
    checks = verdict(resume.judge_resume, [short, dict(stop, completed=False)], plan, {})
    assert checks["resume"]["status"] == "SKIP" and checks["resume"]["detail"] == "no resume ran"
    assert resume.judge_resume_short(short, stop, None, 5) == ([], [])
    assert resume.judge_resume_short(short, dict(stop, results=[result()]), dict(res, logs=[]), 5)[0][-1] == (
        "val lines differ from trial 1 step 8 on (5 lines): '(no val line)' vs 'step:8/12 val_loss:4.85000'")
    stop["results"][0]["saves"] = {(1, 5): fp(**{"parameter w": torch.zeros(2)})}
    problems, _ = resume.judge_resume_short(short, stop, dict(res, completed=False), 5)
    assert problems == ["the state saved on SIGTERM at step 5 differs from the run that went on: parameters: w "
                        "(parameters off by up to 1)"]
    assert resume._lost(fp(), fp(), 5) is None and resume._lost(None, fp(), 5) is None


def test_judge_resume_late_more():
    log = log_text([[8, 9, 10, 11, 12]], 12)
    ref = make_run("long", results=[result(saves={(1, 8): fp(), (1, 10): fp()})], log_new=log)
    res = make_run("long_resume", results=[result(saves={(1, 10): fp()})], log_new=log.replace("4.85000", "4.9", 1),
                   stopped=True)
    assert resume.judge_resume_late(ref, res, 8, 10) == (
        ["val lines differ from trial 1 step 8 on (1 lines): 'step:8/12 val_loss:4.9' vs 'step:8/12 val_loss:4.85000'"],
        [])
    assert resume.judge_resume_late(ref, dict(res, stopped=None), 8, 10)[0] == [
        "SIGTERM during step 8 did not stop long_resume with a checkpoint at step 10 (keep main()'s signal handlers and "
        "the checkpoint code of the Training and Validation section)"]
    res["results"][0]["saves"] = {}
    assert resume.judge_resume_late(ref, res, 8, 10)[0][0].startswith(
        "at step 10 the state differs from the run that went on: parameters: w; the extension points' `state`")
    # one rank's checkpoint state differs at the resume step: only the other ranks' agreement matters
    two = make_run("tail", 2, [result(rank=r, saves={(1, 10): fp(**{"module global G": r}), (1, 12): fp()})
                               for r in range(2)], log_new=log)
    two_res = make_run("tail_resume", 2, [result(rank=r, saves={(1, 12): fp(**{"parameter w": torch.zeros(2)})})
                                          for r in range(2)], log_new=log, stopped=True)
    problems, _ = resume.judge_resume_late(two, two_res, 10, 12)
    assert len(problems) == 2  # module globals may differ by rank: still compared


def test_architecture_messages_and_boundaries(tmp_path, base_module):
    user = load_copy(tmp_path, "scale", pc.MATH_CHANGES["attention scale 0.125"])
    status, text = compare.check_architecture(user, base_module)
    assert text == ("in float64 on shared random weights at the tiny size the forward differs from the baseline's: loss "
                    "4.3e-05 and gradient of blocks.0.attn.q.bias 5.2e-02 relative to the baseline's (gradients off: "
                    "embed.weight, blocks.0.norm1.gains, blocks.0.attn.q.weight, blocks.0.attn.q.bias, "
                    "blocks.0.attn.k.weight and 28 more); rounding alone stays below 1e-06 (loss) and 1e-05 (gradients): "
                    "this changes the math (RULES 4.3)")
    user = load_copy(tmp_path, "extra", [("        self.norm1, self.norm2 = RMSNorm(model_dim), RMSNorm(model_dim)\n",
                                          "        self.norm1, self.norm2 = RMSNorm(model_dim), RMSNorm(model_dim)\n"
                                          "        self.scale = nn.Parameter(torch.ones(1))\n")])
    assert compare.check_architecture(user, base_module) == (
        "FAIL", "parameters at full size, GPT(50304, 12, 768) vs the baseline's GPT(50304, 12, 768): extra scale")
    user = load_copy(tmp_path, "narrow", [("vocab_size, num_layers, model_dim = 50304, 12, 768",
                                           "vocab_size, num_layers, model_dim = 50304, 11, 768")])
    text = compare.check_architecture(user, base_module)[1]
    assert text.startswith("parameters at full size, GPT(50304, 11, 768) vs the baseline's GPT(50304, 12, 768): missing "
                           "blocks.11.norm1.gains, blocks.11.attn.q.weight") and "differ" not in text
    big, exact = torch.tensor(1e6, dtype=torch.float64), {"a": torch.tensor([1e5], dtype=torch.float64)}
    assert compare.judge_architecture(big + 1, big, {"a": exact["a"] + 1}, exact, 1)[0] == "PASS"  # both at the bound
    small = {"a": torch.tensor([1e-3], dtype=torch.float64)}
    assert compare.judge_architecture(big, big, {"a": small["a"] * (1 + 1e-4)}, small, 1)[0] == "FAIL"
    status, text = compare.judge_architecture(big + 10, big, exact, exact, 1)
    assert text.startswith("in float64 on shared random weights at the tiny size the forward differs from the baseline's: "
                           "loss 1.0e-05 and gradient of a 0.0e+00 relative to the baseline's; rounding alone")


def test_finite_ranks_hparams_weights_more():
    code = "c\n"
    runs = [make_run(label, log_new=f"c\n{SEP}\nstep:1/2 val_loss:nan {label}\n") for label in ("a", "b", "c")]
    assert verdict(verdicts.judge_finite, runs, code)["finite"]["detail"] == (
        "a: step:1/2 val_loss:nan a, b: step:1/2 val_loss:nan b and 1 more")
    two = lambda w, x: [final(1, **{"parameter w": torch.tensor(w), "state['x']": x}),  # noqa: E731
                        final(2, **{"parameter w": torch.tensor(w), "state['x']": x})]
    runs = [make_run("one", results=[result(finals=two([1.0], 1))]),
            make_run("stopped", 2, [result(rank=r, finals=two([float(r)], 1)) for r in range(2)], stop=(1, 5)),
            make_run("broken", 2, [result(rank=r, finals=two([float(r)], 1)) for r in range(2)], completed=False),
            make_run("ranks", 2, [result(rank=r, finals=two([1.0], 1)) for r in range(2)])]
    assert verdict(verdicts.judge_ranks, runs)["ranks"]["status"] == "SKIP"  # 'broken' did not complete
    runs[2]["completed"] = True
    checks = verdict(verdicts.judge_ranks, runs)
    assert checks["ranks"]["detail"] == ("the ranks end with different parameters: w (largest difference 1) in broken "
                                         "trial 1, broken trial 2")
    runs = [make_run(f"r{i}", 2, [result(rank=0, finals=[final(1, **{"state['x']": 1})]),
                                  result(rank=1, finals=[final(1, **{"state['x']": 2})])]) for i in range(4)]
    assert verdict(verdicts.judge_ranks, runs)["ranks"]["detail"] == (
        "the ranks end with different the extension points' `state`: state['x'] (largest difference 0) in r0 trial 1, "
        "r1 trial 1, r2 trial 1 and 1 more")
    assert verdict(verdicts.judge_ranks, runs[:1] + [make_run("ok", 2, [result(rank=r, finals=[
        final(1, **{"state['x']": 1}), final(2, **{"state['x']": 1})]) for r in range(2)])])["ranks"]["detail"].count(
        "r0 trial 1") == 1
    assert verdict(verdicts.judge_ranks, [make_run("ok", 2, [result(rank=r, finals=[
        final(1, **{"state['x']": 1}), final(2, **{"state['x']": 1})]) for r in range(2)])])["ranks"]["detail"].endswith(
        "(2 trials)")
    assert verdict(verdicts.judge_ranks, [make_run("none", 2)])["ranks"]["detail"] == "no multi-rank trial ended"
    bad = {(0, "Muon", k, "negative"): dict(trial=1, step=s, value=-1.0, groups={0, 1} if s else set(), count=1)
           for s, k in enumerate(["a", "b", "c", "d"])}
    checks = verdict(verdicts.judge_hparams, [make_run(results=[result(bad_hparams=bad)]), make_run("empty", results=[])])
    assert checks["hparams"]["detail"] == (
        "long run: optimizer 0 (Muon) a = -1 at step 0 of trial 1, 1 values in all: negative; long run: optimizer 0 "
        "(Muon) b = -1 at step 1 of trial 1 in groups 0-1, 1 values in all: negative; long run: optimizer 0 (Muon) c = -1 "
        "at step 2 of trial 1 in groups 0-1, 1 values in all: negative")
    assert checks["lr"]["detail"] == "finite and >= 0 in every group at every step"
    assert verdict(verdicts.judge_hparams, [make_run()])["hparams"]["detail"] == (
        "finite and >= 0 in every group at every step; momentum and betas below 1 (the table below: the long run)")
    changes = [dict(trial=1, where=f"w{i}", names=[], fix=f"fix {i}") for i in range(3)]
    checks = verdict(verdicts.judge_weights, [make_run(results=[result(weight_changes=changes, n_weight_changes=2)])])
    assert checks["weights"]["status"] == "FAIL"
    assert checks["weights"]["detail"] == "long trial 1, w0 changed parameters; long trial 1, w1 changed parameters"
    assert checks["weights"]["fix"] == "fix 0"
    assert verdict(verdicts.judge_weights, [make_run()])["weights"]["detail"] == (
        "bitwise unchanged across every val pass, readout, forward and backward")
    checks = verdict(verdicts.judge_data, [make_run(results=[result(stream_errors=["e"])])], True, "ok")
    assert checks["data"]["status"] == "FAIL" and checks["data"]["detail"] == "e"


def test_small_helpers_more():
    assert logcheck.after_script("x\n" + SEP + "\nhead\n" + SEP + "\nrest", "code") == "head\n" + SEP + "\nrest"
    assert not verdicts._bitwise_equal(torch.ones(1), 1.0) and not verdicts._bitwise_equal(1.0, torch.ones(1))
    assert not verdicts._bitwise_equal(math.nan, 1.0) and not verdicts._bitwise_equal(1.0, math.nan)
    assert verdicts._largest_difference({"p": torch.tensor([math.nan, 2.0])}, {"p": torch.tensor([1.0, 1.5])},
                                         ["p"]) == 0.5
    assert verdicts.describe_paths([f"parameter p{i}" for i in range(5)]) == "parameters: p0, p1, p2, p3 and 1 more"
    assert resume.val_records("step:0/2 val_loss:4.00000 x") == {(1, 0): "step:0/2 val_loss:4.00000 x"}
    assert common._groups([1, 2]) == "1-2" and common._groups([1, 3, 4]) == "1,3,4"
    assert logcheck.cadence_note([0, 125, 200, 225, 250], 250).endswith("(allowed by 6.4): adds 200")


def test_log_checks_more():
    code = "a\nb\n"
    assert logcheck.check_log_script(code, dict(logs=[code], completed=True)) == (
        "the script's text in the log is not followed by a line of 100 '='")
    assert logcheck.check_log_script(code, dict(logs=["a\n"], completed=True)) == (
        "the log does not start with the script's exact text (first difference at line 2 of the script)")
    assert logcheck.check_log_script(code, dict(logs=[code + "\r\n" + SEP + "  \nx"], completed=True)) is None
    assert logcheck.check_log_script(code, dict(logs=[code + " " + SEP + "\n"], completed=True)) is not None
    assert logcheck.check_log_script(code, dict(logs=[code + SEP + " x\n"], completed=True)) is not None
    line = "step:0/10 val loss:" + "9" * 200
    assert logcheck.check_log_format("  " + line + "\n", [0], 10, 1) == (  # not at the start: not a val line
        "0 trials found in the log (trials ), expected 1")
    assert logcheck.check_log_format(line + "\n", [0], 10, 1).endswith(repr(line[:120]))
    assert logcheck.check_log_format(log_text([[0, 5, 7, 7, 10]], 10), [0, 5, 10, 11], 10, 1).endswith(
        "extra 7; missing 11; twice 7")
    code_line = ["line 1: step:1/2 val_loss:3", "line 2: b", "line 3: c", "line 4: d"]
    checks = verdict(logcheck.judge_logs, [make_run(logs=["x"])], "code", code_line)
    assert checks["log_format"]["detail"].startswith("lines of the script match the public val pattern: line 1: step:1/2 "
                                                     "val_loss:3, line 2: b, line 3: c and 1 more")
    assert checks["log_script"]["status"] == "FAIL"
    text = "code\n" + SEP + "\n"
    stopped = make_run("short_stop", logs=[text + "trial 1/2 seed 0\n" + val(0, 2)], trials=2)
    resumed = make_run("short_resume", logs=[text + log_text([[0, 2], [0, 2]], 2)], trials=2, fresh=False)
    long = make_run("long", logs=[text + log_text([[0, 2]], 2)], results=[result(val_steps=[0, 1, 2])])
    checks = verdict(logcheck.judge_logs, [stopped, resumed, long], "code", [])
    assert checks["log_format"]["detail"] == "long: trial 1 validates at steps other than the script's is_val_step " \
                                             "says: missing 1"
    checks = verdict(logcheck.judge_logs, [stopped, resumed, dict(long, results=[result()])], "code", [])
    assert checks["log_format"]["detail"] == (
        "2 logs: every val line in the layout of RULES 6.2, each trial at exactly the script's val steps; 2 val steps per "
        "trial, the cadence of RULES 6.1; no line of the script matches the public pattern")
    checks = verdict(logcheck.judge_logs, [stopped, dict(resumed, completed=False), dict(long, results=[result()])],
                     "code", [])
    assert checks["log_format"]["status"] == "SKIP" and checks["log_format"]["detail"] == (
        "a run did not complete (see run); the script's text matches no val line")
    checks = verdict(logcheck.judge_logs, [dict(long, results=[result(val_steps=None)])], "code", [])
    assert checks["log_format"]["status"] == "SKIP"
    two_logs = dict(long, logs=["a", "b"], results=[result()])
    assert verdict(logcheck.judge_logs, [two_logs], "code", [])["log_format"]["status"] == "SKIP"
    report = common.Report()
    report.set("finite", "FAIL", "nan")
    logcheck.judge_logs(report, [make_run(logs=[text + log_text([[0]], 2)], results=[result(val_steps=[0, 1, 2])])],
                         "code", [])
    assert report.checks["log_format"]["status"] == "PASS"  # a trial cut by a nan loss ends early


def test_more_edges():
    assert static.check_imports(ast.parse("from os.path import join\n")) == []
    assert static.check_imports(ast.parse("import importlib\nimportlib.import_module()\n")) == [
        "line 2: importlib.import_module() of a name computed at run time"]
    assert logcheck.rule_val_steps(249)[-2:] == [225, 249]
    assert pf_runs.plan_runs(100, [95, 97, 98])["b"] == 97  # the first val step from a + 2
    assert pf_runs.plan_runs(100, [95, 98])["b"] == 98  # T - 2 is still in reach
    assert pf_runs.plan_runs(100, [95, 99])["b"] == 97  # none in reach: a + 2
    # a failure with its traceback: the output is not repeated; three failing ranks are all named
    bad = [dict(rank=r, error=f"E{r}", traceback=f"T{r}") for r in range(3)]
    run = make_run("ranks", 3, bad, outputs=["out"] * 3)
    assert verdict(verdicts.judge_run, [run], {})["run"]["detail"] == "ranks (ranks things): rank 0 failed (rank 1, 2 too):\nT0"


def test_more_verdict_texts(tmp_path, base_module):
    checks = verdict(verdicts.judge_finite, [make_run()], "c")
    assert checks["finite"]["detail"] == ("training and val losses, and every parameter, optimizer state and extension "
                                          "state tensor finite after every step")
    user = load_copy(tmp_path, "wide2", pc.BROKEN["architecture"][1])
    text = compare.check_architecture(user, base_module)[1]
    assert text.endswith("blocks.0.attn.q.weight (1024, 1024) float32 (baseline (768, 768) float32) and 169 more")
    user = load_copy(tmp_path, "renamed2", [("self.fc, self.proj = Linear(dim, 4 * dim), Linear(4 * dim, dim)",
                                             "self.c_fc, self.proj = Linear(dim, 4 * dim), Linear(4 * dim, dim)"),
                                            ("F.relu(self.fc(x))", "F.relu(self.c_fc(x))")])
    assert compare.check_architecture(user, base_module)[1] == (
        "parameters at full size, GPT(50304, 12, 768) vs the baseline's GPT(50304, 12, 768): missing "
        "blocks.0.mlp.fc.weight, blocks.0.mlp.fc.bias, blocks.1.mlp.fc.weight, blocks.1.mlp.fc.bias, "
        "blocks.2.mlp.fc.weight and 19 more; extra blocks.0.mlp.c_fc.weight, blocks.0.mlp.c_fc.bias, "
        "blocks.1.mlp.c_fc.weight, blocks.1.mlp.c_fc.bias, blocks.2.mlp.c_fc.weight and 19 more")
    big, exact = torch.tensor(1e6, dtype=torch.float64), {"a": torch.tensor([1e5], dtype=torch.float64)}
    text = compare.judge_architecture(big + 10, big, {"a": exact["a"] + 1}, exact, 1)[1]
    assert "gradients off" not in text  # a gradient exactly at the tolerance is within it
    two = [final(1, **{"parameter w": torch.ones(1)}), final(2, **{"parameter w": torch.ones(1)})]
    runs = [make_run("one", results=[result(finals=two)]),
            make_run("ok", 2, [result(rank=r, finals=two) for r in range(2)])]
    assert verdict(verdicts.judge_ranks, runs)["ranks"]["detail"].endswith("(2 trials)")  # 1-rank runs not compared
    runs = [make_run(results=[result(trials=1), result(trials=2)], completed=False)]
    assert verdict(verdicts.judge_membership, runs)["optimizers"]["status"] == "PASS"  # known once make_optimizers ran
    empty = make_run("empty")
    empty["results"] = []
    bad = {(i, "A", "lr", "negative"): dict(trial=1, step=i, value=-1.0, groups=set(), count=1) for i in range(4)}
    checks = verdict(verdicts.judge_hparams, [empty, make_run("crashed", results=[CRASHED]),
                                               make_run(results=[result(bad_hparams=bad)])])
    assert checks["lr"]["detail"] == "; ".join(f"long run: optimizer {i} (A) lr = -1 at step {i} of trial 1, 1 values in "
                                               "all: negative" for i in range(3))


def test_more_resume_and_log_edges():
    log = log_text([[0, 4, 8, 9, 10, 11, 12]], 12)
    ref = make_run("long", results=[result(saves={(1, 8): fp(), (1, 10): fp()})], log_new=log)
    res = make_run("long_resume", results=[result(saves={(1, 10): fp()})], log_new=log_text([[8, 9]], 12), stopped=True)
    assert resume.judge_resume_late(ref, res, 8, 10) == ([], [])  # val lines before the resume are not its own
    # ranks whose `state` disagrees at the resume: not compared (the ranks check says it)
    two = make_run("tail", 2, [result(rank=r, saves={(1, 10): fp(**{"state['x']": r}), (1, 12): fp()})
                               for r in range(2)], log_new=log)
    two_res = make_run("tail_resume", 2, [result(rank=r, saves={(1, 12): fp(**{"parameter w": torch.zeros(2)})})
                                          for r in range(2)], log_new=log, stopped=True)
    assert resume.judge_resume_late(two, two_res, 10, 12) == ([], [])
    # rank 0 without the due checkpoint: rank 1 is still compared; a lost note per rank
    two["results"][0]["saves"] = {(1, 10): fp()}
    two["results"][1]["saves"] = {(1, 10): fp(), (1, 12): fp()}
    two_res["results"][1]["restores"] = {(1, 10): fp(**{"module global G": 1})}
    problems, notes = resume.judge_resume_late(two, two_res, 10, 12)
    assert problems[0].startswith("tail wrote no checkpoint at step 12 on rank 0") and problems[1].startswith(
        "at step 12 on rank 1 the state differs")
    for r in range(2):
        two["results"][r]["saves"] = {(1, 10): fp(), (1, 12): fp()}
        two_res["results"][r]["restores"] = {(1, 10): fp(**{"module global G": 1})}
    assert len(resume.judge_resume_late(two, two_res, 10, 12)[1]) == 2
    # judge_resume: a non-finite first case does not stop the others; messages
    plan = dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    short = make_run("short", results=[result(saves={(1, 5): fp(**{"state['x']": 1})}, finals=[])], logs=[],
                     train_steps=12)
    stop = make_run("short_stop", results=[result(saves={(1, 5): fp()})], stopped=True)
    checks = verdict(resume.judge_resume, [short, stop, dict(ref, nonfinite=True), res, two, two_res], plan,
                     {"a": ("x", False), "b": ("y", False)})
    assert checks["resume"]["detail"].splitlines()[0] == "lost at a resume: a module global, a key of `state`"
    assert checks["resume"]["detail"].splitlines()[1] == (
        "1 rank, stopped by SIGTERM at step 5 and resumed to the end: the state saved on SIGTERM at step 5 differs from "
        "the run that went on: the extension points' `state`: state['x']")
    assert checks["resume"]["detail"].splitlines()[2].startswith("2 ranks, late, resumed at step 10, stopped by SIGTERM "
                                                                 "at 12: at step 12 on rank 0 the state differs")
    assert "; right after the restore at step 10 on rank 0" in checks["resume"]["detail"]
    checks = verdict(resume.judge_resume, [], plan, {"a": ("x", False), "b": ("y", False)})
    assert checks["resume"]["detail"] == "no resume ran; a: x; b: y"
    res_short = make_run("short_resume", results=[result(finals=[])], logs=[log])
    assert resume.judge_resume_short(dict(short, results=[result(finals=[])]), stop, res_short, 5)[0] == []
    # log_script: the separator right after the text, nothing else before it
    code = "a\n"
    assert logcheck.check_log_script(code, dict(logs=[code + "XX" + SEP], completed=True)) == (
        "the script's text in the log is not followed by a line of 100 '='")
    text = "code\n" + SEP + "\n"
    runs = [make_run("short", logs=["bad"], trials=2), make_run("long", logs=[], completed=True)]
    assert verdict(logcheck.judge_logs, runs, "code", [])["log_script"]["detail"] == (
        "short: the log does not start with the script's exact text (first difference at line 1 of the script); long: "
        "the run wrote no log into log_dir")
    short = make_run("short", logs=[text + log_text([[0, 1]], 1)], trials=1, results=[result(val_steps=[0, 1])],
                     train_steps=1)
    checks = verdict(logcheck.judge_logs, [short], "code", [])
    assert checks["log_format"]["detail"] == ("1 logs: every val line in the layout of RULES 6.2, each trial at exactly "
                                              "the script's val steps; no line of the script matches the public pattern")
    long = make_run("long", logs=[text + log_text([[0, 2]], 2)])
    bad_short = dict(short, logs=[text + log_text([[1]], 1)])
    checks = verdict(logcheck.judge_logs, [dict(long, completed=False), bad_short], "code", [])
    assert checks["log_format"]["status"] == "FAIL" and checks["log_format"]["detail"].startswith("short: trial 1")
    checks = verdict(logcheck.judge_logs, [short, long], "code", [])
    assert "; 2 val steps per trial, the cadence of RULES 6.1;" in checks["log_format"]["detail"]
    # format_report: every check printed after one that did not load; several runs and failures
    checks_ = [dict(id=i, rule="-", check=i, status=s, detail=d, fix="f") for i, s, d in [
        ("a", "SKIP", "not run: the script did not load"), ("b", "FAIL", "x"), ("c", "FAIL", "y")]]
    out = preflight.format_report(dict(script="s", train_steps=3, steps_source="--steps", ok=False, wall_s=1,
                                       runs=[dict(label="r1", what="w1"), dict(label="r2", what="w2")], checks=checks_))
    assert "runs: r1: w1; r2: w2" in out and "  FAIL  c            c" in out and "FAIL: 2 of 3 checks (b, c)." in out


# -----------------------------------------------------------------------------
# the digests along a run: where two ranks, or the run and its twin with perturbed val losses, part

def event(step, place, params=(1, 2), groups=7, state=()):
    return (1, step, place, params, groups, state)


def test_first_rank_difference_names_the_place():
    same = [event(0, "init_params"), event(0, "before_forward"), event(0, "optimizer 0 (Muon).step()")]
    assert trajectory.first_rank_difference([dict(rank=0, events=same), dict(rank=1, events=list(same))]) is None
    noisy = same[:1] + [event(0, "before_forward", params=(1, 3)), event(0, "optimizer 0 (Muon).step()", (4, 5))]
    assert trajectory.first_rank_difference([dict(rank=0, events=same), dict(rank=1, events=noisy)]) == (
        1, 0, "before_forward", "parameters (1 tensors)")
    other = same[:2] + [event(0, "optimizer 0 (Muon).step()", groups=8, state=(("state['x']", 1),))]
    assert trajectory.first_rank_difference([dict(rank=0, events=same), dict(rank=1, events=other)]) == (
        1, 0, "optimizer 0 (Muon).step()", "the param groups' hyperparameters; `state`: state['x']")
    assert trajectory.first_rank_difference([dict(rank=0, events=same), dict(rank=1, events=same[:1] + same[2:])])[3] \
        == "rank 1 ran another sequence (optimizer 0 (Muon).step() at step 0)"
    assert trajectory.first_rank_difference([dict(rank=0, events=same)]) is None
    assert trajectory.rank_fix("optimizer 1 (AdamW).step()").startswith("sum every gradient over ranks")
    assert "dist.get_rank()" in trajectory.rank_fix("before_forward") and trajectory.rank_fix("x").startswith("compute")


def traj(*steps, keys=()):
    """A result with a trajectory: each step (step, digests, hparams) over the paths p, q, state['best']."""
    return dict(trajectory=[(1, s, 0, d, h) for s, d, h in steps], trajectory_paths=[("p", "q", "state['best']")],
                readout_keys=set(keys))


def test_first_parting_of_the_twin():
    a = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 5, 6), ((("lr", 0.5),),)))
    assert trajectory.first_parting(a, a) is None
    b = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 5, 6), ((("lr", 0.25),),)))
    assert trajectory.first_parting(a, b) == ("step 1, after set_hparams: the hyperparameters differ: lr 0.5 "
                                              "(perturbed: 0.25)")
    c = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 9, 7), ((("lr", 0.5),),)))
    assert trajectory.first_parting(a, c) == "by the end of step 1: q, state['best']"
    # what readouts wrote into `state` is not compared
    assert trajectory.first_parting(a, dict(c, readout_keys={"'best'"})) == "by the end of step 1: q"
    d = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 5, 7), ((("lr", 0.5),),)), keys={"'best'"})
    assert trajectory.first_parting(a, d) is None
    short = traj((0, (1, 2, 3), ((("lr", 0.5),),)))
    assert trajectory.first_parting(a, short) == ("the twin ran 1 steps, the run that went on 2 (the same up to step 0): "
                                                  "training stopped (or went on) on val")
    assert trajectory.readout_excluded("state['best'][0]", {"'best'"}) and not trajectory.readout_excluded(
        "state['bestx']", {"'best'"})


def test_judge_val_steer():
    a = traj((0, (1, 2, 3), None))
    long, twin = make_run("long", results=[result(**a)]), make_run("twin", results=[result(**a)], perturb=True)
    checks = verdict(trajectory.judge_val_steer, [long, twin])
    assert checks["val_steer"]["status"] == "PASS" and checks["val_steer"]["detail"] == (
        "parameters, optimizer state and `state` bitwise the same at the end of all 1 steps with every val loss and "
        "readout perturbed")
    b = traj((0, (1, 2, 4), None))
    checks = verdict(trajectory.judge_val_steer, [long, make_run("twin", results=[result(**b)])])
    assert checks["val_steer"]["status"] == "FAIL" and checks["val_steer"]["detail"] == (
        "with every val loss and readout multiplied by 0.5 and 2 in turn, training parted from the run that went on: "
        "by the end of step 0: state['best']")
    crashed = make_run("twin", results=[dict(rank=0, error="ValueError: boom\nTraceback ...\nValueError: boom")],
                       completed=False)
    checks = verdict(trajectory.judge_val_steer, [long, crashed])
    assert checks["val_steer"]["status"] == "FAIL" and checks["val_steer"]["detail"].endswith("ValueError: boom")
    assert verdict(trajectory.judge_val_steer, [long, dict(crashed, killed="stall")])["val_steer"]["status"] == "SKIP"
    stalled = dict(crashed, killed="time", limit_s=40.0, limit_why="5 x the baseline's 2.0 s + 30 s", results=[
        dict(rank=0, where="in set_hparams (trial 1, step 7)")])
    checks = verdict(trajectory.judge_val_steer, [long, stalled])
    assert checks["val_steer"]["status"] == "FAIL" and checks["val_steer"]["detail"] == (
        "the twin run (val losses perturbed) stalled: not done after 40 s (its limit: 5 x the baseline's 2.0 s + 30 s), "
        "killed; rank 0 was in set_hparams (trial 1, step 7), where the long run did not")
    assert verdict(trajectory.judge_val_steer, [long])["val_steer"]["detail"] == "the twin run did not run (see run)"
    assert verdict(trajectory.judge_val_steer, [dict(long, completed=False), twin])["val_steer"]["status"] == "SKIP"


# -----------------------------------------------------------------------------
# learning, the model as trained, flips, what a checkpoint cannot hold

def learn_run(label, start, curve, **kw):
    return make_run(label, results=[result(initial_val=start, val_curve=curve)], **kw)


def test_judge_learns():
    base = learn_run("base_long", 4.852, [(0, 4.852), (12, 4.574)])
    good = learn_run("long", 4.852, [(0, 4.852), (12, 4.5)])
    checks = verdict(trained.judge_learns, [good, base], 1.11)
    assert checks["learns"]["status"] == "PASS" and checks["learns"]["detail"] == (
        "val loss 4.852 at the start, 4.500 at step 12 (entropy floor 1.110); the baseline on the same data: 4.852 -> "
        "4.574 at step 12 (all optimizers together: the sign of each update is descent's)")
    report = common.Report()
    trained.judge_learns(report, [learn_run("long", 4.852, [(0, 4.852), (12, 4.8)]), base], 1.11)
    assert report.checks["learns"]["status"] == "PASS" and report.warnings == [dict(check="learns", text=(
        "learns much more slowly than the baseline: val loss 4.852 at the start, 4.800 at step 12 (entropy floor 1.110); "
        "the baseline on the same data: 4.852 -> 4.574 at step 12 (the val loss fell 0.052, 19% of the baseline's "
        "0.278)"))]
    rising = learn_run("long", 4.852, [(0, 4.852), (6, 5.0), (12, 5.2)])
    checks = verdict(trained.judge_learns, [rising, base], 1.11)
    assert checks["learns"]["status"] == "FAIL" and checks["learns"]["detail"] == (
        "the val loss does not fall: val loss 4.852 at the start, 5.200 at step 12 (entropy floor 1.110); the baseline "
        "on the same data: 4.852 -> 4.574 at step 12; curve (step: val loss): 0: 4.852, 6: 5.000, 12: 5.200")
    report = common.Report()  # under --steps with a schedule of absolute steps: a loss that stays put is not judged
    flat = learn_run("long", 4.852, [(0, 4.852), (12, 4.86)])
    trained.judge_learns(report, [flat, base], 1.11, schedule_warned=True)
    assert report.checks["learns"]["status"] == "PASS" and report.checks["learns"]["detail"].startswith(
        "not judged: under --steps the schedule is not the script's own compressed") and len(report.warnings) == 1
    assert verdict(trained.judge_learns, [rising, base], 1.11, True)["learns"]["status"] == "FAIL"  # one that rises
    flat_base = learn_run("base_long", 4.852, [(0, 4.852), (12, 4.85)])
    assert verdict(trained.judge_learns, [good, flat_base], 1.11)["learns"]["detail"].startswith(
        "the baseline does not learn in 12 steps here")
    assert verdict(trained.judge_learns, [dict(good, nonfinite=True), base], 1.11)["learns"]["detail"] == (
        "not judged: the long run's loss went non-finite (see finite)")
    assert verdict(trained.judge_learns, [base], 1.11)["learns"]["status"] == "SKIP"
    inf = learn_run("long", 4.852, [(0, 4.852), (12, math.inf)])
    assert verdict(trained.judge_learns, [inf, base], 1.11)["learns"]["status"] == "SKIP"


def test_judge_live_architecture_adds_to_the_static_check():
    runs = [make_run(results=[result(arch=[dict(where="after make_optimizers", problem="blocks.0.mlp is a GeluMLP "
                                                "(the baseline's: MLP)")] * 2)])]
    report = common.Report()
    report.set("architecture", "PASS", "static ok")
    trained.judge_live_architecture(report, runs)
    assert report.checks["architecture"]["status"] == "FAIL" and report.checks["architecture"]["detail"] == (
        "the model that trains: after make_optimizers: blocks.0.mlp is a GeluMLP (the baseline's: MLP)")
    report.set("architecture", "FAIL", "wider")
    trained.judge_live_architecture(report, runs)
    assert report.checks["architecture"]["detail"].startswith("wider; the model that trains: after make_optimizers")
    report.set("architecture", "PASS", "static ok")
    trained.judge_live_architecture(report, [make_run()])
    assert report.checks["architecture"]["detail"].startswith("static ok; the model that trains has the baseline's")


def test_flip_problems_need_two_steps():
    flips = {("after_step", "embed.weight"): dict(step=0, cos=-0.974, count=3, trial=1),
             ("before_forward", "w"): dict(step=5, cos=-0.9, count=1, trial=1)}
    runs = [make_run("short", results=[result(flips=flips)]), make_run(results=[result(flips={
        ("after_step", "embed.weight"): dict(step=0, cos=-0.97, count=2, trial=1)})])]
    assert trained.flip_problems(runs) == [
        "after_step turned embed.weight around at step 0 of the short run (cosine -0.974 between its new and its old "
        "value; 5 steps in all)"]
    checks = verdict(verdicts.judge_membership, runs)
    assert checks["updates"]["status"] == "FAIL" and "must stay above 0 at the largest lr" in checks["updates"]["fix"]


def test_uncheckpointable_names_the_path():
    state = dict(ema=[torch.ones(2)], n=3, name="x", it=(i for i in range(3)), deep={"g": [1, 2, object()]})
    assert [(p, k) for p, k in trained.uncheckpointable(state)] == [("state['it']", "generator"),
                                                                   ("state['deep']['g'][2]", "object")]
    assert trained.uncheckpointable(dict(ema=[torch.ones(2)], step=3, t=(1.0, "a"))) == []
    assert trained.checkpointable(torch.nn.Parameter(torch.ones(1))) and not trained.checkpointable(torch.Generator())


def test_markov_data_is_learnable_and_has_a_known_floor(tmp_path):
    """tools.tiny's stream: every token has 4 successors with fixed probabilities, so the floor is their entropy."""
    assert tiny.markov_entropy() == pytest.approx(-sum(p * math.log(p) for p in (0.55, 0.25, 0.15, 0.05)))
    assert round(tiny.markov_entropy(), 4) == 1.1097
    table = tiny.markov_successors(128, seed=0)
    assert table.shape == (128, 4) and all((t + 1) % 128 in table[t] and len(set(table[t])) == 4 for t in range(128))
    import numpy as np
    tokens = tiny.markov_tokens(table, 20000, np.random.default_rng(1))
    pairs = list(zip(tokens[:-1].tolist(), tokens[1:].tolist()))
    assert all(b in table[a] for a, b in pairs)  # every transition is one of the chain's
    first = sum(table[a][0] == b for a, b in pairs) / len(pairs)
    assert abs(first - 0.55) < 0.02  # the most likely successor, at its probability
    train, val = tiny.tiny_data(str(tmp_path), 45)
    from data.shards import read_shard
    import glob
    shards = sorted(glob.glob(train))
    assert len(shards) == 2 and len(read_shard(glob.glob(val)[0])) == tiny.TINY["val_tokens"] + tiny.TINY["batch_size"]
    assert all(b in table[a] for a, b in zip(read_shard(shards[0])[:-1].tolist(), read_shard(shards[0])[1:].tolist()))


def test_read_text_keeps_what_the_checks_use_of_a_huge_log(tmp_path, monkeypatch):
    log = tmp_path / "log.txt"
    log.write_text("CODE\n" + SEP + "\n" + "".join(f"chatter {i}\n" for i in range(20000)) + val(0, 2) + "\n"
                   + "trial 1/1 stopped: training loss is nan or inf at step 1\n")
    assert pf_runs.read_text(str(log)) == log.read_text()
    monkeypatch.setattr(pf_runs, "LOG_READ_BYTES", 1000)
    text = pf_runs.read_text(str(log), keep_prefix=0)
    assert text.startswith("CODE\n" + SEP) and val(0, 2) in text and "stopped: training loss" in text
    assert (64 << 10) <= len(text) < (64 << 10) + 500 and "chatter 19999" not in text
    assert pf_runs.read_text(str(tmp_path / "none")) == ""


# -----------------------------------------------------------------------------
# data at launch: a gap in the train shards

@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    return tiny.tiny_data(str(tmp_path_factory.mktemp("gap") / "data"), compare.STREAM_STEPS)


def test_gap_check_passes_the_baseline_and_puts_its_globals_back(base_module, tiny_shards):
    before = {k: getattr(base_module, k) for k in ("train_files", "val_files", "train_steps", "batch_size", "device_type",
                                                   "micro_batch_seqs", "val_tokens")}
    assert compare.check_gap(base_module, *tiny_shards) == \
        (True, "check_launch() refuses train shards without fineweb_train_000002.bin")
    assert {k: getattr(base_module, k) for k in before} == before


def test_gap_check_fails_a_launch_that_accepts_a_gap(tmp_path, tiny_shards):
    user = load_copy(tmp_path, "gap", pc.BROKEN["data@gap"][1])
    ok, text = compare.check_gap(user, *tiny_shards)
    assert not ok and text.startswith("check_launch() accepted train shards without fineweb_train_000002.bin"), text
    assert user.train_files == "data/fineweb10B/fineweb_train_*.bin" and user.train_steps == 3250


def test_gap_check_names_the_missing_shard_it_asks_for(base_module, tiny_shards):
    assert compare.check_gap(base_module, *tiny_shards, missing=1) == \
        (True, "check_launch() refuses train shards without fineweb_train_000001.bin")
    ok, text = compare.check_gap(base_module, *tiny_shards, missing=3)  # after the last shard 50 steps need: accepted
    assert not ok and text.startswith("check_launch() accepted train shards without fineweb_train_000003.bin"), text


def test_gap_check_fails_a_launch_that_refuses_for_another_reason(tmp_path, tiny_shards):
    refuses_all = load_copy(tmp_path, "refuses_all", [('    paths, val_paths, have = sorted(glob.glob(train_files)), ',
                                                       '    raise SystemExit("no fineweb_train_000002.bin here")\n'
                                                       '    paths, val_paths, have = sorted(glob.glob(train_files)), ')])
    ok, text = compare.check_gap(refuses_all, *tiny_shards)
    assert (ok, text) == (False, "check_launch() refused the preflight's tiny shards (the whole set), not for a gap: "
                                 "no fineweb_train_000002.bin here")
    wrong_reason = load_copy(tmp_path, "wrong_reason", [(
        '                raise SystemExit(f"train shard fineweb_train_{i:06d}.bin is missing',
        '                raise SystemExit(f"train shard is missing')])
    ok, text = compare.check_gap(wrong_reason, *tiny_shards)
    assert not ok and text.startswith("check_launch() refused the preflight's tiny shards (without "
                                      "fineweb_train_000002.bin), not for a gap: train shard is missing"), text
    crashes = load_copy(tmp_path, "crashes", [('    fix = "python data', '    fix = 1 / 0, "python data')])
    ok, text = compare.check_gap(crashes, *tiny_shards)
    assert not ok and "ZeroDivisionError" in text, text


def test_gap_check_fails_a_script_without_check_launch():
    class Script:
        pass
    assert compare.check_gap(Script, "x/fineweb_train_*.bin", "x/fineweb_val_*.bin") == \
        (False, "the script has no check_launch(): a train shard missing from the download would go unnoticed")
