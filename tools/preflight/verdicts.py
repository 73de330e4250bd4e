"""Verdicts from the runs' records: run, finite, ranks, optimizers, gradients, updates, lr, hparams, weights, one_pass,
data; and the fingerprint comparisons that ranks and resume share. Each judge sets its check in the Report."""
import collections
import math
import re

import torch

from tools.preflight.common import FAIL, PASS, SKIP, WORLD, _clip, _groups, stall_text  # noqa: F401
from tools.preflight.fingerprint import _bytes
from tools.preflight.logcheck import run_nonfinite_lines
from tools.preflight.trained import flip_problems
from tools.preflight.trajectory import first_rank_difference, rank_fix


CONSEQUENTIAL = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket closed", "Timed out")


def _describe(run, microbatches=False):
    text = f"{run['label']} ({run['what']}"
    n = run["microbatches"]
    per = " per rank" if run["world"] > 1 else ""
    return text + (f", {n} microbatch{'es' if n > 1 else ''}{per}" if microbatches else "") + ")"


def _completed(runs):
    return all(r["completed"] for r in runs)


def _verdict(report, cid, problems, runs, pass_detail, needs_complete=True):
    if problems:
        report.set(cid, FAIL, "; ".join(problems))
    elif needs_complete and not _completed(runs):
        report.set(cid, SKIP, "a run did not complete (see run); no problem in the steps that ran")
    else:
        report.set(cid, PASS, pass_detail)


def _results(runs):
    return [r for run in runs for r in run["results"]]


def _examples(runs, key, n=2):
    return [x for r in _results(runs) for x in r.get(key, [])][:n]


def _count(runs, key):
    return sum(r.get("n_" + key, 0) for r in _results(runs))


def _size(n):
    return f"{n / 2 ** 20:.1f} MB" if n >= 2 ** 20 else f"{n / 2 ** 10:.1f} KB" if n >= 2 ** 10 else f"{n} bytes"


def judge_run(report, runs, skipped):
    failures, stopped = [], []
    for run in runs:
        if run.get("killed") == "time":
            failures.append((_describe(run), stall_text(run)))
            continue
        if run.get("killed") == "stall":
            stopped.append(run["label"])
            continue
        errors = [r for r in run["results"] if r.get("error")]
        if not errors:
            continue
        # the cause, not another rank's echo of it (a closed connection)
        first = sorted(errors, key=lambda r: any(c in r["error"] for c in CONSEQUENTIAL))[0]
        text = first.get("traceback") or first["error"].strip()
        output = (run.get("outputs") or [""])[0].strip()
        if not first.get("traceback") and output:
            text += "\n  last output:\n" + "\n".join(output.splitlines()[-10:])
        others = f" (rank {', '.join(str(r.get('rank')) for r in errors if r is not first)} too)" if len(errors) > 1 else ""
        failures.append((_describe(run), f"rank {first['rank']} failed{others}:\n" + text))
    printed = [f"{r['label']} printed {_size(r['output_bytes'])}" for r in sorted(runs, key=lambda r: -r.get(
        "output_bytes", 0)) if r.get("output_bytes", 0) > 2 ** 20]
    if printed:
        report.warn("run", "the script prints a lot (the preflight keeps the last 64 KB of each run's output): "
                    + _clip(printed, 3))
    if failures:
        merged = []  # the same failure in several runs: said once
        for label, text in failures:
            if merged and merged[-1][1] == text:
                merged[-1][0].append(label)
            else:
                merged.append(([label], text))
        report.set("run", FAIL, "\n".join(f"{' and '.join(labels)}: {text}" for labels, text in merged)
                   + (f"\nstopped with it: {_clip(stopped)}" if stopped else ""),
                   fix=("find the endless loop or the wait where the run stalled (named above)" if any(
                       "stalled:" in text for _, text in failures) else None))
    else:
        notes = [f"{label}: not run, {why}" for label, (why, _) in skipped.items()]
        limits = [(f" (limit {r['limit_s']:.0f} s)" if r.get("limit_s") else "") + (
            f", printed {_size(r['output_bytes'])} (the last 64 KB kept)" if r.get("output_bytes", 0) > 2 ** 16 else "")
            for r in runs]
        report.set("run", PASS, "\n".join([f"{_describe(r, True)}: {r['seconds']:.1f} s{lim}" for r, lim in
                                            zip(runs, limits)] + notes))


def judge_finite(report, runs, code):
    bad = []
    firsts = [(run, r["first_nonfinite"]) for run in runs for r in run["results"] if r.get("first_nonfinite")]
    if firsts:
        run, first = min(firsts, key=lambda x: x[0]["label"] != "long")  # the long run's: the schedule's own steps
        bad.append(f"first non-finite tensors: {run['label']} run, trial {first['trial']}, {first['when']}: "
                   + describe_paths(first["names"]))
    lines = [(run["label"], run_nonfinite_lines(run, code)) for run in runs]
    lines = [f"{label}: {found[0]}" for label, found in lines if found]
    if lines:
        bad.append(_clip(lines, 2))
    nonfinite = set().union(*(r.get("nonfinite", set()) for r in _results(runs)))
    if nonfinite:
        bad.append(f"non-finite parameters at the end: {_clip(sorted(nonfinite))}")
    _verdict(report, "finite", bad, runs, "training and val losses, and every parameter, optimizer state and "
             "extension state tensor finite after every step")


