"""The extension points of train_gpt_simple.py (set_hparams, is_val_step, before_forward, after_step,
readouts and their checkpointed `state`), used the way a researcher writes them: an EMA-Nesterov
lookahead, a weight EMA with a `val_ema_loss` readout, a per-group momentum schedule and a val set
without step 0. Each run goes through the script's own main() on the tiny CPU model (tools.tiny).
"""
import functools
import math
import os
import re
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_instruments as ci  # noqa: E402
from tools_logtext import ROOT  # noqa: E402

from tools import tiny  # noqa: E402

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
STEPS, SEED = 30, 777
LOOKAHEAD = (5, 25)  # steps with a lookahead move
EMA_FROM = 18  # the weight EMA starts after step 17
STOP_AT = 21  # SIGTERM in the forward of step 20: the state after step 21 is saved, the run resumes at 22

# What a researcher writes in the Init & Optim Hyperparams section (docs/writing-an-approach.md's examples, at the tiny size).
EXTENSIONS = f'''
def set_hparams(step, optimizers, state):
    muon, adam = optimizers
    for group in adam.param_groups:
        group["lr"] = group["initial_lr"] * lr_multiplier(step)
    for group in muon.param_groups:
        group["lr"] = group["initial_lr"] * min(1.0, (train_steps - step) / 10)
        group["mu"] = 0.85 + 0.10 * min(1.0, step / 10)


def is_val_step(step):
    return step == train_steps or (step > 0 and step % 10 == 0) or step >= 27


@torch.no_grad()
def before_forward(step, model, optimizers, state):
    params = list(model.parameters())
    if "prev" not in state:
        state["prev"] = [p.clone() for p in params]
        state["buf"] = [torch.zeros_like(p) for p in params]
    if {LOOKAHEAD[0]} <= step < {LOOKAHEAD[1]}:
        torch._foreach_add_(params, state["buf"], alpha=0.3)


@torch.no_grad()
def after_step(step, model, optimizers, state):
    params = list(model.parameters())
    torch._foreach_lerp_(state["buf"], torch._foreach_sub(params, state["prev"]), 0.01)
    torch._foreach_copy_(state["prev"], params)
    if step + 1 >= {EMA_FROM}:
        if "ema" not in state:
            state["ema"] = [p.float().clone() for p in params]
        else:
            torch._foreach_lerp_(state["ema"], [p.float() for p in params], 1 / 150)


@torch.no_grad()
def readouts(step, model, val_loss, evaluate, state):
    if "ema" not in state:
        return {{"val_ema_loss": val_loss}}
    params = list(model.parameters())
    saved = [p.clone() for p in params]
    for p, e in zip(params, state["ema"]):
        p.copy_(p.float().lerp(e, 0.6))
    loss = evaluate()
    torch._foreach_copy_(params, saved)
    return {{"val_ema_loss": loss}}
'''
NO_READOUT = "\n\ndef readouts(step, model, val_loss, evaluate, state):\n    return {}\n"
VAL_RE = re.compile(r"^step:(\d+)/(\d+) val_loss:(\d+\.\d{5})(?: val_ema_loss:(\d+\.\d{5}))? train_time:")
VAL_STEPS = [10, 20, 27, 28, 29, 30]


def variant(path, extra):
    """A copy of the script whose Init & Optim Hyperparams section ends with `extra` (later definitions win)."""
    code = open(SCRIPT).read()
    marker = "# -----------------------------------------------------------------------------\n# Training and Validation"
    assert code.count(marker) == 1
    with open(path, "w") as f:
        f.write(code.replace(marker, extra + "\n" + marker))
    return str(path)


def record_hooks(module, result):
    """result: Muon's mu per step (rank 0 sees what set_hparams set), and the final `state` of each trial."""
    set_hparams, after_step = module.set_hparams, module.after_step
    result["mu"], result["state"] = [], None

    def recorded_set(step, optimizers, state):
        set_hparams(step, optimizers, state)
        result["mu"].append((step, optimizers[0].param_groups[0]["mu"]))

    def recorded_after(step, model, optimizers, state):
        after_step(step, model, optimizers, state)
        if step == STEPS - 1:
            result["state"] = {k: [t.clone() for t in v] for k, v in state.items()}
    module.set_hparams, module.after_step = recorded_set, recorded_after


