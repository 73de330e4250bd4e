"""One rank and two agree (RULES 2.7, part of `ranks`): what a script computes must not depend on the number of GPUs.
Two properties the bitwise equality of the ranks cannot see, because a mistake in them keeps the ranks equal:

  SumProbe  in the multi-rank runs: every MatrixOptimizer's update() gets G, its matrices' gradients summed over
            the ranks (the class's contract). At the first SUM_STEPS optimizer steps of each trial it records each
            rank's own gradients of the optimizer's matrices, just before its step(), and the G of every update()
            call; the verdict adds the ranks' gradients up itself and compares. (A mean instead of the sum keeps
            Muon's output, since Newton-Schulz normalizes its input, but not that of an update such as W - lr G.)
  ValProbe  every val loss evaluate() returns in the loop and every readout value, by (trial, step): the 2-rank
            runs must give the val losses and readouts of the 1-rank run of the same configuration (`short` for
            `ranks`, `long` for `tail` and `tail_resume`). From the same weights (step 0 of a fresh trial, the
            first val of a resumed run) within VAL_RTOL_SAME, later within VAL_RTOL.
"""
import collections
import math

import torch

from tools.preflight.common import FAIL, PASS, WORLD, _clip
from tools.preflight.fingerprint import optimizer_label
from tools.preflight.probes import Probe

SUM_STEPS = 2  # optimizer steps of each trial whose update() inputs are recorded (of each MatrixOptimizer)
# G against the sum of the ranks' gradients: the norm of the difference over the sum's norm. Two ranks' sum is exact
# in either order (a + b = b + a in floating point), so G is the sum bit for bit; 1e-6 leaves room for a
# reduction that sums in another precision. A mean over W ranks is off by 1 - 1/W (0.5 here).
SUM_RTOL = 1e-6
# The 2-rank val loss against the 1-rank one, relative. From the same weights the two differ only in how the val
# set's losses are summed (microbatches of 2 sequences per rank instead of 4, then a float64 all-reduce): measured
# 0 to 6.4e-8 (the baseline, the AdamW and #46 records at their own train_steps, val losses and readouts); the limit
# is 1e-6. Later the weights differ too, by the rounding of training on 2 ranks (the gradients summed in another
# order): measured up to 2.1e-5 after the short runs' 10 steps and 1.9e-4 at the tail's end (#46, 2900 steps); the
# limit is 1e-2. A val loss divided or multiplied by the world size is off by 0.5 or 1. (A rank that returns the loss
# of its own half of the val set is off by only 1.3e-3 here, the halves being alike: the ranks' values must be equal,
# which catches it.)
VAL_RTOL_SAME, VAL_RTOL = 1e-6, 1e-2
# a multi-rank run, the 1-rank run it must match, and whether its first val is of that run's weights (tail_resume
# starts from the tail's checkpoint: weights trained on 2 ranks)
PAIRS = dict(ranks=("short", True), tail=("long", True), tail_resume=("long", False))


def matrix_optimizer(module, opt):
    """Whether `opt` is one of the script's MatrixOptimizer subclasses (the machinery that promises update() the sum)."""
    cls = getattr(module, "MatrixOptimizer", None)
    return isinstance(cls, type) and isinstance(opt, cls) and isinstance(getattr(opt, "owner", None), dict)


