"""Write an approach's results.json from its training logs, or check one against its logs.

    python -m tools.results LOG... --agent-id ID --experiment TEXT --optimizer NAME
                            [--hparam k=v ...] [--notes TEXT] [--bar 0.005|0.004] [-o DIR/results.json]
    python -m tools.results --check DIR

Writing: all trials of all LOGs are the n runs (see tools.stats). steps_to_3_28 is the earliest
val step, present in every run, whose mean passes the bar; mean_val_loss and std_val_loss are
taken at that step; final_val_loss is the mean at the last val step common to all runs. With no
passing step nothing is written (exit 1). -o defaults to results.json in the logs' directory; keep
the logs beside results.json, since --check recomputes from them.

Checking: DIR/results.json against the schema (required: agent_id, experiment, optimizer,
steps_to_3_28, final_val_loss; types; finite numbers; 0 < steps) and against the training logs
in DIR (*.txt, *.log that parse as logs): the claimed step must be the earliest passing step under
the file's significance_bar, mean/std/final losses must agree within 5e-5, num_runs must match.

Exit status: 0 ok, 1 no passing step (writing) or any problem (checking), 2 bad input.
"""
import argparse
import datetime
import glob
import json
import math
import os
import re
import sys

from tools.logs import LogError, dumps, fmt, load, parse_file
from tools.stats import BARS, DEFAULT_BAR, add_bar_argument, analyze, at_step, bar_name, check_pool

TOLERANCE = 5e-5
MAX_STEPS = 10 ** 9
MAX_TEXT = 10_000
REQUIRED = ("agent_id", "experiment", "optimizer", "steps_to_3_28", "final_val_loss")


class ResultsError(Exception):
    pass


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} (JSON has no NaN or Infinity)")


