"""The significance claim of a set of runs: at which step is the mean val loss below 3.28?

All runs of all LOGs (files, or directories walked for logs) are pooled as the n runs (every run
counts: leaving one out would be cherry-picking). At every val step present in every run: mean,
sample std, n, the margin (3.28 - mean) * sqrt(n), PASS when margin >= bar, and the n that would
pass at this mean. The claim, steps_to_3_28, is the EARLIEST val step at which the pooled mean
passes: one rule, applied the same way to every run (the same step for all of them, never a per-run
pick). Pass/fail is decided in exact decimal arithmetic on the logged values.

Bars: 0.005 = this workspace's bar (sigma 0.0016, one-sided p < .001), the default;
      0.004 = the public benchmark's bar (sigma 0.0013).

--metric NAME scores another column of the val lines (e.g. val_ema_loss); default val_loss.
--step K tests a declared step K (a claim in a README) instead of only reporting the earliest one.

Reading: a file given twice is read once; a run found twice (a copy, a console capture beside its
log: equal values at every common val step) counts once, and the output says so; a file that is not
a log is skipped with a message. Runs of different train_steps are refused; runs written by
different scripts are pooled with a warning that says how the scripts differ (--strict refuses).

--vs LOG...: the public pairwise test between A (the positional LOGs) and B. Each side is taken at
its claimed step (--step / --vs-step when given, else its earliest passing step, else its final val
step common to all its runs; the output says which):
d = (loss_A - loss_B) + (steps_A - steps_B) / 100 * 0.0045, z = -d / sqrt(1/n_A + 1/n_B);
A is significantly better when z >= 0.004 (B when z <= -0.004).

Also checks every run against the public baseline curve (tools/reference/baseline_curve.csv):
(run, step) pairs with |val_loss - ref_mean| > 3 * ref_std are listed (where ref_std is 0, at
step 0, a tolerance of 1e-3 is used). Informational only: the reference is the baseline, so
other optimizers are expected to deviate; it never changes the exit status.

Exit status: 0 a step passes (with --step: step K passes), 1 it does not, 2 bad input.
"""
import argparse
import csv
import math
import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction

from tools import identity
from tools.logs import DEFAULT_METRIC, METRIC_RE, LogError, dumps, fmt, read_runs, trial_summary

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


def select_train_steps(trials, train_steps):
    """(runs of that train_steps, message): one experiment out of a folder that holds several."""
    kept = [t for t in trials if t.train_steps == train_steps]
    if not kept:
        found = sorted({t.train_steps for t in trials})
        raise PoolError(f"no run has train_steps {train_steps} (the runs have {', '.join(map(str, found))})")
    left = [t for t in trials if t.train_steps != train_steps]
    note = None
    if left:
        shown = ", ".join(f"{t.name}: train_steps {t.train_steps}" for t in left[:3]) + (" ..." if len(left) > 3 else "")
        note = f"--train-steps {train_steps}: left out {len(left)} run(s) of another experiment ({shown})"
    return kept, note


def run_warnings(trials, metric=DEFAULT_METRIC):
    """How each run that is not complete ends, at the step where it happened. They all still count."""
    out = []
    keep = "it still counts as a run (leaving it out would be cherry-picking)"
    for t in trials:
        if not t.complete:
            out.append(f"{t.name}: {t.status()}; {keep}")
        if metric != DEFAULT_METRIC:
            bad = next(((s, v) for s, v in t.losses(metric).items() if not math.isfinite(v)), None)
            if bad and (t.first_nonfinite is None or t.first_nonfinite.step != bad[0]):
                out.append(f"{t.name}: {metric} {bad[1]} at step {bad[0]}; {keep}")
    return out


def check_pool(trials, side="", strict=False, metric=DEFAULT_METRIC):
    """The runs must be one experiment: the same train_steps (else PoolError), written by the same script
    (else a warning; PoolError with strict). Returns the list of warnings."""
    if not trials:
        raise PoolError(f"{side}no runs")
    by_steps = {}
    for t in trials:
        by_steps.setdefault(t.train_steps, []).append(t.name)
    if len(by_steps) > 1:
        desc = "; ".join(f"train_steps {k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}"
                         for k, v in sorted(by_steps.items()))
        raise PoolError(f"{side}runs with different train_steps are different experiments; pass them "
                        f"separately or choose one with --train-steps ({desc})")
    script_warnings, same = identity.pool_report(trials)
    if strict and not same:
        raise PoolError(f"{side}--strict: the runs were not all written by the same script: "
                        + "; ".join(w.strip() for w in script_warnings if not w.startswith("the runs were")))
    return [side + w for w in script_warnings] + [side + w for w in run_warnings(trials, metric)]