class SumProbe(Probe):
    """result["sum_grads"]: [dict(trial, step, index, label, grads={name: this rank's gradient})] just before the
    optimizer's step(); result["sum_updates"]: [dict(trial, step, index, label, names, G)]: each update() call of that
    step, the names of its stack (opt.stacks, in the order step() calls update()) and a copy of its G."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(sum_grads=[], sum_updates=[])
        self.on = hub.world > 1
        self.counts, self.current = collections.Counter(), None

    def trial_start(self, model, optimizers):
        self.counts, self.current = collections.Counter(), None

    def optimizer_step(self, opt, index, step):
        if not (self.on and matrix_optimizer(self.hub.m, opt)) or self.counts[index] >= SUM_STEPS:
            return
        self.counts[index] += 1
        names = self.hub.names
        grads = {names[id(p)]: p.grad.detach().clone() for p in opt.owner if id(p) in names and p.grad is not None}
        key = dict(trial=self.hub.trial, step=step, index=index, label=optimizer_label(index, opt))
        self.r["sum_grads"].append(dict(key, grads=grads))
        stacks = getattr(opt, "stacks", None) or []
        update, calls = opt.update, [0]

        def recording(W, G, state, group, *args, **kwargs):
            i = calls[0]
            calls[0] += 1
            if i < len(stacks) and torch.is_tensor(G):
                self.r["sum_updates"].append(dict(key, names=[names.get(id(p), "?") for p in stacks[i][1]],
                                                  G=G.detach().clone()))
            return update(W, G, state, group, *args, **kwargs)
        self.current = (opt, vars(opt).get("update"))  # an update() set on the object itself comes back after
        opt.update = recording  # an instance attribute for this one step (optimizer_stepped removes it)

    def optimizer_stepped(self, opt, index, step):
        if self.current is not None and self.current[0] is opt:
            if self.current[1] is None:
                vars(opt).pop("update", None)
            else:
                opt.update = self.current[1]
            self.current = None


def sum_problems(run):
    """For one multi-rank run: [problem] where an update() got other than its matrices' gradients summed over ranks,
    and how many stacks were compared."""
    results = run["results"]
    grads = collections.defaultdict(dict)  # (trial, step, index) -> {rank: grads}
    for rank, r in enumerate(results):
        for g in r.get("sum_grads", []):
            grads[(g["trial"], g["step"], g["index"])][rank] = g["grads"]
    problems, compared = [], 0
    for rank, r in enumerate(results):
        for u in r.get("sum_updates", []):
            per_rank = grads.get((u["trial"], u["step"], u["index"]), {})
            if len(per_rank) != len(results) or not all(n in g for g in per_rank.values() for n in u["names"]):
                continue
            want = torch.stack([sum(g[n].double() for g in per_rank.values()) for n in u["names"]])
            got = u["G"].double()
            if got.shape != want.shape:
                problems.append(f"{run['label']}: {u['label']}.update() on rank {rank} got G of shape "
                                f"{tuple(got.shape)} for {len(u['names'])} matrices of shape {tuple(want.shape[1:])}")
                continue
            scale = float(want.norm())
            error = float((got - want).norm()) / scale if scale > 0 else float(got.norm())
            if not (math.isfinite(scale) and math.isfinite(error)):  # nan or inf: `finite` judges it
                continue
            compared += 1
            if not error <= SUM_RTOL:
                ratio = float((got * want).sum()) / scale ** 2 if scale > 0 else math.nan
                problems.append(f"{run['label']}: {u['label']}.update() on rank {rank} (trial {u['trial']}, step "
                                f"{u['step']}) got a G that is {ratio:.4g} x the gradients summed over the {len(results)} "
                                f"ranks (relative difference {error:.3g}), for {_clip(u['names'], 2)}"
                                + (": a mean, not the sum" if abs(ratio - 1 / len(results)) < 1e-3 else ""))
    return problems, compared


def _vals(run):
    """{(trial, step): [value per rank]} and {(trial, step, name): [value per rank]} of a run's val passes and
    readouts, as the script's evaluate() and readouts() returned them."""
    vals, readouts = collections.defaultdict(list), collections.defaultdict(list)
    for r in run["results"]:
        for trial, step, value in r.get("world_vals", []):
            vals[(trial, step)].append(value)
        for trial, step, values in r.get("world_readouts", []):
            for name, value in values.items():
                readouts[(trial, step, name)].append(value)
    return vals, readouts


def _relative(got, want):
    try:
        got, want = float(got), float(want)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(got) and math.isfinite(want)):
        return None  # `finite` judges these
    return abs(got - want) / max(abs(want), 1e-12)


