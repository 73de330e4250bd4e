r"""tools.preflight's judging code: the cases mutation testing (mutmut, docs/preflight.md "Mutation testing") found
untested after the split into tools/preflight/ and the new checks. Each assertion failed for at least one changed
copy of the code: the exact text a user reads (stalls, printed output, the twin's failures, the learning curve), the
edges of every rule (exact thresholds, "and N more" after 3/4/5 names), the spikes of a schedule at its ends and
edges, and the --steps comparison's window and tolerance. Numbers are worked out by hand in the comments.

The 55 mutants of the judging modules that survive these tests and test_preflight_judging.py change nothing a user
can observe (mutmut 3.8.1 names, all under tools.preflight.; `mutmut show NAME` prints the change):
- static.x_check_imports__mutmut_29, x_import_time_work__mutmut_14, _17, _21: "XXXX" or "..." as the name of a call
  that is no dotted name (a lambda, a subscript) or of a node that is no call: no such name is one the scans look for
  (__import__, import_module, a code loader, parse_args, cuda, set_device, init_process_group, backward, step,
  torch.cuda.*). static.x_check_hardcoded__mutmut_166: problem "" for None: both falsy, nothing is appended.
- compare.x__full_size_params__mutmut_8: also stubs the names with a leading "_" that end in "_": torch.nn.init's
  private helpers (called only by the public init functions, stubbed anyway) and its dunders (not read while a
  model is built); all are restored. compare.x_check_architecture__mutmut_84, _95: torch.randint(V, size) draws
  the same numbers from the generator as torch.randint(0, V, size). compare.x_check_gap__mutmut_48: 51 for the
  check's 50 train steps: any number from 41 to 80 is more than tiny shard 1 holds (40) and at most what shards 1
  and 3 hold (80), so both launches are judged alike.
- logcheck.x_check_log_script__mutmut_46, _49: split("\n") or split("\n", 2) for split("\n", 1): the first
  element, the line after the script, is the same.
- schedule.x_find_spikes__mutmut_6, _10: a constant series, or one of 2 values, goes on to compute: with a tolerance
  of 0, or h = 0, every value is its own median, so none is off. _54: one more reflected value past the end: the
  windows read only h of them. _75: the scan starts at step 1: step 0 is the median of its own window (the window
  is point-reflected through it), so it is never off. _84, _85, _86: the bound of the inner loop: the last step is
  likewise never off, so a run of off steps ends before it and j + 1 < n always holds. _111: skips step j + 1,
  which is not off (the run ended there).
- schedule.x_schedule_rows__mutmut_16, _25, _63, _65, _67, _69: `if values or True`: a group's values are never
  empty (the probe and evaluate_schedule create a group's dict only to store a value in it).
- schedule.x_scale_mismatches__mutmut_50: the tolerance without |v|: it differs by rel * (|v| - max(|low|, |high|)),
  which matters only for a v within rel of the window's end: a change of 1e-18 relative, below a double's precision.
- trajectory.x_first_rank_difference__mutmut_42, _43: [+1] or [-2] for [-1]: only the list's length is used.
  trajectory.x_first_parting__mutmut_100: (a and b)[k] for (a or b)[k]: both are non-empty there (k >= 0), and
  their first k + 1 entries have the same (trial, step), of which only the step is used.
- resume.x_judge_resume_short__mutmut_34: `problems =` for `problems +=`: problems is still [] there. _100, _108:
  "XXXX" for the "" of a run without a log: neither has a val line. _113: range(train_steps + 2): the loop
  validates at its steps 0..train_steps, so no val line has step train_steps + 1. _120: the note on what the
  restore lost is also made when there is no problem: judge_resume uses the notes only with problems.
  resume.x_judge_resume_late__mutmut_15: len(saved) >= 1: with one rank saved[1:] is empty and any() is False.
  resume.x_judge_resume__mutmut_123: the problems joined with "XX\nXX" before looking for LOST_KINDS' words, none of
  which holds "XX" or a line break.
- verdicts.x__size__mutmut_12, _17, _18, _19, _20: the bytes/KB boundary (1 KB): _size is called only for more than
  64 KB. verdicts.x_judge_run__mutmut_105, _112, _193: 1 for 0 as the output size of a run that has none: it is
  under both thresholds (64 KB, 1 MB) either way, and the sort orders only the runs that are printed.
- verdicts.x__largest_difference__mutmut_2: nan_to_num(None) replaces nan with 0, as nan_to_num(0).
- verdicts.x_judge_ranks__mutmut_63: trial[1]["trial"] for trial[0]["trial"]: the ranks of a completed run end the
  same trials in the same order. _85: world >= 1: a 1-rank run has one result, and first_rank_difference of one
  result is None.
- verdicts.x_judge_membership__mutmut_41, _43: runs None or needs_complete None in a call with needs_complete=False:
  _verdict reads runs only when needs_complete is true. _79, _81: r.get("no_grad", None): Counter.update(None)
  does nothing, as update({}). verdicts.x_judge_weights__mutmut_72: None for [] as the problems: both falsy.
- trained.x_checkpointable__mutmut_9, _11: weights_only=None or left out: torch.load has defaulted to
  weights_only=True since torch 2.6 (requirements.txt: torch>=2.11). trained.x_uncheckpointable__mutmut_15: None
  for [] as `found`: `found or [...]` is the same.

update_math.py (issue 31: descent, stack_split), with tests/test_preflight_update_math.py alone: 1068 mutants, 1013
killed, 55 survived, 0 timed out; the tests added after that run kill stack_split_problems _101, _134,
StackSplitProbe.optimizer_step _62, _64, _68 (stack_split_s) and judge_descent _74 (rerun by name: killed). The others change nothing a user can observe:
- time bookkeeping: DescentProbe.optimizer_stepped _17, _19, _22 (a missing or 1.0 default of descent_s: the key is
  always set by optimizer_step first).
- ReductionSpy.__torch_function__ _6, _9, _12 (a default for __name__: torch's functions have one), _42 (a tensor as
  a positional dim: no reduction takes one), _48, _49, _54, _61, _63 (Tensor.norm passes p and dim as keywords, so
  "norm" never takes the positional path; linalg norms with fewer than 3 positional arguments reduce every
  dimension either way), _55-_57 (the same branch's edges for len(args) == 1, where "dim" is absent).
- the float64 path: _float64_newton_schulz _6, _12 (getattr without a default where the script has newton_schulz,
  the harness's `load` requires it; dtype=None gives the function's float32 inputs float64 results here),
  _float64_twin _8, _19 (replacing an attribute that is already the module's function, or comparing with a None
  default, where it exists), _run_split _6.
- _calls _23 (fork_rng devices None on the CPU), _25 (another fixed seed), _28 (the spy's rerun without W: it only
  names reductions, and those before W's first use are still seen), _52 (copy.copy of a non-tensor state value:
  immutable in every optimizer here).
- _differs _10 (diff / norm for diff == 0 is 0 too), split_difference _39 (a key in one state only is caught by
  is_tensor(None) or by the inequality either way), _owners _21 (equal costs: any constant).
- stack_split_problems _9, _37, _44-_47 (another seed or scale of the random W: any works), _13, _14 (the group's
  params kept in the copy: update() does not read them), _52, _55 (gradients in float32: these updates still agree
  matrix by matrix), _73, _74 (module or opt None to _owners: round robin gives assign_ranks' split for equal
  costs), _109 (the spy's rerun without the module: its float64 newton_schulz changes no reduction), _131, _133 (the
  count of reductions shown, never more than 3 in a test).
- StackSplitProbe.optimizer_step _43, _50, _57 (hub.checking: update() is not hooked, so no event is suppressed).
"""
import math

