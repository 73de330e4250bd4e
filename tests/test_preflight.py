"""tools.preflight end to end: the baseline and the frontier's loop changes pass; each deliberately broken copy
(tests/preflight_copies.py) fails its check and only that one; bad input gets one clear line.

The runs use --steps 250 (the baseline: its val steps pin the cadence threshold 0.9) and 12 (everything else);
the default (every one of the script's 3250 steps) is left to the command line. The judging code has fast unit
tests of its own in test_preflight_judging.py.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import preflight_copies as pc
from tools import logs as logtools
from tools import preflight
from tools.preflight import core, procs, runs

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "train_gpt_simple.py"
STEPS = 12  # the copies: past the faults below, late runs at steps 8-12, val at 0 and 12 (the frontier: 9-12)


def statuses(info):
    return {c["id"]: c["status"] for c in info["checks"]}


def failed(info):
    return [c["id"] for c in info["checks"] if c["status"] == "FAIL"]


def detail(info, check):
    return next(c["detail"] for c in info["checks"] if c["id"] == check)


def lr_multiplier(step, train_steps):  # RULES 5, written out
    x = step / train_steps
    return 1.0 if x < 0.3 else (1 - x) / 0.7


def test_baseline_passes_with_json_table_and_kept_logs(capsys, tmp_path):
    keep = tmp_path / "kept"
    code = preflight.main([str(BASELINE), "--steps", "250", "--json", "--keep-logs", str(keep)])
    info = json.loads(capsys.readouterr().out)
    assert code == 0, preflight.format_report(info)
    assert set(statuses(info).values()) == {"PASS"}, preflight.format_report(info)
    assert info["ok"] and info["train_steps"] == 250 and info["steps_source"] == "--steps"
    assert info["sha256"] == hashlib.sha256(BASELINE.read_bytes()).hexdigest()
    assert [r["label"] for r in info["runs"]] == ["short", "short_stop", "short_resume", "long", "long_resume", "ranks",
                                                   "tail", "tail_resume", "twin", "base_long", "base_short"]
    assert all(r["seconds"] <= r["limit_s"] for r in info["runs"])
    assert info["time_limits"]["factor"] == 5 and set(info["time_limits"]["baseline"]) == {"long", "short"}
    assert all(r["completed"] for r in info["runs"]) and info["skipped_runs"] == {}
    # RULES 6.1 at 250 steps: 225 = 0.9 * 250 validates only with the threshold exactly 0.9 and '<' (with 0.91, or
    # '<=', it would not); the long run's log must hold exactly these steps
    assert info["val_steps"] == [0, 125, 225, 250]
    assert "4 val steps per trial, the cadence of RULES 6.1" in detail(info, "log_format")
    assert info["plan"] == dict(n=10, k=5, a=238, b1=240, b=240, c=242)
    # the table: every group's hyperparameters at 0, 0.3, 0.7, 0.9 and 1.0 of the steps, the schedule's own numbers
    table = info["hparams"]
    assert table["steps"] == [0, 75, 175, 225, 249]
    rows = {(r["optimizer"], tuple(r["groups"]), r["key"]): r["values"] for r in table["rows"]}
    assert rows[("0 Muon", (0, 1, 2), "lr")] == [0.025 * lr_multiplier(s, 250) for s in table["steps"]]
    assert rows[("1 AdamW", (0,), "lr")] == [0.7 * lr_multiplier(s, 250) for s in table["steps"]]
    assert rows[("0 Muon", (0, 1, 2), "mu")] == [0.95] * 5
    assert rows[("1 AdamW", (0, 1, 2), "betas[1]")] == [0.95] * 5
    assert len(rows) == 14
    muon_lr = next(r for r in table["rows"] if r["optimizer"] == "0 Muon" and r["key"] == "lr")
    assert (muon_lr["max"], muon_lr["max_step"], muon_lr["min"], muon_lr["min_step"], muon_lr["spikes"]) == (
        0.025, 0, 0.025 * lr_multiplier(249, 250), 249, [])
    # the tiny model learns the Markov stream: the baseline's own long run and the reference run of the baseline are
    # the same run here (250 steps), so their curves agree to the bit
    learning = info["learning"]
    assert learning["long"]["curve"] == learning["base_long"]["curve"] and learning["long"]["curve"][0][0] == 0
    assert learning["long"]["initial"] == pytest.approx(4.852, abs=1e-3)  # ln 128: the zero head
    assert learning["long"]["curve"][-1][0] == 250 and learning["long"]["curve"][-1][1] < 1.5
    assert learning["entropy_floor"] == pytest.approx(1.1097, abs=1e-4) and info["warnings"] == []
    text = preflight.format_report(info)
    assert "PASS: all 23 checks" in text and "Wall time" in text and "--steps overrode train_steps" in text
    assert "val loss 4.852 at the start, " in detail(info, "learns") and "the baseline on the same data" in \
        detail(info, "learns")
    assert "0 Muon        0-2     lr                    0.025      0.025" in text
    # --keep-logs: every run's log, readable by the analysis tools
    kept = sorted(str(Path(p).relative_to(keep).parent) for p in info["kept_logs"] if not p.endswith("output.txt"))
    assert kept == sorted(r["label"] for r in info["runs"]), kept
    outputs = [Path(p) for p in info["kept_logs"] if p.endswith("output.txt")]
    assert len(outputs) == len(info["runs"]) and "trial 1/1 summary" in (keep / "long" / "output.txt").read_text()
    long_log = next(Path(p) for p in info["kept_logs"] if Path(p).parent.name == "long" and not p.endswith("output.txt"))
    parsed = logtools.parse_file(str(long_log))
    assert [p.step for p in parsed.trials[0].points] == [0, 125, 225, 250] and len(parsed.trials) == 1


@pytest.fixture
def copies(tmp_path):
    return tmp_path


def run_copy(directory, name, substitutions=(), extension=None):
    path = pc.write(directory, name, substitutions, extension)
    return path, preflight.preflight(str(path), steps=STEPS)


def test_frontier_passes(copies):
    path, info = run_copy(copies, "frontier", (), pc.FRONTIER)
    assert failed(info) == [] and "SKIP" not in statuses(info).values(), preflight.format_report(info)
    assert info["val_steps"] == [9, 10, 11, 12]  # no step 0: the script's own is_val_step
    assert "drops 0" in detail(info, "log_format")
    rows = {(r["optimizer"], tuple(r["groups"]), r["key"]): r["values"] for r in info["hparams"]["rows"]}
    steps = info["hparams"]["steps"]
    assert steps == [0, 4, 8, 11]  # 0.3 * 12 = 3.6 -> 4; 0.9 and 1.0 both give the last step, 11
    assert rows[("0 Muon", (0, 1, 2), "mu")] == [0.85 + 0.10 * min(1.0, 3 * s / 12) for s in steps]
    assert "resumed at step 8" in detail(info, "resume") and "2 ranks, late" in detail(info, "resume")


EXPECTED_DETAIL = {  # what each failing check must name
    "run": ["preflight test: the optimizer fails at step 5", "raise RuntimeError"],
    "run@0": ["preflight test: the optimizer fails at step 0", "raise RuntimeError"],
    "finite": ["first non-finite tensors", "momentum_buffer of blocks.0.attn.q.weight", "optimizer 0 (Muon) state"],
    "optimizers": ["in no optimizer: proj.weight"],
    "gradients": ["no gradient at an optimizer step: proj.weight"],
    "updates": ["never changed: proj.weight"],
    "ranks": ["the ranks first differ after optimizer 1 (AdamW).step() (trial 1, step 0)",
              "the ranks end with different parameters", "bias", "gains"],
    "ranks@before_forward": ["the ranks first differ after before_forward (trial 1, step 0): parameters"],
    "learns": ["the val loss does not fall: val loss 4.852 at the start, ", "curve (step: val loss): 0: 4.852, 12: "],
    "updates@flip": ["after_step turned embed.weight around at step 0 of the short run"],
    "val_steer": ["training parted from the run that went on: step 0, after set_hparams: the hyperparameters differ"],
    "weights@bf16": ["short trial 1, step 7: readouts: the weights came back rounded to bfloat16: blocks.0.norm1.gains"],
    "resume@generator": ["lost at a resume: the RNG of a torch.Generator",
                         "module globals (not in a checkpoint): NOISE (a torch.Generator's state)"],
    "resume@state": ["lost at a resume: a key of `state`", "the extension points' `state`: state['head']"],
    "architecture@module": ["the model that trains: after make_optimizers: blocks.0.mlp is a GeluMLP (the baseline's: "
                            "MLP)"],
    "ranks@state": ["the ranks end with different the extension points' `state`: state['seen']"],
    "lr": ["long run: optimizer 0 (Muon) lr = ", "at step 11 of trial 1", ": negative"],
    "hparams": ["long run: optimizer 0 (Muon) mu = 1 at step 9 of trial 1 in groups 0-2",
                "a momentum or beta at or above 1"],
    "weights": ["short trial 1, step 7: readouts changed embed.weight"],
    "weights@set_hparams": ["between before_forward and the optimizers' step", "changed blocks.0"],
    "resume": ["optimizer 0 (Muon) attributes (not in a checkpoint): momenta[(2, 16, 16)]",
               "1 rank, stopped by SIGTERM at step 5", "2 ranks, late, resumed at step 10"],
    "resume@global": ["module globals (not in a checkpoint): MOMENTA[(2, 16, 16)]"],
    "resume@ema": ["module globals (not in a checkpoint): EMA[i] (33 entries)", "val_ema_loss",
                   "right after the restore at step 5, already different (lost at the resume)",
                   "1 rank, late, resumed at step 8"],
    "resume@signal": ["SIGTERM during step 3 did not stop short_stop with a checkpoint at step 5"],
    "architecture": ["GPT(50304, 12, 1024) vs the baseline's GPT(50304, 12, 768)"],
    "data": ["rank 1 of 2", "yields other tokens than the baseline's"],
    "data@gap": ["check_launch() accepted train shards without fineweb_train_000002.bin: the stream would skip that "
                 "shard and train on other tokens"],
    "constants": ["val_tokens = 5242880 (baseline 10485760)"],
    "one_pass": ["2 training forwards and 4 backwards (expected 2 each)"],
    "imports": ["import numpy"],
    "log_script": ["the log does not start with the script's exact text"],
    "log_format": ["a val line not in the layout of RULES 6.2", "val loss:"],
    "log_format@missing": ["validates at steps other than the script's is_val_step says: missing 0"],
    "log_format@final": ["has no val after its last step", "every trial validates at train_steps (RULES 6.1)"],
    "hardcoded": ["os.environ.get() reads 'MUON_LR'"],
    # issue 31
    "descent": ["6 of 9 first updates point uphill", "optimizer 0 (Muon) group 0, blocks.0.attn.proj.weight (16, 16): "
                "<G, dW + lr wd W> = +", "at step 1 (cosine +", "optimizer 0 (Muon) group 0, blocks.0.attn.q.weight (16, 16)"],
    "descent@lion": ["1 of 4 first updates point uphill", "optimizer 0 (Lion) group 0 (blocks.0.attn.proj.weight "
                     "(16, 16), blocks.0.mlp.proj.weight (16, 64)", "at steps 1, 2 (cosine +"],
    "stack_split": ["optimizer 0 (Muon).update() on group 0's stack of 4 (16, 16) matrices: split as 2 ranks split it "
                    "([0, 2] and [1, 3]), the new matrix 0 differs after call 1 by 0.41 of its update: a reduction "
                    "crosses the matrices of the stack", "norm() over every dimension (line ", ": u = u * min(u.shape[-2:])"],
    # issue 28 (tools/preflight/world.py, the val schedule)
    "ranks@mean": ["ranks: optimizer 0 (Muon).update() on rank 0 (trial 1, step 1) got a G that is 0.5 x the gradients "
                   "summed over the 2 ranks (relative difference 0.5)", ": a mean, not the sum"],
    "ranks@val": ["the val losses depend on the world size (evaluate() and its reduction over ranks): ranks: the val "
                  "loss at step 0 of trial 1 is 2.42", "on rank 0 of 2, 4.85",
                  "on 1 rank (short; 0.5 x, the limit 1e-06 relative, from the same weights)"],
    "ranks@val_half": ["ranks: the val loss at step 10 of trial 1 differs between the ranks: ", " on rank 0, ",
                       " on rank 1"],
    "log_format@boundary": ["is_val_step over its train_steps = 3250 (evaluated at every step, not run) skips step 2925 "
                            "of RULES 6.1 while it validates at 2875 and 2950 around it: first differing step 2925"],
}


@pytest.mark.parametrize("name", [n for n in pc.BROKEN if not n.startswith("load")])
def test_broken_copy_fails_only_its_check(copies, name):
    path = pc.broken(copies, name)
    info = preflight.preflight(str(path), steps=STEPS)
    report = preflight.format_report(info)
    check = name.split("@")[0]
    assert failed(info) == [check], report
    assert not info["ok"] and "instrument_error" not in info, report
    if check != "run":  # the script ran to its end: every other check had its evidence
        assert [cid for cid, s in statuses(info).items() if s == "SKIP"] == [], report
    text = detail(info, check)
    for part in EXPECTED_DETAIL[name]:
        assert part in text, (part, text)
    if check == "run":
        assert str(path) in text


def test_every_check_has_a_broken_copy():
    assert {name.split("@")[0] for name in pc.BROKEN} == {cid for cid, *_ in preflight.CHECKS}
    assert set(EXPECTED_DETAIL) == {n for n in pc.BROKEN if not n.startswith("load")}


def test_whole_batch_on_every_rank_fails_data_and_one_pass(copies):
    """Every rank taking the whole batch: another stream on 2 ranks, and twice the forwards per step."""
    path, info = run_copy(copies, "whole_batch", [("        buf = tokens[pos + rank * local:][:local + 1]",
                                                   "        buf = tokens[pos:][:batch_size + 1]")])
    assert failed(info) == ["data", "one_pass"], preflight.format_report(info)
    assert "4 training forwards and 4 backwards (expected 2 each)" in detail(info, "one_pass")


def test_training_on_val_batches_fails_data_saying_so(copies):
    """A step that trains on the val set's sequences instead of its batch (issue: data passed, only one_pass
    failed, with a message that contradicted itself): `data` says training read the val shard."""
    path, info = run_copy(copies, "val_in_training", [(
        "        inputs, targets = next(train_loader)\n",
        "        inputs, targets = next(train_loader)\n"
        "        inputs, targets = run.val_inputs[:len(inputs)], run.val_targets[:len(inputs)]\n")])
    report = preflight.format_report(info)
    assert "data" in failed(info) and "instrument_error" not in info, report
    assert "training read the val shard: trial 1 step 0 on rank 0 trained on 8 of the val set's sequences" in \
        detail(info, "data"), report


def test_train_stream_from_the_val_files_fails_data_saying_so(copies):
    """The train loader pointed at the val files: `data` names it, and the preflight's own code does not fail."""
    path, info = run_copy(copies, "val_loader", [(
        "    train_loader = distributed_data_generator(train_files, batch_size,",
        "    train_loader = distributed_data_generator(val_files, batch_size,")])
    report = preflight.format_report(info)
    assert "data" in failed(info) and "instrument_error" not in info, report
    assert "training read the val shard" in detail(info, "data"), report