def val_problems(run, single, shared=True, later=True):
    """For one multi-rank run and the 1-rank run of its configuration: [problem] where a val loss or a readout value
    differs beyond the tolerance, and how many values were compared. `shared`: the run starts from the weights of
    `single` (its first val step: VAL_RTOL_SAME). `later`: also compare the values after training steps (not when
    the runs trained on other batches or went non-finite: `data` and `finite` say so)."""
    vals, readouts = _vals(run)
    ref_vals, ref_readouts = _vals(single)
    # a fresh run's step 0 (its start) or a resumed run's first step: of the same weights as the 1-rank run's there
    same = {(t, s) for t, s in vals if s == run["start"] and shared}
    problems, compared = [], 0
    items = [((t, s), None, v) for (t, s), v in sorted(vals.items())] + \
            [((t, s), name, v) for (t, s, name), v in sorted(readouts.items())]
    for (trial, step), values in sorted(vals.items()):  # every rank returns the sum over all of them: the same value
        if len(set(values)) > 1:
            problems.append(f"{run['label']}: the val loss at step {step} of trial {trial} differs between the ranks: "
                            + ", ".join(f"{float(v):.6g} on rank {rank}" for rank, v in enumerate(values)))
            break
    for (trial, step), name, values in items:
        want = (ref_vals.get((trial, step)) if name is None else ref_readouts.get((trial, step, name))) or []
        if not want:
            continue
        if (trial, step) not in same and not later:
            continue
        tol = VAL_RTOL_SAME if (trial, step) in same else VAL_RTOL
        for rank, got in enumerate(values):
            error = _relative(got, want[0])
            if error is None:
                continue
            compared += 1
            if error > tol:
                what = "val loss" if name is None else f"readout {name}"
                ratio = float(got) / float(want[0]) if float(want[0]) else math.nan
                problems.append(f"{run['label']}: the {what} at step {step} of trial {trial} is {float(got):.6g} on "
                                f"rank {rank} of {run['world']}, {float(want[0]):.6g} on 1 rank ({single['label']}; "
                                f"{ratio:.4g} x, the limit {tol:g} relative"
                                + (", from the same weights" if (trial, step) in same else "") + ")")
                break
    return problems, compared


class ValProbe(Probe):
    """result["world_vals"]: [(trial, step, val loss)] of every val pass of the loop; result["world_readouts"]:
    [(trial, step, {name: value})] of every readouts() call (its numeric values)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(world_vals=[], world_readouts=[])

    def val_value(self, step, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.r["world_vals"].append((self.hub.trial, step, float(value)))

    def readouts_value(self, step, values):
        if isinstance(values, dict):
            self.r["world_readouts"].append((self.hub.trial, step, {
                str(k): float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}))


def judge_world(report, runs):
    """Part of `ranks` (RULES 2.7): update() gets the sum over ranks, and the 2-rank val losses and readouts equal
    the 1-rank ones. Adds its problems to `ranks` (FAIL) or its findings to the PASS detail. Called after `data`
    and `finite` are judged: when `data` fails (other batches or another val set on 2 ranks) val is not compared;
    when `finite` fails only the val losses from the same weights are."""
    by = {run["label"]: run for run in runs}
    data_ok, later = report.checks["data"]["status"] != FAIL, report.checks["finite"]["status"] != FAIL
    sums, vals, stacks, values = [], [], 0, 0
    for run in (r for r in runs if r["world"] > 1 and r["results"]):
        problems, n = sum_problems(run)
        sums += problems
        stacks += n
        if run["label"] not in PAIRS or not data_ok:
            continue
        label, shared = PAIRS[run["label"]]
        if by.get(label) and by[label]["results"]:
            problems, n = val_problems(run, by[label], shared, later)
            vals += problems
            values += n
    check = report.checks["ranks"]
    problems = sums[:2] + (["the val losses depend on the world size (evaluate() and its reduction over ranks): "
                            + "; ".join(vals[:2])] if vals else [])
    if problems:
        detail = "; ".join(problems)
        fix = []
        if sums:
            fix.append("a MatrixOptimizer's step() must hand update() the gradients summed over ranks "
                       "(dist.reduce_scatter_tensor sums; do not divide by world_size)")
        if vals:
            fix.append("evaluate() must return the val loss summed over the val set and the ranks per val token, "
                       "whatever the world size (the val reduction: all_reduce the sums, divide by val_tokens only)")
        if check["status"] == FAIL:
            check["detail"] += "; " + detail
            check["fix"] += "; " + "; ".join(fix)
        else:
            report.set("ranks", FAIL, detail, fix="; ".join(fix))
    elif check["status"] == PASS:
        check["detail"] += (f"; update() of every MatrixOptimizer got the gradients summed over the ranks ({stacks} "
                            f"stacks at the first {SUM_STEPS} steps of each trial)" if stacks else
                            "; no MatrixOptimizer to check update()'s sum on") + \
            f"; the {WORLD}-rank val losses and readouts equal the 1-rank runs' ({values} values)"