def load_json(path):
    """The object in `path`; raises ResultsError naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 24)
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except OSError as e:
        raise ResultsError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise ResultsError(f"{path}: not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return data


def validate(data):
    """[(field, problem)] of schema violations of a results.json object."""
    problems = []
    for key in REQUIRED:
        if key not in data:
            problems.append((key, "missing (required)"))
    for key in ("agent_id", "experiment", "optimizer", "timestamp", "notes"):
        if key in data:
            v = data[key]
            if not isinstance(v, str):
                problems.append((key, f"must be a string, not {type(v).__name__}"))
            elif key in REQUIRED and not v.strip():
                problems.append((key, "must not be empty"))
            elif len(v) > MAX_TEXT:
                problems.append((key, f"{len(v)} characters; at most {MAX_TEXT}"))
    if "steps_to_3_28" in data:
        v = data["steps_to_3_28"]
        if not _is_int(v):
            problems.append(("steps_to_3_28", f"must be an integer, not {type(v).__name__}"))
        elif not 0 < v < MAX_STEPS:
            problems.append(("steps_to_3_28", f"{v} is not a step count (0 < steps < {MAX_STEPS})"))
    if "num_runs" in data:
        v = data["num_runs"]
        if not _is_int(v) or not 0 < v < 10 ** 6:
            problems.append(("num_runs", "must be a positive integer"))
    for key in ("final_val_loss", "mean_val_loss", "std_val_loss"):
        if key in data:
            v = data[key]
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                problems.append((key, f"must be a number, not {type(v).__name__}"))
            elif not (abs(v) < 1e300 if isinstance(v, int) else math.isfinite(v)):
                problems.append((key, "must be a finite number"))
            elif key == "std_val_loss" and v < 0:
                problems.append((key, "must not be negative"))
    if "key_hparams" in data and not isinstance(data["key_hparams"], dict):
        problems.append(("key_hparams", "must be an object"))
    if "significance_bar" in data and data["significance_bar"] not in BARS:
        problems.append(("significance_bar", f"must be one of {', '.join(map(str, BARS))}"))
    if "logs" in data and not (isinstance(data["logs"], list) and all(isinstance(x, str) for x in data["logs"])):
        problems.append(("logs", "must be a list of file names"))
    return problems


def log_files(directory):
    return sorted(set(glob.glob(os.path.join(glob.escape(directory), "*.txt"))
                      + glob.glob(os.path.join(glob.escape(directory), "*.log"))))


def recompute(directory, bar):
    """Pool the training logs in `directory`: {"analysis", "files", "skipped", "error"}.
    analysis is None when no file there parses as a log, or when the pool is unusable (error)."""
    files, skipped, trials = [], [], []
    for path in log_files(directory):
        try:
            log = parse_file(path)
        except LogError as e:
            skipped.append((os.path.basename(path), str(e)))
            continue
        files.append(os.path.basename(path))
        trials += log.trials
    out = {"analysis": None, "files": files, "skipped": skipped, "error": None}
    if trials:
        try:
            check_pool(trials)
            out["analysis"] = analyze(trials, bar)
        except LogError as e:
            out["error"] = str(e)
    return out


def compare_claim(data, analysis):
    """[(field, problem)] where results.json disagrees with the recomputed analysis."""
    problems = []
    bar = data.get("significance_bar", DEFAULT_BAR)
    claim, final = analysis["claim"], analysis["final"]
    steps = data.get("steps_to_3_28")
    at = at_step(analysis, steps)
    if claim is None:
        problems.append(("steps_to_3_28", f"claims {steps}, but no val step passes bar {bar} in the logs "
                                          f"(final step {final.step}: mean {fmt(final.mean)}, margin {fmt(final.margin)})"))
    elif claim.step != steps:
        problems.append(("steps_to_3_28", f"claims {steps}, but the earliest passing step in the logs is {claim.step}"))
    if at is None:
        problems.append(("steps_to_3_28", f"step {steps} is not a val step present in every run"))
    else:
        for key, value in (("mean_val_loss", at.mean), ("std_val_loss", at.std)):
            if key in data and not abs(data[key] - value) <= TOLERANCE:
                problems.append((key, f"{data[key]} but the logs give {fmt(value)} at step {steps}"))
    if not abs(data["final_val_loss"] - final.mean) <= TOLERANCE:
        problems.append(("final_val_loss", f"{data['final_val_loss']} but the logs give {fmt(final.mean)} at step "
                                           f"{final.step}"))
    if "num_runs" in data and data["num_runs"] != analysis["n"]:
        problems.append(("num_runs", f"{data['num_runs']} but the logs hold {analysis['n']} runs"))
    return problems


def verify(directory):
    """Check DIR/results.json: {"data", "problems": [(field, msg)], "recomputed", "notes"}."""
    path = os.path.join(directory, "results.json")
    out = {"path": path, "data": None, "problems": [], "recomputed": None, "notes": []}
    try:
        data = load_json(path)
    except ResultsError as e:
        out["problems"].append(("results.json", str(e)))
        return out
    out["data"] = data
    out["problems"] = validate(data)
    if out["problems"]:
        return out
    bar = data.get("significance_bar", DEFAULT_BAR)
    if "significance_bar" not in data:
        out["notes"].append(f"no significance_bar field: checked under the default bar {DEFAULT_BAR}")
    rec = recompute(directory, bar)
    out["recomputed"] = rec
    out["notes"] += [f"{name}: skipped, {why}" for name, why in rec["skipped"]]
    for name in data.get("logs", []):
        if name not in rec["files"]:
            out["problems"].append(("logs", f"lists {name}, which is not a training log in {directory}"))
    if rec["error"]:
        out["problems"].append(("logs", rec["error"]))
    elif rec["analysis"] is None:
        out["problems"].append(("logs", f"no training log (*.txt, *.log) in {directory}: the claim cannot be checked"))
    else:
        out["problems"] += compare_claim(data, rec["analysis"])
    return out


def parse_hparams(items):
    """['lr=0.02', 'nesterov=true', 'name=x'] -> {'lr': 0.02, 'nesterov': True, 'name': 'x'}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ResultsError(f"--hparam {item!r}: expected KEY=VALUE")
        if key in out:
            raise ResultsError(f"--hparam {key} given twice")
        v = value.strip()
        if re.fullmatch(r"[-+]?\d{1,18}", v):
            out[key] = int(v)
        elif v.lower() in ("true", "false"):
            out[key] = v.lower() == "true"
        else:
            try:
                f = float(v)
                out[key] = f if math.isfinite(f) and re.fullmatch(r"[-+0-9.eE]+", v) else v
            except ValueError:
                out[key] = v
    return out


