"""The significance claim of a set of runs: at which step is the mean val loss below 3.28?

All trials of all LOGs are pooled as the n runs (every trial counts: leaving one out would be
cherry-picking). At every val step present in every run: mean, sample std, n, the margin
(3.28 - mean) * sqrt(n), PASS when margin >= bar, and the n that would pass at this mean.
The claim, steps_to_3_28, is the EARLIEST val step at which the pooled mean passes: one rule,
applied the same way to every run (the same step for all of them, never a per-run pick).
Pass/fail is decided in exact decimal arithmetic on the logged values.

Bars: 0.005 = this workspace's bar (sigma 0.0016, one-sided p < .001), the default;
      0.004 = the public benchmark's bar (sigma 0.0013).

--vs LOG...: the public pairwise test between A (the positional LOGs) and B. Each side is
taken at its final val step common to all its runs (normally train_steps) with its mean there:
d = (loss_A - loss_B) + (steps_A - steps_B) / 100 * 0.0045, z = -d / sqrt(1/n_A + 1/n_B);
A is significantly better when z >= 0.004 (B when z <= -0.004).

Also checks every run against the public baseline curve (tools/reference/baseline_curve.csv):
(run, step) pairs with |val_loss - ref_mean| > 3 * ref_std are listed (where ref_std is 0, at
step 0, a tolerance of 1e-3 is used). Informational only: the reference is the baseline, so
other optimizers are expected to deviate; it never changes the exit status.

Exit status: 0 a step passes, 1 no step passes, 2 bad input.
"""
import argparse
import csv
import math
import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction

from tools.logs import LogError, dumps, fmt, load, trial_summary

TARGET = 3.28
BARS = {0.005: "workspace bar: sigma 0.0016, one-sided p < .001",
        0.004: "public bar: sigma 0.0013"}
DEFAULT_BAR = 0.005
PAIR_THRESHOLD = 0.004  # the public pairwise rule
LOSS_PER_100_STEPS = 0.0045
REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
REF_CURVE = os.path.join(REF_DIR, "baseline_curve.csv")
REF_ZERO_STD_TOL = 1e-3
_TARGET = Fraction("3.28")


def bar_name(bar):
    return f"{bar} = {BARS.get(bar, 'non-standard bar')}"


def _exact(x):
    """The logged decimal value as an exact Fraction (None when not finite)."""
    return Fraction(repr(float(x))) if math.isfinite(x) else None


@dataclass
class StepStat:
    step: int
    n: int
    mean: float  # nan when a value is not finite
    std: float
    margin: float
    passed: bool
    n_needed: int = None  # None: never (mean >= 3.28 or not finite)
    values: list = field(default_factory=list)

    def as_dict(self):
        return {"step": self.step, "mean": self.mean, "std": self.std, "n": self.n, "margin": self.margin,
                "pass": self.passed, "n_needed": self.n_needed}


def step_stat(step, values, bar):
    """Statistics of one val step over n runs under `bar`."""
    n = len(values)
    exact = [_exact(v) for v in values]
    if any(x is None for x in exact):
        nan = float("nan")
        return StepStat(step, n, nan, nan, nan, False, None, list(values))
    mean = sum(exact) / n
    try:
        std = math.sqrt(float(sum((x - mean) ** 2 for x in exact) / (n - 1))) if n > 1 else 0.0
    except OverflowError:
        std = float("inf")
    diff, b = _TARGET - mean, Fraction(str(bar))
    passed = diff >= 0 and diff * diff * n >= b * b
    n_needed = math.ceil(b * b / (diff * diff)) if diff > 0 else None
    return StepStat(step, n, float(mean), std, float(diff) * math.sqrt(n), passed, n_needed, list(values))


class PoolError(LogError):
    pass


def check_pool(trials, side=""):
    """The runs must be one experiment: the same train_steps. Returns the list of warnings."""
    if not trials:
        raise PoolError(f"{side}no runs")
    by_steps = {}
    for t in trials:
        by_steps.setdefault(t.train_steps, []).append(t.name)
    if len(by_steps) > 1:
        desc = "; ".join(f"train_steps {k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}"
                         for k, v in sorted(by_steps.items()))
        raise PoolError(f"{side}runs with different train_steps are different experiments; pass them "
                        f"separately ({desc})")
    warnings = []
    for t in trials:
        if t.stopped:
            warnings.append(f"{t.name} stopped at step {t.final_step} ({t.stop_message or 'non-finite val loss'}); "
                            "it still counts as a run (leaving it out would be cherry-picking)")
        elif not t.complete:
            warnings.append(f"{t.name} ends at step {t.final_step} of {t.train_steps} (truncated?); it still counts")
    return warnings