def _bitwise_equal(a, b):
    if torch.is_tensor(a) and torch.is_tensor(b):
        return (a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(_bytes(a.contiguous()), _bytes(b.contiguous())))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def diff_fingerprints(got, want, prefixes=None):
    """Paths whose values differ between two fingerprints (or that only one has), in `want`'s order."""
    keys = list(want) + [k for k in got if k not in want]
    if prefixes is not None:
        keys = [k for k in keys if k.startswith(prefixes)]
    return [k for k in keys if k not in got or k not in want or not _bitwise_equal(got[k], want[k])]


def _largest_difference(got, want, paths):
    diffs = [(got[p].double() - want[p].double()).abs().nan_to_num(0).max().item() for p in paths
             if p in got and p in want and torch.is_tensor(got[p]) and got[p].is_floating_point()
             and got[p].shape == want[p].shape and got[p].numel()]
    return max(diffs) if diffs else None


RESUME_KINDS = (("parameter ", "parameters"), ("state", "the extension points' `state`"),
                ("module global ", "module globals (not in a checkpoint)"), ("RNG", "the RNG state"))


def describe_paths(paths):
    """Differing fingerprint paths, grouped: 'parameters: a, b; optimizer 1 (AdamW) state: exp_avg of embed.weight'.
    List positions are folded: 'EMA[i] (33 entries)'."""
    groups = collections.OrderedDict()
    for path in paths:
        m = re.match(r"(optimizer \d+ \(\w+\)) (state|group|attribute) (.*)", path)
        if m:
            kind = {"state": "state", "group": "param groups", "attribute": "attributes (not in a checkpoint)"}[m[2]]
            name = m[3]
            kind = f"{m[1]} {kind}"
        else:
            kind = next((k for p, k in RESUME_KINDS if path.startswith(p)), "other")
            name = next((path[len(p):] for p in ("parameter ", "module global ") if path.startswith(p)), path)
        groups.setdefault(kind, collections.Counter())[re.sub(r"\[\d+\]", "[i]", name)] += 1
    return "; ".join(f"{kind}: " + _clip((f"{n} ({c} entries)" if c > 1 else n for n, c in names.items()), 4)
                     for kind, names in groups.items())


def compare_states(got, want):
    """What differs between two fingerprints, as text, or None."""
    differ = diff_fingerprints(got, want)
    if not differ:
        return None
    worst = _largest_difference(got, want, [p for p in differ if p.startswith("parameter ")])
    return describe_paths(differ) + (f" (parameters off by up to {worst:.3g})" if worst else "")


def judge_ranks(report, runs):
    """Both ranks end every trial with bitwise equal parameters and `state` (a drift trains on silently)."""
    found, compared = collections.OrderedDict(), 0
    for run in (r for r in runs if r["world"] > 1 and r["completed"] and not r["stop"]):
        finals = [[f for f in r["finals"] if f["normal"]] for r in run["results"]]
        for trial in zip(*finals):
            compared += 1
            want = trial[0]["fingerprint"]
            for other in trial[1:]:
                got = other["fingerprint"]
                differ = diff_fingerprints(got, want, ("parameter ", "state"))
                if differ:
                    worst = _largest_difference(got, want, differ) or 0.0
                    where = found.setdefault(describe_paths(differ), [[], 0.0])
                    where[0].append(f"{run['label']} trial {trial[0]['trial']}")
                    where[1] = max(where[1], worst)
    problems = [f"the ranks end with different {what} (largest difference {worst:.3g}) in {_clip(where, 3)}"
                for what, (where, worst) in found.items()]
    first = next((x for run in runs if run["world"] > 1 for x in [first_rank_difference(run["results"])] if x), None)
    if problems and first:  # the place the ranks parted: from the digests after every extension point and optimizer
        trial, step, place, what = first
        problems.insert(0, f"the ranks first differ after {place} (trial {trial}, step {step}): {what}")
        report.checks["ranks"]["fix"] = rank_fix(place)
    if not problems and not compared and _completed(runs):
        report.set("ranks", SKIP, "no multi-rank trial ended")
    else:
        _verdict(report, "ranks", problems, runs, f"parameters and `state` bitwise equal on all {WORLD} ranks at the end "
                 f"of every trial of the {WORLD}-rank runs ({compared} trials)")


