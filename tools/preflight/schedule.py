"""The schedule of every hyperparameter: recorded at every optimizer step of the long run (HparamProbe, in the
script's process), evaluated outside the run at the script's own train_steps when --steps differs from it, and
summarized for the report: per optimizer, group and key its values at a few fractions of the run, its minimum and
maximum over every step with the step of each, and its spikes (a short excursion away from the values around it,
such as a momentum of 0.5 for five steps in a run at 0.95)."""
import copy
import inspect
import math

import torch

from tools.preflight.common import _clip, _groups
from tools.preflight.fingerprint import is_momentum, numeric_hparams
from tools.preflight.probes import Probe

SPIKE_MAX_STEPS = 25  # the longest excursion called a spike (it also sets the median filter's window)
SPIKE_SHARE = 0.05  # ... that leaves the median of the values around it by more than this share of the key's range


def hparam_value(group, key):
    """A group's value for a key of numeric_hparams ('betas[1]' reads an element), or None."""
    raw, _, sub = key.partition("[")
    value = group.get(raw)
    value = value[int(sub[:-1])] if sub and isinstance(value, (tuple, list)) and len(value) > int(sub[:-1]) else value
    value = value.item() if torch.is_tensor(value) and value.numel() == 1 else value
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def problem(key, value):
    """Why a hyperparameter's value is wrong, or None."""
    if not math.isfinite(value):
        return "not finite"
    if value < 0:
        return "negative"
    if is_momentum(key) and value >= 1:
        return "a momentum or beta at or above 1"
    return None