def analyze(trials, bar=DEFAULT_BAR):
    """Per-step statistics over the steps present in every run, the claim, and the final step."""
    common = set(trials[0].losses()) if trials else set()
    every = set()
    for t in trials:
        common &= set(t.losses())
        every |= set(t.losses())
    if not common:
        raise PoolError("no val step is present in every run")
    maps = [t.losses() for t in trials]
    steps = [step_stat(s, [m[s] for m in maps], bar) for s in sorted(common)]
    claim = next((s for s in steps if s.passed), None)
    return {"bar": bar, "n": len(trials), "train_steps": trials[0].train_steps, "steps": steps, "claim": claim,
            "final": steps[-1], "not_in_every_run": sorted(every - common)}


def at_step(analysis, step):
    return next((s for s in analysis["steps"] if s.step == step), None)


def load_reference(path=REF_CURVE):
    """{step: (mean, std, n)} of the public baseline."""
    with open(path, newline="") as f:
        return {int(r["step"]): (float(r["mean_val_loss"]), float(r["std_val_loss"]), int(r["n"]))
                for r in csv.DictReader(f)}


def baseline_deviations(trials, ref=None):
    """[(run, step, val_loss, ref_mean, ref_std, tolerance)] of every (run, step) outside the reference band."""
    ref = load_reference() if ref is None else ref
    out = []
    for t in trials:
        for p in t.points:
            if p.step not in ref:
                continue
            mean, std, _ = ref[p.step]
            tol = 3 * std if std > 0 else REF_ZERO_STD_TOL
            if not (abs(p.val_loss - mean) <= tol):  # also catches nan
                out.append({"run": t.name, "step": p.step, "val_loss": p.val_loss, "ref_mean": mean,
                            "ref_std": std, "tolerance": tol})
    return out


def compare(a, b):
    """The public pairwise test between two analyses, each at its final common step."""
    fa, fb = a["final"], b["final"]
    d = (fa.mean - fb.mean) + (fa.step - fb.step) / 100 * LOSS_PER_100_STEPS
    z = -d / math.sqrt(1 / a["n"] + 1 / b["n"])
    if not math.isfinite(z):
        verdict = "undecided: a side has a non-finite mean val loss"
    elif z >= PAIR_THRESHOLD:
        verdict = "A is significantly better than B"
    elif z <= -PAIR_THRESHOLD:
        verdict = "B is significantly better than A"
    else:
        verdict = "no significant difference"
    return {"a": {"step": fa.step, "mean": fa.mean, "n": a["n"]}, "b": {"step": fb.step, "mean": fb.mean, "n": b["n"]},
            "d": d, "z": z, "threshold": PAIR_THRESHOLD, "significant": math.isfinite(z) and abs(z) >= PAIR_THRESHOLD,
            "verdict": verdict}