def analyze(trials, bar=DEFAULT_BAR, metric=DEFAULT_METRIC):
    """Per-step statistics of `metric` over the steps present in every run, the claim, and the final step."""
    maps = [t.losses(metric) for t in trials]
    lacking = [t for t, m in zip(trials, maps) if not m]
    if lacking:
        columns = sorted({c for t in trials for c in t.columns()})
        raise PoolError(f"{len(lacking)} of {len(trials)} runs log no column {metric} "
                        f"({', '.join(t.name for t in lacking[:3])}{' ...' if len(lacking) > 3 else ''}); "
                        f"the columns these runs log: {', '.join(columns)}")
    common = set(maps[0]) if maps else set()
    every = set()
    for m in maps:
        common &= set(m)
        every |= set(m)
    if not common:
        raise PoolError(f"no val step with {metric} is present in every run")
    steps = [step_stat(s, [m[s] for m in maps], bar) for s in sorted(common)]
    claim = next((s for s in steps if s.passed), None)
    return {"bar": bar, "metric": metric, "n": len(trials), "train_steps": trials[0].train_steps, "steps": steps,
            "claim": claim, "final": steps[-1], "not_in_every_run": sorted(every - common), "trials": trials}


def missing_step(analysis, step):
    """The message for a declared step that is not a val step of every run."""
    lacking = [t.name for t in analysis["trials"] if step not in t.losses(analysis["metric"])]
    near = [s.step for s in analysis["steps"]]
    below = max((x for x in near if x < step), default=None)
    above = min((x for x in near if x > step), default=None)
    return (f"step {step} is not a val step ({analysis['metric']}) of every run: missing in "
            f"{', '.join(lacking[:3])}{' ...' if len(lacking) > 3 else ''}; the nearest common val steps are "
            f"{below if below is not None else '-'} and {above if above is not None else '-'}")


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


def claimed(analysis, step=None):
    """(StepStat, how): a side's claimed step for the pairwise test: the declared step, else the earliest
    passing step, else the final val step common to all its runs."""
    if step is not None:
        at = at_step(analysis, step)
        if at is None:
            raise PoolError(missing_step(analysis, step))
        return at, "declared step"
    if analysis["claim"] is not None:
        return analysis["claim"], "earliest passing step"
    return analysis["final"], "final step (no step passes)"


