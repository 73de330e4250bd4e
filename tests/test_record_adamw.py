"""records/20260426_adamw/train_gpt_simple.py is public record #2 (AdamW everywhere, 5625 steps): its groups,
schedule, init and val steps are the published script's, a few steps equal Adam's formula computed by hand, and
outside its Init & Optim Hyperparams section it is the harness's script."""
import math
import os

import pytest
import torch

from tools import tiny
from tools_logtext import ROOT

RECORD = os.path.join(ROOT, "records", "20260426_adamw", "train_gpt_simple.py")
rec = tiny.load_script(RECORD, "record2_port")


def eta(step):
    """The published schedule: warm-up over 250 steps for every group, flat to 30%, linear to 0 at 5625."""
    progress = step / 5625
    cooldown = 1.0 if progress < 1 - 0.7 else (1 - progress) / 0.7
    return min(1.0, (step + 1) / 250) * cooldown


def test_groups_and_schedule_of_the_real_model():
    with torch.device("meta"):
        model = rec.GPT(50304, 12, 768)
    adam, blocks = rec.make_optimizers(model)
    names = {p: n for n, p in model.named_parameters()}
    assert [[names[p] for p in g["params"]][:1] for g in adam.param_groups] == [["embed.weight"], ["proj.weight"],
                                                                                ["blocks.0.norm1.gains"]]
    assert [g["lr"] for g in adam.param_groups] == [0.3, 1 / 320, 0.01]
    assert len(adam.param_groups[2]["params"]) == 99 and all(p.ndim == 1 for p in adam.param_groups[2]["params"])
    assert (adam.defaults["betas"], adam.defaults["eps"], adam.defaults["weight_decay"]) == ((0.8, 0.95), 1e-10, 0)
    (group,) = blocks.param_groups
    assert len(group["params"]) == 72 and all(names[p].startswith("blocks.") and p.ndim == 2 for p in group["params"])
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (0.0015, (0.9, 0.95), 1e-10, 0.1)
    assert adam.defaults["fused"] and blocks.defaults["fused"]
    every = [p for opt in (adam, blocks) for g in opt.param_groups for p in g["params"]]
    assert len(every) == len(set(every)) == 173
    groups = adam.param_groups + blocks.param_groups
    for g in groups:
        g["initial_lr"] = g["lr"]
    for step in range(rec.train_steps):
        rec.set_hparams(step, [adam, blocks], {})
        assert [g["lr"] for g in groups] == [g["initial_lr"] * eta(step) for g in groups], step
    assert [eta(s) for s in (0, 249, 250, 1687, 1688, 5624)] == \
        pytest.approx([1 / 250, 1.0, 1.0, 1.0, (1 - 1688 / 5625) / 0.7, (1 / 5625) / 0.7])


def test_val_steps_are_the_published_logs():
    assert [s for s in range(rec.train_steps + 1) if rec.is_val_step(s)] == list(range(0, 5626, 125))


def test_init_is_torchs_default_with_zero_projections():
    torch.manual_seed(3)
    model = rec.GPT(64, 2, 256)
    rec.init_params(model)
    for n, p in model.named_parameters():
        if "proj" in n:
            assert not p.any(), n
        elif n.endswith("gains"):
            assert torch.equal(p, torch.ones_like(p)), n
        elif n == "embed.weight":
            assert 0.97 < p.float().std().item() < 1.03
        else:  # q, k, v and mlp.fc: weight and bias uniform on +-1/sqrt(fan_in)
            bound = 1 / math.sqrt(256)
            assert bound * 0.97 < p.abs().max().item() <= bound, n
            assert abs(p.std().item() - bound / math.sqrt(3)) < 0.05 * bound, n


def adamw_by_hand(init, groups, grads, steps, wd=True, warmup_all=True, bias_correction=True):
    """Torch's AdamW (decoupled weight decay, bias-corrected moments) in float64 from the parameters `init`, with the
    published schedule; `groups`: name -> (initial lr, beta1, beta2, weight decay, is a block matrix). The flags
    make wrong variants."""
    w = {n: p.double() for n, p in init.items()}
    m, v = ({n: torch.zeros_like(x) for n, x in w.items()} for _ in range(2))
    for t, (step, g_step) in enumerate(zip(steps, grads), 1):
        for n in w:
            lr0, b1, b2, decay, block = groups[n]
            lr, g = lr0 * (eta(step) if warmup_all or block else eta(step) / min(1.0, (step + 1) / 250)), g_step[n].double()
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            c1, c2 = (1 - b1 ** t, 1 - b2 ** t) if bias_correction else (1.0, 1.0)
            w[n] = w[n] * (1 - lr * decay * wd) - lr * (m[n] / c1) / ((v[n] / c2).sqrt() + 1e-10)
    return w


def test_steps_equal_adamw_by_hand():
    """Three steps (warm-up, flat, cooldown) of the record's optimizers against AdamW by hand; the model in float32
    (the embedding too) so that float64 by hand can be compared closely."""
    torch.manual_seed(0)
    model = rec.GPT(64, 1, 16)
    rec.init_params(model)
    model.embed.float()
    optimizers = rec.make_optimizers(model)
    params = dict(model.named_parameters())
    groups = {}
    for opt in optimizers:
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
            groups.update({n: (g["lr"], *g["betas"], g["weight_decay"], opt is optimizers[1])
                           for n, p in params.items() if any(p is q for q in g["params"])})
    init = {n: p.detach().clone() for n, p in params.items()}
    gen = torch.Generator().manual_seed(1)
    steps = (0, 1000, 4000)
    grads = [{n: torch.randn(p.shape, generator=gen) for n, p in params.items()} for _ in steps]
    for step, g_step in zip(steps, grads):
        for n, p in params.items():
            p.grad = g_step[n].clone()
        rec.set_hparams(step, optimizers, {})
        for opt in optimizers:
            opt.step()
    want = adamw_by_hand(init, groups, grads, steps)
    worst = max((p.double() - want[n]).abs().max().item() for n, p in params.items())
    assert worst < 1e-6, worst  # float32 rounding of ~1e-3 updates
    for variant in (dict(wd=False), dict(warmup_all=False), dict(bias_correction=False)):
        wrong = adamw_by_hand(init, groups, grads, steps, **variant)
        assert max((p.double() - wrong[n]).abs().max().item() for n, p in params.items()) > 100 * worst, variant


def test_outside_its_init_section_the_record_is_the_harness_script():
    sep = "# -----------------------------------------------------------------------------\n"
    mine, harness = (open(path).read().split(sep) for path in (RECORD, os.path.join(ROOT, "train_gpt_simple.py")))
    assert len(mine) == len(harness)
    changed = [h.split("\n", 1)[0] for a, h in zip(mine, harness) if a != h]
    assert [c.split(":")[0] for c in changed] == ["# Architecture", "# Init & Optim Hyperparams"], (
        f"{RECORD} differs from train_gpt_simple.py in {changed}: copy the harness's other sections into the record")
    old = "        return F.rms_norm(x, (x.size(-1),), self.gains.type_as(x))\n"
    new = "        return (norm(x.float()) * self.gains).type_as(x)  # in float32 (a precision-only change)\n"
    assert [a for a, h in zip(mine, harness) if a != h][0] == next(h for h in harness if h.startswith("# Arch")).replace(
        old, new)