def test_compile_flag_runs_the_compile_check_and_fails_a_graph_break(copies):
    """--compile: the script's own compile calls on the CPU; a graph break (a print in the forward) fails it."""
    path = pc.write(copies, "graph_break", [("        x = self.norm1(self.embed(inputs))\n",
                                             "        x = self.norm1(self.embed(inputs))\n        print('x', x.shape)\n")])
    info = preflight.preflight(str(path), steps=STEPS, compile=True)
    report = preflight.format_report(info)
    assert failed(info) == [] and not info["ok"], report  # every other check passes; the compile check fails
    assert info["compile"]["status"] == "FAIL" and "FAIL  compile      graph break" in report, report
    assert "FAIL: the compile check (the other 23 checks pass). Wall time" in report, report


def test_hang_is_killed_and_reported(copies, monkeypatch):
    """A rank that never returns (here: in the 2-rank run from scratch) is killed at its time limit, not waited for;
    the report names where it was."""
    monkeypatch.setattr(runs, "TIME_SLACK_S", 2)
    path, info = run_copy(copies, "hang", [("        inputs, targets = next(train_loader)\n",
                                            "        if run.world_size > 1 and step == 3 and trial == 0:\n"
                                            "            time.sleep(600)\n"
                                            "        inputs, targets = next(train_loader)\n")])
    assert failed(info) == ["run"], preflight.format_report(info)
    text = detail(info, "run")
    assert "ranks (2 trials x 10 steps on 2 ranks): stalled: not done after " in text, text
    assert "(its limit: 5 x the baseline's " in text and "rank 0 was after after_step (trial 1, step 2)" in text, text
    assert info["wall_s"] < 300


