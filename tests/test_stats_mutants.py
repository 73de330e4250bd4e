"""tools.stats, the cases mutation testing (mutmut, README "Mutation testing") found untested: the exact text a user
reads, the edges of every rule (exact thresholds, "..." after 3/4/10 names), the --vs side's warnings, and
the error messages. Numbers are worked out by hand in the comments.

The 16 mutants of tools/stats.py that survive these tests and test_tools_stats.py change nothing a tool or
a user can observe (mutmut 3.8.1 names; `mutmut show NAME` prints the change):
- x_bar_name__mutmut_2, _4, _5, _6: the text for a bar outside BARS; unreachable, --bar (stats, results)
  accepts only the two bars in BARS.
- x_step_stat__mutmut_9, _48: float("NAN") / float("INF") are the same values as float("nan") / float("inf").
- x_step_stat__mutmut_16, _24, _77, _85: StepStat.values set to None / []; no tool reads the field (as_dict
  leaves it out).
- x_step_stat__mutmut_55: `diff > 0` for `diff >= 0`: at diff == 0 the margin test 0 >= bar^2 fails anyway
  (both bars are > 0), so the verdict is the same.
- x_select_train_steps__mutmut_15: note "" for None when no run is left out: both are falsy, and callers
  only use it when true (tools.public_claims calls it only when runs are left out).
- x_missing_step__mutmut_15, _20: `<=` / `>=` for `<` / `>`: missing_step is called only for a step that is
  not a common val step, so no common step equals it.
- x_load_reference__mutmut_2, _4: the CSV opened without newline="": it has no quoted fields, so the rows
  read are the same.
"""
import argparse
import csv
import json
import math
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import ROOT, SCRIPT, add_column, curve, log_text, reference_curve, val_line, write  # noqa: E402

from tools import stats  # noqa: E402
from tools.logs import read_runs  # noqa: E402
from tools.stats import PoolError, analyze, baseline_deviations, check_pool, step_arg, step_stat  # noqa: E402

KEEP = "it still counts as a run (leaving it out would be cherry-picking)"