import torch

from test_preflight_judging import event, final, learn_run, log_text, make_run, result, traj, verdict
from tools.preflight import common, compare, logcheck, resume, trained, trajectory, verdicts
from tools.preflight import schedule as pf_schedule

RUN_FIX = next(fix for cid, _, _, fix in common.CHECKS if cid == "run")


# -----------------------------------------------------------------------------
# run: stalls, printed output, time limits

def test_judge_run_names_each_stall_and_the_runs_stopped_with_it():
    out = "\n".join(f"out {i}" for i in range(12))
    ranks = make_run("ranks", 2, [dict(rank=0, where="in before_forward (trial 1, step 1600)"),
                                  dict(rank=1, where="in optimizer 0 (Muon).step() (trial 1, step 1600)")],
                     killed="time", limit_s=61.7, limit_why="5 x the baseline's 6.3 s + 30 s", outputs=[out, ""],
                     completed=False)
    long = make_run("long", results=[dict(rank=0)], killed="time", limit_s=120.0, limit_why="120 s + 0.5 s per step",
                    outputs=[], completed=False)
    tail = make_run("tail", 2, [dict(rank=0, error="killed"), dict(rank=1)], killed="stall", completed=False)
    checks = verdict(verdicts.judge_run, [ranks, tail, long], {})
    assert checks["run"]["status"] == "FAIL"
    assert checks["run"]["detail"] == (
        "ranks (ranks things): stalled: not done after 62 s (its limit: 5 x the baseline's 6.3 s + 30 s), killed; "
        "rank 0 was in before_forward (trial 1, step 1600); rank 1 was in optimizer 0 (Muon).step() (trial 1, step "
        "1600)\n  last output:\n" + "\n".join(f"out {i}" for i in range(2, 12)) + "\n"  # the last 10 lines
        "long (long things): stalled: not done after 120 s (its limit: 120 s + 0.5 s per step), killed; it never "
        "reached main()\n"
        "stopped with it: tail")
    assert checks["run"]["fix"] == "find the endless loop or the wait where the run stalled (named above)"
    # an exception is no stall: the fix stays the checklist's; no output kept: none shown
    checks = verdict(verdicts.judge_run, [make_run(results=[result(error="SystemExit: 3")], outputs=[])], {})
    assert checks["run"]["detail"] == "long (long things): rank 0 failed:\nSystemExit: 3"
    assert checks["run"]["fix"] == RUN_FIX


