"""Check the public track-3 claims with our log reading, as a user would: one row's folder at a time.

    python -m tools.public_claims SOURCE [--rows 44,46] [--all] [--json]
    python -m tools.public_claims SOURCE --prs [--from 330] [--pr 339,341] [--base REF] [--json]
    python -m tools.public_claims --extract LOG... -o DIR

SOURCE is the public modded-nanogpt repository: a git directory (a bare mirror is fine; the files of
records/track_3_optimization/ at HEAD are written into a temporary directory) or a checked-out or
extracted folder (the repository root or its records/track_3_optimization/ folder). The table of
records/track_3_optimization/README.md is read; for every significant row (marked with a check mark;
--all adds the others) the folder of the row's log is passed to tools.stats' reading code (walked for
logs, duplicates counted once, files that are not logs skipped) and the row's declared step is tested
at the public bar 0.004 on the row's metric (val_loss, or the column the record was accepted on).
A row whose log lies directly in results/ (a folder shared by many rows) is read from that file alone.
Prints PASS/FAIL per row with the reason, what the logs say (device x world size, PyTorch, script
sha256; see tools.identity.provenance) with flags, and a summary. A development tool: not run in CI.

--prs reads the open pull requests instead: the heads refs/pull/N/head (a mirror) or refs/remotes/pr/N
(a clone after `git fetch origin 'refs/pull/*/head:refs/remotes/pr/*'`) numbered from --from on
(default 330), less those already merged into --base (default HEAD). A PR that adds or changes no
file under records/track_3_optimization/results/ is left out. For each results folder it adds: the
claim (steps and n from the table row it adds to the README, else the folder's name ..._2645 and its
README), the declared column (one the README names, such as val_ema; else the one whose mean at the
claimed step is a number the README states; else val_loss), and the verdict from its own logs at the
public bar 0.004: PASS, FAIL (the mean does not pass, or the step is not a val step of every run), or
UNVERIFIABLE (no step found, no logs, fewer runs in the logs than claimed, runs that cannot be pooled);
with the margin over the bar, the workspace bar 0.005's verdict, the raw val_loss beside a readout,
and the val steps next to the claimed one. Every run in the folder counts; a run continued in another
file (its first val step is the step where an early-ending run of the same script has the same value)
is joined to it.

--extract writes, for each LOG, the part of it that is not the script (a line of 100 '=', the header,
another line of 100 '=', the val lines) to DIR under the same name: public evidence without the
public code. The header gets a line `script_sha256=<hex>`: the sha256 of the script left out.

Exit status: 0 every checked row (PR claim) passes, 1 one does not, 2 bad input.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

from tools import identity
from tools.logs import DEFAULT_METRIC, SEPARATOR, SHA_RE, VAL_RE, LogError, dumps, fmt, read_text, read_runs
from tools.logs import parse_file, script_sha256
from tools.stats import PoolError, analyze, at_step, check_pool, missing_step, select_train_steps

TRACK = "records/track_3_optimization"
PUBLIC_BAR = 0.004
# Rows accepted on a column other than val_loss (the record's own README says so).
METRICS = {46: "val_ema_loss"}  # results/20260619_cwd_rowfloor_tailema/README.md: "Reported with the Tail-EMA readout"
ROW_RE = re.compile(r"^\|\s*(\d+)\s*\|(.*)\|\s*$")
EVIDENCE_RE = re.compile(r"([0-9.]+)\s*\(n=(\d+)\)\s*(\S*)")
LINK_RE = re.compile(r"\[logs?\]\(([^)]+)\)")


class SourceError(Exception):
    pass


def _git(gitdir, *args, timeout=300):
    """stdout of a git command on `gitdir` (bytes); SourceError when it fails."""
    try:
        return subprocess.run(["git", "--git-dir", gitdir, *args], capture_output=True, check=True,
                              timeout=timeout).stdout
    except subprocess.CalledProcessError as e:
        why = (e.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {e.returncode}"])[0]
        if "not a git repository" in why:
            raise SourceError(f"{gitdir}: not a readable git directory ({why})") from None
        raise SourceError(f"{gitdir}: git {args[0]} failed: {why}") from None
    except (OSError, subprocess.SubprocessError) as e:
        raise SourceError(f"{gitdir}: not a readable git directory ({e})") from None


def _git_export(gitdir, out, ref="HEAD", prefix=TRACK + "/"):
    """Write the files under `prefix` at `ref` of the git directory `gitdir` under `out`; the track-3 folder."""
    listing = _git(gitdir, "ls-tree", "-r", "-z", ref, prefix)
    entries = []
    for item in listing.split(b"\0"):
        if item:
            meta, path = item.split(b"\t", 1)
            if meta.split()[1] == b"blob":
                entries.append((meta.split()[2], path.decode("utf-8", "replace")))
    if not entries:
        raise SourceError(f"{gitdir}: {ref} has no {prefix}")
    try:
        batch = subprocess.run(["git", "--git-dir", gitdir, "cat-file", "--batch"], capture_output=True,
                               timeout=600, input=b"".join(sha + b"\n" for sha, _ in entries)).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SourceError(f"{gitdir}: git cat-file failed ({e})") from None
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
           "margin": None, "raw_mean": None, "notes": [], "provenance": None}  # "reason" is set on every path below
    try:
        runs = read_runs([target])
        out["notes"] = runs.skipped + runs.notes
        trials = runs.trials
        if len({t.train_steps for t in trials}) > 1:  # a folder of several experiments: the one the row links
            trials, note = select_train_steps(trials, parse_file(log).trials[0].train_steps)
            out["notes"].append(f"the folder holds runs of several train_steps; read those of the linked log ({note})")
        readme = os.path.join(folder, "README.md") if not shared else None
        stated = ""
        if readme and os.path.isfile(readme):
            with open(readme, encoding="utf-8", errors="replace") as f:
                stated = f.read()
        used = {t.source for t in trials}
        out["provenance"] = identity.provenance([x for x in runs.logs if x.path in used], trials, stated)
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
    if metric != DEFAULT_METRIC:
        raw = at_step(analyze(trials, PUBLIC_BAR), row["steps"])
        out["raw_mean"] = raw.mean if raw is not None else None
    out["reason"] = "" if at.passed else f"margin {fmt(at.margin)} < {PUBLIC_BAR}"
    if a["n"] != row["n"] or abs(at.mean - row["mean"]) > 5e-5:
        out["notes"].append(f"the table says {out['evidence']}; the folder gives {fmt(at.mean, 4)} (n={a['n']})")
    return out


def _short(text, track):
    return text.replace(track.rstrip("/") + "/", "")


def extract(path):
    """The log without its script: the first line of 100 '=', the header, the second, and the val lines. The
    header gets a line `script_sha256=<hex> ...` naming the script that was left out (tools.logs reads it back
    as the run's script_sha256; see tools.logs.script_sha256)."""
    text, _ = read_text(path)
    lines = text.split("\n")
    seps = [i for i, line in enumerate(lines) if line.rstrip("\r \t") == SEPARATOR]
    if len(seps) < 2:
        raise LogError(f"{path}: no header between two lines of 100 '='")
    body = [line.rstrip("\r") for line in lines[seps[1] + 1:] if VAL_RE.search(line)]
    if not body:
        raise LogError(f"{path}: no val line after the header")
    header = [line.rstrip("\r") for line in lines[seps[0] + 1:seps[1]]]
    sha = script_sha256("\n".join(lines[:seps[0]]))
    if sha and not any(SHA_RE.search(line) for line in header):
        header.append(f"script_sha256={sha} (the script above this header in the original log, left out here)")
    return "\n".join([SEPARATOR] + header + [SEPARATOR] + body) + "\n"


# ---------------------------------------------------------------------------------------------------------
# The open pull requests: each PR head's new track-3 folder, its claim, and our verdict from its own logs

PR_REFS = (("refs/pull/", "/head"), ("refs/remotes/pr/", ""), ("refs/remotes/origin/pr/", ""))  # mirror, fetched
FIRST_PR = 330  # the PRs opened after the last merged track-3 record (#46, PR #328)
WORKSPACE_BAR = 0.005
NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                           "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
                                           .split())}
