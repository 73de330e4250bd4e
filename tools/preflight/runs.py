"""The runs: the plan of which runs the preflight makes (at which steps they stop, resume and are compared), their
time limits, and running them: each is the script's own main() on the tiny model of tools.tiny, instrumented by
tools.preflight.hub, in processes of its own (tools.preflight.procs), as many at once as there are CPU cores."""
import functools
import math
import os
import shutil
import signal
from pathlib import Path

import torch
import torch._dynamo  # noqa: F401 - torch's optimizers import it when first made (1.5 s): once here, not in every fork

from tools import tiny
from tools.preflight import hub, procs
from tools.preflight.common import BASELINE, WORLD
from tools.preflight.logcheck import run_nonfinite_lines

SHORT_STEPS, SHORT_TRIALS, SHORT_MICROBATCHES = 10, 2, 2  # the short runs (1 and 2 ranks): 2 trials, accumulation
# The long run (every step, 1 rank) pays per step: one microbatch and one layer. Its one-matrix Muon stacks leave
# rank 1 without a share in the 2-rank tail that resumes from it (a code path of its own); the short runs have 2 layers.
LONG_MICROBATCHES, LONG_LAYERS = 1, 1
LATE = 0.95  # the tail and the long resume start at the first val step from this fraction of train_steps
TABLE_FRACTIONS = (0.0, 0.3, 0.7, 0.9, 1.0)  # the hyperparameter table's columns
BASE_STEPS = 300  # the baseline's own long run (time per step, learning): min(train_steps, BASE_STEPS) steps
# A run of the script may take TIME_FACTOR times the baseline's time for the same run (measured in this preflight)
# plus TIME_SLACK_S; a run that starts before the baseline's figures exist (and the baseline's own runs) get
# FALLBACK_BASE_S + FALLBACK_PER_STEP_S per step.
TIME_FACTOR, TIME_SLACK_S = 5.0, 30.0
FALLBACK_BASE_S, FALLBACK_PER_STEP_S = 120.0, 0.5
SLOTS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def plan_runs(train_steps, val_steps):
    """The steps at which runs stop, resume and are compared (docs/preflight.md, the resume check).

    short: 2 trials of n steps; a copy is stopped by SIGTERM with its checkpoint at step k of trial 1 and resumed.
    long: a checkpoint at a (resumed by long_resume, which SIGTERM stops at b1) and at b1; the 2-rank tail resumes
    from a, with checkpoints at b and c; tail_resume resumes from b and SIGTERM stops it at c. A run saves the state
    after step s - 1 as "step s" (a resume starts there); the earliest save of a run that starts at s0 is s0 + 2.
    """
    n = min(train_steps, SHORT_STEPS)
    plan = dict(n=n, k=max(2, n // 2) if n >= 2 else None, a=None)
    if train_steps >= 6:
        late = [s for s in val_steps if LATE * train_steps <= s <= train_steps - 4]  # (T >= 6: a >= 2)
        a = late[0] if late else min(round(LATE * train_steps), train_steps - 4)
        b = next((s for s in val_steps if a + 2 <= s <= train_steps - 2), a + 2)
        plan.update(a=a, b1=a + 2, b=b, c=b + 2)
    return plan


def table_steps(train_steps):
    return sorted({min(train_steps - 1, round(f * train_steps)) for f in TABLE_FRACTIONS})


LOG_READ_BYTES = 32 << 20  # a log larger than this is read only in the parts the checks use


def read_text(path, keep_prefix=0):
    """A log's text; of a larger file than LOG_READ_BYTES, only its first `keep_prefix` + 64 KiB characters and the
    lines that the checks read (val, trial and stop lines), so that a script that logs a lot costs no memory."""
    if not (path and os.path.isfile(path)):
        return ""
    if os.path.getsize(path) <= LOG_READ_BYTES:
        return Path(path).read_text(errors="replace")
    keep, head = [], keep_prefix + (64 << 10)
    with open(path, errors="replace") as f:
        keep.append(f.read(head))
        for line in f:
            if line.startswith(("step:", "trial ")) or "val_loss:" in line or "stopped" in line:
                keep.append(line)
    return "".join(keep)


def resume_copy(ckpt_path, log_path, dest_dir):
    """A copy of a checkpoint whose log is a copy of `log_path` (a resumed run appends to its checkpoint's log and
    removes the checkpoint when done: each resume gets its own). Returns (checkpoint, log) or raises ValueError."""
    os.makedirs(dest_dir, exist_ok=True)
    log_copy = os.path.join(dest_dir, os.path.basename(log_path))
    shutil.copyfile(log_path, log_copy)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"the checkpoint {os.path.basename(ckpt_path)} does not load with weights_only=True "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}): `state` may hold only tensors, numbers, "
                         "strings, lists, tuples and dicts") from None
    ckpt["log_path"] = log_copy
    dest = os.path.join(dest_dir, "resume.pt")
    torch.save(ckpt, dest)
    return dest, log_copy