def test_judge_run_warns_of_a_script_that_prints_a_lot():
    runs = [make_run("short", output_bytes=2 ** 20 + 1), make_run("long", output_bytes=3 * 2 ** 20, limit_s=34.4),
            make_run("ranks", 2, output_bytes=2 ** 20), make_run("twin", output_bytes=2 ** 16),
            make_run("tail", 2, output_bytes=2 ** 16 + 1)]
    report = common.Report()
    verdicts.judge_run(report, runs, {})
    # over 1 MB (2 ** 20 bytes exactly is not), the most first
    assert report.warnings == [dict(check="run", text="the script prints a lot (the preflight keeps the last 64 KB of "
                                                      "each run's output): long printed 3.0 MB, short printed 1.0 MB")]
    # over 64 KB (2 ** 16 bytes exactly is not): said in the run's line, with its time limit
    assert report.checks["run"]["status"] == "PASS" and report.checks["run"]["detail"].splitlines() == [
        "short (short things, 1 microbatch): 1.0 s, printed 1.0 MB (the last 64 KB kept)",
        "long (long things, 1 microbatch): 1.0 s (limit 34 s), printed 3.0 MB (the last 64 KB kept)",
        "ranks (ranks things, 1 microbatch per rank): 1.0 s, printed 1.0 MB (the last 64 KB kept)",
        "twin (twin things, 1 microbatch): 1.0 s",
        "tail (tail things, 1 microbatch per rank): 1.0 s, printed 64.0 KB (the last 64 KB kept)"]
    report = common.Report()
    verdicts.judge_run(report, [make_run(f"r{i}", output_bytes=(i + 2) * 2 ** 20) for i in range(4)], {})
    assert report.warnings[0]["text"].endswith(": r3 printed 5.0 MB, r2 printed 4.0 MB, r1 printed 3.0 MB and 1 more")


# -----------------------------------------------------------------------------
# ranks, updates

SAME = [event(0, "init_params"), event(0, "before_forward"), event(0, "optimizer 0 (Muon).step()")]


def test_judge_ranks_names_the_first_place_the_ranks_part():
    noisy = SAME[:1] + [event(0, "before_forward", params=(1, 3)), event(0, "optimizer 0 (Muon).step()", (4, 5))]
    runs = [make_run("ranks", 2, [result(rank=0, finals=[final(1, **{"parameter w": torch.ones(2)})], events=SAME),
                                  result(rank=1, finals=[final(1, **{"parameter w": torch.tensor([1.0, 1.5])})],
                                         events=noisy)])]
    checks = verdict(verdicts.judge_ranks, runs)
    assert checks["ranks"]["status"] == "FAIL" and checks["ranks"]["detail"] == (
        "the ranks first differ after before_forward (trial 1, step 0): parameters (1 tensors); the ranks end with "
        "different parameters: w (largest difference 0.5) in ranks trial 1")
    assert checks["ranks"]["fix"] == trajectory.RANK_FIXES["before_forward"]


def test_first_rank_difference_edges():
    # another sequence: the place of rank 0's event, as a tuple (trial, step, place, text)
    assert trajectory.first_rank_difference([dict(rank=0, events=SAME), dict(rank=1, events=SAME[:1] + SAME[2:])]) == (
        1, 0, "before_forward", "rank 1 ran another sequence (optimizer 0 (Muon).step() at step 0)")
    # a rank with one more parameter tensor, equal where both have one
    more = SAME[:1] + [event(0, "before_forward", params=(1, 2, 3))]
    assert trajectory.first_rank_difference([dict(rank=0, events=SAME), dict(rank=1, events=more)]) == (
        1, 0, "before_forward", "parameters (1 tensors)")
    # `state`: three paths, then how many more
    keys = [f"state['{k}']" for k in "abcd"]
    other = SAME[:1] + [event(0, "before_forward", state=tuple((k, 2) for k in keys))]
    mine = SAME[:1] + [event(0, "before_forward", state=tuple((k, 1) for k in keys))]
    assert trajectory.first_rank_difference([dict(rank=0, events=mine), dict(rank=1, events=other)])[3] == (
        "`state`: state['a'], state['b'], state['c'] and 1 more")


