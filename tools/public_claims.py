"""Check the public track-3 claims with our log reading, as a user would: one row's folder at a time.

    python -m tools.public_claims SOURCE [--rows 44,46] [--all] [--json]
    python -m tools.public_claims --extract LOG... -o DIR

SOURCE is the public modded-nanogpt repository: a git directory (a bare mirror is fine; the files of
records/track_3_optimization/ at HEAD are written into a temporary directory) or a checked-out or
extracted folder (the repository root or its records/track_3_optimization/ folder). The table of
records/track_3_optimization/README.md is read; for every significant row (marked with a check mark;
--all adds the others) the folder of the row's log is passed to tools.stats' reading code (walked for
logs, duplicates counted once, files that are not logs skipped) and the row's declared step is tested
at the public bar 0.004 on the row's metric (val_loss, or the column the record was accepted on).
A row whose log lies directly in results/ (a folder shared by many rows) is read from that file alone.
Prints PASS/FAIL per row with the reason, and a summary. A development tool: it is not run in CI.

--extract writes, for each LOG, the part of it that is not the script (a line of 100 '=', the header,
another line of 100 '=', the val lines) to DIR under the same name: public evidence without the
public code.

Exit status: 0 every checked row passes, 1 a row fails, 2 bad input.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

from tools.logs import SEPARATOR, VAL_RE, LogError, dumps, fmt, read_text, read_runs
from tools.logs import parse_file
from tools.stats import PoolError, analyze, at_step, check_pool, select_train_steps

TRACK = "records/track_3_optimization"
PUBLIC_BAR = 0.004
# Rows accepted on a column other than val_loss (the record's own README says so).
METRICS = {46: "val_ema_loss"}  # results/20260619_cwd_rowfloor_tailema/README.md: "Reported with the Tail-EMA readout"
ROW_RE = re.compile(r"^\|\s*(\d+)\s*\|(.*)\|\s*$")
EVIDENCE_RE = re.compile(r"([0-9.]+)\s*\(n=(\d+)\)\s*(\S*)")
LINK_RE = re.compile(r"\[log\]\(([^)]+)\)")


class SourceError(Exception):
    pass


def _git_export(gitdir, out):
    """Write the files of TRACK at HEAD of the git directory `gitdir` under `out`."""
    try:
        listing = subprocess.run(["git", "--git-dir", gitdir, "ls-tree", "-r", "-z", "HEAD", TRACK + "/"],
                                 capture_output=True, check=True, timeout=300).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SourceError(f"{gitdir}: not a readable git directory ({e})") from None
    entries = []
    for item in listing.split(b"\0"):
        if item:
            meta, path = item.split(b"\t", 1)
            if meta.split()[1] == b"blob":
                entries.append((meta.split()[2], path.decode("utf-8", "replace")))
    if not entries:
        raise SourceError(f"{gitdir}: HEAD has no {TRACK}/")
    batch = subprocess.run(["git", "--git-dir", gitdir, "cat-file", "--batch"], capture_output=True, timeout=600,
                           input=b"".join(sha + b"\n" for sha, _ in entries)).stdout
    pos = 0
    for sha, path in entries:
        end = batch.index(b"\n", pos)
        header = batch[pos:end].split()
        if header[:1] != [sha]:
            raise SourceError(f"{gitdir}: git cat-file answered {bytes(batch[pos:end])[:80]!r} for {path}")
        if len(header) < 3:  # "<sha> missing": a file the mirror does not hold
            pos = end + 1
            continue
        size = int(header[2])
        data = batch[end + 1:end + 1 + size]
        pos = end + 1 + size + 1
        target = os.path.join(out, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    return os.path.join(out, TRACK)


def locate(source, tmp):
    """The track-3 folder of `source` (a git directory is exported into tmp first)."""
    for candidate in (source, os.path.join(source, TRACK)):
        if os.path.isfile(os.path.join(candidate, "README.md")) and os.path.isdir(os.path.join(candidate, "results")):
            return candidate
    if os.path.isfile(os.path.join(source, "HEAD")) or os.path.isdir(os.path.join(source, ".git")):
        gitdir = source if os.path.isfile(os.path.join(source, "HEAD")) else os.path.join(source, ".git")
        return _git_export(gitdir, tmp)
    raise SourceError(f"{source}: neither a git directory nor a folder holding {TRACK}/README.md and results/")


def parse_table(readme):
    """[{row, steps, mean, n, significant, log}] of the README's results table."""
    rows = []
    for line in readme.splitlines():
        m = ROW_RE.match(line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(2).split("|")]
        ev, link = EVIDENCE_RE.search(cells[1]) if len(cells) > 1 else None, LINK_RE.search(line)
        steps = re.match(r"(\d+)", cells[0]) if cells else None
        if not (ev and link and steps):
            continue
        rows.append({"row": int(m.group(1)), "steps": int(steps.group(1)), "mean": float(ev.group(1)),
                     "n": int(ev.group(2)), "significant": "✓" in ev.group(3), "log": link.group(1)})
    return rows