STEPS_IN_NAME_RE = re.compile(r"_(\d{3,5})$")
STEPS_IN_TEXT_RE = re.compile(r"\b(\d{3,5})\s+(?:optimizer\s+)?steps\b")
N_RE = re.compile(r"\bn\s*=\s*(\d{1,4})\b")
N_WORDS_RE = re.compile(r"\b(\d{1,4}|" + "|".join(NUMBER_WORDS) + r")[ \t]+(?:(?!steps\b)[\w-]+[ \t]+){0,3}?(?:seeds|runs)\b",
                        re.IGNORECASE)
DECIMAL_RE = re.compile(r"(?<![\d.])(\d\.\d{4,8})(?![\d.])")


def pr_refs(gitdir):
    """{PR number: commit} of the pull-request heads in `gitdir`: refs/pull/N/head (a mirror) or
    refs/remotes/pr/N (a clone after git fetch origin 'refs/pull/*/head:refs/remotes/pr/*')."""
    out = {}
    text = _git(gitdir, "for-each-ref", "--format=%(refname) %(objectname)",
                *[a + "*" + b for a, b in PR_REFS]).decode("utf-8", "replace")
    for line in text.splitlines():
        name, sha = line.rsplit(" ", 1)
        for head, tail in PR_REFS:
            number = name[len(head):len(name) - len(tail)] if name.startswith(head) and name.endswith(tail) else ""
            if number.isdigit():
                out.setdefault(int(number), sha)
    return dict(sorted(out.items()))