def passing_runs(final=3.2760):
    """4 runs, mean final + 0.0002 * (3250 - s) / 25 at step s (offsets -2, +2, -1, +1 in the 4th decimal):
    at bar 0.005 the mean passes from 3075 (3.2774, margin 0.0026 * 2 = 0.0052), not at 3050 (3.2776)."""
    return [curve(round(final + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)]


def run_text(capsys, argv):
    code = stats.main(argv)
    got = capsys.readouterr()
    return code, got.out.splitlines(), got.err.splitlines()


def run_json(capsys, argv):
    code = stats.main(argv + ["--json"])
    return code, json.loads(capsys.readouterr().out)


def edit(text, run, step, column, value):
    """`text` with `column` of run `run`'s (1-based) val line at `step` set to `value` (a string)."""
    lines, current = text.split("\n"), 0
    for i, line in enumerate(lines):
        if re.fullmatch(r"trial \d+/\d+ seed \d+", line):
            current += 1
        elif current == run and line.startswith(f"step:{step}/"):
            parts = line.split(" ")
            lines[i] = " ".join(f"{column}:{value}" if p.startswith(column + ":") else p for p in parts)
            return "\n".join(lines)
    raise AssertionError(f"no val line at step {step} in run {run}")


def bin_file(path):
    path.write_bytes(bytes(range(256)) * 10)
    return str(path)


# --- step_stat ----------------------------------------------------------------------------------------------

def test_step_stat_with_a_nan_value():
    s = step_stat(1625, [3.27, float("nan")], 0.005)
    assert (s.step, s.n, s.passed, s.n_needed) == (1625, 2, False, None)
    assert math.isnan(s.mean) and math.isnan(s.std) and math.isnan(s.margin)


def test_step_stat_std_overflow_is_inf():
    # a diverged but finite run: (1e200 - mean)^2 does not fit a float, so the std is inf, not an error
    s = step_stat(3250, [3.27, 1e200], 0.005)
    assert s.std == math.inf and s.mean == 5e199 and s.passed is False and s.n_needed is None


# --- the text report, line by line -------------------------------------------------------------------------------

def test_text_report_lines(tmp_path, capsys):
    runs = passing_runs()
    a = write(tmp_path / "a.txt", log_text(runs[:3]))
    b = write(tmp_path / "b.txt", log_text(runs[3:]))
    code, out, err = run_text(capsys, [a, b])
    assert code == 0 and err == []
    assert out[:5] == [
        "runs: n = 4 from 2 file(s): a.txt [3], b.txt [1]; train_steps 3250",
        "metric: val_loss",
        "bar: 0.005 = workspace bar: sigma 0.0016, one-sided p < .001: PASS when (3.28 - mean) * sqrt(n) >= 0.005",
        "    step    n      mean      std    margin  verdict n_needed",
        # step 0: 10.82584 in every run, margin (3.28 - 10.82584) * 2
        "       0    4  10.82584  0.00000 -15.09168  fail       never",
    ]
    # 3050: 3.2774, 3.2778, 3.2775, 3.2777: mean 3.2776, std sqrt(1e-7 / 3) = 0.00018, margin 0.0048,
    # n_needed ceil((0.005 / 0.0024)^2 = 4.34) = 5; 3075: mean 3.2774, margin 0.0052, ceil(3.70) = 4
    assert "    3050    4   3.27760  0.00018   0.00480  fail           5" in out
    assert "    3075    4   3.27740  0.00018   0.00520  PASS           4" in out
    assert "claim: steps_to_3_28 = 3075: mean 3.27740 std 0.00018 over n = 4 runs, margin 0.00520 >= 0.005 " \
           "(earliest passing val step)" in out
    # the declared step 3250 passes (mean 3.2760, margin 0.008): no "would need" after it
    code, out, _ = run_text(capsys, [a, b, "--step", "3250"])
    assert code == 0
    assert "declared step 3250: PASS: mean 3.27600 std 0.00018 over n = 4 runs, margin 0.00800 >= 0.005" in out


def test_text_report_when_nothing_passes(tmp_path, capsys):
    # two runs at 3.2790 and 3.2810: mean exactly 3.28 at 3250, margin 0, never passes
    flat = write(tmp_path / "flat.txt", log_text([curve(3.2790), curve(3.2810)]))
    code, out, _ = run_text(capsys, [flat, "--step", "3250"])
    assert code == 1
    assert "claim: NONE: no val step passes bar 0.005; at the final step 3250 mean 3.28000, margin 0.00000; " \
           "passing would need never at this mean" in out
    assert "declared step 3250: FAIL: mean 3.28000 std 0.00141 over n = 2 runs, margin 0.00000 < 0.005" in out
    # 3.2790 and 3.2784: mean 3.2787, margin 0.0013 * sqrt(2) = 0.00184, n_needed ceil(14.8) = 15
    near = write(tmp_path / "near.txt", log_text([curve(3.2790), curve(3.2784)]))
    code, out, _ = run_text(capsys, [near])
    assert code == 1
    assert "claim: NONE: no val step passes bar 0.005; at the final step 3250 mean 3.27870, margin 0.00184; " \
           "passing would need n = 15 runs at this mean" in out


def test_metric_line_names_a_column(tmp_path, capsys):
    path = write(tmp_path / "a.txt", add_column(log_text(passing_runs()), "val_ema_loss", -0.0006))
    code, out, _ = run_text(capsys, [path, "--metric", "val_ema_loss"])
    assert code == 0 and out[1] == "metric: val_ema_loss (a column of the val lines)"


@pytest.mark.parametrize("missing,shown", [
    (10, "steps left out (not in every run): 125, 250, 375, 500, 625, 750, 875, 1000, 1125, 1250"),
    (11, "steps left out (not in every run): 125, 250, 375, 500, 625, 750, 875, 1000, 1125, 1250 ..."),
])
def test_steps_left_out_lists_ten(tmp_path, capsys, missing, shown):
    short = curve(3.2762)
    for s in [125 * k for k in range(1, missing + 1)]:
        del short[s]
    path = write(tmp_path / "a.txt", log_text([curve(3.2760), short]))
    code, out, _ = run_text(capsys, [path])
    assert shown in out
    assert run_json(capsys, [path])[1]["steps_not_in_every_run"] == [125 * k for k in range(1, missing + 1)]


def test_steps_left_out_when_the_last_run_lacks_them(tmp_path, capsys):
    # the FIRST run has step 3250, the last does not: 3250 is still left out (not only the last run's gaps)
    runs = passing_runs()
    del runs[3][3250]
    code, out = run_json(capsys, [write(tmp_path / "a.txt", log_text(runs, trial_lines=False))])
    assert out["steps_not_in_every_run"] == [3250] and out["final"]["step"] == 3225


def test_warnings_go_to_stderr(tmp_path, capsys):
    runs = passing_runs()
    text = log_text(runs).replace(f"step:1625/3250 val_loss:{runs[1][1625]:.5f}", "step:1625/3250 val_loss:nan", 1)
    code, out, err = run_text(capsys, [write(tmp_path / "a.txt", text)])
    assert code == 0 and err == [f"warning: a.txt#2: val loss nan at step 1625; {KEEP}"]
    assert not any("warning" in line for line in out)


def reference_rows():
    with open(os.path.join(ROOT, "tools", "reference", "baseline_curve.csv"), newline="") as f:
        return {int(r["step"]): (float(r["mean_val_loss"]), float(r["std_val_loss"])) for r in csv.DictReader(f)}


def test_baseline_check_lines(tmp_path, capsys):
    ref = reference_rows()
    good = reference_curve()
    four, five = dict(good), dict(good)
    for s in (500, 1000, 1500, 2000):
        four[s] = five[s] = round(good[s] + 0.05, 5)
    five[2500] = round(good[2500] + 0.05, 5)
    path = write(tmp_path / "a.txt", log_text([good, four, five]))
    _, out, _ = run_text(capsys, [path])
    shown = ", ".join(f"step {s} {good[s] + 0.05:.5f} vs {ref[s][0]:.5f}+-{3 * ref[s][1]:.5f}"
                      for s in (500, 1000, 1500, 2000))
    assert "  a.txt#1: all 38 reference steps within ref_mean +- 3 ref_std" in out
    assert f"  a.txt#2: 4 of 38 reference steps outside: {shown}" in out  # 4 shown, no "..."
    assert f"  a.txt#3: 5 of 38 reference steps outside: {shown} ..." in out  # the first 4 of 5, then "..."


# --- --vs -----------------------------------------------------------------------------------------------------

def test_vs_text_block(tmp_path, capsys):
    # A passes from 3075 (mean 3.2774, n=4); B (2 runs) from 2950 (mean 3.2764):
    # d = 0.0010 + 125 / 100 * 0.0045 = 0.006625, z = -0.006625 / sqrt(1/4 + 1/2) = -0.0076499
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    b = write(tmp_path / "b.txt", log_text([curve(3.2739), curve(3.2741)]))
    code, out, _ = run_text(capsys, [a, "--vs", b])
    i = out.index("vs (public pairwise rule, each side at its claimed step):")
    assert out[i - 1] == "" and out[i + 1:i + 6] == [
        "  A: step 3075 (earliest passing step) mean 3.27740 n 4",
        "  B: step 2950 (earliest passing step) mean 3.27640 n 2",
        "  d = (loss_A - loss_B) + (steps_A - steps_B) / 100 * 0.0045 = 0.006625",
        "  z = -d / sqrt(1/n_A + 1/n_B) = -0.007650  (significant when |z| >= 0.004)",
        "  verdict: B is significantly better than A",
    ]


@pytest.mark.parametrize("loss_a,loss_b,verdict", [
    ("0.00000", "0.00400", "A is significantly better than B"),  # z = +0.004 exactly
    ("0.00400", "0.00000", "B is significantly better than A"),  # z = -0.004 exactly
])
def test_vs_exactly_at_the_pairwise_threshold(tmp_path, capsys, loss_a, loss_b, verdict):
    # losses chosen so that z is exactly +-0.004 in floating point: n_A = n_B = 2, so sqrt(1/2 + 1/2) = 1,
    # the same step, so d = loss_A - loss_B = -+0.004; the rule is |z| >= 0.004, so this is significant
    def side(name, loss):
        return write(tmp_path / name, log_text([{0: 10.82584, 3250: float(loss)}] * 2))
    code, out = run_json(capsys, [side("a.txt", loss_a), "--step", "3250", "--vs", side("b.txt", loss_b),
                                  "--vs-step", "3250"])
    vs = out["vs"]
    assert vs["a"]["n"] == vs["b"]["n"] == 2 and abs(vs["z"]) == 0.004 and vs["threshold"] == 0.004
    assert vs["significant"] is True and vs["verdict"] == verdict


def test_vs_with_a_non_finite_side(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    bad = log_text([curve(3.2770), curve(3.2770)]).replace("step:3250/3250 val_loss:3.27700",
                                                            "step:3250/3250 val_loss:nan")
    code, out = run_json(capsys, [a, "--vs", write(tmp_path / "b.txt", bad)])
    vs = out["vs"]
    assert vs["b"] == {"step": 3250, "mean": None, "n": 2, "which": "final step (no step passes)"}
    assert vs["z"] is None and vs["significant"] is False
    assert vs["verdict"] == "undecided: a side has a non-finite mean val loss"


def test_vs_side_warnings_and_metric(tmp_path, capsys):
    # A and B scored on val_ema_loss (= val_loss - 0.0006). Each side has a file that is not a log;
    # B's run 1 has a nan val_ema_loss at 1625 (its val_loss is finite), B's run 2 has no val line at 3250.
    a = write(tmp_path / "a.txt", add_column(log_text(passing_runs()), "val_ema_loss", -0.0006))
    b_runs = [curve(3.2739), curve(3.2741)]
    del b_runs[1][3250]
    b_text = add_column(log_text(b_runs, trial_lines=False), "val_ema_loss", -0.0006)
    lines = b_text.split("\n")
    i = next(k for k, line in enumerate(lines) if line.startswith("step:1625/"))
    lines[i] = " ".join("val_ema_loss:nan" if p.startswith("val_ema_loss:") else p for p in lines[i].split(" "))
    b = write(tmp_path / "b.txt", "\n".join(lines))
    a_bin, b_bin = bin_file(tmp_path / "a.bin"), bin_file(tmp_path / "b.bin")
    code, out = run_json(capsys, [a, a_bin, "--metric", "val_ema_loss", "--vs", b, b_bin])
    assert out["warnings"] == [
        f"skipped {a_bin}: not a training log: looks like a binary file",
        f"--vs: skipped {b_bin}: not a training log: looks like a binary file",
        f"--vs: b.txt#1: val_ema_loss nan at step 1625; {KEEP}",
        f"--vs: b.txt#2: stops early at step 3225 of 3250 (no val line after it in its log); {KEEP}",
    ]
    # B on val_ema_loss: mean 3.2734 + 0.0002 * (3250 - s) / 25 passes n=2 (<= 3.276464) from 2875 (3.2764);
    # on val_loss it would be 3.2770 there and fail
    assert out["vs"]["b"] == {"step": 2875, "mean": pytest.approx(3.2764, abs=1e-12), "n": 2,
                              "which": "earliest passing step"}
    assert out["vs"]["a"]["step"] == 3000  # A on val_ema_loss: 3.2774 at 3000


def test_vs_strict_refuses_b_of_different_scripts(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    b1 = write(tmp_path / "b1.txt", log_text([curve(3.2739)], script=SCRIPT + "SEED = 1\n"))
    b2 = write(tmp_path / "b2.txt", log_text([curve(3.2741)], script=SCRIPT + "SEED = 2\n"))
    assert stats.main([a, "--vs", b1, b2]) == 0
    capsys.readouterr()
    assert stats.main([a, "--strict", "--vs", b1, b2]) == 2
    assert capsys.readouterr().err == ("error: --vs: --strict: the runs were not all written by the same script: "
                                       "b2.txt#1: 1 line(s) differ (only number literals, e.g. a seed); outside any "
                                       "section; e.g. line 4: `SEED = 1` -> `SEED = 2`\n")


def test_vs_declared_step_missing_in_b(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    b = write(tmp_path / "b.txt", log_text([curve(3.2739), curve(3.2741)]))
    assert stats.main([a, "--vs", b, "--vs-step", "3240"]) == 2
    assert capsys.readouterr().err == ("error: step 3240 is not a val step (val_loss) of every run: missing in "
                                       "b.txt#1, b.txt#2; the nearest common val steps are 3225 and 3250\n")
    assert stats.main([a, "--vs-step", "3000"]) == 2
    assert capsys.readouterr().err == "error: --vs-step needs --vs\n"


# --- messages for bad input ------------------------------------------------------------------------------------

def test_json_error_object(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    code = stats.main([a, "--step", "3240", "--json"])
    got = capsys.readouterr()
    message = ("step 3240 is not a val step (val_loss) of every run: missing in a.txt#1, a.txt#2, a.txt#3 ...; "
               "the nearest common val steps are 3225 and 3250")
    assert code == 2 and json.loads(got.out) == {"error": message} and got.err == f"error: {message}\n"


@pytest.mark.parametrize("runs,step,message", [
    (3, 3240, "missing in a.txt#1, a.txt#2, a.txt#3; the nearest common val steps are 3225 and 3250"),
    (4, 3240, "missing in a.txt#1, a.txt#2, a.txt#3 ...; the nearest common val steps are 3225 and 3250"),
    (2, 4000, "missing in a.txt#1, a.txt#2; the nearest common val steps are 3250 and -"),
    (2, 100, "missing in a.txt#1, a.txt#2; the nearest common val steps are - and 125"),  # no step 0 here
])
def test_declared_step_not_in_every_run(tmp_path, capsys, runs, step, message):
    points = [{s: v for s, v in curve(3.2760).items() if s > 0} for _ in range(runs)]
    path = write(tmp_path / "a.txt", log_text(points))
    assert stats.main([path, "--step", str(step)]) == 2
    assert capsys.readouterr().err == f"error: step {step} is not a val step (val_loss) of every run: {message}\n"


@pytest.mark.parametrize("runs,names", [(3, "a.txt#1, a.txt#2, a.txt#3"), (4, "a.txt#1, a.txt#2, a.txt#3 ...")])
def test_metric_no_run_logs(tmp_path, capsys, runs, names):
    text = add_column(log_text(passing_runs()[:runs]), "val_avg_loss", 0.0)
    assert stats.main([write(tmp_path / "a.txt", text), "--metric", "val_ema_loss"]) == 2
    assert capsys.readouterr().err == (f"error: {runs} of {runs} runs log no column val_ema_loss ({names}); "
                                       "the columns these runs log: val_avg_loss, val_loss\n")


def test_no_val_step_in_every_run(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([{125: 4.6, 250: 4.1}, {375: 3.9, 500: 3.8}]))
    assert stats.main([path]) == 2
    assert capsys.readouterr().err.endswith("error: no val step with val_loss is present in every run\n")


def test_analyze_and_check_pool_of_no_runs():
    with pytest.raises(PoolError, match="^no val step with val_loss is present in every run$"):
        analyze([], 0.005)
    with pytest.raises(PoolError, match="^--vs: no runs$"):
        check_pool([], "--vs: ")


def test_analysis_says_its_bar_and_metric(tmp_path):
    trials = read_runs([write(tmp_path / "a.txt", log_text(passing_runs()))]).trials
    a = analyze(trials, 0.004, "val_loss")
    assert (a["bar"], a["metric"], a["n"], a["train_steps"], a["claim"].step) == (0.004, "val_loss", 4, 3250, 3000)


@pytest.mark.parametrize("other,shown", [
    (3, "train_steps 3000: b.txt#1, b.txt#2, b.txt#3; train_steps 3250: a.txt#1"),
    (4, "train_steps 3000: b.txt#1, b.txt#2, b.txt#3 ...; train_steps 3250: a.txt#1"),
])
def test_different_train_steps_message(tmp_path, capsys, other, shown):
    a = write(tmp_path / "a.txt", log_text([curve(3.27)]))
    b = write(tmp_path / "b.txt", log_text([curve(3.27, train_steps=3000)] * other, train_steps=3000))
    assert stats.main([a, b]) == 2
    assert capsys.readouterr().err == ("error: runs with different train_steps are different experiments; pass them "
                                       f"separately or choose one with --train-steps ({shown})\n")


@pytest.mark.parametrize("other,shown", [
    (3, "b.txt#1: train_steps 3000, b.txt#2: train_steps 3000, b.txt#3: train_steps 3000"),
    (4, "b.txt#1: train_steps 3000, b.txt#2: train_steps 3000, b.txt#3: train_steps 3000 ..."),
])
def test_train_steps_left_out_message(tmp_path, capsys, other, shown):
    write(tmp_path / "a.txt", log_text(passing_runs()))
    write(tmp_path / "b.txt", log_text([curve(3.27, train_steps=3000)] * other, train_steps=3000))
    code, out = run_json(capsys, [str(tmp_path), "--train-steps", "3250"])
    assert code == 0 and out["n_runs"] == 4
    assert out["warnings"] == [f"--train-steps 3250: left out {other} run(s) of another experiment ({shown})"]
    assert stats.main([str(tmp_path), "--train-steps", "2000"]) == 2
    assert capsys.readouterr().err == "error: no run has train_steps 2000 (the runs have 3000, 3250)\n"


def test_check_pool_warns_and_strict_refuses(tmp_path):
    # the default (tools.results --check and tools.public_claims call it so) pools runs of different scripts
    a = write(tmp_path / "a.txt", log_text(passing_runs()[:1], script=SCRIPT + "SEED = 1\n"))
    b = write(tmp_path / "b.txt", log_text(passing_runs()[1:], script=SCRIPT + "SEED = 2\n"))
    trials = read_runs([a, b]).trials
    warnings = check_pool(trials)
    assert len(warnings) == 2 and warnings[0].startswith("the runs were written by 2 different scripts")
    with pytest.raises(PoolError):
        check_pool(trials, strict=True)


def test_strict_names_a_run_without_a_script(tmp_path, capsys):
    # a console capture of another run (no embedded script, not merged with a log): --strict must say which
    a = write(tmp_path / "a.txt", log_text([curve(3.2760), curve(3.2762)]))
    c = write(tmp_path / "c.out", "\n".join(val_line(s, 3250, v) for s, v in curve(3.2770).items()) + "\n")
    assert stats.main([a, c, "--strict"]) == 2
    assert capsys.readouterr().err == ("error: --strict: the runs were not all written by the same script: c.out#1: "
                                       "no embedded script (a console capture?); which script wrote it cannot be "
                                       "checked\n")
    # with a run of another script too, both are named, one after the other
    b = write(tmp_path / "b.txt", log_text([curve(3.2764)], script=SCRIPT.replace("100", "99")))
    assert stats.main([a, b, c, "--strict"]) == 2
    assert capsys.readouterr().err == ("error: --strict: the runs were not all written by the same script: b.txt#1: "
                                       "1 line(s) differ (only number literals, e.g. a seed); outside any section; "
                                       "e.g. line 3: `x = \"=\" * 100` -> `x = \"=\" * 99`; c.out#1: no embedded "
                                       "script (a console capture?); which script wrote it cannot be checked\n")


def test_metric_warnings_name_their_own_step(tmp_path, capsys):
    # on val_ema_loss: run 2 has val_loss (and so val_ema_loss) nan at 1625: one warning, not two;
    # run 3 val_loss nan at 1625 and val_ema_loss nan already at 1500: both; run 4 only val_ema_loss nan at 1375
    text = add_column(log_text(passing_runs()), "val_ema_loss", -0.0006)
    text = edit(text, 2, 1625, "val_loss", "nan")
    text = edit(text, 2, 1625, "val_ema_loss", "nan")
    text = edit(text, 3, 1625, "val_loss", "nan")
    text = edit(text, 3, 1625, "val_ema_loss", "nan")
    text = edit(text, 3, 1500, "val_ema_loss", "nan")
    text = edit(text, 4, 1375, "val_ema_loss", "nan")
    code, out = run_json(capsys, [write(tmp_path / "a.txt", text), "--metric", "val_ema_loss"])
    assert out["warnings"] == [
        f"a.txt#2: val loss nan at step 1625; {KEEP}",
        f"a.txt#3: val loss nan at step 1625; {KEEP}",
        f"a.txt#3: val_ema_loss nan at step 1500; {KEEP}",
        f"a.txt#4: val_ema_loss nan at step 1375; {KEEP}",
    ]
    assert code == 0 and out["earliest_passing_step"] == 3000


# --- JSON fields ----------------------------------------------------------------------------------------------

def test_json_fields(tmp_path, capsys):
    runs = passing_runs()
    a = write(tmp_path / "a.txt", log_text(runs[:3]))
    b = write(tmp_path / "b.txt", log_text(runs[3:]))
    code, out = run_json(capsys, [a, b, "--bar", "0.004", "--step", "3000"])
    assert code == 0 and out["bar"] == 0.004 and out["bar_name"] == "public bar: sigma 0.0013"
    assert out["rule"] == ("PASS when (3.28 - mean) * sqrt(n) >= bar; claim = earliest val step (present in every "
                           "run) that passes")
    assert out["files"] == [a, b] and [r["run"] for r in out["runs"]] == ["a.txt#1", "a.txt#2", "a.txt#3", "b.txt#1"]
    assert out["runs"][3]["final_val_loss"] == 3.2761 and out["runs"][3]["status"] == "complete"
    assert out["declared_step"] == 3000
    assert out["declared"] == {"step": 3000, "mean": pytest.approx(3.2780, abs=1e-12), "std": pytest.approx(
        math.sqrt(1e-7 / 3), rel=1e-9), "n": 4, "margin": pytest.approx(0.004, abs=1e-12), "pass": True, "n_needed": 4}
    assert out["baseline_note"] == (
        "informational: the reference is the public Muon baseline (3250 steps, 10 runs); runs of another optimizer or "
        "schedule are expected to deviate; this does not affect the claim")
    code, out = run_json(capsys, [a, b])
    assert out["declared_step"] is None and out["declared"] is None


def test_baseline_note_for_another_train_steps(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([curve(3.27, train_steps=3000)], train_steps=3000))
    assert run_json(capsys, [path])[1]["baseline_note"] == (
        "informational: the reference is the public Muon baseline (3250 steps, 10 runs); runs of another optimizer or "
        "schedule are expected to deviate; this does not affect the claim; these runs have train_steps 3000, so only "
        "the step numbers line up")


def test_baseline_deviations_at_the_edge_of_the_band(tmp_path):
    # step 100 is not in this reference (skipped, the steps after it still checked); at 200 the value is exactly
    # 3 std away (4.25 - 3.5 = 0.75 = 3 * 0.25, exact in binary): inside; at 300 it is outside
    trials = read_runs([write(tmp_path / "a.txt", log_text([{100: 5.0, 200: 4.25, 300: 4.0}]))]).trials
    ref = {200: (3.5, 0.25, 10), 300: (3.0, 0.1, 10)}
    assert baseline_deviations(trials, ref) == [{"run": "a.txt#1", "step": 300, "val_loss": 4.0, "ref_mean": 3.0,
                                                 "ref_std": 0.1, "tolerance": 3 * 0.1}]


# --- the command line ---------------------------------------------------------------------------------------------

def test_help_matches_the_readme(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as e:
        stats.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m tools.stats [-h] [--bar {0.005,0.004}] [--metric NAME] [--step K] "
                           "[--train-steps N] [--strict] [--vs LOG [LOG ...]] [--vs-step K] [--json] LOG [LOG ...]\n")
    assert stats.__doc__.strip() in text  # the module's text as written (line breaks kept)
    flat = " ".join(text.split())
    for option in ["LOG training logs or directories; all their runs are the n runs",
                   "--bar {0.005,0.004} significance bar: 0.005 = workspace (sigma 0.0016, p<.001, default), "
                   "0.004 = public (sigma 0.0013)",
                   "--metric NAME the val-line column to score (default val_loss), e.g. val_ema_loss",
                   "--step K test the declared step K (exit 0 when it passes)",
                   "--train-steps N keep only the runs of train_steps N (a folder that holds several experiments)",
                   "--strict refuse runs written by different scripts",
                   "--vs LOG [LOG ...] compare with these runs (B) by the public pairwise rule",
                   "--vs-step K B's declared step for --vs",
                   "--json print one JSON object instead of tables"]:
        assert option in flat, option


@pytest.mark.parametrize("argv,message", [
    (["--bar", "0.003"], "argument --bar: 0.003: the bar is 0.005 (workspace) or 0.004 (public)"),
    (["--bar", "abc"], "argument --bar: not a number: 'abc'"),
    (["--metric", "val loss"], "argument --metric: 'val loss': a column name such as val_loss or val_ema_loss"),
    (["--step", "abc"], "argument --step: 'abc': a step number such as 3250"),
    (["--step", "0"], "argument --step: '0': a step number such as 3250"),
])
def test_bad_arguments_say_what_is_expected(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        stats.main(["x.txt"] + argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m tools.stats: error: {message}"


def test_step_numbers():
    assert step_arg("1") == 1 and step_arg("999999999") == 999999999
    for bad in ["0", "1000000000", "-5", "3e3", "\uff13"]:  # the last: a fullwidth digit 3
        with pytest.raises(argparse.ArgumentTypeError, match="a step number such as 3250"):
            step_arg(bad)


def test_vs_takes_several_logs(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(passing_runs()))
    b1 = write(tmp_path / "b1.txt", log_text([curve(3.2739)]))
    b2 = write(tmp_path / "b2.txt", log_text([curve(3.2741)]))
    code, out = run_json(capsys, [a, "--vs", b1, b2])
    assert out["vs"]["b"]["n"] == 2 and out["vs"]["b"]["step"] == 2950