def check_row(track, row):
    """The row's claim recomputed from its folder: a dict with pass, reason, numbers and reading notes."""
    log = os.path.normpath(os.path.join(track, row["log"]))
    folder = os.path.dirname(log)
    shared = os.path.normpath(folder) == os.path.normpath(os.path.join(track, "results"))
    target = log if shared else folder
    metric = METRICS.get(row["row"], "val_loss")
    out = {"row": row["row"], "declared": row["steps"], "evidence": f"{row['mean']:.4f} (n={row['n']})",
           "metric": metric, "read": os.path.relpath(target, track), "pass": False, "n": None, "mean": None,
           "margin": None, "notes": []}  # "reason" is set on every path below
    try:
        runs = read_runs([target])
        out["notes"] = runs.skipped + runs.notes
        trials = runs.trials
        if len({t.train_steps for t in trials}) > 1:  # a folder of several experiments: the one the row links
            trials, note = select_train_steps(trials, parse_file(log).trials[0].train_steps)
            out["notes"].append(f"the folder holds runs of several train_steps; read those of the linked log ({note})")
        warnings = check_pool(trials, metric=metric)
        out["notes"] += warnings
        a = analyze(trials, PUBLIC_BAR, metric)
    except (LogError, PoolError) as e:
        out["reason"] = f"cannot score: {e}"
        return out
    at = at_step(a, row["steps"])
    out["n"], out["earliest"] = a["n"], a["claim"].step if a["claim"] else None
    if at is None:
        out["reason"] = f"step {row['steps']} is not a val step of every run"
        return out
    out.update(mean=at.mean, margin=at.margin, **{"pass": at.passed})
    out["reason"] = "" if at.passed else f"margin {fmt(at.margin)} < {PUBLIC_BAR}"
    if a["n"] != row["n"] or abs(at.mean - row["mean"]) > 5e-5:
        out["notes"].append(f"the table says {out['evidence']}; the folder gives {fmt(at.mean, 4)} (n={a['n']})")
    return out


def _short(text, track):
    return text.replace(track.rstrip("/") + "/", "")


def extract(path):
    """The log without its script: the first line of 100 '=', the header, the second, and the val lines."""
    text, _ = read_text(path)
    lines = text.split("\n")
    seps = [i for i, line in enumerate(lines) if line.rstrip("\r \t") == SEPARATOR]
    if len(seps) < 2:
        raise LogError(f"{path}: no header between two lines of 100 '='")
    body = [line.rstrip("\r") for line in lines[seps[1] + 1:] if VAL_RE.search(line)]
    if not body:
        raise LogError(f"{path}: no val line after the header")
    return "\n".join([SEPARATOR] + [l.rstrip("\r") for l in lines[seps[0] + 1:seps[1]]] + [SEPARATOR] + body) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.public_claims", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="*", help="the public repo: a git directory or a folder (or, with --extract, logs)")
    ap.add_argument("--rows", help="only these rows, e.g. 44,46")
    ap.add_argument("--all", action="store_true", help="also the rows the table marks as not significant")
    ap.add_argument("--extract", action="store_true", help="write the non-script part of each LOG into -o DIR")
    ap.add_argument("-o", "--output", metavar="DIR")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.extract:
        if not args.output or not args.source:
            ap.error("--extract needs LOG... and -o DIR")
        try:
            os.makedirs(args.output, exist_ok=True)
            for path in args.source:
                target = os.path.join(args.output, os.path.basename(path))
                text = extract(path)
                with open(target, "w") as f:
                    f.write(text)
                print(f"wrote {target} ({text.count(chr(10))} lines)")
        except (LogError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if len(args.source) != 1:
        ap.error("give one SOURCE")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            track = locate(args.source[0], tmp)
            with open(os.path.join(track, "README.md"), encoding="utf-8") as f:
                rows = parse_table(f.read())
        except (SourceError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        wanted = {int(x) for x in args.rows.split(",")} if args.rows else None
        rows = [r for r in rows if (args.all or r["significant"]) and (wanted is None or r["row"] in wanted)]
        results = [check_row(track, r) for r in rows]
        for r in results:  # paths relative to the track-3 folder, not to a temporary directory
            r["reason"], r["notes"] = _short(r["reason"], track), [_short(n, track) for n in r["notes"]]
    passed = sum(r["pass"] for r in results)
    if args.json:
        print(dumps({"bar": PUBLIC_BAR, "rows": results, "passed": passed, "checked": len(results)}))
        return 0 if passed == len(results) else 1
    print(f"public track-3 claims at their declared step, bar {PUBLIC_BAR}, read as a user would (the row's folder)")
    print(f"{'row':>4} {'step':>5} {'table':>15} {'metric':<13} {'n':>3} {'mean':>8} {'margin':>8}  verdict")
    for r in results:
        print(f"{r['row']:>4} {r['declared']:>5} {r['evidence']:>15} {r['metric']:<13} {r['n'] or '-':>3} "
              f"{fmt(r['mean'], 4) if r['mean'] is not None else '-':>8} "
              f"{fmt(r['margin'], 5) if r['margin'] is not None else '-':>8}  {'PASS' if r['pass'] else 'FAIL'}"
              f"{': ' + r['reason'] if r['reason'] else ''}   [{r['read']}]")
        for note in r["notes"]:
            print(f"{'':>10}{'  ' if note.startswith('  ') else '- '}{note.strip()}")
    print(f"summary: {passed} of {len(results)} rows pass at their declared step")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