def write_results(args):
    if args.output:
        output = args.output
        if os.path.isdir(output):
            output = os.path.join(output, "results.json")
    else:
        dirs = {os.path.dirname(os.path.abspath(p)) for p in args.logs}
        if len(dirs) != 1:
            print("error: the logs are in different directories; say where results.json goes with -o", file=sys.stderr)
            return 2
        output = os.path.join(dirs.pop(), "results.json")
    for name in ("agent_id", "experiment", "optimizer"):
        if not getattr(args, name).strip():
            print(f"error: --{name.replace('_', '-')} must not be empty", file=sys.stderr)
            return 2
    try:
        hparams = parse_hparams(args.hparam)
        logs, trials = load(args.logs)
        warnings = [w for log in logs for w in log.warnings] + check_pool(trials)
        a = analyze(trials, args.bar)
    except (LogError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    claim, final = a["claim"], a["final"]
    if claim is None:
        need = "never at this mean" if final.n_needed is None else f"{final.n_needed} runs at this mean"
        print(f"error: no val step passes bar {bar_name(args.bar)} over these {a['n']} runs, so there is no "
              f"steps_to_3_28 to claim; nothing written. Final step {final.step}: mean {fmt(final.mean)}, margin "
              f"{fmt(final.margin)}; passing would need {need}.", file=sys.stderr)
        return 1
    outdir = os.path.dirname(os.path.abspath(output))
    names = [os.path.relpath(os.path.abspath(p), outdir) for p in args.logs]
    for name in names:
        if name.startswith(".."):
            print(f"warning: {name} is not in {outdir}; copy it there: --check and the leaderboard recompute the "
                  "claim from the logs beside results.json", file=sys.stderr)
    data = {
        "agent_id": args.agent_id, "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment": args.experiment, "optimizer": args.optimizer,
        "steps_to_3_28": claim.step, "final_val_loss": round(final.mean, 6), "num_runs": a["n"],
        "mean_val_loss": round(claim.mean, 6), "std_val_loss": round(claim.std, 6),
        "key_hparams": hparams, "notes": args.notes or "",
        "significance_bar": args.bar,
        "significance_rule": f"steps_to_3_28 = earliest val step, present in every run, with (3.28 - mean) * sqrt(n) "
                             f">= {args.bar} ({BARS[args.bar]})",
        "final_step": final.step, "logs": names, "generated_by": "python -m tools.results",
    }
    try:
        os.makedirs(outdir, exist_ok=True)
        with open(output, "w") as f:
            f.write(dumps(data) + "\n")
    except OSError as e:
        print(f"error: {output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {output}: steps_to_3_28 {claim.step} (mean {fmt(claim.mean)}, std {fmt(claim.std)}, n {a['n']}, "
          f"margin {fmt(claim.margin)} >= bar {args.bar}); final_val_loss {fmt(final.mean)} at step {final.step}")
    return 0


def check(target, as_json=False):
    directory = os.path.dirname(target) if os.path.basename(target) == "results.json" and os.path.isfile(target) \
        else target
    if not os.path.isdir(directory):
        print(f"error: {target}: not a directory", file=sys.stderr)
        return 2
    out = verify(directory)
    rec = out["recomputed"] or {}
    a = rec.get("analysis")
    if as_json:
        print(dumps({"path": out["path"], "ok": not out["problems"],
                     "problems": [{"field": k, "message": m} for k, m in out["problems"]], "notes": out["notes"],
                     "logs": rec.get("files", []),
                     "recomputed": None if a is None else {
                         "n": a["n"], "earliest_passing_step": a["claim"].step if a["claim"] else None,
                         "claim": a["claim"].as_dict() if a["claim"] else None, "final": a["final"].as_dict()}}))
        return 1 if out["problems"] else 0
    for note in out["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if out["problems"]:
        for key, msg in out["problems"]:
            print(f"{out['path']}: {key}: {msg}", file=sys.stderr)
        print(f"FAILED: {len(out['problems'])} problem(s) in {out['path']}", file=sys.stderr)
        return 1
    d = out["data"]
    print(f"OK: {out['path']}: steps_to_3_28 {d['steps_to_3_28']} holds under bar {d.get('significance_bar', DEFAULT_BAR)}"
          f" (recomputed mean {fmt(a['claim'].mean)}, n {a['n']}, from {', '.join(rec['files'])})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", metavar="LOG")
    ap.add_argument("--check", metavar="DIR", help="check DIR/results.json against the schema and DIR's logs")
    ap.add_argument("--agent-id")
    ap.add_argument("--experiment")
    ap.add_argument("--optimizer")
    ap.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="a key hyperparameter (repeatable)")
    ap.add_argument("--notes")
    add_bar_argument(ap)
    ap.add_argument("-o", "--output", metavar="FILE", help="where to write (default: results.json beside the logs)")
    ap.add_argument("--json", action="store_true", help="with --check: print the outcome as JSON")
    args = ap.parse_args(argv)
    if args.check:
        if args.logs:
            ap.error("--check takes a directory, not logs")
        return check(args.check, args.json)
    if not args.logs:
        ap.error("give the training logs (or --check DIR)")
    missing = [f"--{n.replace('_', '-')}" for n in ("agent_id", "experiment", "optimizer") if getattr(args, n) is None]
    if missing:
        ap.error(f"required when writing: {', '.join(missing)}")
    return write_results(args)


if __name__ == "__main__":
    sys.exit(main())