def test_updates_lists_three_turned_parameters_and_its_fix():
    flips = {(f"place{i}", "w"): dict(step=i, cos=-0.9, count=2, trial=1) for i in range(4)}  # 2 steps: enough
    checks = verdict(verdicts.judge_membership, [make_run(results=[result(flips=flips)])])
    assert checks["updates"]["status"] == "FAIL" and checks["updates"]["detail"] == "; ".join(
        f"place{i} turned w around at step {i} of the long run (cosine -0.900 between its new and its old value; 2 "
        "steps in all)" for i in range(3))
    assert checks["updates"]["fix"] == (
        "a factor that multiplies a weight (weight decay 1 - lr * wd, a scaling in after_step such as 1 - c * lr) must "
        "stay above 0 at the largest lr: below 0 it flips the weight's sign every step")


# -----------------------------------------------------------------------------
# architecture: the full-size model is built with torch.nn.init switched off

def test_full_size_params_switch_off_only_the_init_functions():
    touched = []

    class Module:
        vocab_size, num_layers, model_dim = 5, 2, 3

        class GPT(torch.nn.Module):
            def __init__(self, V, L, D):
                super().__init__()
                # calculate_gain is no init function: it still computes; normal_'s return value is the tensor
                self.gain = torch.nn.Parameter(torch.full((1,), torch.nn.init.calculate_gain("relu")))
                self.embed = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(V, D)))
                self.blocks = torch.nn.ModuleList(torch.nn.Linear(D, D, bias=False) for _ in range(L))
                probe = torch.zeros(2)
                torch.nn.init.ones_(probe)
                touched.append(probe.sum().item())

    ones = torch.nn.init.ones_
    assert compare._full_size_params(Module) == {"gain": ((1,), torch.float32), "embed": ((5, 3), torch.float32),
                                                 "blocks.0.weight": ((3, 3), torch.float32),
                                                 "blocks.1.weight": ((3, 3), torch.float32)}
    assert touched == [0.0]  # the weights are allocated, never written
    assert torch.nn.init.ones_ is ones and torch.nn.init.ones_(torch.zeros(1)).item() == 1.0  # and switched back on


# -----------------------------------------------------------------------------
# logs: a missing last val is named only when that is all that is missing

def test_check_log_format_names_the_missing_last_val_only_alone():
    def fmt(steps, nonfinite=False):
        return logcheck.check_log_format(log_text([steps], 10), [0, 5, 10], 10, 1, nonfinite)

    other = "trial 1 validates at steps other than the script's is_val_step says: "
    assert fmt([0, 5]) == ("trial 1 has no val after its last step 10: every trial validates at train_steps "
                           "(RULES 6.1), and its final val loss is that val")
    assert fmt([0]) == other + "missing 5, 10"
    assert fmt([0, 5, 5]) == other + "missing 10; twice 5"
    assert fmt([0, 3, 5]) == other + "extra 3; missing 10"
    assert fmt([5, 0], nonfinite=True) == other + "missing 10"  # cut by a nan loss, but out of order: not a prefix


# -----------------------------------------------------------------------------
# the schedule: values, rows, spikes, --steps

def test_hparam_value_reads_an_element_by_its_whole_index():
    group = dict(lrs=[float(i) for i in range(12)], betas=(0.9, 0.99), short=[1.0] * 5)
    assert pf_schedule.hparam_value(group, "lrs[10]") == 10.0  # numeric_hparams names every element of a list
    assert pf_schedule.hparam_value(group, "betas[2]") is None  # an element the value no longer has
    assert pf_schedule.hparam_value(group, "short[10]") is None
    assert pf_schedule.problem("lr", 0.0) is None and pf_schedule.problem("weight_decay", 0.0) is None  # 0 is fine


def test_schedule_rows_min_and_max_of_a_rising_key():
    rows = pf_schedule.schedule_rows({(0, "AdamW", "lr"): {0: {0: 0.1, 5: 0.5, 9: 1.0}}}, [])
    assert [(r["min"], r["min_step"], r["max"], r["max_step"]) for r in rows] == [(0.1, 0, 1.0, 9)]


def test_spike_text_of_one_step_and_one_group():
    row = dict(optimizer="0 Muon", groups=[0], key="mu")
    assert pf_schedule.spike_text(row, dict(first=6, last=6, value=0.5, around=0.95)) == (
        "0 Muon group 0 mu = 0.5 at step 6 (0.95 around it)")
    assert pf_schedule.spike_text(dict(row, groups=[0, 2]), dict(first=6, last=7, value=0.5, around=0.95)) == (
        "0 Muon groups 0,2 mu = 0.5 at steps 6-7 (0.95 around it)")


def spikes(values, **kw):
    return pf_schedule.find_spikes(list(range(len(values))), values, **kw)


