"""Write an approach's results.json from its training logs, or check one against its logs.

    python -m tools.results LOG... --agent-id ID --experiment TEXT --optimizer NAME
                            [--hparam k=v ...] [--notes TEXT] [--bar 0.005|0.004] [--metric NAME]
                            [--strict] [-o DIR/results.json]
    python -m tools.results LOG... --evidence public --public-source PATH --hardware TEXT [--step K] ...
    python -m tools.results --check DIR

Writing: all runs of all LOGs (files or directories) are the n runs (see tools.stats). steps_to_3_28
is the earliest val step, present in every run, whose mean passes the bar; mean_val_loss and
std_val_loss are taken at that step; final_val_loss is the mean at the last val step common to all
runs ("nan" or "inf" when a run's value there is not finite). --metric NAME scores another column of
the val lines (e.g. val_ema_loss); then every loss in results.json is of that metric, and the file
says which ("metric"). With no passing step nothing is written (exit 1). -o defaults to results.json
in the logs' directory; keep the logs beside results.json, since --check recomputes from them.

A ported record (--evidence public): the logs are val-line extracts of public logs, kept in
DIR/public_logs/; --public-source names the public folder, --hardware the GPUs, and --step K the
published step, recorded as published: "claim_holds" says whether it passes the bar over those logs.

Checking: DIR/results.json against the schema (required: agent_id, experiment, optimizer,
steps_to_3_28, final_val_loss; types; finite numbers; 0 < steps; no key given twice) and against
the training logs in DIR (*.txt, *.log that parse as logs; DIR/public_logs/ for a ported record):
the claimed step must be the earliest passing step under the file's significance_bar and metric,
mean/std/final losses must agree within 5e-5, num_runs must match. Run identity: at least one log
must have been written by DIR/train_gpt_simple.py (its embedded script is the file's text); each log
that was not is named.

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

from tools import identity
from tools.logs import DEFAULT_METRIC, METRIC_RE, LogError, dumps, fmt, parse_file, read_runs
from tools.stats import (BARS, DEFAULT_BAR, PoolError, add_bar_argument, add_metric_argument, analyze, at_step,
                         bar_name, check_pool, missing_step, step_arg)

TOLERANCE = 5e-5
MAX_STEPS = 10 ** 9
MAX_TEXT = 10_000
REQUIRED = ("agent_id", "experiment", "optimizer", "steps_to_3_28", "final_val_loss")
PUBLIC = "public"  # "evidence" of a ported record: the runs were made elsewhere, their logs are public
PORTED_REQUIRED = ("public_source", "metric", "significance_bar", "hardware", "num_runs", "mean_val_loss",
                   "std_val_loss", "notes")
PUBLIC_LOGS = "public_logs"
NONFINITE = ("nan", "inf", "-inf")  # how results.json records a final val loss that is not a finite number


class ResultsError(Exception):
    pass


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} (JSON has no NaN or Infinity)")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    """A JSON object's pairs as a dict; a key given twice raises _DuplicateKey (json would keep the last silently)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def load_json(path):
    """The object in `path`; raises ResultsError (the message does not repeat the path)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 24)
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        key = e.args[0]
        raise ResultsError(f"duplicate key {json.dumps(key[:80], ensure_ascii=False)}: JSON would keep only the last "
                           "one; remove the other, or rewrite the file with python -m tools.results") from None
    except OSError as e:
        raise ResultsError(f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ResultsError("not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise ResultsError(f"not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise ResultsError("not a JSON object")
    return data


def loss_value(v):
    """A loss field as a float (nan/inf for the strings results.json uses for them)."""
    return float(v) if isinstance(v, str) else v


def loss_field(x):
    """How results.json records a loss: a rounded number, or "nan"/"inf"/"-inf"."""
    return round(x, 6) if math.isfinite(x) else ("nan" if x != x else "inf" if x > 0 else "-inf")


def validate(data):
    """[(field, problem)] of schema violations of a results.json object."""
    problems = []
    ported = data.get("evidence") == PUBLIC
    for key in REQUIRED + (PORTED_REQUIRED if ported else ()):
        if key not in data:
            problems.append((key, "missing (required)" + (" in a ported record" if key not in REQUIRED else "")))
    for key in ("agent_id", "experiment", "optimizer", "timestamp", "notes", "public_source", "hardware"):
        if key in data:
            v = data[key]
            if not isinstance(v, str):
                problems.append((key, f"must be a string, not {type(v).__name__}"))
            elif (key in REQUIRED or key in ("public_source", "hardware")) and not v.strip():
                problems.append((key, "must not be empty"))
            elif len(v) > MAX_TEXT:
                problems.append((key, f"{len(v)} characters; at most {MAX_TEXT}"))
    if "evidence" in data and data["evidence"] not in (PUBLIC, "here"):
        problems.append(("evidence", '"public" (a ported record) or "here"'))
    if "metric" in data and not (isinstance(data["metric"], str) and METRIC_RE.fullmatch(data["metric"])):
        problems.append(("metric", "must be a column name such as val_loss or val_ema_loss"))
    if "claim_holds" in data and not isinstance(data["claim_holds"], bool):
        problems.append(("claim_holds", "must be true or false"))
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
            if key == "final_val_loss" and v in NONFINITE:
                continue  # a run that ended in nan/inf: recorded as such
            if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                also = " or one of " + ", ".join(NONFINITE) if key == "final_val_loss" else ""
                problems.append((key, f"must be a number{also}, not {type(v).__name__}"))
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


def logs_dir(directory, data):
    """Where the logs of an entry are: DIR, or DIR/public_logs for a ported record."""
    return os.path.join(directory, PUBLIC_LOGS) if data.get("evidence") == PUBLIC else directory


def recompute(directory, bar, metric=DEFAULT_METRIC):
    """Pool the training logs in `directory`: {"analysis", "files", "logs", "skipped", "notes", "error"}.
    analysis is None when no file there parses as a log, or when the pool is unusable (error)."""
    paths = log_files(directory)
    out = {"analysis": None, "files": [], "logs": [], "skipped": [], "notes": [], "error": None}
    if not paths:
        return out
    runs = read_runs(paths, allow_empty=True)
    out["logs"], out["files"] = runs.logs, [os.path.basename(log.path) for log in runs.logs]
    out["skipped"], out["notes"] = runs.skipped, runs.notes
    if not runs.trials:
        return out
    try:
        out["notes"] += check_pool(runs.trials, metric=metric)
        out["analysis"] = analyze(runs.trials, bar, metric)
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
    if data.get("evidence") == PUBLIC:  # the published step, recorded as published, with its verdict
        holds = at is not None and at.passed
        if data.get("claim_holds", True) != holds:
            verdict = "does not pass" if not holds else "passes"
            problems.append(("claim_holds", f"says {str(data.get('claim_holds', True)).lower()}, but step {steps} "
                                            f"{verdict} bar {bar} over the public logs"))
    elif claim is None:
        problems.append(("steps_to_3_28", f"claims {steps}, but no val step passes bar {bar} in the logs "
                                          f"(final step {final.step}: mean {fmt(final.mean)}, margin {fmt(final.margin)})"))
    elif claim.step != steps:
        problems.append(("steps_to_3_28", f"claims {steps}, but the earliest passing step in the logs is {claim.step}"))
    if at is None:
        problems.append(("steps_to_3_28", missing_step(analysis, steps)))
    else:
        for key, value in (("mean_val_loss", at.mean), ("std_val_loss", at.std)):
            if key in data and not abs(data[key] - value) <= TOLERANCE:
                problems.append((key, f"{data[key]} but the logs give {fmt(value)} at step {steps}"))
    final_data = loss_value(data["final_val_loss"])
    if not (abs(final_data - final.mean) <= TOLERANCE or loss_field(final.mean) == data["final_val_loss"]):
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
    metric = data.get("metric", DEFAULT_METRIC)
    if "significance_bar" not in data:
        out["notes"].append(f"no significance_bar field: checked under the default bar {DEFAULT_BAR}")
    where = logs_dir(directory, data)
    rec = recompute(where, bar, metric)
    out["recomputed"] = rec
    out["notes"] += rec["skipped"] + rec["notes"]
    for name in data.get("logs", []):
        if os.path.basename(name) not in rec["files"]:
            out["problems"].append(("logs", f"lists {name}, which is not a training log in {where}"))
    if rec["error"]:
        out["problems"].append(("logs", rec["error"]))
    elif rec["analysis"] is None:
        out["problems"].append(("logs", f"no training log (*.txt, *.log) in {where}: the claim cannot be checked"))
    else:
        out["problems"] += compare_claim(data, rec["analysis"])
    if data.get("evidence") == PUBLIC:
        out["notes"].append(f"ported record: the logs in {PUBLIC_LOGS}/ are extracts of public logs (from "
                            f"{data['public_source']}), public evidence, not runs of its {identity.SCRIPT_NAME}")
    elif rec["logs"]:
        problems, warnings = identity.check_directory(directory, rec["logs"])
        out["problems"] += [("run identity", p) for p in problems]
        out["notes"] += warnings
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


def _output_path(args):
    if args.output:
        return os.path.join(args.output, "results.json") if os.path.isdir(args.output) else args.output
    dirs = {os.path.dirname(os.path.abspath(p)) if not os.path.isdir(p) else os.path.abspath(p) for p in args.logs}
    if len(dirs) != 1:
        raise ResultsError("the logs are in different directories; say where results.json goes with -o")
    return os.path.join(dirs.pop(), "results.json")


def write_results(args):
    public = args.evidence == PUBLIC
    for name in ("agent_id", "experiment", "optimizer") + (("public_source", "hardware") if public else ()):
        value = getattr(args, name)
        if value is None or not value.strip():
            print(f"error: --{name.replace('_', '-')} must not be empty{' for a ported record' if public else ''}",
                  file=sys.stderr)
            return 2
    if args.step is not None and not public:
        print("error: --step records a published claim (--evidence public); your own claim is the earliest passing "
              "step, which tools.results finds", file=sys.stderr)
        return 2
    try:
        output = _output_path(args)
        hparams = parse_hparams(args.hparam)
        runs = read_runs(args.logs, strict_files=True)
        warnings = runs.messages() + check_pool(runs.trials, strict=args.strict, metric=args.metric)
        a = analyze(runs.trials, args.bar, args.metric)
        if args.step is not None and at_step(a, args.step) is None:
            raise PoolError(missing_step(a, args.step))
    except (LogError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    claim, final = a["claim"], a["final"]
    if args.step is not None:
        claim = at_step(a, args.step)
        verdict = "passes" if claim.passed else "does NOT pass"
        print(f"note: the published step {claim.step} {verdict} bar {args.bar} over these {a['n']} runs (mean "
              f"{fmt(claim.mean)}, margin {fmt(claim.margin)}); recorded as published with claim_holds "
              f"{str(claim.passed).lower()}", file=sys.stderr)
    elif claim is None:
        need = "never at this mean" if final.n_needed is None else f"{final.n_needed} runs at this mean"
        print(f"error: no val step passes bar {bar_name(args.bar)} over these {a['n']} runs ({args.metric}), so there is "
              f"no steps_to_3_28 to claim; nothing written. Final step {final.step}: mean {fmt(final.mean)}, margin "
              f"{fmt(final.margin)}; passing would need {need}.", file=sys.stderr)
        return 1
    if not (math.isfinite(claim.mean) and math.isfinite(claim.std)):
        print(f"error: the mean or std at step {claim.step} is not a finite number (mean {fmt(claim.mean)}, std "
              f"{fmt(claim.std)}): a value there is too large to average; nothing written", file=sys.stderr)
        return 1
    outdir = os.path.dirname(os.path.abspath(output))
    if not public:  # the run identity --check will apply
        problems, notes = identity.check_directory(outdir, runs.logs)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        if problems:
            print(f"error: {problems[0]} (in {outdir}); nothing written. Put the script that wrote the logs there: "
                  f"python -m tools.logs LOG --script -o {os.path.join(outdir, identity.SCRIPT_NAME)}",
                  file=sys.stderr)
            return 1
    names = [os.path.relpath(os.path.abspath(log.path), outdir) for log in runs.logs]
    for name in names:
        if name.startswith(".."):
            print(f"warning: {name} is not in {outdir}; copy it there: --check and the leaderboard recompute the "
                  "claim from the logs beside results.json", file=sys.stderr)
    if not math.isfinite(final.mean):
        print(f"warning: the final val step {final.step} has a non-finite mean ({args.metric} {fmt(final.mean)} in "
              f"a run); final_val_loss is recorded as \"{loss_field(final.mean)}\"", file=sys.stderr)
    data = {
        "agent_id": args.agent_id, "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment": args.experiment, "optimizer": args.optimizer,
        "steps_to_3_28": claim.step, "final_val_loss": loss_field(final.mean), "num_runs": a["n"],
        "mean_val_loss": round(claim.mean, 6), "std_val_loss": round(claim.std, 6),
        "key_hparams": hparams, "notes": args.notes or "",
        "metric": args.metric, "significance_bar": args.bar,
        "significance_rule": (f"steps_to_3_28 = earliest val step, present in every run, with (3.28 - mean) * sqrt(n) "
                              f">= {args.bar} ({BARS[args.bar]}), on {args.metric}") if not public else
                             (f"steps_to_3_28 = the published step; it holds when (3.28 - mean) * sqrt(n) >= {args.bar} "
                              f"({BARS[args.bar]}) there, on {args.metric}"),
        "final_step": final.step, "logs": names, "generated_by": "python -m tools.results",
    }
    if public:
        data.update({"evidence": PUBLIC, "public_source": args.public_source, "hardware": args.hardware,
                     "claim_holds": claim.passed})
    problems = validate(data)
    if problems:  # never write what --check would reject
        print(f"error: the results would not pass the schema ({'; '.join(f'{k}: {m}' for k, m in problems)}); "
              "nothing written", file=sys.stderr)
        return 1
    try:
        os.makedirs(outdir, exist_ok=True)
        with open(output, "w") as f:
            f.write(dumps(data) + "\n")
    except OSError as e:
        print(f"error: {output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {output}: steps_to_3_28 {claim.step} on {args.metric} (mean {fmt(claim.mean)}, std {fmt(claim.std)}, "
          f"n {a['n']}, margin {fmt(claim.margin)} {'>=' if claim.passed else '<'} bar {args.bar}); final_val_loss "
          f"{fmt(final.mean)} at step {final.step}" + ("" if final.step == a["train_steps"] else
                                                       f" (not train_steps {a['train_steps']}: a run has no val "
                                                       "line there; see the warnings)"))
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
                         "n": a["n"], "metric": a["metric"],
                         "earliest_passing_step": a["claim"].step if a["claim"] else None,
                         "claim": a["claim"].as_dict() if a["claim"] else None, "final": a["final"].as_dict()}}))
        return 1 if out["problems"] else 0
    for note in out["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if out["data"] is None:  # the file itself cannot be read: one line
        print(f"FAILED: {out['path']}: {out['problems'][0][1]}", file=sys.stderr)
        return 1
    if out["problems"]:
        print(f"FAILED: {out['path']}: {len(out['problems'])} problem(s):", file=sys.stderr)
        for key, msg in out["problems"]:
            print(f"  {key}: {msg}", file=sys.stderr)
        return 1
    d = out["data"]
    at = at_step(a, d["steps_to_3_28"])
    verdict = "holds" if at.passed else "does NOT hold (recorded so: claim_holds false)"
    print(f"OK: {out['path']}: steps_to_3_28 {d['steps_to_3_28']} {verdict} under bar "
          f"{d.get('significance_bar', DEFAULT_BAR)} on {a['metric']} (recomputed mean {fmt(at.mean)}, n {a['n']}, "
          f"from {', '.join(rec['files'][:4])}{' ...' if len(rec['files']) > 4 else ''})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", metavar="LOG", help="training logs or directories of logs")
    ap.add_argument("--check", metavar="DIR", help="check DIR/results.json against the schema and DIR's logs")
    ap.add_argument("--agent-id")
    ap.add_argument("--experiment")
    ap.add_argument("--optimizer")
    ap.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="a key hyperparameter (repeatable)")
    ap.add_argument("--notes")
    add_bar_argument(ap)
    add_metric_argument(ap)
    ap.add_argument("--strict", action="store_true", help="refuse runs written by different scripts")
    ap.add_argument("--evidence", choices=[PUBLIC], help="a ported record: the logs are extracts of public logs")
    ap.add_argument("--public-source", help="with --evidence public: the public folder or log (repo path)")
    ap.add_argument("--hardware", help="with --evidence public: the GPUs the public runs used")
    ap.add_argument("--step", type=step_arg, metavar="K", help="with --evidence public: the published step")
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