def pr_changes(gitdir, base, head):
    """(merged, paths): whether `head` is already in `base`, and the files under TRACK/ it adds or changes."""
    merged = subprocess.run(["git", "--git-dir", gitdir, "merge-base", "--is-ancestor", head, base],
                            capture_output=True, timeout=300).returncode == 0
    fork = _git(gitdir, "merge-base", base, head).decode().strip()
    paths = _git(gitdir, "diff", "--name-only", "--diff-filter=AM", "-z", fork, head, "--", TRACK + "/")
    return merged, fork, [p.decode("utf-8", "replace") for p in paths.split(b"\0") if p]


def added_rows(gitdir, fork, head):
    """The rows the PR adds to the table of TRACK/README.md."""
    diff = _git(gitdir, "diff", fork, head, "--", TRACK + "/README.md").decode("utf-8", "replace")
    return parse_table("\n".join(line[1:] for line in diff.splitlines() if line.startswith("+|")))


def _number(text):
    return int(text) if text.isdigit() else NUMBER_WORDS.get(text.lower())


def claim_of(folder, readme, row=None):
    """The PR's claim: {"steps", "steps_from", "n", "n_from", "mean"}: from its table row when it adds one,
    else the folder's name (..._2645) and its README (the first "N steps", "n = K" or "K seeds")."""
    out = {"steps": None, "steps_from": None, "n": None, "n_from": None, "mean": None}
    if row is not None:
        out.update(steps=row["steps"], steps_from="table row", n=row["n"], n_from="table row", mean=row["mean"])
        return out
    m = STEPS_IN_NAME_RE.search(folder)
    if m:
        out.update(steps=int(m.group(1)), steps_from="folder name")
    elif STEPS_IN_TEXT_RE.search(readme):
        out.update(steps=int(STEPS_IN_TEXT_RE.search(readme).group(1)), steps_from="README")
    m = N_RE.search(readme)
    words = N_WORDS_RE.search(readme)
    if m:
        out.update(n=int(m.group(1)), n_from="README")
    elif words and _number(words.group(1)):
        out.update(n=_number(words.group(1)), n_from="README")
    return out


