"""The logs: (f) each log starts with the script's text, (g) every val line has the layout of RULES 6.2 and each
trial validates at the script's own val steps; and reading what a log says (non-finite losses, val lines)."""
import collections
import math

from tools.preflight.common import (ANY_VAL_RE, FAIL, PASS, PUBLIC_VAL_RE, SEPARATOR, SKIP, TRIAL_RE, VAL_LINE_RE,
                                    _clip, _merge)


def after_script(log, code):
    """The part of a log after the embedded script (after its first line of 100 '=')."""
    if log.startswith(code):
        return log[len(code):]
    head, sep, tail = log.partition("\n" + SEPARATOR + "\n")
    return tail if sep else log


def nonfinite_lines(text):
    lines = []
    for line in text.splitlines():
        if "stopped: training loss is nan or inf" in line:
            lines.append(line.strip())
        m = ANY_VAL_RE.search(line)
        if m:
            try:
                if not math.isfinite(float(m.group(3))):
                    lines.append(line.strip())
            except ValueError:
                pass
    return lines


def run_nonfinite_lines(run, code):
    return nonfinite_lines(after_script(run["log_new"], code) if run["fresh"] else run["log_new"])


def rule_val_steps(train_steps):
    """RULES 6.1: step 0, every 125 while step/train_steps < 0.9, every 25 from there, and train_steps."""
    return [s for s in range(train_steps + 1)
            if s == train_steps or s % (125 if s / train_steps < 0.9 else 25) == 0]


def check_log_script(code, run):
    """(f) for one fresh run: a problem string, None when fine, or SKIP."""
    if not run["logs"]:
        return "the run wrote no log into log_dir" if run["completed"] else SKIP
    if len(run["logs"]) > 1:
        return f"the run wrote {len(run['logs'])} files into log_dir, expected one log"
    log = run["logs"][0]
    if not log.startswith(code):
        n = next((i for i, (a, b) in enumerate(zip(log, code)) if a != b), min(len(log), len(code)))
        line = code[:n].count("\n") + 1
        return f"the log does not start with the script's exact text (first difference at line {line} of the script)"
    rest = log[len(code):].lstrip("\r\n")
    if rest.split("\n", 1)[0].rstrip() != SEPARATOR:
        return "the script's text in the log is not followed by a line of 100 '='"
    return None


def split_trials(lines):
    """{trial: [(step, val line)]} of a log's lines: split at 'trial i/n seed' lines (a 'trial i/n resumed' line
    continues trial i); a log without such lines is split where the step does not go up (the public tools split at
    step 0). Val lines before the first trial line go to trial None."""
    trials, marked, current = collections.OrderedDict(), any(TRIAL_RE.match(line) for line in lines), None
    for line in lines:
        m = TRIAL_RE.match(line)
        if m:
            current = int(m[1])
            trials.setdefault(current, [])
            continue
        v = PUBLIC_VAL_RE.search(line)
        if not v:
            continue
        if not marked and (current is None or int(v[1]) <= trials[current][-1][0]):
            current = len(trials) + 1
            trials[current] = []
        trials.setdefault(current, []).append((int(v[1]), line))
    return trials


