"""The preflight itself: the static checks, loading the script, the runs, the verdicts, the report as a dict."""
import ast
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import launch_check, tiny
from tools.preflight.common import ALLOWED_ENV, BASELINE, FAIL, HOOKED, PASS, Report, _clip
from tools.preflight.compare import STREAM_STEPS, check_architecture, check_constants, check_gap, check_stream
from tools.preflight.hub import script_traceback
from tools.preflight.logcheck import judge_logs, judge_val_schedule, rule_val_steps
from tools.preflight.resume import judge_resume, uncheckpointable_problem
from tools.preflight import runs as runs_module
from tools.preflight.runs import Runner, plan_runs, table_steps
from tools.preflight.schedule import judge_schedule, schedule_rows
from tools.preflight.trained import judge_learns, judge_live_architecture
from tools.preflight.trajectory import judge_val_steer
from tools.preflight.update_math import judge_descent, judge_stack_split
from tools.preflight.static import check_hardcoded, check_imports, public_format_problem, script_val_lines
from tools.preflight.world import judge_world
from tools.preflight.verdicts import (_results, judge_data, judge_finite, judge_hparams, judge_membership, judge_passes,
                                      judge_ranks, judge_run, judge_weights)

COMPILE_TIMEOUT_S = 900  # --compile: the first compile of a tiny model takes about a minute on 2 CPU cores
STATIC_LIMIT_S = 120  # the script's code run here: its import, its full-size model (seconds), 100 steps of its stream


def static_checks(report, code, tree):
    problems = check_imports(tree)
    report.set("imports", FAIL if problems else PASS, "; ".join(problems) or "standard library, torch and triton only")
    problems = check_hardcoded(tree)
    report.set("hardcoded", FAIL if problems else PASS, "; ".join(problems) or
               "no command-line parsing; sys.argv: the trial count only; os.environ: " + ", ".join(ALLOWED_ENV) + " only")


class Stalled(BaseException):
    """The script's own code, run in the preflight's process, passed its time limit (not an Exception: the script's
    and tools.tiny's handlers must not catch it)."""


class time_limit:
    """Raise Stalled in this thread after `seconds` (SIGALRM): the script's code that runs in the preflight's own
    process (its import, its full-size model, its data generator) gets a limit, as the runs do. Not in the main
    thread: no limit."""

    def __init__(self, seconds):
        self.seconds, self.previous = seconds, None

    def __enter__(self):
        def alarm(signum, frame):
            raise Stalled
        try:
            self.previous = signal.signal(signal.SIGALRM, alarm)
        except ValueError:  # not the main thread
            return self
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def load_user(report, script, path, code, tree):
    """The imported script, or None after setting `load` to FAIL."""
    problem = public_format_problem(tree, script)
    if problem:
        report.set("load", FAIL, problem, fix="port the script into the harness's format (see above), then preflight it")
        return None
    try:
        user = tiny.load_script(path, "preflight_user")
    except tiny.ScriptError as e:
        if e.__cause__ is not None:  # importing it raised: show the script's own frames
            report.set("load", FAIL, f"{script}: importing it failed:\n" + script_traceback(e.__cause__, path),
                       fix="fix the error above; a missing third-party module: copy its code into the script")
        else:
            report.set("load", FAIL, str(e).rstrip())
        return None
    missing = [name for name in HOOKED if not callable(getattr(user, name, None))]
    if missing:
        report.set("load", FAIL, f"{script}: lacks {', '.join(missing)}: the preflight watches the script through these "
                   "names of the repo's train_gpt_simple.py (start from a copy of it: python -m tools.new)")
        return None
    problems = launch_check.script_problems(user)  # what a launch would get wrong before it trains
    if problems:
        report.set("load", FAIL, f"{script}: " + "; ".join(problems),
                   fix="python -m tools.launch_check SCRIPT explains each; fix the line it names")
        return None
    return user