def declared_metric(readme, trials, steps, stated_mean=None):
    """(column, why): the column the claim is made on. A column of the logs other than val_loss that the README
    names (val_ema_loss, or its stem val_ema); else the column whose mean at the claimed step is a number the
    README (or its table row) states; else val_loss."""
    columns = []  # the loss columns (val_loss first): not the numbers some public logs print (ema_beta:0.9)
    for t in trials:
        columns += [c for c in t.columns() if c not in columns and c.endswith("_loss")]
    for c in columns[1:]:
        stem = c[:-len("_loss")]
        if re.search(r"(?<![\w])" + re.escape(stem) + r"(?![a-zA-Z])", readme):
            return c, f"the README names {stem}"
    numbers = [x for x in DECIMAL_RE.findall(readme)] + ([f"{stated_mean:.4f}"] if stated_mean is not None else [])
    for c in columns:
        values = [t.losses(c).get(steps) for t in trials]  # (steps None: no value)
        if None in values:
            continue
        mean = sum(values) / len(values)
        for x in numbers:
            if abs(float(x) - mean) <= 0.5 * 10 ** -(len(x) - 2) + 1e-9:
                return c, f"the stated mean {x} is the {c} mean at step {steps}"
    return DEFAULT_METRIC, "the default (the README names no other column)"


def grid_near(analysis, step):
    """{"before", "after", "spacing"}: the common val steps around `step` and the smallest gap to them."""
    steps = [s.step for s in analysis["steps"]]
    before = max((s for s in steps if s < step), default=None)
    after = min((s for s in steps if s > step), default=None)
    gaps = [g for g in (None if before is None else step - before, None if after is None else after - step) if g]
    return {"before": before, "after": after, "spacing": min(gaps) if gaps else None}


def verdict(trials, steps, n_claimed, metric, bar=PUBLIC_BAR):
    """Our verdict on a claim from the runs of its logs: {"verdict": PASS | FAIL | UNVERIFIABLE, "reason", "runs",
    "mean", "raw_mean", "margin", "over_bar", "passes_workspace_bar", "earliest", "grid", "warnings"}
    (warnings: tools.stats' on pooling these runs). UNVERIFIABLE: no
    claimed step, no runs, fewer runs than claimed, or runs that cannot be pooled. FAIL: the step is not a val
    step of every run, or its mean does not pass `bar`. Every run counts (more runs than claimed: all of them)."""
    out = {"verdict": "UNVERIFIABLE", "reason": "", "runs": len(trials), "mean": None, "raw_mean": None,
           "margin": None, "over_bar": None, "passes_workspace_bar": None, "earliest": None, "grid": None,
           "warnings": []}
    if steps is None:
        out["reason"] = "no claimed step found (table row, folder name or README)"
        return out
    if not trials:
        out["reason"] = "no log in the PR"
        return out
    try:
        out["warnings"] = check_pool(trials, metric=metric)
        a = analyze(trials, bar, metric)
    except PoolError as e:
        out["reason"] = f"cannot score: {e}"
        return out
    at = at_step(a, steps)
    out["grid"], out["earliest"] = grid_near(a, steps), a["claim"].step if a["claim"] else None
    if at is not None:  # every val line has val_loss: the raw mean is there wherever the readout is
        raw = at_step(analyze(trials, bar), steps) if metric != DEFAULT_METRIC else at
        out.update(mean=at.mean, margin=at.margin, over_bar=at.margin - bar,
                   passes_workspace_bar=at_step(analyze(trials, WORKSPACE_BAR, metric), steps).passed,
                   raw_mean=raw.mean)
    if n_claimed is not None and len(trials) < n_claimed:
        out["reason"] = f"{len(trials)} run(s) in the logs for the {n_claimed} claimed"
        return out
    if at is None:
        out["verdict"], out["reason"] = "FAIL", missing_step(a, steps)
        return out
    out["verdict"] = "PASS" if at.passed else "FAIL"
    if not at.passed:
        out["reason"] = f"margin {fmt(at.margin)} < {bar}"
    return out


def join_resumed(trials):
    """(runs, notes): a run continued in another file joined to the run it continues. A run whose first val step
    S is not 0 continues a run that ends early, has the same train_steps and script, and the same val loss at S:
    one run, the first one's val lines before S, then the other's (a chain of such files becomes one run)."""
    out, notes = list(trials), []
    joined = True
    while joined:
        joined = False
        for b in out:
            if not b.points or b.points[0].step == 0:
                continue
            s0 = b.points[0]
            a = next((a for a in out if a is not b and a.ends_early and a.train_steps == b.train_steps
                      and a.script_sha256 == b.script_sha256
                      and any(p.step == s0.step and p.val_loss == s0.val_loss for p in a.points)), None)
            if a is None:
                continue
            b.points = [p for p in a.points if p.step < s0.step] + b.points
            out.remove(a)
            notes.append(f"{b.name} goes on from {a.name} at step {s0.step} (the same val loss there): one run "
                         f"resumed in another file, joined ({a.name}'s val lines before step {s0.step})")
            joined = True
            break
    return out, notes