def _bar(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value not in BARS:
        raise argparse.ArgumentTypeError(f"{text}: the bar is 0.005 (workspace) or 0.004 (public)")
    return value


def add_bar_argument(ap):
    ap.add_argument("--bar", type=_bar, default=DEFAULT_BAR, metavar="{0.005,0.004}",
                    help="significance bar: 0.005 = workspace (sigma 0.0016, p<.001, default), 0.004 = public "
                         "(sigma 0.0013)")


def _print_table(analysis):
    print(f"  {'step':>6} {'n':>4} {'mean':>9} {'std':>8} {'margin':>9}  {'verdict':<7} {'n_needed':>8}")
    for s in analysis["steps"]:
        print(f"  {s.step:>6} {s.n:>4} {fmt(s.mean):>9} {fmt(s.std):>8} {fmt(s.margin):>9}  "
              f"{'PASS' if s.passed else 'fail':<7} {'never' if s.n_needed is None else s.n_needed:>8}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.stats", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+", metavar="LOG", help="training logs; all their trials are the n runs")
    add_bar_argument(ap)
    ap.add_argument("--vs", nargs="+", metavar="LOG", help="compare with these runs (B) by the public pairwise rule")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)
    try:
        logs, trials = load(args.logs)
        warnings = [w for log in logs for w in log.warnings] + check_pool(trials)
        a = analyze(trials, args.bar)
        vs = None
        if args.vs:
            logs_b, trials_b = load(args.vs)
            warnings += [w for log in logs_b for w in log.warnings] + check_pool(trials_b, "--vs: ")
            b = analyze(trials_b, args.bar)
            vs = compare(a, b)
        deviations = baseline_deviations(trials)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        if args.json:
            print(dumps({"error": str(e)}))
        return 2
    claim = a["claim"]
    ref_note = ("informational: the reference is the public Muon baseline (3250 steps, 10 runs); runs of another "
                "optimizer or schedule are expected to deviate; this does not affect the claim")
    if a["train_steps"] != 3250:
        ref_note += f"; these runs have train_steps {a['train_steps']}, so only the step numbers line up"
    if args.json:
        out = {"bar": args.bar, "bar_name": BARS[args.bar],
               "rule": "PASS when (3.28 - mean) * sqrt(n) >= bar; claim = earliest val step (present in every run) "
                       "that passes",
               "n_runs": a["n"], "train_steps": a["train_steps"], "runs": [trial_summary(t) for t in trials],
               "earliest_passing_step": claim.step if claim else None,
               "claim": claim.as_dict() if claim else None, "final": a["final"].as_dict(),
               "steps": [s.as_dict() for s in a["steps"]], "steps_not_in_every_run": a["not_in_every_run"],
               "baseline_deviations": deviations, "baseline_note": ref_note, "warnings": warnings}
        if vs is not None:
            out["vs"] = vs
        print(dumps(out))
        return 0 if claim else 1

    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    files = ", ".join(f"{os.path.basename(log.path)} [{len(log.trials)}]" for log in logs)
    print(f"runs: n = {a['n']} from {len(logs)} file(s): {files}; train_steps {a['train_steps']}")
    print(f"bar: {bar_name(args.bar)}: PASS when (3.28 - mean) * sqrt(n) >= {args.bar}")
    if a["not_in_every_run"]:
        print(f"steps left out (not in every run): {', '.join(map(str, a['not_in_every_run'][:10]))}"
              f"{' ...' if len(a['not_in_every_run']) > 10 else ''}")
    _print_table(a)
    if claim:
        print(f"claim: steps_to_3_28 = {claim.step}: mean {fmt(claim.mean)} std {fmt(claim.std)} over n = {claim.n} "
              f"runs, margin {fmt(claim.margin)} >= {args.bar} (earliest passing val step)")
    else:
        f = a["final"]
        need = "never at this mean" if f.n_needed is None else f"n = {f.n_needed} runs at this mean"
        print(f"claim: NONE: no val step passes bar {args.bar}; at the final step {f.step} mean {fmt(f.mean)}, "
              f"margin {fmt(f.margin)}; passing would need {need}")
    if vs is not None:
        print(f"\nvs (public pairwise rule, each side at its final step common to all its runs):")
        print(f"  A: step {vs['a']['step']} mean {fmt(vs['a']['mean'])} n {vs['a']['n']}")
        print(f"  B: step {vs['b']['step']} mean {fmt(vs['b']['mean'])} n {vs['b']['n']}")
        print(f"  d = (loss_A - loss_B) + (steps_A - steps_B) / 100 * 0.0045 = {fmt(vs['d'], 6)}")
        print(f"  z = -d / sqrt(1/n_A + 1/n_B) = {fmt(vs['z'], 6)}  (significant when |z| >= {PAIR_THRESHOLD})")
        print(f"  verdict: {vs['verdict']}")
    print(f"\nbaseline check ({ref_note}):")
    ref = load_reference()
    for t in trials:
        mine = [d for d in deviations if d["run"] == t.name]
        checked = sum(1 for p in t.points if p.step in ref)
        if not mine:
            print(f"  {t.name}: all {checked} reference steps within ref_mean +- 3 ref_std")
            continue
        shown = ", ".join(f"step {d['step']} {fmt(d['val_loss'])} vs {fmt(d['ref_mean'])}+-{fmt(d['tolerance'])}"
                          for d in mine[:4])
        print(f"  {t.name}: {len(mine)} of {checked} reference steps outside: {shown}{' ...' if len(mine) > 4 else ''}")
    return 0 if claim else 1


if __name__ == "__main__":
    sys.exit(main())