def preflight(script, steps=None, progress=None, keep_logs=None, compile=False):
    """Run every check on `script` (and, with `compile`, tools.compile_check); returns the report as a dict."""
    say = progress or (lambda message: None)
    t0 = time.perf_counter()
    report = Report()
    path = os.path.abspath(script)
    info = dict(script=script, sha256=None, baseline=str(BASELINE), train_steps=None, steps_source=None)

    def finish():
        for c in report.checks.values():
            if c["detail"] == "not run":
                c["detail"] = "not run: the script did not load" if report.checks["load"]["status"] == FAIL else "not run"
        compiled = info.get("compile")
        info.update(ok=report.ok() and (compiled or {}).get("status") != FAIL, checks=list(report.checks.values()),
                    warnings=report.warnings, wall_s=round(time.perf_counter() - t0, 1))
        return info

    try:
        raw = Path(path).read_bytes()
        code = raw.decode()
    except OSError as e:
        report.set("load", FAIL, f"{script}: {e.strerror or e}", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    except UnicodeDecodeError as e:
        report.set("load", FAIL, f"{script}: not UTF-8 text ({e})", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        tree = ast.parse(code, filename=path)
    except SyntaxError as e:
        report.set("load", FAIL, f"{script}: syntax error at line {e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}")
        return finish()
    static_checks(report, code, tree)
    val_lines = script_val_lines(code)
    if val_lines:
        report.set("log_format", FAIL, "lines of the script match the public val pattern: " + _clip(val_lines, 3))
    try:
        with time_limit(STATIC_LIMIT_S):
            user = load_user(report, script, path, code, tree)
    except Stalled:
        report.set("load", FAIL, f"{script}: importing it did not end within {STATIC_LIMIT_S:g} s (stopped): an endless "
                   "loop or a wait at the top level of the script?", fix="the script must only define things when "
                   "imported; main() does the work")
        return finish()
    if user is None:
        return finish()
    base = tiny.load_script(str(BASELINE), "preflight_baseline")
    own = getattr(user, "train_steps", None)  # the script's own (a --steps run compares its schedule with it)
    train_steps = steps if steps is not None else own
    if not isinstance(train_steps, int) or isinstance(train_steps, bool) or train_steps < 1:
        report.set("load", FAIL, f"train_steps = {train_steps!r}: expected a positive int")
        return finish()
    info.update(train_steps=train_steps, steps_source="--steps" if steps is not None else "the script's train_steps")
    report.set("load", PASS, "defines " + ", ".join(tiny.REQUIRED + HOOKED))
    try:
        with time_limit(STATIC_LIMIT_S):
            report.set(*(("architecture",) + check_architecture(user, base)))
    except Stalled:
        report.set("architecture", FAIL, f"building the script's GPT and its float64 forward did not end within "
                   f"{STATIC_LIMIT_S:g} s (stopped)")
    report.set(*(("constants",) + check_constants(user, base)))
    try:
        user.train_steps = train_steps  # the val steps at this length, for the plan (the runs set it themselves)
        val_steps = [s for s in range(train_steps + 1) if s == train_steps or user.is_val_step(s)]
    except Exception:
        val_steps = rule_val_steps(train_steps)  # the runs will show the script's error
    plan = plan_runs(train_steps, val_steps)
    own_val_steps = script_val_schedule(user, own, train_steps)
    scale_check = own if steps is not None and isinstance(own, int) and not isinstance(own, bool) and own != steps \
        and own > 0 else None
    with tempfile.TemporaryDirectory(prefix="preflight_") as tmp:
        train, val = tiny.tiny_data(os.path.join(tmp, "data"), max(train_steps, STREAM_STEPS))
        try:
            with time_limit(STATIC_LIMIT_S):
                checks = [check_stream(user, base, train, val), check_gap(user, train, val)]
            failed = [detail for ok, detail in checks if not ok]
            stream_ok, stream_detail = not failed, "; ".join(failed or [detail for ok, detail in checks])
        except Stalled:
            stream_ok, stream_detail = False, (f"the script's distributed_data_generator (or check_launch) did not "
                                               f"give {STREAM_STEPS} steps within {STATIC_LIMIT_S:g} s (stopped)")
        runner = Runner(path, tmp, train_steps, plan, train, val, say, scale_check=scale_check)
        all_runs = runner.all()
        if keep_logs:
            info["kept_logs"] = keep_run_logs(all_runs, keep_logs)
    runs = [r for r in all_runs if not r["baseline"] and not r["perturb"]]
    info["plan"] = plan
    info["runs"] = [dict(label=r["label"], what=r["what"], world_size=r["world"], train_steps=r["train_steps"],
                         trials=r["trials"], seconds=round(r["seconds"], 1), limit_s=round(r["limit_s"]),
                         completed=r["completed"], output_bytes=r["output_bytes"], killed=r["killed"])
                    for r in all_runs]
    info["skipped_runs"] = runner.skipped
    info["time_limits"] = dict(factor=runs_module.TIME_FACTOR, slack_s=runs_module.TIME_SLACK_S, baseline={
        config: dict(startup_s=round(a, 2), per_step_ms=round(1000 * b, 2)) for config, (a, b) in runner.figures.items()})
    judge_all(report, runs, runner.skipped, plan, code, val_lines, stream_ok, stream_detail)
    judge_val_schedule(report, own_val_steps, own, note=train_steps != own)
    judge_val_steer(report, all_runs)
    long = runner.by_label.get("long")
    judge_schedule(report, long, scale_check, train_steps)
    warned = any(w["check"] == "hparams" and "not the script's own" in w["text"] for w in report.warnings)
    judge_learns(report, all_runs, tiny.markov_entropy(), schedule_warned=warned)
    judge_live_architecture(report, runs)
    judge_descent(report, runs)
    judge_stack_split(report, runs)
    bad_state = uncheckpointable_problem(runs)
    if bad_state and report.checks["run"]["status"] == FAIL:
        report.checks["run"]["detail"] += f"\nthe cause, probably: {bad_state} (see resume)"
    if long and long["results"]:
        sample = table_steps(train_steps)
        info["hparams"] = dict(steps=sample, rows=schedule_rows(long["results"][0].get("schedule") or {}, sample))
        info["val_steps"] = long["results"][0].get("val_steps")
    info["learning"] = learning_numbers(all_runs, tiny.markov_entropy())
    long_result = long["results"][0] if long and long["results"] else {}
    info["update_math_s"] = {k: round(long_result[k], 3) for k in ("descent_s", "stack_split_s") if k in long_result}
    errors = [r["instrument_error"] for r in _results(all_runs) if r.get("instrument_error")]
    if errors:
        info["instrument_error"] = errors[0]
    if compile:
        say("compiling the script's model and optimizer functions on the CPU (tools.compile_check) ...")
        info["compile"] = run_compile_check(path)
    return finish()


def script_val_schedule(user, own, train_steps):
    """The script's val steps at its own train_steps (is_val_step at every step, and the last one), without running
    it; None when it raised (the runs show the error). Leaves the module's train_steps at the runs' `train_steps`."""
    if not isinstance(own, int) or isinstance(own, bool) or own < 1:
        return None
    try:
        with time_limit(STATIC_LIMIT_S):
            user.train_steps = own
            return [s for s in range(own + 1) if s == own or user.is_val_step(s)]
    except (Exception, Stalled):
        return None
    finally:
        user.train_steps = train_steps


def learning_numbers(runs, floor):
    """The val loss the long run and the baseline's start from and end at, and the entropy floor (for --json)."""
    out = dict(entropy_floor=round(floor, 4))
    for run in runs:
        if run["label"] in ("long", "base_long") and run["results"] and run["completed"]:
            r = run["results"][0]
            out[run["label"]] = dict(initial=r.get("initial_val"), curve=r.get("val_curve"))
    return out


def run_compile_check(path):
    """tools.compile_check in its own process (inductor's state stays out of this one, which forks ranks)."""
    try:
        out = subprocess.run([sys.executable, "-m", "tools.compile_check", path, "--json"], capture_output=True,
                             text=True, cwd=str(BASELINE.parent), timeout=COMPILE_TIMEOUT_S)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return dict(status=FAIL, detail=f"did not finish within {COMPILE_TIMEOUT_S} s", checks=[])
    except (ValueError, IndexError):
        return dict(status=FAIL, detail="tools.compile_check gave no report: " + (out.stderr.strip()[-2000:] or
                                                                                     f"exit status {out.returncode}"),
                    checks=[])
    checks = [dict(name=c[0], status=c[1], detail=c[2]) for c in result.get("checks", [])]  # [name, status, detail]
    return dict(status=result.get("status"), detail=result.get("detail", ""), checks=checks)


def judge_all(report, runs, skipped, plan, code, val_lines, stream_ok, stream_detail):
    judge_run(report, runs, skipped)
    judge_finite(report, runs, code)
    judge_ranks(report, runs)
    judge_membership(report, runs)
    judge_hparams(report, runs)
    judge_weights(report, runs)
    judge_passes(report, runs)
    judge_data(report, runs, stream_ok, stream_detail)
    judge_world(report, runs)  # (after data and finite: 2-rank runs on other batches learn otherwise)
    judge_resume(report, runs, plan, skipped)
    judge_logs(report, runs, code, val_lines)


def keep_run_logs(runs, directory):
    """Copy every run's log to DIRECTORY/<run>/<log name>, and the end of its output to DIRECTORY/<run>/output.txt;
    never overwrites. Returns the paths written."""
    kept = []
    for run in runs:
        output = (run.get("outputs") or [""])[0]
        dest = os.path.join(directory, run["label"], "output.txt")
        if output and not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            Path(dest).write_text(output)
            kept.append(dest)
        for src in run["log_files"]:
            dest_dir = os.path.join(directory, run["label"])
            os.makedirs(dest_dir, exist_ok=True)
            dest = os.path.join(dest_dir, os.path.basename(src))
            if os.path.isfile(src) and not os.path.exists(dest):
                shutil.copyfile(src, dest)
                kept.append(dest)
    return kept
