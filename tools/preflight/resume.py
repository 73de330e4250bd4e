"""The resume verdict: a run stopped by SIGTERM and resumed from its checkpoint must continue bit for bit as the run
that went on (docs/preflight.md, the resume check)."""
import collections

from tools.preflight.common import FAIL, PASS, PUBLIC_VAL_RE, SKIP, TIME_RE, TRIAL_RE, WORLD, _clip
from tools.preflight.verdicts import compare_states, diff_fingerprints


def val_records(text):
    """{(trial, step): the val line without its clock fields} of a log's text, trials numbered by 'trial i/n' lines."""
    records, trial = {}, 1
    for line in text.splitlines():
        m = TRIAL_RE.match(line)
        if m:
            trial = int(m[1])
        v = PUBLIC_VAL_RE.search(line)
        if v:
            records[(trial, int(v[1]))] = TIME_RE.sub("", line.strip())
    return records


def compare_val_lines(got_text, want_text, steps):
    """The first val line (at `steps`) that differs, as text, or None."""
    got, want = val_records(got_text), val_records(want_text)
    differ = [(t, s, line) for (t, s), line in want.items() if s in steps and got.get((t, s)) != line]
    if not differ:
        return None
    t, s, line = differ[0]
    return (f"val lines differ from trial {t} step {s} on ({len(differ)} lines): "
            f"{got.get((t, s), '(no val line)')!r} vs {line!r}")


def _stop_problem(run, step):
    if run["stopped"]:
        return None
    return (f"SIGTERM during step {step - 2} did not stop {run['label']} with a checkpoint at step {step} (keep main()'s "
            "signal handlers and the checkpoint code of the Training and Validation section)")


def _lost(restored, saved, step, rank=""):
    """The restored state against the saved one: what the resume at `step` lost (a note), or None."""
    if not (restored and saved):
        return None
    what = compare_states(restored, saved)
    return f"right after the restore at step {step}{rank}, already different (lost at the resume): {what}" if what else None


def judge_resume_short(ref, stop, res, k):
    """The short run stopped at k (SIGTERM) and resumed to the end, against the run that went on: (problems, notes)."""
    stopped = _stop_problem(stop, k)
    if stopped:
        return [stopped], []
    problems, notes = [], []
    r_ref, r_stop = ref["results"][0], stop["results"][0]
    if (1, k) in r_ref["saves"] and (1, k) in r_stop["saves"]:
        what = compare_states(r_stop["saves"][(1, k)], r_ref["saves"][(1, k)])
        problems += [f"the state saved on SIGTERM at step {k} differs from the run that went on: {what}"] if what else []
    if res is None or not res["completed"]:
        return problems, notes
    r_res = res["results"][0]
    want = [f for f in r_ref["finals"] if f["normal"]]
    got = [f for f in r_res["finals"] if f["normal"]]
    if len(got) != len(want):
        problems.append(f"the resumed run ended {len(got)} trials, the run that went on {len(want)}")
    ends = collections.OrderedDict()
    for f_want, f_got in zip(want, got):
        what = compare_states(f_got["fingerprint"], f_want["fingerprint"])
        if what:
            ends.setdefault(what, []).append(str(f_want["trial"]))
    problems += [f"at the end of trial {' and '.join(trials)} the state differs from the run that went on: {what}"
                 for what, trials in ends.items()]
    what = compare_val_lines(res["logs"][0] if res["logs"] else "", ref["logs"][0] if ref["logs"] else "",
                             range(ref["train_steps"] + 1))
    problems += [what] if what else []
    note = _lost(r_res["restores"].get((1, k)), r_ref["saves"].get((1, k)), k) if problems else None
    return problems, [note] if note else []


def judge_resume_late(ref, res, start, at):
    """A late resume at `start`, stopped by SIGTERM at `at`, against the run that went on, rank by rank:
    (problems, notes)."""
    stopped = _stop_problem(res, at)
    if stopped:
        return [stopped], []
    saved = [r["saves"].get((1, start)) for r in ref["results"]]
    if len(saved) > 1 and all(saved) and any(diff_fingerprints(s, saved[0], ("parameter ", "state")) for s in saved[1:]):
        return [], []  # the ranks already disagree (the ranks check says so): a checkpoint holds rank 0's copy only
    problems, notes = [], []
    for rank, (r_ref, r_res) in enumerate(zip(ref["results"], res["results"])):
        where = f" on rank {rank}" if ref["world"] > 1 else ""
        if (1, at) not in r_ref["saves"]:
            problems.append(f"{ref['label']} wrote no checkpoint at step {at}{where} although checkpoint_every = 0 made "
                            "one due")
            continue
        what = compare_states(r_res["saves"].get((1, at), {}), r_ref["saves"][(1, at)])
        if what:
            problems.append(f"at step {at}{where} the state differs from the run that went on: {what}")
            note = _lost(r_res["restores"].get((1, start)), r_ref["saves"].get((1, start)), start, where)
            notes += [note] if note else []
    what = compare_val_lines(res["log_new"], ref["log_new"], range(start, at))  # a fresh run's log_new: all of it
    return problems + ([what] if what else []), notes


