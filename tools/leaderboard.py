"""Regenerate LEADERBOARD.md from every results.json under artifacts/*/ and records/*/.

    python -m tools.leaderboard [--root .] [-o LEADERBOARD.md] [--check] [--metric NAME] [--json]

Tables: the results reproduced here, sorted by steps_to_3_28 (ties: lower mean val loss); the best
setting of every optimizer (fewest steps among its entries whose claim holds) with the optimizer's
history by date; the ported records (public evidence: "evidence": "public" in results.json), apart
and never mixed with the results reproduced here; the published reference results
(tools/reference/results.csv, not verified here). Every claim is recomputed from the training logs
in its directory (a ported record's: DIR/public_logs/), on the metric its results.json names
(default val_loss), as `tools.results --check` does, and marked: holds, does not hold (with the
recomputed figure), or unverified (no logs). An approach none of whose logs was written by its
train_gpt_simple.py fails. A malformed results.json (a key given twice included) and a directory
without one are listed under "Skipped entries" with the reason and the fix (and on stderr), never
fatal. All text taken from results.json and the CSV is escaped (markdown, HTML, newlines,
bidirectional and other invisible format characters, $...$ math), so it cannot break or disguise
the tables. --metric NAME lists only the entries scored on that metric.

Provenance: every row also shows what its logs say (tools.identity.provenance): the device and world
size and the PyTorch version of their headers and the sha256 of the script each log embeds (8 hex
digits; an extract in public_logs/ keeps it on a script_sha256 line), beside a readout column's mean
the raw val_loss of the same runs at the same step, and flags: a stated hardware (a ported record's
"hardware") the logs contradict, logs of several devices or world sizes, runs with different val
steps, runs of different scripts or without one, runs that end before train_steps. --json prints the
entries with the full sha256 instead of writing the board.

--check: exit 1 when the file on disk differs from what would be generated (for CI).
Exit status: 0 written / up to date, 1 out of date (--check), 2 cannot write.
"""
import argparse
import csv
import glob
import math
import os
import re
import sys
import unicodedata

from tools import identity
from tools.logs import DEFAULT_METRIC, METRIC_RE, LogError, dumps
from tools.results import (PUBLIC, PUBLIC_LOGS, ResultsError, compare_claim, load_json, logs_dir, loss_value,
                           recompute, validate)
from tools.stats import DEFAULT_BAR, REF_DIR, analyze, at_step

MAX_FIELD = 200
REF_RESULTS = os.path.join(REF_DIR, "results.csv")
_SAFE_DIR = re.compile(r"[A-Za-z0-9._-]{1,100}")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


def escape(value, limit=MAX_FIELD):
    """Plain text safe inside a markdown table cell: no markup, no HTML, no math, one line, at most `limit`
    chars. Invisible format characters (bidirectional overrides and isolates, zero-width characters) become
    U+FFFD, so text cannot display in an order or with content other than what it holds."""
    text = str(value)
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+", " ", text).strip()
    text = "".join("\ufffd" if unicodedata.category(c) == "Cf" else c for c in text)
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("$", "&#36;")  # no $ left to start math


def loss(x):
    if x is None:
        return "-"
    if isinstance(x, str):
        return escape(x)
    return f"{x:.4f}" if abs(x) < 1e4 else escape(f"{x:.4g}")


def std(x):
    return "-" if x is None else (f"{x:.5f}" if abs(x) < 1e4 else escape(f"{x:.4g}"))


def date_of(entry):
    ts = entry["data"].get("timestamp")
    if isinstance(ts, str) and re.match(r"\d{4}-\d{2}-\d{2}", ts):
        return ts[:10]
    return "-" if ts is None else escape(ts, 20)


def dir_cell(rel):
    parts = rel.split("/")
    if all(_SAFE_DIR.fullmatch(p) for p in parts):
        return f"[{escape(rel)}]({rel}/)"
    return escape(rel)