def check_pr(gitdir, number, head, base, tmp):
    """The claims of one PR (one per new results folder), [] when it has no track-3 files or is merged."""
    merged, fork, paths = pr_changes(gitdir, base, head)
    results = TRACK + "/results/"
    folders = []
    for p in paths:
        if p.startswith(results):
            rest = p[len(results):]
            name = rest.split("/", 1)[0] if "/" in rest else rest
            if name not in folders:
                folders.append(name)
    if merged or not folders:
        return []
    rows = added_rows(gitdir, fork, head)
    out = []
    for name in folders:
        where = os.path.join(tmp, f"pr{number}")
        is_dir = any(p.startswith(results + name + "/") for p in paths)
        track = _git_export(gitdir, where, head, results + name + ("/" if is_dir else ""))
        target = os.path.join(track, "results", name)
        readme = ""
        for doc in [] if not is_dir else ("README.md", "PR_SUMMARY.md", "PR_DESCRIPTION.md", "summary.md"):
            if os.path.isfile(os.path.join(target, doc)):
                with open(os.path.join(target, doc), encoding="utf-8", errors="replace") as f:
                    readme += f.read() + "\n"
        row = next((r for r in rows if r["log"].split("/")[1:2] == [name] or r["log"] == "results/" + name), None)
        claim = claim_of(name, readme, row)
        entry = {"pr": number, "commit": head, "folder": "results/" + name, **claim, "notes": []}
        try:
            runs = read_runs([target], allow_empty=True)
        except LogError as e:
            runs = None
            entry["notes"].append(str(e))
        trials, joined = join_resumed(runs.trials) if runs else ([], [])
        if runs:
            entry["notes"] += [_short(m, track) for m in runs.skipped + runs.notes + joined
                               if "not named like a log" not in m]
        metric, why = declared_metric(readme, trials, claim["steps"], claim["mean"])
        entry.update(metric=metric, metric_from=why, logs=len(runs.logs) if runs else 0)
        entry.update(verdict(trials, claim["steps"], claim["n"], metric))
        entry["reason"] = _short(entry["reason"], target)
        entry["notes"] += [w for w in entry.pop("warnings") if "stops early" not in w]  # that one is a flag
        entry["provenance"] = identity.provenance(runs.logs if runs else [], trials, readme)
        out.append(entry)
    return out


def check_prs(source, first=FIRST_PR, base="HEAD", numbers=None):
    """(gitdir, base commit, [claims]) of every PR head from `first` on (or the `numbers`) in the git directory."""
    gitdir = source if os.path.isfile(os.path.join(source, "HEAD")) else os.path.join(source, ".git")
    if not os.path.isfile(os.path.join(gitdir, "HEAD")):
        raise SourceError(f"{source}: not a git directory (--prs reads the pull-request refs of a clone or mirror)")
    refs = pr_refs(gitdir)
    if not refs:
        raise SourceError(f"{source}: no pull-request refs; fetch them: git -C {source} fetch origin "
                          "'refs/pull/*/head:refs/remotes/pr/*'")
    base_commit = _git(gitdir, "rev-parse", "--verify", base + "^{commit}").decode().strip()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, head in refs.items():
            if (numbers is None and number >= first) or (numbers is not None and number in numbers):
                out += check_pr(gitdir, number, head, base_commit, tmp)
    return gitdir, base_commit, out


def _n_cell(e):
    return f"{'?' if e['n'] is None else e['n']}/{e['runs']}"


