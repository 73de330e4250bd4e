"""The report: the checklist and the hyperparameter table as text, and the command line (main)."""
import argparse
import json
import os
import signal
import sys

from tools import tiny
from tools.preflight.common import FAIL, PASS, SKIP, _clip, _groups
from tools.preflight.core import preflight
from tools.preflight.schedule import spike_text

DESCRIPTION = "Check a modified train_gpt_simple.py on the CPU, before paying for a GPU run (docs/preflight.md)."


def format_table(info):
    table = info.get("hparams")
    if not table or not table["rows"]:
        return []
    steps = table["steps"]
    T = info["train_steps"]
    heads = [f"{s} ({s / T:.2f})" for s in steps] + ["min (step)", "max (step)"]
    lines = [f"Hyperparameters at the optimizer step of (the long run: {T} steps, rank 0; min and max over every step):"]
    widths = [max(len(h), 10) for h in heads[:-2]] + [17, 17]
    lines.append(f"  {'optimizer':<13} {'groups':<7} {'key':<16} " + " ".join(h.rjust(w) for h, w in zip(heads, widths)))
    spikes = []
    for row in table["rows"]:
        extremes = [f"{row[k]:.4g} ({row[k + '_step']})" if row.get(k) is not None else "-" for k in ("min", "max")]
        cells = [("-" if v is None else f"{v:.4g}") for v in row["values"]] + extremes
        lines.append(f"  {row['optimizer']:<13} {_groups(row['groups']):<7} {row['key']:<16} "
                     + " ".join(c.rjust(w) for c, w in zip(cells, widths)))
        spikes += [spike_text(row, spike) for spike in row.get("spikes", [])]
    if spikes:
        lines.append("  spikes (a short excursion from the values around it): " + _clip(spikes, 4))
    return lines


def format_limits(info):
    limits = info.get("time_limits")
    if not limits or not limits.get("baseline"):
        return []
    names = dict(long="1 layer, 1 microbatch", short="2 layers, 2 microbatches")
    measured = "; ".join(f"{names.get(k, k)}: {v['per_step_ms']:.1f} ms a step, {v['startup_s']:.1f} s to the first"
                         for k, v in sorted(limits["baseline"].items()))
    return [f"  time limit of each run: {limits['factor']:g} x the baseline's time for it + {limits['slack_s']:g} s "
            f"(the baseline here: {measured})"]


def format_report(info):
    lines = [f"preflight {info['script']}" + (f" (sha256 {info['sha256']})" if info.get("sha256") else "")]
    if info.get("train_steps"):
        lines.append(f"  {info['train_steps']} steps ({info['steps_source']}); tiny model of width "
                     f"{tiny.TINY['model_dim']}, synthetic data, CPU; runs: "
                     + "; ".join(f"{r['label']}: {r['what']}" for r in info.get("runs", [])))
    lines += format_limits(info)
    not_loaded = "not run: the script did not load"
    for c in info["checks"]:
        rule = f"rule {c['rule']}" if c["rule"] != "-" else ""
        lines.append(f"  {c['status']}  {c['id']:<12} {c['check']}" + (f"  [{rule}]" if rule else ""))
        if c["detail"] == not_loaded:
            continue
        if c["status"] != PASS or c["id"] in ("run", "log_format", "learns") or "not judged" in c["detail"]:
            detail = c["detail"].replace("\n", "\n        ")
            lines.append(f"        {detail}")
        if c["status"] == FAIL:
            lines.append(f"        fix: {c['fix']}")
    for w in info.get("warnings", []):
        lines.append(f"  WARN  {w['check']:<12} " + w["text"].replace("\n", "\n        "))
    lines += format_table(info)
    fails = [c["id"] for c in info["checks"] if c["status"] == FAIL]
    skips = [c["id"] for c in info["checks"] if c["status"] == SKIP]
    warned = len(info.get("warnings", []))
    verdict = (f"FAIL: {len(fails)} of {len(info['checks'])} checks ({', '.join(fails)})" if fails
               else f"PASS: all {len(info['checks'])} checks" + (f" ({len(skips)} skipped)" if skips else "")
               + (f", {warned} warning{'s' if warned > 1 else ''}" if warned else ""))
    if any(c["detail"] == not_loaded for c in info["checks"]):
        lines.append(f"SKIP: {not_loaded}.")
    if info.get("compile"):
        lines.append(f"compile check (--compile: the script's own torch.compile calls on the CPU): {info['compile']['status']}")
        for c in info["compile"].get("checks", []):
            lines.append(f"  {c['status']}  {c['name']:<12} {c['detail']}")
        if not info["compile"].get("checks"):
            lines.append(f"        {info['compile']['detail']}")
        if info["compile"]["status"] == FAIL:
            verdict = (f"FAIL: the compile check (the other {len(info['checks'])} checks pass)" if not fails
                       else verdict + " and the compile check")
    if info.get("kept_logs") is not None:
        lines.append(f"Logs kept: {len(info['kept_logs'])} files, e.g. " + _clip(info["kept_logs"], 2))
    lines.append(f"{verdict}. Wall time {info['wall_s']:.1f} s.")
    if info.get("train_steps") and info["steps_source"] == "--steps":
        lines.append("Note: --steps overrode train_steps; the default runs every step of the script's own train_steps.")
    if info.get("instrument_error"):
        lines.append("Note: the preflight's own instrumentation failed (a bug in tools.preflight):\n"
                     + info["instrument_error"])
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.preflight", description=DESCRIPTION)
    parser.add_argument("script", help="the training script to check (a modified copy of train_gpt_simple.py)")
    parser.add_argument("--steps", type=int, default=None,
                        help="override train_steps (quick looks, tests); default: every step of the script's own train_steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the checklist")
    parser.add_argument("--compile", action="store_true",
                        help="also run the script's own torch.compile calls on the CPU (tools.compile_check: graph breaks, "
                             "recompiles, compiled = eager); a minute or two more")
    parser.add_argument("--keep-logs", metavar="DIR", default=None,
                        help="copy the CPU runs' logs, and the end of each run's output (output.txt), to DIR/<run>/ "
                             "(created if missing; nothing there is overwritten)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.keep_logs is not None:
        if os.path.exists(args.keep_logs) and not os.path.isdir(args.keep_logs):
            parser.error(f"--keep-logs {args.keep_logs}: a file is there; give a directory (created if missing)")
        try:
            os.makedirs(args.keep_logs, exist_ok=True)
        except OSError as e:
            parser.error(f"--keep-logs {args.keep_logs}: cannot create it ({e.strerror or e})")
    progress = None if args.json else (lambda message: print(f"preflight: {message}", flush=True))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and a stop from outside end every run. SIGINT gets the handler too: a process started in the background
    # by a shell script (CI, nohup ... &) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        info = preflight(args.script, args.steps, progress, args.keep_logs, args.compile)
    except KeyboardInterrupt:
        print("preflight: interrupted: every run of the script was stopped; nothing was judged", file=sys.stderr)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(json.dumps(info, indent=1, default=str) if args.json else format_report(info))
    return 0 if info["ok"] else 2 if info.get("bad_input") else 1