def check_log_format(text, expected, train_steps, n_trials, nonfinite=False):
    """(g) for one log's text after the script: a problem string or None. `expected`: the val steps of a trial."""
    lines = [line.rstrip() for line in text.splitlines()]
    for line in lines:
        if (line.startswith("step:") or PUBLIC_VAL_RE.search(line)) and not VAL_LINE_RE.fullmatch(line):
            return (f"a val line not in the layout of RULES 6.2 ('step:S/N val_loss:L [name:value ...] "
                    f"train_time:Ts step_avg:Mms'): {line[:120]!r}")
    trials = split_trials(lines)
    if list(trials) != list(range(1, n_trials + 1)):
        return f"{len(trials)} trials found in the log (trials {_clip(list(trials))}), expected {n_trials}"
    for i, points in trials.items():
        steps = [s for s, _ in points]
        totals = {int(VAL_LINE_RE.fullmatch(line)[2]) for _, line in points}
        if totals - {train_steps}:
            return f"trial {i} has val lines whose total is not train_steps = {train_steps}: {_clip(totals)}"
        if steps != expected and not (nonfinite and steps == expected[:len(steps)]):
            extra, missing = sorted(set(steps) - set(expected)), sorted(set(expected) - set(steps))
            twice = sorted(s for s, c in collections.Counter(steps).items() if c > 1)
            if train_steps in missing and not (nonfinite or extra or twice or missing[:-1]):
                return (f"trial {i} has no val after its last step {train_steps}: every trial validates at "
                        "train_steps (RULES 6.1), and its final val loss is that val")
            return (f"trial {i} validates at steps other than the script's is_val_step says: "
                    + "; ".join(x for x in [f"extra {_clip(extra)}" if extra else "", f"missing {_clip(missing)}"
                                            if missing else "", f"twice {_clip(twice)}" if twice else ""] if x)
                    + ("" if extra or missing or twice else "; out of order"))
    return None


def cadence_note(val_steps, train_steps):
    """The script's val steps against RULES 6.1 (a note: RULES 6.4 allows denser val steps and none at step 0)."""
    rule = rule_val_steps(train_steps)
    if val_steps == rule:
        return f"{len(rule)} val steps per trial, the cadence of RULES 6.1"
    adds, drops = sorted(set(val_steps) - set(rule)), sorted(set(rule) - set(val_steps))
    return (f"{len(val_steps)} val steps per trial, not the cadence of RULES 6.1 (allowed by 6.4): "
            + "; ".join(x for x in [f"adds {_clip(adds)}" if adds else "", f"drops {_clip(drops)}" if drops else ""] if x))


def judge_logs(report, runs, code, val_lines):
    fresh = [run for run in runs if run["fresh"]]
    results = [check_log_script(code, run) for run in fresh]
    problems = _merge((run["label"], p) for run, p in zip(fresh, results) if p and p != SKIP)
    if problems:
        report.set("log_script", FAIL, "; ".join(problems))
    elif SKIP in results:
        report.set("log_script", SKIP, "a run failed before it wrote its log")
    else:
        report.set("log_script", PASS, f"the logs of {len(fresh)} runs start with the script's exact text and a line of 100 '='")
    nonfinite = report.checks["finite"]["status"] == FAIL
    problems = ["lines of the script match the public val pattern: " + _clip(val_lines, 3)] if val_lines else []
    skipped, checked, note, found = False, 0, "", []
    by = {run["label"]: run for run in runs}
    whole = [run for run in fresh if run["label"] != "short_stop"]
    if "short_resume" in by:  # the stopped log and its resumed rest must read as one uninterrupted log
        whole.append(dict(by["short_resume"], label="short_stop + short_resume"))
    for run in whole:
        expected = run["results"][0].get("val_steps")
        if not run["completed"] or len(run["logs"]) != 1 or expected is None:
            skipped = skipped or not run["completed"]
            continue
        problem = check_log_format(after_script(run["logs"][0], code), expected, run["train_steps"], run["trials"],
                                   nonfinite)
        checked += 1
        found += [(run["label"], problem)] if problem else []
        if run["label"] == "long":
            note = "; " + cadence_note(expected, run["train_steps"])
    problems += _merge(found)
    if problems:
        report.set("log_format", FAIL, "; ".join(problems))
    elif skipped or not checked:
        report.set("log_format", SKIP, "a run did not complete (see run); the script's text matches no val line")
    else:
        report.set("log_format", PASS, f"{checked} logs: every val line in the layout of RULES 6.2, each trial at exactly "
                   f"the script's val steps{note}; no line of the script matches the public pattern")