# what a resume lost, told by the words describe_paths uses: (its words, the kind, what to do about it)
LOST_KINDS = (
    ("torch.Generator", "the RNG of a torch.Generator", "draw random numbers from torch's default generator (each "
     "checkpoint saves its state), or keep your generator's get_state() in `state` and set_state() it back when a "
     "trial resumes (after restore)"),
    ("the RNG state", "the RNG", "draw random numbers from torch's default generator only: a checkpoint saves "
     "torch.get_rng_state(); other generators (random, numpy) are not saved"),
    ("module globals (not in a checkpoint)", "a module global", "keep it in `state` (the dict the extension points "
     "get: every checkpoint saves it) or, for an optimizer, in self.state[p] or its param groups: a module global is "
     "not saved"),
    ("attributes (not in a checkpoint)", "an optimizer attribute", "keep per-parameter tensors in self.state[p] and "
     "numbers in the param groups (group[key]): an optimizer's state_dict() saves only those"),
    ("the extension points' `state`", "a key of `state`", "`state` comes back from torch.load as copies: a value that "
     "shares memory with a parameter (p, p.detach(), p.data) stops following it after a resume, and a value rebuilt "
     "from elsewhere differs; keep clones and plain values there, and refer to parameters through `model`"),
)


def lost_kinds(text):
    """[(kind, hint)] of the state kinds a resume problem names, most specific first."""
    found = [(kind, hint) for words, kind, hint in LOST_KINDS if words in text]
    return [x for x in found if not (x[0] == "the RNG" and any(k.startswith("the RNG of") for k, _ in found))]


def uncheckpointable_problem(runs):
    """What of `state` a checkpoint cannot hold (seen at the first step), as text, or None."""
    for run in runs:
        for r in run["results"]:
            x = r.get("uncheckpointable")
            if x:
                what = _clip([f"{path} (a {kind})" for path, kind in x["found"]], 3)
                return (f"at step {x['step']} (after {x['when']}) `state` holds what a checkpoint cannot hold: {what}; "
                        "a checkpoint keeps tensors, numbers, strings, lists, tuples and dicts (torch.load with "
                        "weights_only=True)")
    return None


def judge_resume(report, runs, plan, skipped):
    by = {run["label"]: run for run in runs}
    problems, done = [], []
    bad_state = uncheckpointable_problem(runs)
    if bad_state:
        problems.append(bad_state)
        report.checks["resume"]["fix"] = ("keep only tensors, numbers, strings and lists, tuples and dicts of them in "
                                          "`state`: for a generator or an iterator keep what rebuilds it (a "
                                          "torch.Generator's get_state(), a position)")
    cases = [("1 rank", "short", "short_stop", f"stopped by SIGTERM at step {plan['k']} and resumed to the end"),
             ("1 rank, late", "long", "long_resume", f"resumed at step {plan['a']}, stopped by SIGTERM at {plan.get('b1')}"),
             (f"{WORLD} ranks, late", "tail", "tail_resume",
              f"resumed at step {plan.get('b')}, stopped by SIGTERM at {plan.get('c')}")]
    for name, ref_label, res_label, where in cases:
        ref, res = by.get(ref_label), by.get(res_label)
        if not (ref and res and ref["completed"] and res["completed"]):
            continue
        if ref["nonfinite"] or res["nonfinite"]:
            done.append(f"{name}: not judged, the loss went non-finite (see finite)")
            continue
        if ref_label == "short":
            got, notes = judge_resume_short(ref, res, by.get("short_resume"), plan["k"])
        elif ref_label == "long":
            got, notes = judge_resume_late(ref, res, plan["a"], plan["b1"])
        else:
            got, notes = judge_resume_late(ref, res, plan["b"], plan["c"])
        if got:
            problems.append(f"{name}, {where}: " + "; ".join(got + notes))
        done.append(f"{name}, {where}")
    problems += [f"{label}: {why}" for label, (why, fault) in skipped.items() if fault and not bad_state]
    kinds = lost_kinds("\n".join(problems))
    if kinds and not bad_state:
        problems.insert(0, "lost at a resume: " + ", ".join(kind for kind, _ in kinds))
        report.checks["resume"]["fix"] = "; ".join(f"{kind}: {hint}" for kind, hint in kinds)
    if problems:
        report.set("resume", FAIL, "\n".join(problems))
    elif not done:
        report.set("resume", SKIP, "no resume ran" + "".join(f"; {label}: {why}" for label, (why, _) in skipped.items()))
    else:
        report.set("resume", PASS, "bitwise equal to the runs that went on (parameters, every optimizer's state and "
                   "attributes, `state`, module globals, RNG, val lines): " + "; ".join(done))


# -- logs