def _child(rank, env, world, port, script, overrides, num_trials, instrument, out_dir):
    """A rank process of a run (in the fork): tools.tiny's worker with the run's environment."""
    os.environ.update(env)
    if not env.get("RESUME"):
        os.environ.pop("RESUME", None)  # never resume the user's real run
    tiny._worker(rank, world, port, script, overrides, num_trials, instrument, out_dir)


def estimate(figures, spec):
    """Seconds the baseline would take for `spec`, from its measured runs (figures: {config: (startup, per step)}),
    or None. A rank of a 2-rank run pays about twice per step (gloo collectives on the same cores)."""
    config = "long" if spec["layers"] == LONG_LAYERS and spec["microbatches"] == LONG_MICROBATCHES else "short"
    if config not in figures:
        return None
    startup, per_step = figures[config]
    return startup + per_step * spec["steps_total"] * spec["world"]


class Runner:
    """Runs the plan: the baseline's own two runs (its time per step and its learning, for the limits and `learns`)
    and the script's runs, each once the runs it starts from are done. `runs` lists every run made (the
    baseline's are marked); `skipped` says why a planned run was not: {label: (why, whether that is the script's
    fault)}. The first run that passes its time limit stops the preflight: a stalled script stalls every run."""

    def __init__(self, script, tmp, train_steps, plan, train, val, say, scale_check=None):
        self.script, self.tmp, self.T, self.plan, self.train, self.val, self.say = (script, tmp, train_steps, plan,
                                                                                    train, val, say)
        self.scale_check = scale_check  # the script's own train_steps when --steps differs from it
        self.runs, self.by_label, self.skipped, self.figures, self.stalled = [], {}, {}, {}, None
        self.code = Path(script).read_text()

    # -- the plan as jobs

    def jobs(self):
        T, p, world = self.T, self.plan, WORLD
        n, k, late = p["n"], p["k"], p["a"] is not None
        short = dict(steps=n, trials=SHORT_TRIALS, microbatches=SHORT_MICROBATCHES, layers=tiny.TINY["num_layers"])
        long = dict(steps=T, trials=1, microbatches=LONG_MICROBATCHES, layers=LONG_LAYERS)
        base_steps = min(T, BASE_STEPS)
        jobs = [dict(label="long", world=1, due={(1, p["a"]), (1, p["b1"])} if late else set(),
                     copies={(1, p["a"]): os.path.join(self.tmp, "long_a.pt")} if late else {},
                     table_steps=table_steps(T), scale_check=self.scale_check, what=f"{T} steps on 1 rank", **long),
                dict(label="base_long", world=1, baseline=True, what=f"the baseline, {base_steps} steps on 1 rank",
                     **dict(long, steps=base_steps)),
                dict(label="base_short", world=1, baseline=True,
                     what=f"the baseline, {SHORT_TRIALS} trials x {n} steps on 1 rank", **short),
                dict(label="short", world=1, due={(1, k)} if k else set(),
                     what=f"{SHORT_TRIALS} trials x {n} steps on 1 rank", **short)]
        if k:
            jobs += [dict(label="short_stop", world=1, stop=(1, k),
                          what=f"the same, stopped by SIGTERM with a checkpoint at step {k}", **short),
                     dict(label="short_resume", world=1, after=["short_stop"], prepare=self.short_resume, start=k,
                          what="resumed from it (RESUME) to the end", **short)]
        else:
            self.skipped["short_stop"] = (f"{n} step: too short to stop and resume", False)
        jobs += [dict(label="twin", world=1, perturb=True, what=f"{T} steps on 1 rank, every val loss and readout "
                      "perturbed", **long),
                 dict(label="ranks", world=world, what=f"{SHORT_TRIALS} trials x {n} steps on {world} ranks", **short)]
        if late:
            jobs += [dict(label="long_resume", world=1, after=["long"], start=p["a"], stop=(1, p["b1"]),
                          prepare=functools.partial(self.from_copy, "long_resume", "long", p["a"]),
                          what=f"resumed at step {p['a']}, stopped by SIGTERM at {p['b1']}", **long),
                     dict(label="tail", world=world, after=["long"], start=p["a"], due={(1, p["b"]), (1, p["c"])},
                          copies={(1, p["b"]): os.path.join(self.tmp, "tail_b.pt")},
                          prepare=functools.partial(self.from_copy, "tail", "long", p["a"]),
                          what=f"steps {p['a']}-{T} on {world} ranks, resumed from the long run", **long),
                     dict(label="tail_resume", world=world, after=["tail"], start=p["b"], stop=(1, p["c"]),
                          prepare=functools.partial(self.from_copy, "tail_resume", "tail", p["b"]),
                          what=f"the tail resumed at step {p['b']}, stopped by SIGTERM at {p['c']}", **long)]
        else:
            for label in ("long_resume", "tail", "tail_resume"):
                self.skipped[label] = (f"train_steps = {T} leaves no room (the late runs need at least 6 steps)", False)
        for job in jobs:  # optimizer steps in all (a resumed run starts within trial 1)
            job["steps_total"] = job["steps"] * job["trials"] - job.get("start", 0)
        return jobs

    def short_resume(self):
        stop = self.by_label.get("short_stop")
        directory = stop["checkpoint_dir"] if stop else ""
        files = [os.path.join(directory, f) for f in os.listdir(directory)] if os.path.isdir(directory) else []
        if stop and stop["completed"] and stop["stopped"] and len(files) == 1 and stop["log_files"]:
            return dict(resume=files[0], resumed_log=stop["log_files"][0])
        if stop and stop["completed"] and stop["stopped"]:
            self.skipped["short_resume"] = (f"the run stopped by SIGTERM left {len(files)} files in its checkpoint "
                                            "directory, not one checkpoint", True)
        else:
            self.skipped["short_resume"] = ("the run meant to stop by SIGTERM did not stop (see resume)", False)
        return None

    def from_copy(self, label, source_label, step):
        """The resume of `label` from the copy of `source`'s checkpoint at `step`, or None (and why, in skipped)."""
        source = self.by_label.get(source_label)
        path = source["copies"].get((1, step)) if source else None
        if not (source and source["completed"]):
            self.skipped[label] = (f"{source['label'] if source else source_label} did not complete", False)
            return None
        if not (path and os.path.isfile(path) and source["log_files"]):
            if source["nonfinite"]:
                self.skipped[label] = (f"{source['label']}'s trial stopped on a non-finite loss before step {step}", False)
            else:
                self.skipped[label] = (f"{source['label']} wrote no checkpoint at step {step} although checkpoint_every "
                                       "= 0 made one due (keep the checkpoint code of the Training and Validation "
                                       "section)", True)
            return None
        try:
            resume, log = resume_copy(path, source["log_files"][0], os.path.join(self.tmp, f"resume_{label}"))
        except ValueError as e:
            self.skipped[label] = (str(e), True)
            return None
        return dict(resume=resume, resumed_log=log)

    # -- running

    def launch(self, job, pool):
        """Start `job`'s processes; returns its context (what finish() needs)."""
        label, world = job["label"], job["world"]
        script = str(BASELINE) if job.get("baseline") else self.script
        seqs_per_rank = tiny.TINY["batch_size"] // world // tiny.TINY["seq_len"]
        micro = seqs_per_rank // job["microbatches"]
        out_dir = os.path.join(self.tmp, f"run_{label}")
        os.makedirs(out_dir, exist_ok=True)
        log_dir = os.path.join(self.tmp, f"logs_{label}")
        overrides = dict(tiny.TINY, micro_batch_seqs=micro, train_files=self.train, val_files=self.val,
                         train_steps=job["steps"], num_layers=job["layers"], log_dir=log_dir,
                         checkpoint_dir=os.path.join(self.tmp, f"checkpoints_{label}"), checkpoint_every=None,
                         compile_on_cpu=False)  # the runs are eager: --compile checks compiling
        cfg = dict(label=label, microbatches=seqs_per_rank // math.gcd(micro, seqs_per_rank), status=out_dir,
                   due=job.get("due", set()), copies=job.get("copies", {}), stop=job.get("stop"), signal_rank=world - 1,
                   resume=job.get("resume"), table_steps=job.get("table_steps", ()), perturb=job.get("perturb", False),
                   events=world > 1, scale_check=job.get("scale_check"), fresh=not job.get("resume"),
                   trajectory=label in ("long", "twin"),
                   probes="twin" if job.get("perturb") else "baseline" if job.get("baseline") else "full")
        env = dict(SEED="0", RESUME=job.get("resume") or "")
        instrument = functools.partial(hub.instrument, cfg)
        proc = procs.Proc(label, world, _child, (env, world, tiny.free_port(), script, overrides, job["trials"],
                                                 instrument, out_dir))
        pool.start(proc)
        proc.job = dict(job, out_dir=out_dir, log_dir=log_dir, checkpoint_dir=overrides["checkpoint_dir"],
                        microbatches_real=cfg["microbatches"], before=read_text(job.get("resumed_log")))
        self.set_limit(proc)
        return proc

    def set_limit(self, proc):
        job = proc.job
        base = None if job.get("baseline") else estimate(self.figures, job)
        if base is None:
            limit, why = FALLBACK_BASE_S + FALLBACK_PER_STEP_S * job["steps_total"], "fixed"
        else:
            limit, why = TIME_FACTOR * base + TIME_SLACK_S, f"{TIME_FACTOR:g} x the baseline's {base:.1f} s + " \
                                                            f"{TIME_SLACK_S:g} s"
        proc.deadline, proc.job["limit_s"], proc.job["limit_why"] = proc.started + limit, limit, why

    def finish(self, proc):
        """The run's record from its processes' results, logs and output."""
        job, world = proc.job, proc.world
        results = []
        for r in range(world):
            path = os.path.join(job["out_dir"], f"rank{r}.pt")
            try:
                result = torch.load(path, weights_only=False) if os.path.exists(path) else None
            except Exception:  # cut short by the kill while it was written
                result = None
            if result is None:
                status = proc.status.get(proc.pids[r])
                died = (f"killed by signal {os.WTERMSIG(status)}" if status is not None and os.WIFSIGNALED(status)
                        else f"exited with status {os.waitstatus_to_exitcode(status)}" if status is not None
                        else "did not exit")
                result = dict(rank=r, error=f"rank {r} {died} without a result")
            result["where"] = read_text(os.path.join(job["out_dir"], f"rank{r}.where")).strip()
            results.append(result)
        if job.get("resumed_log"):
            log_files = [job["resumed_log"]]
        else:
            log_dir = job["log_dir"]
            log_files = sorted(str(p) for p in Path(log_dir).glob("*") if p.is_file()) if os.path.isdir(log_dir) else []
        logs = [read_text(p, len(self.code)) for p in log_files]
        completed = not proc.killed and all(r.get("completed") and not r.get("error") for r in results)
        stopped = all(r.get("stopped_at") for r in results) if job.get("stop") else None
        before = job["before"]
        run = dict(label=job["label"], world=world, train_steps=job["steps"], trials=job["trials"],
                   layers=job["layers"], microbatches=job["microbatches_real"], results=results, logs=logs,
                   log_files=log_files,
                   log_new=(logs[0][len(before):] if job.get("resumed_log") and logs else logs[0] if len(logs) == 1
                            else ""),
                   outputs=[proc.output()], output_bytes=proc.total, seconds=proc.ended - proc.started,
                   limit_s=job["limit_s"], limit_why=job["limit_why"], killed=proc.killed, completed=completed,
                   stopped=stopped, fresh=not job.get("resume"), start=job.get("start", 0), stop=job.get("stop"),
                   copies=job.get("copies", {}), checkpoint_dir=job["checkpoint_dir"], what=job["what"],
                   baseline=bool(job.get("baseline")), perturb=bool(job.get("perturb")), started=proc.started)
        run["nonfinite"] = bool(run_nonfinite_lines(run, self.code if not run["baseline"] else BASELINE.read_text()))
        return run

    def measure(self, run):
        """The baseline's startup and time per step for its run's configuration, from its first and last step."""
        times = [r.get("step_times") for r in run["results"]]
        if not (run["completed"] and times and times[0] and times[0]["steps"] > 1):
            return
        t = times[0]
        per_step = (t["last"] - t["first"]) / (t["steps"] - 1)
        startup = max(0.0, t["first"] - run["started"])
        self.figures["long" if run["label"] == "base_long" else "short"] = (startup, per_step)

    def all(self):
        pending, pool = self.jobs(), procs.Pool()
        try:
            while pending or pool.active:
                for job in list(pending):
                    if not self.ready(job, pool):
                        continue
                    pending.remove(job)
                    if self.stalled:
                        self.skipped[job["label"]] = (f"the {self.stalled} run stalled (see run)", False)
                        continue
                    extra = job["prepare"]() if job.get("prepare") else {}
                    if extra is None:
                        continue
                    job.update(extra)
                    self.say(f"{job['what']} ...")
                    self.launch(job, pool)
                for proc in pool.poll():
                    run = self.finish(proc)
                    self.runs.append(run)
                    self.by_label[run["label"]] = run
                    if run["baseline"]:
                        self.measure(run)
                        for other in pool.active:
                            self.set_limit(other)
                    if proc.killed == "time" and not (run["baseline"] or run["perturb"] or self.stalled):  # (a stall
                        # of the twin alone comes from its perturbed val losses: val_steer says so)
                        self.stalled = run["label"]
                        for other in pool.active:
                            other.kill(signal.SIGKILL, "stall")
        except BaseException:
            pool.stop()
            raise
        order = {job: i for i, job in enumerate(["short", "short_stop", "short_resume", "long", "long_resume", "ranks",
                                                 "tail", "tail_resume", "twin", "base_long", "base_short"])}
        self.runs.sort(key=lambda run: order.get(run["label"], 99))
        return self.runs

    def ready(self, job, pool):
        if any(dep not in self.by_label and dep not in self.skipped for dep in job.get("after", ())):
            return False
        busy = sum(p.world for p in pool.active)
        return not pool.active or busy + job["world"] <= max(SLOTS, job["world"])