def compare(a, b, step_a=None, step_b=None):
    """The public pairwise test between two analyses, each at its claimed step."""
    (fa, how_a), (fb, how_b) = claimed(a, step_a), claimed(b, step_b)
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
    return {"a": {"step": fa.step, "mean": fa.mean, "n": a["n"], "which": how_a},
            "b": {"step": fb.step, "mean": fb.mean, "n": b["n"], "which": how_b},
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


def _metric(text):
    if not METRIC_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a column name such as val_loss or val_ema_loss")
    return text


def add_metric_argument(ap):
    ap.add_argument("--metric", type=_metric, default=DEFAULT_METRIC, metavar="NAME",
                    help="the val-line column to score (default val_loss), e.g. val_ema_loss")


def step_arg(text):
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 10 ** 9:
        raise argparse.ArgumentTypeError(f"{text!r}: a step number such as 3250")
    return int(text)


def _print_table(analysis):
    print(f"  {'step':>6} {'n':>4} {'mean':>9} {'std':>8} {'margin':>9}  {'verdict':<7} {'n_needed':>8}")
    for s in analysis["steps"]:
        print(f"  {s.step:>6} {s.n:>4} {fmt(s.mean):>9} {fmt(s.std):>8} {fmt(s.margin):>9}  "
              f"{'PASS' if s.passed else 'fail':<7} {'never' if s.n_needed is None else s.n_needed:>8}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.stats", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+", metavar="LOG",
                    help="training logs or directories; all their runs are the n runs")
    add_bar_argument(ap)
    add_metric_argument(ap)
    ap.add_argument("--step", type=step_arg, metavar="K", help="test the declared step K (exit 0 when it passes)")
    ap.add_argument("--train-steps", type=step_arg, metavar="N", help="keep only the runs of train_steps N (a folder "
                    "that holds several experiments)")
    ap.add_argument("--strict", action="store_true", help="refuse runs written by different scripts")
    ap.add_argument("--vs", nargs="+", metavar="LOG", help="compare with these runs (B) by the public pairwise rule")
    ap.add_argument("--vs-step", type=step_arg, metavar="K", help="B's declared step for --vs")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)
    try:
        runs = read_runs(args.logs)
        trials, selected = runs.trials, None
        if args.train_steps is not None:
            trials, selected = select_train_steps(trials, args.train_steps)
        warnings = runs.messages() + ([selected] if selected else [])
        warnings += check_pool(trials, strict=args.strict, metric=args.metric)
        a = analyze(trials, args.bar, args.metric)
        declared = None
        if args.step is not None:
            declared = at_step(a, args.step)
            if declared is None:
                raise PoolError(missing_step(a, args.step))
        vs = None
        if args.vs:
            runs_b = read_runs(args.vs)
            warnings += ["--vs: " + w for w in runs_b.messages()]
            warnings += check_pool(runs_b.trials, "--vs: ", strict=args.strict, metric=args.metric)
            b = analyze(runs_b.trials, args.bar, args.metric)
            vs = compare(a, b, args.step, args.vs_step)
        elif args.vs_step is not None:
            raise PoolError("--vs-step needs --vs")
        deviations = baseline_deviations(trials)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        if args.json:
            print(dumps({"error": str(e)}))
        return 2
    claim = a["claim"]
    ok = declared.passed if declared is not None else claim is not None
    ref_note = ("informational: the reference is the public Muon baseline (3250 steps, 10 runs); runs of another "
                "optimizer or schedule are expected to deviate; this does not affect the claim")
    if a["train_steps"] != 3250:
        ref_note += f"; these runs have train_steps {a['train_steps']}, so only the step numbers line up"
    if args.json:
        out = {"bar": args.bar, "bar_name": BARS[args.bar], "metric": args.metric,
               "rule": "PASS when (3.28 - mean) * sqrt(n) >= bar; claim = earliest val step (present in every run) "
                       "that passes",
               "n_runs": a["n"], "train_steps": a["train_steps"], "runs": [trial_summary(t) for t in trials],
               "files": [log.path for log in runs.logs],
               "earliest_passing_step": claim.step if claim else None,
               "claim": claim.as_dict() if claim else None, "final": a["final"].as_dict(),
               "declared_step": args.step, "declared": declared.as_dict() if declared else None,
               "steps": [s.as_dict() for s in a["steps"]], "steps_not_in_every_run": a["not_in_every_run"],
               "baseline_deviations": deviations, "baseline_note": ref_note, "warnings": warnings}
        if vs is not None:
            out["vs"] = vs
        print(dumps(out))
        return 0 if ok else 1

    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    per_file = {}
    for t in trials:
        per_file[t.source] = per_file.get(t.source, 0) + 1
    files = ", ".join(f"{os.path.basename(p)} [{k}]" for p, k in per_file.items())
    print(f"runs: n = {a['n']} from {len(per_file)} file(s): {files}; train_steps {a['train_steps']}")
    print(f"metric: {args.metric}" + ("" if args.metric == DEFAULT_METRIC else " (a column of the val lines)"))
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
    if declared is not None:
        verdict = "PASS" if declared.passed else "FAIL"
        print(f"declared step {declared.step}: {verdict}: mean {fmt(declared.mean)} std {fmt(declared.std)} over "
              f"n = {declared.n} runs, margin {fmt(declared.margin)} {'>=' if declared.passed else '<'} {args.bar}"
              + ("" if declared.passed or declared.n_needed is None else
                 f"; passing at this mean would need n = {declared.n_needed}"))
    if vs is not None:
        print(f"\nvs (public pairwise rule, each side at its claimed step):")
        for side in ("a", "b"):
            x = vs[side]
            print(f"  {side.upper()}: step {x['step']} ({x['which']}) mean {fmt(x['mean'])} n {x['n']}")
        print(f"  d = (loss_A - loss_B) + (steps_A - steps_B) / 100 * 0.0045 = {fmt(vs['d'], 6)}")
        print(f"  z = -d / sqrt(1/n_A + 1/n_B) = {fmt(vs['z'], 6)}  (significant when |z| >= {PAIR_THRESHOLD})")
        print(f"  verdict: {vs['verdict']}")
    print(f"\nbaseline check, on val_loss ({ref_note}):")
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