class HparamProbe(Probe):
    """lr and hparams: every numeric hyperparameter of every group at every optimizer step (rank 0; the schedule is
    the same on every rank), judged as it is seen. The long run (cfg["table_steps"]) keeps every value of trial 1
    (result["schedule"]); with cfg["scale_check"] (the script's own train_steps, when --steps differs) it also calls
    set_hparams for every step of that length after the run, on copies of the groups as make_optimizers left them
    (result["full_schedule"])."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(bad_hparams={}, schedule=None, full_schedule=None)  # bad: (optimizer, class, key, why) -> first
        self.record = bool(hub.cfg.get("table_steps"))
        self.keys = {}  # id(group) -> (the group's size, [its numeric keys]) (set_hparams may add keys)
        self.initial = None

    def group_keys(self, group):
        known = self.keys.get(id(group))
        if known is None or known[0] != len(group):
            known = self.keys[id(group)] = (len(group), [key for key, _ in numeric_hparams(group)])
        return known[1]

    def hparams_start(self, step):
        if self.initial is None and self.hub.trial == 1 and not self.hub.resumed and self.hub.rank == 0:
            self.initial = [[{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]
                            for opt in self.hub.optimizers]

    def optimizer_step(self, opt, index, step):
        if self.hub.rank != 0:
            return
        keep = self.record and self.hub.trial == 1 and not self.hub.resumed
        if keep and self.r["schedule"] is None:
            self.r["schedule"] = {}
        for g, group in enumerate(opt.param_groups):
            for key in self.group_keys(group):
                value = hparam_value(group, key)
                if value is None:
                    continue
                if keep:
                    self.r["schedule"].setdefault((index, type(opt).__name__, key), {}).setdefault(g, {})[step] = value
                why = problem(key, value)
                if why:
                    seen = self.r["bad_hparams"].setdefault((index, type(opt).__name__, key, why), dict(
                        trial=self.hub.trial, step=step, value=value, groups=set(), count=0))
                    seen["count"] += 1
                    if (seen["trial"], seen["step"]) == (self.hub.trial, step):
                        seen["groups"].add(g)

    def run_end(self, completed):
        full = self.hub.cfg.get("scale_check")
        if full and completed and self.initial is not None and self.hub.rank == 0:
            self.hub.checking = True  # the probes see none of these calls
            try:
                self.r["full_schedule"] = evaluate_schedule(self.hub.m, self.hub.optimizers, self.initial,
                                                            self.hub.state, full)
            except Exception as e:  # the schedule needs more than the groups: said, not judged
                self.r["full_schedule"] = f"{type(e).__name__}: {e}"
            finally:
                self.hub.checking = False


def evaluate_schedule(module, optimizers, initial, state, train_steps):
    """{(optimizer, class, key): {group: {step: value}}}: the script's set_hparams called for every step of
    `train_steps`, in order, on stand-ins of the optimizers (same class and attributes) whose groups start as
    make_optimizers left them (with initial_lr); the real optimizers are not touched."""
    stand_ins = []
    for opt, groups in zip(optimizers, initial):
        fake = object.__new__(type(opt))
        fake.__dict__.update(vars(opt))
        fake.param_groups = [dict(copy.deepcopy(g), params=real["params"]) for g, real in zip(groups, opt.param_groups)]
        stand_ins.append(fake)
    n_args = len(inspect.signature(module.set_hparams).parameters)
    extra = (copy.deepcopy(state),) if n_args >= 3 else ()
    saved, series = module.train_steps, {}
    module.train_steps = train_steps
    try:
        for step in range(train_steps):
            module.set_hparams(step, stand_ins, *extra)
            for index, opt in enumerate(stand_ins):
                for g, group in enumerate(opt.param_groups):
                    for key, value in numeric_hparams(group):
                        series.setdefault((index, type(opt).__name__, key), {}).setdefault(g, {})[step] = value
    finally:
        module.train_steps = saved
    return series


# -----------------------------------------------------------------------------
# The summary (in the preflight's process)

def find_spikes(steps, values, max_len=SPIKE_MAX_STEPS, share=SPIKE_SHARE):
    """[(first step, last step, extreme value, the value around it)]: runs of at most `max_len` steps whose values
    leave the median of their neighbourhood (a window of 2 * max_len + 1 steps; the ends reflected through the end
    values) by more than `share` of the range of all values. The median of a window is its centre value wherever
    the values are monotone, so a schedule that rises, falls or steps has none; a short excursion is not the
    median of the window around it."""
    n = len(values)
    lo, hi = min(values), max(values)
    if n < 3 or not hi > lo or not all(math.isfinite(v) for v in values):
        return []
    h = min(max_len, (n - 1) // 2)
    padded = [2 * values[0] - values[i] for i in range(h, 0, -1)] + list(values) + \
             [2 * values[-1] - values[n - 1 - i] for i in range(1, h + 1)]
    tol = share * (hi - lo)
    medians = [sorted(padded[i:i + 2 * h + 1])[h] for i in range(n)]
    off = [abs(v - m) > tol for v, m in zip(values, medians)]
    spikes, i = [], 0
    while i < n:
        if not off[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and off[j + 1]:
            j += 1
        if j - i + 1 <= max_len:
            part = values[i:j + 1]
            around = medians[i]
            extreme = max(part, key=lambda v: abs(v - around))
            spikes.append((steps[i], steps[j], extreme, around))
        i = j + 1
    return spikes


def schedule_rows(schedule, sample_steps):
    """[dict(optimizer, groups, key, values (at sample_steps), min, min_step, max, max_step, spikes)]: one row per
    optimizer and key, groups whose values are the same at every step in one row."""
    rows = []
    for (index, cls, key), by_group in schedule.items():
        merged = {}
        for g in sorted(by_group):
            merged.setdefault(tuple(sorted(by_group[g].items())), []).append(g)
        for items, groups in merged.items():
            steps, values = [s for s, _ in items], [v for _, v in items]
            by_step = dict(items)
            lo = min(range(len(values)), key=lambda i: (values[i], steps[i])) if values else None
            hi = min(range(len(values)), key=lambda i: (-values[i], steps[i])) if values else None
            rows.append(dict(optimizer=f"{index} {cls}", groups=groups, key=key,
                             values=[by_step.get(s) for s in sample_steps],
                             min=values[lo] if values else None, min_step=steps[lo] if values else None,
                             max=values[hi] if values else None, max_step=steps[hi] if values else None,
                             spikes=[dict(first=a, last=b, value=v, around=m) for a, b, v, m in find_spikes(steps, values)]))
    return rows


def spike_text(row, spike):
    span = f"step {spike['first']}" if spike["first"] == spike["last"] else f"steps {spike['first']}-{spike['last']}"
    return (f"{row['optimizer']} group{'s' if len(row['groups']) > 1 else ''} {_groups(row['groups'])} {row['key']} = "
            f"{spike['value']:.4g} at {span} ({spike['around']:.4g} around it)")


def scale_mismatches(run, run_steps, full, full_steps, rel=1e-9):
    """Where the run's schedule (train_steps = run_steps) is not the full schedule (full_steps) compressed: its value
    at step s must be within the full schedule's values over the steps of the same fraction, [s, s + 1) * full_steps
    / run_steps (a schedule of step / train_steps passes, thresholds included). [(optimizer, group, key, s, value,
    (first, last) full steps, (low, high) full values)], the first mismatch of each optimizer, group and key."""
    found = []
    for (index, cls, key), by_group in run.items():
        for g, values in sorted(by_group.items()):
            target = full.get((index, cls, key), {}).get(g)
            if not target:
                continue
            for s in sorted(values):
                a = s * full_steps // run_steps
                b = max(a, -(-(s + 1) * full_steps // run_steps) - 1)
                window = [target[t] for t in range(a, b + 1) if t in target]
                if not window:
                    continue
                low, high = min(window), max(window)
                v = values[s]
                slack = rel * max(abs(low), abs(high), abs(v)) + 1e-300
                if not (low - slack <= v <= high + slack):
                    found.append((f"{index} {cls}", g, key, s, v, (a, b), (low, high)))
                    break
    return found


def judge_schedule(report, long_run, steps_given, train_steps):
    """Warnings on the long run's schedule (spikes), and under --steps, where it is not the script's own schedule
    compressed and what the full schedule does that the run did not show (lr or hparams out of range)."""
    result = long_run["results"][0] if long_run and long_run["results"] else {}
    for row in schedule_rows(result.get("schedule") or {}, []):
        for spike in row["spikes"][:2]:
            report.warn("hparams", "a spike in the schedule: " + spike_text(row, spike))
    full = result.get("full_schedule")
    if not steps_given or full is None:
        return
    if isinstance(full, str):
        report.warn("hparams", f"the full schedule ({steps_given} steps) could not be evaluated outside the run: {full}")
        return
    found = scale_mismatches(result.get("schedule") or {}, train_steps, full, steps_given)
    if found:
        opt, g, key, s, v, (a, b), (low, high) = found[0]
        span = f"step {a}" if a == b else f"steps {a}-{b}"
        values = f"{low:.4g}" if low == high else f"{low:.4g} to {high:.4g}"
        report.warn("hparams", f"under --steps {train_steps} the schedule is not the script's own ({steps_given} steps) "
                    f"compressed: optimizer {opt} group {g} {key} = {v:.4g} at step {s} of {train_steps}, but "
                    f"{values} at {span} of {steps_given}" + (f" (and {len(found) - 1} more keys)" if len(found) > 1
                                                                else "")
                    + ": it names absolute steps (e.g. `if step > 2000`, a warmup of a fixed number of steps, or a "
                    "value computed from train_steps at import), and what it does past step "
                    f"{train_steps} did not run here: run the preflight without --steps")
    bad = []
    for (index, cls, key), by_group in full.items():
        for g, values in by_group.items():
            for s in sorted(values):
                why = problem(key, values[s])
                if why:
                    bad.append(f"optimizer {index} ({cls}) group {g} {key} = {values[s]:.4g} at step {s}: {why}")
                    break
    if bad:
        report.warn("lr" if any(" lr = " in b for b in bad) else "hparams",
                    f"the full schedule ({steps_given} steps, set_hparams called outside the run) has " + _clip(bad, 3))