def test_find_spikes_short_series_and_the_ends():
    """The median of a window of 2h + 1 values, h = min(25, (n - 1) // 2), the ends reflected through the end values
    (2 * v[0] - v[i]), so an end value is the median of its own window: a change at the first or last step is not
    a spike (it may be where the schedule steps)."""
    assert spikes([1.0, 0.0, 1.0]) == [(1, 1, 0.0, 1.0)]  # the shortest series with one (h = 1)
    assert spikes([0.95, 0.5] + [0.95] * 10) == [(1, 1, 0.5, 0.95)]
    assert spikes([0.5] + [0.95] * 11) == [] and spikes([0.95] * 11 + [0.5]) == []
    assert spikes([0.95] * 8 + [0.5, 0.5]) == []
    # on a ramp near its end the reflection counts: steps 0..4 of 0, 0.25, 0.5, 0.75, 1 with 2.0 at step 3, h = 2:
    # the window of step 3 is 0.25, 0.5, 2.0, 1.0 and 2 * 1.0 - 2.0 = 0 (step 3 reflected through step 4): median 0.5
    assert spikes([0.0, 0.25, 0.5, 2.0, 1.0]) == [(3, 3, 2.0, 0.5)]
    # 4 steps: h = 1, the window of step 2 is 0.25, 2.0, 0.75 (median 0.75)
    assert spikes([0.0, 0.25, 2.0, 0.75]) == [(2, 2, 2.0, 0.75)]


def test_find_spikes_values_widths_and_tolerance():
    two = [0.95] * 4 + [0.5] + [0.95] * 8 + [0.6, 0.7] + [0.95] * 5
    assert spikes(two) == [(4, 4, 0.5, 0.95), (13, 14, 0.6, 0.95)]  # each spike, its value furthest from the median
    assert spikes([0.95] * 5 + [0.7, 0.4, 0.8] + [0.95] * 6) == [(5, 7, 0.4, 0.95)]
    assert spikes([0.5, 0.2, 1.0]) == [(1, 1, 0.2, 0.5)]  # the spike's own value, not the next step's
    # range 20: the tolerance is 0.05 * 20 = 1.0; 1.0 off the median is not over it, 20.0 is
    assert spikes([0.0] * 5 + [1.0] + [0.0] * 3 + [20.0] + [0.0] * 2) == [(9, 9, 20.0, 0.0)]
    # a momentum warmup 0.85 -> 0.95 (range 0.1, tolerance 0.005) with 0.9 at step 40: a spike of 0.05
    assert spikes([0.85] * 10 + [0.95] * 30 + [0.9] + [0.95] * 29) == [(40, 40, 0.9, 0.95)]
    # values that jump between 0 and 1 around 0.5: 25 steps (SPIKE_MAX_STEPS) are a spike, 26 are not
    zigzag = lambda n: [0.5] * 40 + [0.0 if k % 2 else 1.0 for k in range(n)] + [0.5] * 40  # noqa: E731
    assert spikes(zigzag(25)) == [(40, 64, 1.0, 0.5)] and spikes(zigzag(26)) == []
    # a schedule with a nan has none (lr and hparams report the nan itself)
    mu = [0.95] * 8 + [0.5] + [0.95] * 11
    assert spikes(mu) == [(8, 8, 0.5, 0.95)] and spikes(mu[:15] + [math.nan] + mu[16:]) == []


def test_scale_mismatches_window_and_tolerance():
    def one(run, full, run_steps=2, full_steps=4, **kw):
        return pf_schedule.scale_mismatches({(0, "A", "lr"): {0: run}}, run_steps, {(0, "A", "lr"): {0: full}},
                                            full_steps, **kw)

    ramp = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    # 2 steps of 4: step 0 is steps 0-1 of the full schedule (1.0 to 2.0), step 1 is steps 2-3 (3.0 to 4.0)
    assert one({0: 2.5, 1: 3.5}, ramp) == [("0 A", 0, "lr", 0, 2.5, (0, 1), (1.0, 2.0))]
    assert one({0: 1.5, 1: 3.5}, ramp) == []
    assert one({0: 0.0, 1: 0.0}, {t: 0.0 for t in range(4)}) == []  # an lr of 0: equal, not off by the tolerance
    # the tolerance, 1e-9 of the largest magnitude in the window (whatever the sign) and the value
    assert one({0: 1000.0000005, 1: 1000.0}, {t: 1000.0 for t in range(4)}) == []
    assert one({0: 1 - 5e-7, 1: 1000.0}, {0: 1.0, 1: 1000.0, 2: 1000.0, 3: 1000.0}) == []
    assert one({0: -1 + 5e-7, 1: -1.0}, {0: -1000.0, 1: -1.0, 2: -1.0, 3: -1.0}) == []
    assert one({0: 1 - 5e-6, 1: 1000.0}, {0: 1.0, 1: 1000.0, 2: 1000.0, 3: 1000.0})[0][4] == 1 - 5e-6
    # the window is closed: its end values pass without any tolerance
    assert one({0: 1.0, 1: 4.0}, ramp, rel=0) == [] and one({0: 2.0, 1: 3.0}, ramp, rel=0) == []
    # a group the full schedule lacks (added to the optimizer during the run): the other groups are still compared
    run = {(0, "A", "lr"): {0: {0: 1.0}, 1: {0: 2.0}}}
    assert pf_schedule.scale_mismatches(run, 1, {(0, "A", "lr"): {1: {0: 1.0}}}, 1) == [
        ("0 A", 1, "lr", 0, 2.0, (0, 0), (1.0, 1.0))]
    # a key the full schedule lacks (an optimizer's step() writes it, set_hparams never runs it): not compared
    run = {(0, "A", "lr"): {0: {0: 1.0}}, (0, "A", "step"): {0: {0: 1.0}}}
    assert pf_schedule.scale_mismatches(run, 1, {(0, "A", "lr"): {0: {0: 1.0}}}, 1) == []