def status(entry):
    """(holds, text): the claim recomputed from the logs beside results.json (a ported record: its public
    logs), and the run identity of an approach directory."""
    data, directory = entry["data"], entry["dir"]
    bar = data.get("significance_bar", DEFAULT_BAR)
    metric = data.get("metric", DEFAULT_METRIC)
    on = "" if metric == DEFAULT_METRIC else f" on {escape(metric)}"
    rec = recompute(logs_dir(directory, data), bar, metric)
    entry["logs"] = rec["files"]
    a = rec["analysis"]
    entry["provenance"] = identity.provenance(rec["logs"], a["trials"] if a else [t for log in rec["logs"]
                                                                               for t in log.trials],
                                              data.get("hardware"))
    if a is not None and metric != DEFAULT_METRIC:  # the raw val_loss beside the readout
        try:
            raw = at_step(analyze(a["trials"], bar), data["steps_to_3_28"])
        except LogError:
            raw = None
        entry["raw_mean"] = raw.mean if raw is not None else None
    if rec["error"]:
        return False, f"✗ logs unusable: {escape(rec['error'], 120)}"
    if a is None:
        return False, "unverified: no logs" + (f" in {PUBLIC_LOGS}/" if data.get("evidence") == PUBLIC else "")
    steps = data["steps_to_3_28"]
    at = at_step(a, steps)
    if at is None:
        return False, f"✗ does not hold: step {steps} is not in every run's log"
    if not at.passed:
        need = "" if at.n_needed is None else f"; n={at.n_needed} would pass at this mean"
        return False, f"✗ does not hold: recomputed {loss(at.mean)} at {steps}{on} (n={a['n']}, bar {bar}{need})"
    problems = compare_claim(data, a)
    if problems:
        field, msg = problems[0]
        return False, f"✗ does not match its logs: {escape(field)}: {escape(msg, 120)}"
    text = f"✓ holds: recomputed {loss(at.mean)} at {steps}{on} (n={a['n']}, bar {bar})"
    if data.get("evidence") != PUBLIC:
        problems, warnings = identity.check_directory(directory, rec["logs"])
        entry["identity"] = problems + warnings
        if problems:
            return False, f"✗ run identity: {escape(problems[0], 160)}"
        odd = [w for w in warnings if "was not written by" in w]
        if odd:
            text += f"; {len(odd)} of {len(rec['logs'])} logs not written by its train\\_gpt\\_simple.py"
    return True, text


def collect(root, metric=None):
    """(entries, skipped): every results.json under root/artifacts/*/ and root/records/*/ (only those scored
    on `metric`, when given)."""
    entries, skipped = [], []
    dirs = sorted(d for top in ("artifacts", "records") for d in glob.glob(os.path.join(glob.escape(root), top, "*"))
                  if os.path.isdir(d))
    for directory in dirs:
        path = os.path.join(directory, "results.json")
        rel = os.path.relpath(directory, root).replace(os.sep, "/")
        if not os.path.lexists(path):
            skipped.append((rel, f"no results.json: when its runs are done, write it from the logs beside it with "
                                 f"python -m tools.results {rel} --agent-id ID --experiment TEXT --optimizer NAME"))
            continue
        try:
            data = load_json(path)
        except ResultsError as e:
            skipped.append((rel, f"results.json: {e}"))
            continue
        problems = validate(data)
        if problems:
            skipped.append((rel, "results.json: " + "; ".join(f"{k}: {m}" for k, m in problems)))
            continue
        if metric is not None and data.get("metric", DEFAULT_METRIC) != metric:
            continue
        entry = {"rel": rel, "dir": os.path.dirname(path), "data": data, "identity": []}
        entry["holds"], entry["status"] = status(entry)
        entries.append(entry)
    return entries, skipped


def _number(x):
    x = loss_value(x)
    return x if isinstance(x, (int, float)) and math.isfinite(x) else float("inf")


def sort_key(entry):
    d = entry["data"]
    return (d["steps_to_3_28"], _number(d.get("mean_val_loss", d["final_val_loss"])), entry["rel"])


def read_reference(path=REF_RESULTS):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        return None, f"{path}: {e.strerror or e}"
    out = []
    for r in rows:
        try:
            out.append((int(r["steps_to_3_28"]), float(r["mean_val_loss"]), r))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda x: (x[0], x[1])), None


def mean_cell(entry):
    """The mean at the claimed step; beside a readout column's, the raw val_loss of the same runs there."""
    d = entry["data"]
    text = loss(d.get("mean_val_loss"))
    if entry.get("raw_mean") is not None:
        text += f" (val\\_loss {loss(entry['raw_mean'])})"
    return text


def logs_cell(entry):
    """What the logs say: device x world size, torch, script sha256 (8 hex digits)."""
    p = entry.get("provenance")
    return "-" if p is None or not (p["devices"] or p["torch"] or p["script_sha256"]) else \
        escape(identity.provenance_cell(p))


def flags_cell(entry):
    p = entry.get("provenance")
    return "; ".join(escape(f, 160) for f in p["flags"]) if p and p["flags"] else "-"