def print_prs(base, claims):
    print(f"open track-3 pull requests (heads not in {base[:10]}), each claim recomputed from its own logs at the "
          f"claimed step, bar {PUBLIC_BAR} (public); n = claimed/runs in the logs")
    print(f"{'PR':>4} {'steps':>5} {'n':>7} {'column':<13} {'mean':>8} {'(val_loss)':>10} {'margin':>8} "
          f"{'over bar':>9} {'@.005':>5} {'grid':>5}  verdict")
    for e in claims:
        raw = f"({fmt(e['raw_mean'], 4)})" if e["metric"] != DEFAULT_METRIC and e["raw_mean"] is not None else ""
        grid = e["grid"]["spacing"] if e["grid"] and e["grid"]["spacing"] else "-"
        print(f"{e['pr']:>4} {e['steps'] or '-':>5} {_n_cell(e):>7} {e['metric']:<13} "
              f"{fmt(e['mean'], 4) if e['mean'] is not None else '-':>8} {raw:>10} "
              f"{fmt(e['margin'], 5) if e['margin'] is not None else '-':>8} "
              f"{fmt(e['over_bar'], 5) if e['over_bar'] is not None else '-':>9} "
              f"{ {True: 'yes', False: 'no', None: '-'}[e['passes_workspace_bar']]:>5} {grid:>5}  {e['verdict']}"
              f"{': ' + e['reason'] if e['reason'] else ''}   [{e['folder']}]")
        p = e["provenance"]
        print(f"{'':>10}logs: {identity.provenance_cell(p)}; steps from the {e['steps_from'] or '-'}, n from the "
              f"{e['n_from'] or '-'}, column: {e['metric_from']}")
        for flag in p["flags"]:
            print(f"{'':>10}FLAG {flag}")
        for note in e["notes"]:
            print(f"{'':>10}- {note}")
    counts = {v: sum(e["verdict"] == v for e in claims) for v in ("PASS", "FAIL", "UNVERIFIABLE")}
    print(f"summary: {len(claims)} claims: {counts['PASS']} pass, {counts['FAIL']} fail, "
          f"{counts['UNVERIFIABLE']} unverifiable")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.public_claims", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="*", help="the public repo: a git directory or a folder (or, with --extract, logs)")
    ap.add_argument("--rows", help="only these rows, e.g. 44,46")
    ap.add_argument("--all", action="store_true", help="also the rows the table marks as not significant")
    ap.add_argument("--extract", action="store_true", help="write the non-script part of each LOG into -o DIR")
    ap.add_argument("-o", "--output", metavar="DIR")
    ap.add_argument("--prs", action="store_true", help="the open pull requests of the git directory SOURCE "
                    "(refs/pull/N/head or refs/remotes/pr/N): each one's claim recomputed from its own logs")
    ap.add_argument("--from", dest="first", type=int, default=FIRST_PR, metavar="N",
                    help=f"with --prs: the PRs numbered N and above (default {FIRST_PR})")
    ap.add_argument("--pr", metavar="N,M", help="with --prs: only these PRs")
    ap.add_argument("--base", default="HEAD", metavar="REF",
                    help="with --prs: the public main branch (default HEAD); a PR head already in it is merged, "
                         "not listed")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.prs:
        if len(args.source) != 1:
            ap.error("--prs needs one SOURCE: a clone or mirror of the public repository")
        try:
            numbers = {int(x) for x in args.pr.split(",")} if args.pr else None
        except ValueError:
            ap.error(f"--pr {args.pr!r}: PR numbers separated by commas, e.g. 339,341")
        try:
            gitdir, base, claims = check_prs(args.source[0], args.first, args.base, numbers)
        except (SourceError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.json:
            print(dumps({"bar": PUBLIC_BAR, "base": base, "claims": claims}))
        else:
            print_prs(base, claims)
        return 0 if all(e["verdict"] == "PASS" for e in claims) else 1
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
        p = r["provenance"]
        if p is not None:
            raw = f"; val_loss {fmt(r['raw_mean'], 4)} at the same step" if r["raw_mean"] is not None else ""
            print(f"{'':>10}logs: {identity.provenance_cell(p)}{raw}")
            for flag in p["flags"]:
                print(f"{'':>10}FLAG {flag}")
        for note in r["notes"]:
            print(f"{'':>10}{'  ' if note.startswith('  ') else '- '}{note.strip()}")
    print(f"summary: {passed} of {len(results)} rows pass at their declared step")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