# -----------------------------------------------------------------------------
# val_steer: where the twin parts, and every way it can fail to run

def test_first_parting_edges():
    a = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 5, 6), ((("lr", 0.5),),)))
    c = traj((0, (1, 2, 3), ((("lr", 0.5),),)), (1, (4, 9, 7), ((("lr", 0.5),),)))
    # keys that readouts wrote in the run that went on are not compared either
    assert trajectory.first_parting(dict(a, readout_keys={"'best'"}), c) == "by the end of step 1: q"
    four = ((("lr", 0.5), ("mu", 0.9), ("wd", 0.1), ("eps", 0.2)),)
    other = ((("lr", 0.25), ("mu", 0.8), ("wd", 0.2), ("eps", 0.3)),)
    assert trajectory.first_parting(traj((0, (1, 2, 3), four)), traj((0, (1, 2, 3), other))) == (
        "step 0, after set_hparams: the hyperparameters differ: lr 0.5 (perturbed: 0.25), mu 0.9 (perturbed: 0.8), "
        "wd 0.1 (perturbed: 0.2) and 1 more")
    more_keys = ((("lr", 0.5), ("wd", 0.1)),)
    assert trajectory.first_parting(a, traj((0, (1, 2, 3), more_keys))) == (
        "step 0, after set_hparams: the hyperparameters differ: (their keys)")
    paths = [tuple(f"p{i}" for i in range(6))]
    x = dict(trajectory=[(1, 0, 0, (0,) * 6, None)], trajectory_paths=paths, readout_keys=set())
    y = dict(x, trajectory=[(1, 0, 0, (1,) * 6, None)])
    assert trajectory.first_parting(x, y) == "by the end of step 0: p0, p1, p2, p3 and 2 more"
    assert trajectory.first_parting(a, traj()) == ("the twin ran 0 steps, the run that went on 2: training stopped "
                                                   "(or went on) on val")
    late = traj((5, (1, 2, 3), None), (6, (1, 2, 3), None))
    assert trajectory.first_parting(late, traj((5, (1, 2, 3), None))) == (
        "the twin ran 1 steps, the run that went on 2 (the same up to step 5): training stopped (or went on) on val")


def test_judge_val_steer_texts():
    a = traj((0, (1, 2, 3), None))
    long = make_run("long", results=[result(**a)])
    checks = verdict(trajectory.judge_val_steer, [])
    assert (checks["val_steer"]["status"], checks["val_steer"]["detail"]) == ("SKIP", "the twin run did not run")
    checks = verdict(trajectory.judge_val_steer, [dict(long, completed=False), make_run("twin", results=[result(**a)])])
    assert (checks["val_steer"]["status"], checks["val_steer"]["detail"]) == (
        "SKIP", "the long run did not complete (see run)")
    failed = make_run("twin", results=[dict(rank=0, error="ValueError: boom", traceback=(
        "Traceback (the script's frames):\n  File \"x.py\", line 5, in set_hparams\nValueError: boom at step 7\n"))],
        completed=False)
    checks = verdict(trajectory.judge_val_steer, [long, failed])
    assert (checks["val_steer"]["status"], checks["val_steer"]["detail"]) == (
        "FAIL", "the twin run (val losses perturbed) failed where the long run did not: ValueError: boom at step 7")
    checks = verdict(trajectory.judge_val_steer, [long, make_run("twin", results=[dict(rank=0)], completed=False)])
    assert checks["val_steer"]["detail"] == (
        "the twin run (val losses perturbed) failed where the long run did not: no result")
    checks = verdict(trajectory.judge_val_steer, [long, dict(failed, killed="stall")])
    assert (checks["val_steer"]["status"], checks["val_steer"]["detail"]) == (
        "SKIP", "the twin run was stopped (see run)")
    stalled = dict(failed, killed="time", limit_s=40.0, limit_why="x", outputs=["a\nb"],
                   results=[dict(rank=0, where="in set_hparams (trial 1, step 7)")])
    assert verdict(trajectory.judge_val_steer, [long, stalled])["val_steer"]["detail"] == (
        "the twin run (val losses perturbed) stalled: not done after 40 s (its limit: x), killed; rank 0 was in "
        "set_hparams (trial 1, step 7), where the long run did not")  # the first line only, not the output
    keys = make_run("long", results=[result(**traj((0, (1, 2, 3), None), keys={"'best'", "'acc'"}))])
    checks = verdict(trajectory.judge_val_steer, [keys, make_run("twin", results=[result(**a)])])
    assert checks["val_steer"]["detail"] == (
        "parameters, optimizer state and `state` bitwise the same at the end of all 1 steps with every val loss and "
        "readout perturbed (`state` keys readouts writes, not compared: 'acc', 'best')")