def metric_cell(data):
    return escape(data.get("metric", DEFAULT_METRIC))


def render(root, metric=None):
    entries, skipped = collect(root, metric)
    entries.sort(key=sort_key)
    ported = [e for e in entries if e["data"].get("evidence") == PUBLIC]
    entries = [e for e in entries if e["data"].get("evidence") != PUBLIC]
    L = ["# Leaderboard", "",
         "Generated by `python -m tools.leaderboard` from every `results.json` under `artifacts/*/` and `records/*/`; "
         "do not edit it by hand. Score: `steps_to_3_28`, the earliest val step at which the mean val loss over all "
         "n runs passes the significance bar `(3.28 - mean) * sqrt(n) >= bar` (0.005 = this workspace's bar, "
         "0.004 = the public one), on the metric the entry names (`val_loss` unless it says otherwise, e.g. "
         "`val_ema_loss`, the val loss of averaged weights). Fewer steps is better. Each claim is recomputed from the "
         "training logs in its directory. Results reproduced here and ported records (public evidence) are "
         "listed apart and never ranked together." + (f" Only entries scored on `{metric}` are listed." if metric
                                                      else ""), ""]
    L += ["## Results reproduced here", ""]
    if entries:
        L += ["| # | Steps | Mean val loss | Std | Final val loss | Runs | Bar | Metric | Optimizer | Experiment | Agent "
              "| Date | Directory | Claim | Logs say | Flags |",
              "|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|---|---|---|"]
        for i, e in enumerate(entries, 1):
            d = e["data"]
            L.append(f"| {i} | {d['steps_to_3_28']} | {mean_cell(e)} | {std(d.get('std_val_loss'))} "
                     f"| {loss(d['final_val_loss'])} | {d.get('num_runs', '-')} "
                     f"| {escape(d.get('significance_bar', DEFAULT_BAR))} | {metric_cell(d)} | {escape(d['optimizer'])} "
                     f"| {escape(d['experiment'])} | {escape(d['agent_id'])} | {date_of(e)} | {dir_cell(e['rel'])} "
                     f"| {e['status']} | {logs_cell(e)} | {flags_cell(e)} |")
    else:
        L.append("No entries yet.")
    L += ["", "## Best setting per optimizer", "",
          "Among the results reproduced here: the fewest steps among each optimizer's entries whose claim holds, "
          "then every entry of that optimizer by date.", ""]
    groups = {}
    for e in entries:
        groups.setdefault(" ".join(e["data"]["optimizer"].split()).lower(), []).append(e)
    if groups:
        best_rows = []
        for key, group in groups.items():
            holding = sorted((e for e in group if e["holds"]), key=sort_key)
            best_rows.append((holding[0] if holding else None, group))
        best_rows.sort(key=lambda x: (sort_key(x[0]) if x[0] else (float("inf"), 0, ""), x[1][0]["data"]["optimizer"]))
        L += ["| Optimizer | Steps | Mean val loss | Runs | Metric | Experiment | Directory |",
              "|---|---:|---:|---:|---|---|---|"]
        for best, group in best_rows:
            name = escape((best or group[0])["data"]["optimizer"])
            if best is None:
                L.append(f"| {name} | - | - | - | - | no entry whose claim holds | - |")
            else:
                d = best["data"]
                L.append(f"| {name} | {d['steps_to_3_28']} | {loss(d.get('mean_val_loss'))} | {d.get('num_runs', '-')} "
                         f"| {metric_cell(d)} | {escape(d['experiment'])} | {dir_cell(best['rel'])} |")
        for best, group in best_rows:
            L += ["", f"### History: {escape((best or group[0])['data']['optimizer'])}", "",
                  "| Date | Steps | Mean val loss | Runs | Metric | Experiment | Agent | Directory | Claim |",
                  "|---|---:|---:|---:|---|---|---|---|---|"]
            for e in sorted(group, key=lambda e: (str(e["data"].get("timestamp", "")), e["rel"])):
                d = e["data"]
                L.append(f"| {date_of(e)} | {d['steps_to_3_28']} | {loss(d.get('mean_val_loss'))} "
                         f"| {d.get('num_runs', '-')} | {metric_cell(d)} | {escape(d['experiment'])} "
                         f"| {escape(d['agent_id'])} | {dir_cell(e['rel'])} | {e['status']} |")
    else:
        L.append("No entries yet.")
    L += ["", "## Ported records (ported, public evidence)", "",
          "Public records ported into this harness as scripts (`\"evidence\": \"public\"`). Their runs were made "
          "elsewhere; the claim is recomputed here from val-line extracts of the public logs in the record's "
          f"`{PUBLIC_LOGS}/` (no script text), at the published step. Not reproduced in this repository until a run "
          "here reproduces it; never ranked with the results above.", ""]
    if ported:
        L += ["| Steps | Mean val loss | Std | Runs | Bar | Metric | Hardware (stated) | Logs say | Flags | Optimizer "
              "| Experiment | Public source | Directory | Claim (recomputed from the public logs) |",
              "|---:|---:|---:|---:|---:|---|---|---|---|---|---|---|---|---|"]
        for e in ported:
            d = e["data"]
            L.append(f"| {d['steps_to_3_28']} | {mean_cell(e)} | {std(d.get('std_val_loss'))} "
                     f"| {d.get('num_runs', '-')} | {escape(d.get('significance_bar', DEFAULT_BAR))} | {metric_cell(d)} "
                     f"| {escape(d.get('hardware', '-'))} | {logs_cell(e)} | {flags_cell(e)} | {escape(d['optimizer'])} "
                     f"| {escape(d['experiment'])} | {escape(d.get('public_source', '-'))} | {dir_cell(e['rel'])} "
                     f"| {e['status']} |")
    else:
        L.append("None yet.")
    L += ["", "## Reference: published results", "",
          "Published elsewhere (modded-nanogpt track_3), copied from `tools/reference/results.csv`; not verified "
          "here: no logs of these runs are in this repository, and they were judged under the public rules.", ""]
    ref, err = read_reference()
    if err:
        L.append(f"Reference file unreadable: {escape(err)}")
    else:
        L += ["| Steps | Mean val loss | Runs | Optimizer | Summary | Date | Source |",
              "|---:|---:|---:|---|---|---|---|"]
        for steps, mean, r in ref:
            L.append(f"| {steps} | {loss(mean)} | {escape(r.get('num_runs', '-'))} | {escape(r.get('optimizer', ''))} "
                     f"| {escape(r.get('summary', ''))} | {escape(r.get('date', ''))} | {escape(r.get('source', ''))} |")
    L += ["", "## Skipped entries", ""]
    if skipped:
        L += [f"- {escape(rel)}: {escape(why, 300)}" for rel, why in skipped]
    else:
        L.append("None.")
    notes = [f"{e['rel']}: {m}" for e in entries + ported for m in e["identity"]]
    return "\n".join(L) + "\n", skipped, notes


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.leaderboard", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="the repository root (default: .)")
    ap.add_argument("-o", "--output", help="the board to write (default: ROOT/LEADERBOARD.md)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if the file is not up to date")
    ap.add_argument("--json", action="store_true", help="print the entries (claims, provenance with the full script "
                    "sha256) as JSON instead of writing the board")
    ap.add_argument("--metric", metavar="NAME", help="list only the entries scored on this metric (default: every "
                    "entry, each on its own metric; an entry without a metric field is val_loss)")
    args = ap.parse_args(argv)
    if args.metric is not None and not METRIC_RE.fullmatch(args.metric):
        ap.error(f"--metric {args.metric!r}: a column name such as val_loss or val_ema_loss")
    output = args.output or os.path.join(args.root, "LEADERBOARD.md")
    if args.json:
        entries, skipped = collect(args.root, args.metric)
        print(dumps({"entries": [{"directory": e["rel"], "evidence": e["data"].get("evidence", "here"),
                                  "steps_to_3_28": e["data"]["steps_to_3_28"],
                                  "metric": e["data"].get("metric", DEFAULT_METRIC),
                                  "mean_val_loss": e["data"].get("mean_val_loss"), "raw_val_loss": e.get("raw_mean"),
                                  "holds": e["holds"], "claim": e["status"], "logs": e["logs"],
                                  "provenance": e.get("provenance")} for e in sorted(entries, key=sort_key)],
                     "skipped": [{"directory": rel, "reason": why} for rel, why in skipped]}))
        return 0
    text, skipped, notes = render(args.root, args.metric)
    for rel, why in skipped:
        print(f"skipped {rel}: {why}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.check:
        try:
            with open(output, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            print(f"{output}: {e.strerror or e}; generate it with: python -m tools.leaderboard", file=sys.stderr)
            return 1
        if current != text:
            print(f"{output} is out of date; regenerate it with: python -m tools.leaderboard", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        print(f"error: {output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(skipped)} skipped entr{'y' if len(skipped) == 1 else 'ies'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