def test_endless_loop_in_init_params_is_named(copies, monkeypatch):
    """A script that stalls (an endless loop in init_params) fails `run` naming the function, and the preflight stops
    at the first stall instead of waiting for every run's limit."""
    monkeypatch.setattr(runs, "TIME_SLACK_S", 2)
    path = pc.write(copies, "stall", [], pc.STALL)
    info = preflight.preflight(str(path), steps=STEPS)
    assert failed(info) == ["run"], preflight.format_report(info)
    text = detail(info, "run")
    assert "stalled: not done after" in text and "rank 0 was in init_params (before trial 1)" in text, text
    assert "find the endless loop" in next(c["fix"] for c in info["checks"] if c["id"] == "run")
    stopped = [r for r in info["runs"] if r["killed"] == "stall"]
    assert all(not r["completed"] for r in info["runs"] if not r["label"].startswith("base")) and stopped
    assert [c["status"] for c in info["checks"] if c["id"] in ("learns", "val_steer", "resume")] == ["SKIP"] * 3
    assert info["wall_s"] < 300



def processes():
    """{pid: (state, ppid, pgid)} of every process (Linux /proc); one that ends while being read is left out."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(entry)] = (fields[0], int(fields[1]), int(fields[2]))
    return found


def descendants(pid):
    """{pid: process group} of every process below `pid`."""
    parents = processes()
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, (_, ppid, pgid) in parents.items():
            if ppid == p and child not in found:
                found[child] = pgid
                todo.append(child)
    return found


def alive(pids, groups):
    """The processes of `pids` still there, and any process in one of `groups` (zombies are gone for our purpose)."""
    return [pid for pid, (state, _, pgid) in processes().items() if state != "Z" and (pid in pids or pgid in groups)]


# The preflight of the Ctrl-C test with time limits no run can reach: the runs stall until the SIGINT, which the test
# sends once they say so (a file each), so nothing races the preflight's own limits however busy the machine is.
NO_LIMITS = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
             "from tools.preflight import runs, report; runs.TIME_SLACK_S = runs.FALLBACK_BASE_S = 1e6; "
             "sys.exit(report.main(sys.argv[1:]))")  # SIGUSR1: its stacks on stderr, for a test that it outlives


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_ctrl_c_stops_every_run_and_leaves_no_process(copies):
    """SIGINT to the preflight (Ctrl-C) while runs are stalled: it exits 130 with one line, and no process of its
    runs is left (the script's own handler swallows SIGINT and SIGTERM; the preflight kills the groups). The SIGINT
    goes once two rank processes have written that they entered the endless loop of init_params (an event, not a
    sleep), and their processes and groups are read before it, so the test cannot pass without stalled runs."""
    started = copies / "started"
    started.mkdir()
    stall = f"\ndef init_params(model):\n    open(os.path.join({str(started)!r}, str(os.getpid())), 'w').close()\n" \
            "    while True:\n        pass\n"
    path = pc.write(copies, "stall", [], stall)
    # started with SIGINT ignored, as a shell script's background job is (CI, nohup ... &): the preflight must
    # still stop on it (it did not, and this test then waited for ever on such a machine)
    proc = subprocess.Popen([sys.executable, "-c", NO_LIMITS, str(path), "--steps", str(STEPS)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 600  # only against a hang of the test itself: nothing here has a limit
        while len(os.listdir(started)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the runs' own signal: they are in the loop
        assert proc.poll() is None and len(os.listdir(started)) >= 2, proc.poll()
        stalled = {int(name) for name in os.listdir(started)}
        seen = descendants(proc.pid)
        assert stalled <= set(seen) and sorted(alive(stalled, set())) == sorted(stalled), (stalled, seen)
        proc.send_signal(signal.SIGINT)
        try:  # the limit is only against a hang (a busy CI machine once took more than 120 s)
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # where it hangs, for the failure message
            time.sleep(2)
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the preflight did not exit within 600 s of the SIGINT; its stacks:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "preflight: interrupted: every run of the script was stopped" in err and "Traceback" not in err
    deadline = time.monotonic() + 60  # (the kernel reaps a killed process at once; allow for a busy machine)
    while alive(set(seen), set(seen.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(set(seen), set(seen.values())) == []


def test_output_is_streamed_and_capped(copies):
    """A script that prints 1 MB per step: the preflight keeps the last 64 KB of each run's output, counts the rest,
    and warns; every check still passes."""
    path = pc.write(copies, "chatty", [], pc.CHATTY)
    info = preflight.preflight(str(path), steps=STEPS)
    assert failed(info) == [], preflight.format_report(info)
    long = next(r for r in info["runs"] if r["label"] == "long")
    assert long["output_bytes"] >= STEPS * (1 << 20)
    warning = next(w["text"] for w in info["warnings"] if w["check"] == "run")
    assert warning.startswith("the script prints a lot (the preflight keeps the last 64 KB of each run's output): ")
    assert "short printed 20.0 MB" in warning and "long printed" not in warning, warning  # the largest first



def test_pool_keeps_the_tail_counts_the_rest_and_kills_at_the_deadline():
    """tools.preflight.procs without the script: a child printing 3 MB comes back as its last 64 KB and the exact
    count; a child that never ends is killed at its deadline, its group with it."""
    def chatty(rank):
        for i in range(3 * 1024):
            sys.stdout.write(f"{i:07d}" + "." * 1016 + "\n")

    def forever(rank):
        time.sleep(600)

    pool = procs.Pool()
    a, b = procs.Proc("a", 1, chatty, ()), procs.Proc("b", 2, forever, ())
    pool.start(a)
    pool.start(b)
    b.deadline = time.monotonic() + 2
    done = []
    while pool.active:
        done += pool.poll()
    assert a.total == 3 * 1024 * 1024 and len(a.tail) == procs.TAIL_BYTES and a.output().endswith("." * 1016 + "\n")
    assert a.output().splitlines()[-1].startswith("0003071") and not a.killed and not a.abnormal()
    assert b.killed == "time" and all(os.WIFSIGNALED(s) for s in b.status.values()) and len(b.status) == 2
    c = procs.Proc("c", 1, forever, ())
    pool.start(c)
    pool.stop(grace=0.5)
    assert c.killed == "stop" and pool.active == []


def test_unsaveable_state_is_named_by_its_path(copies):
    """A value in `state` that no checkpoint can hold (a generator object) is named by its key path at step 0, in
    `resume`, and as the cause of the failure in save_checkpoint."""
    path, info = run_copy(copies, "generator", [], "\ndef after_step(step, model, optimizers, state):\n"
                          "    state.setdefault('it', (i for i in range(3)))\n")
    assert "resume" in failed(info) and "run" in failed(info), preflight.format_report(info)
    assert detail(info, "resume").startswith("at step 0 (after after_step) `state` holds what a checkpoint cannot hold: "
                                             "state['it'] (a generator)")
    assert "the cause, probably: at step 0 (after after_step) `state` holds" in detail(info, "run")


@pytest.mark.parametrize("where,change", [
    ("init_params", [("def init_params(model):\n", "def init_params(model):\n"
                      "    model.blocks[0].mlp = GeluMLP(model.embed.weight.size(1))\n")]),
    ("make_optimizers", [("def make_optimizers(model):\n", "def make_optimizers(model):\n"
                          "    model.blocks[0].mlp.forward = types.MethodType(GeluMLP.forward, model.blocks[0].mlp)\n")]),
])
def test_a_module_swapped_while_training_fails_architecture(copies, where, change):
    """The module tree is checked on the model that trains: block 0's MLP replaced in init_params (a resume, which
    skips init_params, then trains another model: resume fails too), or its forward rebound in make_optimizers."""
    extension = "\nclass GeluMLP(MLP):\n    def forward(self, x):\n        return self.proj(F.gelu(self.fc(x)).square())\n"
    path, info = run_copy(copies, f"swap_{where}", change, extension)
    assert "architecture" in failed(info), preflight.format_report(info)
    text = detail(info, "architecture")
    if where == "init_params":
        assert "after init_params: blocks.0.mlp is a GeluMLP (the baseline's: MLP)" in text, text
    else:
        assert failed(info) == ["architecture"], preflight.format_report(info)
        assert "after make_optimizers: blocks.0.mlp.forward is rebound on the module (an instance attribute)" in text


def test_schedule_spike_and_absolute_steps_are_warned(copies):
    """A momentum of 0.5 at one step of a 0.95 schedule is shown as a spike, and a schedule that names an absolute step
    (`if step > 2000`) is warned about under --steps, where that part never runs; neither fails a check."""
    path, info = run_copy(copies, "spiky", [], pc.SPIKY)
    assert failed(info) == [], preflight.format_report(info)
    texts = [w["text"] for w in info["warnings"] if w["check"] == "hparams"]
    assert "a spike in the schedule: 0 Muon groups 0-2 mu = 0.5 at step 6 (0.95 around it)" in texts, texts
    scale = next(t for t in texts if t.startswith("under --steps 12 the schedule is not the script's own (3250 steps) "
                                                  "compressed: "))
    assert "lr = " in scale and "run the preflight without --steps" in scale
    row = next(r for r in info["hparams"]["rows"] if r["key"] == "mu")
    assert (row["min"], row["min_step"], row["max"]) == (0.5, 6, 0.95)
    assert "spikes (a short excursion from the values around it): 0 Muon groups 0-2 mu = 0.5 at step 6" in \
        preflight.format_report(info)



# bad input: one clear line, exit 1 (the script is wrong) or 2 (no such file, a bad argument)

def test_missing_names_fail_cleanly(tmp_path, capsys):
    path = tmp_path / "train.py"
    path.write_text("import torch\n\ndef main(num_trials=1):\n    pass\n")
    assert preflight.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  load" in out and "lacks GPT" in out and "Traceback" not in out
    assert "FAIL: 1 of 23 checks (load)" in out


def test_missing_extension_points_fail_cleanly(tmp_path):
    text = pc.text().replace("def readouts(step, model, val_loss, evaluate, state):", "def readout_values(step, model, "
                                                                                      "val_loss, evaluate, state):")
    path = tmp_path / "old.py"
    path.write_text(text)
    info = preflight.preflight(str(path))
    assert failed(info) == ["load"]
    assert "lacks readouts: the preflight watches the script through these names" in detail(info, "load")


def test_syntax_error_fails_cleanly(tmp_path):
    info = preflight.preflight(str(pc.broken(tmp_path, "load@syntax")))
    assert failed(info) == ["load"]
    assert "syntax error at line" in detail(info, "load")


PUBLIC_FORMAT = '''import argparse
import os
import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
dist.init_process_group(backend="nccl")
model = torch.nn.Linear(2, 2).cuda()
for step in range(10):
    model(torch.randn(2, 2).cuda()).sum().backward()
'''


def test_public_repo_format_gets_what_to_change(tmp_path, capsys):
    """A script that parses flags and trains at import (the public repo's format) is not imported: one message."""
    path = tmp_path / "train_gpt.py"
    path.write_text(PUBLIC_FORMAT)
    assert preflight.main([str(path), "--steps", "5"]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out and "usage:" not in out
    line = next(line for line in out.splitlines() if "public repo's format" in line)
    assert "line 8: parses the command line (parser.parse_args)" in line
    assert "line 9: starts distributed or CUDA work (dist.init_process_group)" in line and "no main(num_trials)" in line
    assert "python -m tools.new" in line and "docs/writing-an-approach.md" in line and "SEED=" in line
    assert "FAIL  hardcoded" in out  # argparse is also a hard-coding problem


def test_nonexistent_path_via_module_entry_point(tmp_path):
    missing = tmp_path / "nope.py"
    proc = subprocess.run([sys.executable, "-m", "tools.preflight", str(missing)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "FAIL  load" in proc.stdout and "No such file" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--keep-logs", "FILE"], "a file is there; give a directory"),
])
def test_bad_arguments_exit_2_before_running(tmp_path, capsys, args, message):
    file = tmp_path / "a_file"
    file.write_text("x")
    args = [str(file) if a == "FILE" else a for a in args]
    with pytest.raises(SystemExit) as e:
        preflight.main([str(BASELINE)] + args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert file.read_text() == "x"


def test_a_script_that_stalls_when_imported_is_stopped(tmp_path, monkeypatch):
    """The script's code that runs in the preflight's own process (its import) has a time limit too."""
    monkeypatch.setattr(core, "STATIC_LIMIT_S", 2)
    path = tmp_path / "loops.py"
    path.write_text(pc.text().replace("train_steps = 3250\n", "train_steps = 3250\nwhile True:\n    pass\n"))
    info = preflight.preflight(str(path), steps=STEPS)
    assert failed(info) == ["load"] and detail(info, "load").endswith(
        "importing it did not end within 2 s (stopped): an endless loop or a wait at the top level of the script?")