# -----------------------------------------------------------------------------
# resume: what a checkpoint cannot hold, the fixes

def test_uncheckpointable_state_names_three_paths_and_its_fix():
    bad = make_run("short", results=[result(uncheckpointable=dict(step=0, when="after_step", found=[
        (f"state['g{i}']", "generator") for i in range(4)]))])
    checks = verdict(resume.judge_resume, [bad], dict(n=10, k=5, a=8, b1=10, b=10, c=12), {})
    assert checks["resume"]["detail"] == (
        "at step 0 (after after_step) `state` holds what a checkpoint cannot hold: state['g0'] (a generator), "
        "state['g1'] (a generator), state['g2'] (a generator) and 1 more; a checkpoint keeps tensors, numbers, "
        "strings, lists, tuples and dicts (torch.load with weights_only=True)")
    assert checks["resume"]["fix"] == (
        "keep only tensors, numbers, strings and lists, tuples and dicts of them in `state`: for a generator or an "
        "iterator keep what rebuilds it (a torch.Generator's get_state(), a position)")


def test_judge_resume_fix_names_each_kind_lost():
    plan = dict(n=10, k=5, a=8, b1=10, b=10, c=12)
    W = {"parameter w": torch.ones(2), "RNG state": torch.ones(1)}
    ref = make_run("long", results=[result(saves={(1, 8): dict(W), (1, 10): dict(W)})], logs=[log_text([[0, 12]], 12)])
    lost = dict(W, **{"RNG state": torch.zeros(1), "module global G": 1})
    res = make_run("long_resume", results=[result(saves={(1, 10): lost})], stopped=True, fresh=False)
    checks = verdict(resume.judge_resume, [ref, res], plan, {})
    assert checks["resume"]["detail"].splitlines()[0] == "lost at a resume: the RNG, a module global"
    assert checks["resume"]["fix"] == "; ".join(f"{kind}: {hint}" for _, kind, hint in resume.LOST_KINDS[1:3])


# -----------------------------------------------------------------------------
# learns: thresholds, texts, the curve

BASE = learn_run("base_long", 4.852, [(0, 4.852), (12, 4.574)])  # the baseline's drop: 0.278


def test_judge_learns_skips_and_their_texts():
    good = learn_run("long", 4.852, [(0, 4.852), (12, 4.5)])
    checks = verdict(trained.judge_learns, [dict(good, nonfinite=True), BASE], 1.11)
    assert checks["learns"]["status"] == "PASS"
    assert verdict(trained.judge_learns, [BASE], 1.11)["learns"]["detail"] == (
        "the long run (or the baseline's) did not complete")
    checks = verdict(trained.judge_learns, [dict(good, completed=False), BASE], 1.11)
    assert (checks["learns"]["status"], checks["learns"]["detail"]) == (
        "SKIP", "the long run (or the baseline's) did not complete (see run)")
    # a long run without val losses (its loop never called evaluate) is not judged either
    assert verdict(trained.judge_learns, [learn_run("long", 4.852, []), BASE], 1.11)["learns"]["status"] == "SKIP"
    no_start = learn_run("long", None, [(12, 4.5)])
    assert verdict(trained.judge_learns, [no_start, BASE], 1.11)["learns"]["status"] == "SKIP"
    # a baseline that falls by 0.05 exactly does not learn here (0.1 - 0.05 is 0.05 in floats)
    checks = verdict(trained.judge_learns, [good, learn_run("base_long", 0.1, [(0, 0.1), (12, 0.05)])], 1.11)
    assert (checks["learns"]["status"], checks["learns"]["detail"]) == (
        "SKIP", "the baseline does not learn in 12 steps here: val loss 4.852 at the start, 4.500 at step 12 (entropy "
        "floor 1.110); the baseline on the same data: 0.100 -> 0.050 at step 12")
    checks = verdict(trained.judge_learns, [learn_run("long", 4.852, [(0, 4.852), (12, math.inf)]), BASE], 1.11)
    assert (checks["learns"]["status"], checks["learns"]["detail"]) == (
        "SKIP", "the val loss is not finite (see finite): val loss 4.852 at the start, inf at step 12 (entropy floor "
        "1.110); the baseline on the same data: 4.852 -> 4.574 at step 12")