def judge_membership(report, runs):
    """optimizers, gradients, updates."""
    results = _results(runs)
    none = sorted(set().union(*(r.get("none", set()) for r in results)))
    multi = sorted(set().union(*(r.get("multi", set()) for r in results)))
    problems = (([f"in no optimizer: {_clip(none)}"] if none else [])
                + ([f"in more than one optimizer: {_clip(multi)}"] if multi else []))
    if problems or all(r.get("trials", 0) > 0 for r in results):
        _verdict(report, "optimizers", problems, runs, "every parameter in exactly one optimizer", needs_complete=False)
    elif _completed(runs):
        report.set("optimizers", FAIL, "main() never called make_optimizers")
    else:
        report.set("optimizers", SKIP, "the run failed before make_optimizers returned")
    no_grad = collections.Counter()
    for r in results:
        no_grad.update(r.get("no_grad", {}))
    missing = _clip(f"{n} ({c} steps)" for n, c in sorted(no_grad.items()))
    _verdict(report, "gradients", [f"no gradient at an optimizer step: {missing}"] if no_grad else [], runs,
             "every optimized parameter had a gradient at every optimizer step")
    unchanged = sorted(set().union(*(r.get("unchanged", set()) for r in results)))
    zero = sorted(set().union(*(r.get("zero_grad", set()) for r in results)) - set(unchanged))
    note = (f"; not judged, their gradients were always exactly zero (cut off by a parameter that does not train?): "
            f"{_clip(zero)}" if zero else "")
    flips = flip_problems(runs)
    problems = ([f"never changed: {_clip(unchanged)}" + note] if unchanged else []) + flips[:3]
    if flips:
        report.checks["updates"]["fix"] = ("a factor that multiplies a weight (weight decay 1 - lr * wd, a scaling in "
                                           "after_step such as 1 - c * lr) must stay above 0 at the largest lr: below "
                                           "0 it flips the weight's sign every step")
    _verdict(report, "updates", problems, runs, "every optimized parameter with a non-zero gradient changed; no step "
             "turned one around (new value against the old, cosine below -0.71)" + note)


def hparam_problems(runs, lr):
    """The wrong hyperparameter values seen (lr or all the others), each (optimizer, key, why) once: the long run's
    first, as text."""
    order = sorted(runs, key=lambda run: run["label"] != "long")
    seen, lines = set(), []
    for run in order:
        for (index, cls, key, why), x in run["results"][0].get("bad_hparams", {}).items() if run["results"] else []:
            if (key == "lr") != lr or (index, key, why) in seen:
                continue
            seen.add((index, key, why))
            groups = sorted(x["groups"])
            lines.append(f"{run['label']} run: optimizer {index} ({cls}) {key} = {x['value']:.4g} at step {x['step']} of "
                         f"trial {x['trial']}" + (f" in group{'s' if len(groups) > 1 else ''} {_groups(groups)}" if groups
                                                  else "") + f", {x['count']} values in all: {why}")
    return lines


def judge_hparams(report, runs):
    """lr and hparams, from every optimizer step of every run (rank 0)."""
    problems = hparam_problems(runs, lr=True)
    _verdict(report, "lr", ["; ".join(problems[:3])] if problems else [], runs,
             "finite and >= 0 in every group at every step")
    problems = hparam_problems(runs, lr=False)
    _verdict(report, "hparams", ["; ".join(problems[:3])] if problems else [], runs,
             "finite and >= 0 in every group at every step; momentum and betas below 1 (the table below: the long run)")


def judge_weights(report, runs):
    n_bad = _count(runs, "weight_changes")
    examples = [(run, x) for run in runs for r in run["results"] for x in r.get("weight_changes", [])][:2]
    problems = [f"{run['label']} trial {x['trial']}, {x['where']}"
                + (f": the weights came back rounded to bfloat16: {_clip(x['rounded'])}" + (
                    f"; it also changed {_clip(x['names'])}" if x["names"] else "") if x.get("rounded")
                   else f" changed {_clip(x['names']) or 'parameters'}") for run, x in examples]
    if problems:
        report.set("weights", FAIL, "; ".join(problems) + (f" ({n_bad} times in all)" if n_bad > len(problems) else ""),
                   fix=examples[0][1]["fix"])
    else:
        _verdict(report, "weights", [], runs, "bitwise unchanged across every val pass, readout, forward and backward")


def judge_passes(report, runs):
    """one_pass."""
    n_bad = _count(runs, "bad_passes")
    steps = sum(r.get("steps", 0) for r in _results(runs))
    problems = ([f"{n_bad} steps wrong (counted per rank), e.g. " + "; ".join(_examples(runs, "bad_passes"))] if n_bad
                else [] if steps or not _completed(runs) else ["no optimizer step was seen"])
    _verdict(report, "one_pass", problems, runs, f"one forward and one backward per microbatch per optimizer step over "
             f"the step's batch, {steps} rank-steps checked")


def judge_data(report, runs, stream_ok, stream_detail):
    errors = _examples(runs, "stream_errors")
    fetched = all(r.get("train_batches") and r.get("val_batches") for r in _results(runs))
    if not errors and _completed(runs) and not fetched:
        errors = ["main() did not fetch its train batches and val set through distributed_data_generator"]
    if not stream_ok or errors:
        report.set("data", FAIL, "; ".join(([] if stream_ok else [stream_detail]) + errors))
    elif not _completed(runs):
        report.set("data", SKIP, stream_detail + "; a run did not complete (see run)")
    else:
        report.set("data", PASS, stream_detail + "; main() trained and validated on that stream")


# -- resume