class Lab:
    def __init__(self, root):
        self.root = str(root)
        self.train, self.val = tiny.tiny_data(os.path.join(self.root, "data"), STEPS)
        self.scripts = dict(ext=variant(os.path.join(self.root, "ext.py"), EXTENSIONS),
                            plain=variant(os.path.join(self.root, "plain.py"), EXTENSIONS + NO_READOUT))
        self.cache = {}

    def run(self, name, script, world_size, instrument, resume=""):
        over = dict(tiny.TINY, micro_batch_seqs=8, train_steps=STEPS, train_files=self.train, val_files=self.val,
                    log_dir=os.path.join(self.root, name, "logs"), checkpoint_dir=os.path.join(self.root, name, "ckpt"))
        results = tiny.run(self.scripts[script], world_size, over, 1, instrument, env=dict(SEED=str(SEED), RESUME=resume),
                           start_method="fork")
        logs = os.listdir(over["log_dir"])
        assert len(logs) == 1, logs
        with open(os.path.join(over["log_dir"], logs[0])) as f:
            return results, f.read(), over["checkpoint_dir"]

    def get(self, key, *args):
        if key not in self.cache:
            self.cache[key] = self.run(*args)
        return self.cache[key]

    def whole(self, script, world_size):
        return self.get(("whole", script, world_size), f"{script}{world_size}", script, world_size,
                        functools.partial(ci.chain, [ci.capture_trials, record_hooks]))

    def resumed(self, world_size):
        name = f"stop{world_size}"
        _, stopped_log, ckpt_dir = self.get(("stopped", world_size), name, "ext", world_size,
                                            functools.partial(ci.signal_at, STOP_AT, {world_size - 1}))
        ckpt = os.path.join(ckpt_dir, os.listdir(ckpt_dir)[0])
        saved = torch.load(ckpt, weights_only=True)
        results, log, _ = self.get(("resumed", world_size), name, "ext", world_size, ci.capture_trials, ckpt)
        return stopped_log, saved, results, log


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(tmp_path_factory.mktemp("ext"))


def val_lines(log):
    return [m.groups() for m in map(VAL_RE.match, log.splitlines()) if m]


def test_readout_is_logged_after_val_loss_on_its_val_steps(lab):
    _, log, _ = lab.whole("ext", 1)
    lines = val_lines(log)
    assert [int(s) for s, *_ in lines] == VAL_STEPS and all(int(n) == STEPS for _, n, *_ in lines)
    for step, _, val, ema in lines:
        assert ema is not None
        if int(step) < EMA_FROM:  # no EMA yet: the readout repeats val_loss
            assert ema == val
    assert any(ema != val for _, _, val, ema in lines)  # the EMA blend is another model
    # the public tools' pattern still reads val_loss from these lines
    public = [m.group(3) for m in map(re.compile(r"step:(\d+)/(\d+)\s+val_loss:([0-9.]+)").search, log.splitlines()) if m]
    assert public == [val for _, _, val, _ in lines]


@pytest.mark.parametrize("world_size", [1, 2])
def test_readout_leaves_the_training_weights_bitwise(lab, world_size):
    with_readout, log, _ = lab.whole("ext", world_size)
    without, plain_log, _ = lab.whole("plain", world_size)
    for a, b in zip(with_readout[0]["params"], without[0]["params"]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert [v[:3] for v in val_lines(log)] == [v[:3] for v in val_lines(plain_log)]
    assert all(ema is None for *_, ema in val_lines(plain_log))


def test_per_group_schedule_sets_momentum(lab):
    results, _, _ = lab.whole("ext", 1)
    mu = dict(results[0]["mu"])
    assert sorted(mu) == list(range(STEPS))
    for step, value in mu.items():
        assert value == pytest.approx(0.85 + 0.10 * min(1.0, step / 10), abs=1e-12)


def test_lookahead_and_ema_state_is_the_same_on_every_rank(lab):
    results, _, _ = lab.whole("ext", 2)
    states = [r["state"] for r in results]
    assert set(states[0]) == {"prev", "buf", "ema"}
    for key in states[0]:
        assert all(torch.equal(a, b) for a, b in zip(states[0][key], states[1][key]))
    assert any(t.abs().sum() > 0 for t in states[0]["buf"])  # the lookahead buffer moved


@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_mid_ema_ends_exactly_like_the_uninterrupted_run(lab, world_size):
    whole, whole_log, _ = lab.whole("ext", world_size)
    stopped_log, saved, resumed, log = lab.resumed(world_size)
    assert saved["step"] == STOP_AT + 1 and set(saved["state"]) == {"prev", "buf", "ema"}
    assert stopped_log.splitlines()[-1].startswith(f"trial 1/1 stopped by signal 15 at step {STOP_AT + 1};")
    for rank in range(world_size):
        assert resumed[rank]["error"] is None, resumed[rank]["error"]
        final, reference = resumed[rank]["params"][-1], whole[0]["params"][0]
        assert all(torch.equal(final[k], reference[k]) for k in reference), rank
    assert val_lines(log) == [v for v in val_lines(whole_log)]  # val_ema_loss included, each step once


def test_defaults_are_the_baseline():
    import train_gpt_simple as t
    state = {}
    assert t.before_forward(5, None, [], state) is None and t.after_step(5, None, [], state) is None and state == {}
    assert t.readouts(125, None, 4.0, lambda: 1 / 0, state) == {}
    assert [s for s in range(t.train_steps + 1) if t.is_val_step(s)] == \
        [s for s in range(t.train_steps + 1) if s == t.train_steps or s % (125 if s / t.train_steps < 0.9 else 25) == 0]
    groups = [dict(initial_lr=0.5, lr=0.0), dict(initial_lr=0.1, lr=0.0)]
    opt = type("Opt", (), dict(param_groups=groups))()
    t.set_hparams(3000, [opt], state)
    assert [g["lr"] for g in groups] == [0.5 * t.lr_multiplier(3000), 0.1 * t.lr_multiplier(3000)]
    assert math.isclose(t.lr_multiplier(3000), (1 - 3000 / 3250) / 0.7)