def test_judge_learns_thresholds():
    """The baseline falls 4.75 -> 2.25, by 2.5: a fall of 0.1 * 2.5 = 0.25 passes, of 0.5 * 2.5 = 1.25 passes without
    a warning (all exact in floats)."""
    base = learn_run("base_long", 4.75, [(0, 4.75), (12, 2.25)])
    report = common.Report()
    trained.judge_learns(report, [learn_run("long", 4.75, [(0, 4.75), (12, 4.5)]), base], 1.11)
    assert report.checks["learns"]["status"] == "PASS" and len(report.warnings) == 1
    report = common.Report()
    trained.judge_learns(report, [learn_run("long", 4.75, [(0, 4.75), (12, 3.5)]), base], 1.11)
    assert report.checks["learns"]["status"] == "PASS" and report.warnings == []
    # under --steps with a schedule of absolute steps: a rise of 0.25 at most is not judged
    flat = learn_run("long", 4.5, [(0, 4.5), (12, 4.75)])
    report = common.Report()
    trained.judge_learns(report, [flat, base], 1.11, schedule_warned=True)
    text = ("the val loss does not fall: val loss 4.500 at the start, 4.750 at step 12 (entropy floor 1.110); the "
            "baseline on the same data: 4.750 -> 2.250 at step 12; curve (step: val loss): 0: 4.500, 12: 4.750")
    assert report.checks["learns"]["status"] == "PASS" and report.checks["learns"]["detail"] == (
        "not judged: under --steps the schedule is not the script's own compressed (see hparams): " + text)
    assert report.warnings == [dict(check="learns", text=text)]
    assert verdict(trained.judge_learns, [flat, base], 1.11)["learns"]["status"] == "FAIL"  # without --steps it fails
    # 72% of the baseline's fall (0.2 of 0.278): no warning
    report = common.Report()
    trained.judge_learns(report, [learn_run("long", 4.852, [(0, 4.852), (12, 4.652)]), BASE], 1.11)
    assert report.warnings == []
    # 0.121 of 0.4 is 30.25%: printed 30%
    report = common.Report()
    trained.judge_learns(report, [learn_run("long", 4.0, [(0, 4.0), (12, 3.879)]),
                                  learn_run("base_long", 4.0, [(0, 4.0), (12, 3.6)])], 1.11)
    assert report.warnings == [dict(check="learns", text=(
        "learns much more slowly than the baseline: val loss 4.000 at the start, 3.879 at step 12 (entropy floor "
        "1.110); the baseline on the same data: 4.000 -> 3.600 at step 12 (the val loss fell 0.121, 30% of the "
        "baseline's 0.400)"))]


def test_judge_learns_shows_eight_points_of_the_curve():
    def points(n):
        curve = [(s, 5.0 + s / 100) for s in range(n)]  # rising: it fails and shows its curve
        detail = verdict(trained.judge_learns, [learn_run("long", 4.852, curve), BASE], 1.11)["learns"]["detail"]
        return detail.split("curve (step: val loss): ")[1]

    assert points(8) == "0: 5.000, 1: 5.010, 2: 5.020, 3: 5.030, 4: 5.040, 5: 5.050, 6: 5.060, 7: 5.070"
    assert points(9) == "0: 5.000, 1: 5.010, 2: 5.020, 4: 5.040, 5: 5.050, 6: 5.060, 7: 5.070, 8: 5.080"
    # the first 3, the middle one (index 12 // 2 = 6) and the last 4
    assert points(12) == "0: 5.000, 1: 5.010, 2: 5.020, 6: 5.060, 8: 5.080, 9: 5.090, 10: 5.100, 11: 5.110"


# -----------------------------------------------------------------------------
# architecture of the model that trains; flips

def test_judge_live_architecture_lists_four_problems_and_its_fix():
    def detail(n):
        runs = [make_run(results=[result(arch=[dict(where=f"w{i}", problem=f"p{i}") for i in range(n)])])]
        report = common.Report()
        report.set("architecture", "PASS", "static ok")
        trained.judge_live_architecture(report, runs)
        return report.checks["architecture"]

    assert detail(4)["detail"] == "the model that trains: w0: p0; w1: p1; w2: p2; w3: p3"
    assert detail(5)["detail"] == "the model that trains: w0: p0; w1: p1; w2: p2; w3: p3 and 1 more"
    assert detail(6)["detail"] == "the model that trains: w0: p0; w1: p1; w2: p2; w3: p3 and 2 more"
    assert detail(1)["fix"] == ("keep the baseline's model classes: init_params and the other extension points may set "
                                "the weights' values only, not replace modules or their forward")


def test_flip_problems_two_steps_are_enough():
    runs = [make_run(results=[result(flips={("after_step", "w"): dict(step=3, cos=-0.8, count=2, trial=1)})])]
    assert trained.flip_problems(runs) == [
        "after_step turned w around at step 3 of the long run (cosine -0.800 between its new and its old value; 2 "
        "steps in all)"]