# -----------------------------------------------------------------------------
# The val schedule at the script's own train_steps, without running it (part of log_format; issue 28)

def schedule_holes(val_steps, train_steps):
    """The stretches of RULES 6.1's val steps that `val_steps` (the script's is_val_step at every step, with the last
    step) drops inside a cadence it keeps: [(first, last, before, after)], each a run of consecutive 6.1 steps that the
    script skips while it validates at the 6.1 steps on either side (before, after) and at no step between them. Step
    0 has no step before it (6.4 lets a record skip it). The last 10% (every 25 in 6.1) counts as kept only when the
    script validates at one of its steps that the every-125 cadence lacks: a cadence of its own there (every 125 to
    the end, as the AdamW record's published log) drops whole stretches and is no slip."""
    rule, have = rule_val_steps(train_steps), set(val_steps) | {train_steps}
    kept_tail = any(s in have for s in rule if s % 125 and s != train_steps)  # (6.1's other steps are 125's)
    kept = [i for i, s in enumerate(rule) if s in have]  # the last step always
    holes = []
    for a, b in zip(kept, kept[1:]):
        before, after = rule[a], rule[b]
        if b - a < 2 or any(before < s < after for s in have):  # nothing dropped, or validates more densely there
            continue
        if rule[b - 1] / train_steps >= 0.9 and not kept_tail:
            continue
        holes.append((rule[a + 1], rule[b - 1], before, after))
    return holes


def schedule_note(val_steps, train_steps):
    """Where the script's val steps first differ from RULES 6.1's, and how (for the detail)."""
    rule = rule_val_steps(train_steps)
    differ = sorted(set(val_steps) ^ set(rule))
    if not differ:
        return f"is_val_step over its train_steps = {train_steps}: the {len(rule)} val steps of RULES 6.1"
    adds, drops = sorted(set(val_steps) - set(rule)), sorted(set(rule) - set(val_steps))
    return (f"is_val_step over its train_steps = {train_steps}: {len(val_steps)} val steps, first differing from RULES "
            f"6.1 at step {differ[0]} ({'; '.join(x for x in [f'adds {_clip(adds, 3)}' if adds else '', f'drops {_clip(drops, 3)}' if drops else ''] if x)})")


def judge_val_schedule(report, val_steps, train_steps, note=True):
    """log_format: the script's val schedule at its own train_steps (is_val_step at every step, no run) against
    RULES 6.1: extra val steps pass and step 0 may be skipped (6.4); a stretch it drops inside the cadence it keeps
    fails (schedule_holes), named by its first step. `val_steps` None: is_val_step raised (the runs show it).
    `note`: add where the schedule differs from 6.1 to a PASS (not when the long run, at this length, said it)."""
    if val_steps is None:
        return
    holes, check = schedule_holes(val_steps, train_steps), report.checks["log_format"]
    if not holes:
        if check["status"] == PASS and note:
            check["detail"] += "; " + schedule_note(val_steps, train_steps)
        return
    first, last, before, after = holes[0]
    stretch = f"step {first}" if first == last else f"steps {first} to {last}"
    problem = (f"is_val_step over its train_steps = {train_steps} (evaluated at every step, not run) skips {stretch} of "
               f"RULES 6.1 while it validates at {before} and {after} around "
               f"{'it' if first == last else 'them'}: first differing step {first}"
               + (f" (and {len(holes) - 1} more such stretches)" if len(holes) > 1 else "")
               + "; 6.1: every 125 while step / train_steps < 0.9, every 25 from there, and the last step")
    fix = ("validate at every step RULES 6.1 asks for (more steps are fine, step 0 may go): check the boundary of the "
           "last 10% (`step / train_steps < 0.9` for every 125 before it)")
    if check["status"] == FAIL:
        check["detail"] += "; " + problem
        check["fix"] += "; " + fix
    else:
        report.set("log_format", FAIL, problem, fix=fix)
