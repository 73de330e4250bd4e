"""tools.stats: margins, PASS/FAIL at both bars, the claim step, n_needed, --vs, the baseline check."""
import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import curve, log_text, reference_curve, write  # noqa: E402

from tools import stats  # noqa: E402
from tools.stats import step_stat  # noqa: E402

N1 = [3.2755]
N4 = [3.2770, 3.2778, 3.2772, 3.2776]  # mean 3.2774
N9 = [3.2775, 3.2795, 3.2780, 3.2790, 3.2785, 3.2785, 3.2783, 3.2787, 3.2785]  # mean 3.2785


@pytest.mark.parametrize("values,bar,mean,margin,passed,n_needed", [
    (N1, 0.005, 3.2755, 0.0045, False, 2),   # (0.005/0.0045)^2 = 1.23
    (N1, 0.004, 3.2755, 0.0045, True, 1),
    (N4, 0.005, 3.2774, 0.0052, True, 4),    # (0.005/0.0026)^2 = 3.70
    (N4, 0.004, 3.2774, 0.0052, True, 3),    # (0.004/0.0026)^2 = 2.37
    (N9, 0.005, 3.2785, 0.0045, False, 12),  # (0.005/0.0015)^2 = 11.1
    (N9, 0.004, 3.2785, 0.0045, True, 8),    # (0.004/0.0015)^2 = 7.1
    ([3.2775] * 4, 0.005, 3.2775, 0.0050, True, 4),   # exactly on the bar: passes (exact arithmetic)
    ([3.27751] * 4, 0.005, 3.27751, 0.00498, False, 5),
    ([3.2800] * 9, 0.004, 3.28, 0.0, False, None),     # mean at 3.28: never
    ([3.2810, 3.2790], 0.004, 3.28, 0.0, False, None),
])
def test_step_stat_by_hand(values, bar, mean, margin, passed, n_needed):
    s = step_stat(3250, values, bar)
    assert s.n == len(values)
    assert s.mean == pytest.approx(mean, abs=1e-12)
    assert s.margin == pytest.approx(margin, abs=1e-9)
    assert s.passed is passed
    assert s.n_needed == n_needed


def test_std_is_sample_std():
    assert step_stat(0, N4, 0.005).std == pytest.approx(math.sqrt(4e-7 / 3), rel=1e-9)  # 0.000365
    assert step_stat(0, N1, 0.005).std == 0.0
    assert step_stat(0, [3.2810, 3.2790], 0.005).std == pytest.approx(0.0014142136, rel=1e-6)


def runs_passing_from(final_offsets=(-0.0002, 0.0002, -0.0001, 0.0001)):
    """4 runs whose mean falls 0.0002 per 25 steps to 3.2760 at 3250: mean at step s is
    3.2760 + 0.0002 * (3250 - s) / 25, so <= 3.2775 (bar 0.005) from step 3075 and <= 3.2780 (bar 0.004) from 3000."""
    return [curve(round(3.2760 + o, 5)) for o in final_offsets]


def run_json(capsys, argv):
    code = stats.main(argv + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_earliest_passing_step_both_bars(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    code, out = run_json(capsys, [path])
    assert code == 0 and out["bar"] == 0.005 and out["n_runs"] == 4
    assert out["earliest_passing_step"] == 3075
    by_step = {s["step"]: s for s in out["steps"]}
    assert by_step[3075]["mean"] == pytest.approx(3.2774) and by_step[3075]["pass"]
    assert by_step[3050]["mean"] == pytest.approx(3.2776) and not by_step[3050]["pass"]
    assert by_step[3050]["n_needed"] == 5  # (0.005/0.0024)^2 = 4.34
    assert by_step[0]["n_needed"] is None and by_step[0]["std"] == 0
    code, out = run_json(capsys, [path, "--bar", "0.004"])
    assert code == 0 and out["bar"] == 0.004 and out["earliest_passing_step"] == 3000  # mean exactly 3.2780


def test_text_output_says_which_bar(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    assert stats.main([path, "--bar", "0.004"]) == 0
    out = capsys.readouterr().out
    assert "bar: 0.004 = public bar" in out and "steps_to_3_28 = 3000" in out
    assert stats.main([path]) == 0
    out = capsys.readouterr().out
    assert "bar: 0.005 = workspace bar" in out and "steps_to_3_28 = 3075" in out and "never" in out


def test_runs_pooled_across_files_and_nothing_passes(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text([curve(3.2790)]))
    b = write(tmp_path / "b.txt", log_text([curve(3.2784)]))
    code, out = run_json(capsys, [a, b])
    assert code == 1 and out["n_runs"] == 2 and out["earliest_passing_step"] is None
    final = out["steps"][-1]
    assert final["mean"] == pytest.approx(3.2787) and final["margin"] == pytest.approx(0.0013 * math.sqrt(2))
    assert final["n_needed"] == 15  # (0.005/0.0013)^2 = 14.8
    assert stats.main([a, b]) == 1
    assert "claim: NONE" in capsys.readouterr().out


def test_only_steps_in_every_run(tmp_path, capsys):
    runs = runs_passing_from()
    del runs[2][3250]  # a truncated run still counts; its missing step is left out
    code, out = run_json(capsys, [write(tmp_path / "a.txt", log_text(runs, trial_lines=False))])
    assert out["steps"][-1]["step"] == 3225 and out["steps_not_in_every_run"] == [3250]
    assert all(s["n"] == 4 for s in out["steps"])
    assert any("3225 of 3250" in w for w in out["warnings"])


def test_stopped_run_counts(tmp_path, capsys):
    runs = runs_passing_from() + [{"points": {0: 10.82584, 125: 5.0}, "stop": 130}]
    code, out = run_json(capsys, [write(tmp_path / "a.txt", log_text(runs))])
    assert code == 1 and out["n_runs"] == 5 and [s["step"] for s in out["steps"]] == [0, 125]
    assert any("still counts" in w for w in out["warnings"])


def test_nan_values_give_valid_json(tmp_path, capsys):
    text = log_text([curve(3.2770), curve(3.2770)]).replace("step:3250/3250 val_loss:3.27700", "step:3250/3250 val_loss:nan", 1)
    code, out = run_json(capsys, [write(tmp_path / "a.txt", text)])
    last = out["steps"][-1]
    assert last["mean"] is None and last["pass"] is False and last["n_needed"] is None
    assert out["earliest_passing_step"] is None and code == 1


def test_different_train_steps_is_bad_input(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text([curve(3.27)]))
    b = write(tmp_path / "b.txt", log_text([curve(3.27, train_steps=3000)], train_steps=3000))
    assert stats.main([a, b]) == 2
    assert "different train_steps" in capsys.readouterr().err


def test_bar_must_be_one_of_the_two():
    with pytest.raises(SystemExit) as e:
        stats.main(["x.txt", "--bar", "0.003"])
    assert e.value.code == 2


def test_vs_by_hand(tmp_path, capsys):
    # A: 4 runs of 3000 steps, final mean 3.2790; B: 2 runs of 3250 steps, final mean 3.2780.
    # d = (3.2790 - 3.2780) + (3000 - 3250) / 100 * 0.0045 = 0.0010 - 0.01125 = -0.01025
    # z = 0.01025 / sqrt(1/4 + 1/2) = 0.011836 >= 0.004: A is significantly better.
    a = write(tmp_path / "a.txt", log_text([curve(f, train_steps=3000) for f in (3.2788, 3.2792, 3.2789, 3.2791)],
                                           train_steps=3000))
    b = write(tmp_path / "b.txt", log_text([curve(3.2775), curve(3.2785)]))
    code, out = run_json(capsys, [a, "--vs", b])
    vs = out["vs"]
    assert vs["a"] == {"step": 3000, "mean": pytest.approx(3.2790), "n": 4, "which": "final step (no step passes)"}
    assert vs["b"] == {"step": 3250, "mean": pytest.approx(3.2780), "n": 2, "which": "final step (no step passes)"}
    assert vs["d"] == pytest.approx(-0.01025, abs=1e-9)
    assert vs["z"] == pytest.approx(0.01025 / math.sqrt(0.75), abs=1e-9)
    assert vs["significant"] and vs["verdict"] == "A is significantly better than B"
    assert stats.main([b, "--vs", a]) == 1  # B alone: mean 3.2780, n=2 does not pass; verdict mirrored
    assert "B is significantly better than A" in capsys.readouterr().out


def test_vs_not_significant(tmp_path, capsys):
    # A: 4 runs at 3.2775, B: 10 runs at 3.2787, both 3250 steps: d = -0.0012,
    # z = 0.0012 / sqrt(1/4 + 1/10) = 0.002028 < 0.004.
    a = write(tmp_path / "a.txt", log_text([curve(3.2775)] * 4))
    b = write(tmp_path / "b.txt", log_text([curve(3.2787)] * 10))
    code, out = run_json(capsys, [a, "--vs", b])
    assert out["vs"]["z"] == pytest.approx(0.0012 / math.sqrt(0.35), abs=1e-9)
    assert not out["vs"]["significant"] and out["vs"]["verdict"] == "no significant difference"


def test_baseline_deviation_flag(tmp_path, capsys):
    good = reference_curve()
    off = dict(good)
    off[500] = round(good[500] + 0.01, 5)   # ref std 0.00111 at 500: tolerance 0.00333
    off[3250] = round(good[3250] + 0.003, 5)  # tolerance 3 * 0.00134 = 0.00402: inside
    off[0] = 10.827                          # ref std 0 at step 0: tolerance 1e-3, |diff| = 0.00116
    near0 = dict(good)
    near0[0] = 10.8265                        # |diff| = 0.00066: inside
    path = write(tmp_path / "a.txt", log_text([good, off, near0]))
    code, out = run_json(capsys, [path])
    flagged = [(d["run"], d["step"]) for d in out["baseline_deviations"]]
    assert flagged == [("a.txt#2", 0), ("a.txt#2", 500)]
    assert out["baseline_deviations"][1]["tolerance"] == pytest.approx(0.00333)
    assert "informational" in out["baseline_note"]
    assert code == 1  # the mean 3.27866 with n=3 does not pass 0.005; deviations do not change the exit code
    stats.main([path])
    text = capsys.readouterr().out
    assert "a.txt#1: all 38 reference steps within" in text and "a.txt#2: 2 of 38" in text
    assert "expected to deviate" in text


# --- metric, declared step, reading, run identity (issues 12, 15, 16) ----------------------------------------

from tools_logtext import RECORD46, SCRIPT, add_column, val_line  # noqa: E402


@pytest.mark.parametrize("metric,bar,step,mean", [
    ("val_ema_loss", 0.004, 2690, 3.27832875),  # the published claim of record #46
    ("val_loss", 0.004, 2735, 3.278345),         # the same runs on raw val loss
    ("val_ema_loss", 0.005, 2695, 3.278055),
    ("val_loss", 0.005, 2740, 3.277905),
])  # means: the 8 logged values at that step, summed by hand (awk) from tests/data/record46
def test_record_46(capsys, metric, bar, step, mean):
    code, out = run_json(capsys, [RECORD46, "--metric", metric, "--bar", str(bar)])
    assert code == 0 and out["n_runs"] == 8 and out["metric"] == metric and out["train_steps"] == 2900
    assert out["earliest_passing_step"] == step and out["claim"]["mean"] == pytest.approx(mean, abs=1e-12)
    assert out["final"]["step"] == 2765  # seed 7's log stops there: the last step common to all 8 runs
    assert out["warnings"] == ["A40_seed7_5c1a373d-6eb4-4643-b562-3db6aab4381a.txt#1: stops early at step 2765 of "
                               "2900 (no val line after it in its log); it still counts as a run (leaving it out "
                               "would be cherry-picking)"]


def test_record_46_declared_steps(capsys):
    args = [RECORD46, "--metric", "val_ema_loss", "--bar", "0.004"]
    assert stats.main(args + ["--step", "2690"]) == 0
    out = capsys.readouterr().out
    assert "declared step 2690: PASS: mean 3.27833 std 0.00094 over n = 8 runs, margin 0.00473 >= 0.004" in out
    assert "metric: val_ema_loss" in out
    assert stats.main(args + ["--step", "2685"]) == 1
    assert "declared step 2685: FAIL: mean 3.27863 std 0.00095 over n = 8 runs, margin 0.00387 < 0.004; passing at " \
           "this mean would need n = 9" in capsys.readouterr().out
    assert stats.main(args + ["--step", "2800"]) == 2  # seed 7 has no val line at 2800
    assert "step 2800 is not a val step (val_ema_loss) of every run: missing in A40_seed7" in capsys.readouterr().err
    assert stats.main(args + ["--step", "2687"]) == 2
    assert "the nearest common val steps are 2685 and 2690" in capsys.readouterr().err


def test_unknown_metric(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    assert stats.main([path, "--metric", "val_ema_loss"]) == 2
    assert "4 of 4 runs log no column val_ema_loss" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        stats.main([path, "--metric", "val loss"])


def test_metric_column_scored_on_synthetic_logs(tmp_path, capsys):
    # val_ema_loss = val_loss - 0.0006: the 4 runs pass bar 0.005 (mean <= 3.2775) from step 3000 on it,
    # from 3075 on val_loss (test_earliest_passing_step_both_bars)
    path = write(tmp_path / "a.txt", add_column(log_text(runs_passing_from()), "val_ema_loss", -0.0006))
    code, out = run_json(capsys, [path, "--metric", "val_ema_loss"])
    assert code == 0 and out["earliest_passing_step"] == 3000 and out["claim"]["mean"] == pytest.approx(3.2774)
    assert run_json(capsys, [path])[1]["earliest_passing_step"] == 3075


def test_nan_warning_names_its_step(tmp_path, capsys):
    runs = runs_passing_from()
    text = log_text(runs).replace(f"step:1625/3250 val_loss:{runs[1][1625]:.5f}", "step:1625/3250 val_loss:nan", 1)
    code, out = run_json(capsys, [write(tmp_path / "a.txt", text)])
    assert out["warnings"] == ["a.txt#2: val loss nan at step 1625; it still counts as a run (leaving it out would "
                               "be cherry-picking)"]
    assert code == 0 and out["earliest_passing_step"] == 3075  # the later steps are finite in every run


def test_vs_at_claimed_steps(tmp_path, capsys):
    # A passes bar 0.005 from 3075 (mean 3.2774, n=4). B: 2 runs, mean 3.2740 + 0.0002 * (3250 - s) / 25 at s,
    # passes when mean <= 3.28 - 0.005/sqrt(2) = 3.276464: from 2950 (3.2764; 2925 has 3.2766).
    # d = (3.2774 - 3.2764) + (3075 - 2950) / 100 * 0.0045 = 0.006625, z = -d / sqrt(1/4 + 1/2) = -0.00765
    a = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    b = write(tmp_path / "b.txt", log_text([curve(3.2739), curve(3.2741)]))
    code, out = run_json(capsys, [a, "--vs", b])
    vs = out["vs"]
    assert vs["a"] == {"step": 3075, "mean": pytest.approx(3.2774), "n": 4, "which": "earliest passing step"}
    assert vs["b"] == {"step": 2950, "mean": pytest.approx(3.2764), "n": 2, "which": "earliest passing step"}
    assert vs["d"] == pytest.approx(0.006625) and vs["z"] == pytest.approx(-0.006625 / math.sqrt(0.75))
    assert vs["verdict"] == "B is significantly better than A"
    assert stats.main([a, "--vs", b]) == 0
    assert "A: step 3075 (earliest passing step) mean 3.27740 n 4" in capsys.readouterr().out
    code, out = run_json(capsys, [a, "--step", "3250", "--vs", b, "--vs-step", "3250"])
    assert out["vs"]["a"] == {"step": 3250, "mean": pytest.approx(3.2760), "n": 4, "which": "declared step"}
    assert out["vs"]["b"] == {"step": 3250, "mean": pytest.approx(3.2740), "n": 2, "which": "declared step"}
    assert out["vs"]["d"] == pytest.approx(0.0020) and not out["vs"]["significant"]
    assert stats.main([a, "--vs-step", "3000"]) == 2


def test_runs_of_different_scripts(tmp_path, capsys):
    other_seed = SCRIPT + "SEED = 1\n"
    seeded = SCRIPT + "SEED = 2\n"
    a = write(tmp_path / "a.txt", log_text([runs_passing_from()[0]], script=other_seed))
    b = write(tmp_path / "b.txt", log_text(runs_passing_from()[1:], script=seeded))
    code, out = run_json(capsys, [a, b])
    assert code == 0 and out["n_runs"] == 4
    assert out["warnings"][0].startswith("the runs were written by 2 different scripts (pooled anyway; --strict "
                                         "refuses); compared with the script of b.txt#1, b.txt#2, b.txt#3:")
    assert out["warnings"][1] == "  a.txt#1: 1 line(s) differ (only number literals, e.g. a seed); outside any " \
                                 "section; e.g. line 4: `SEED = 2` -> `SEED = 1`"
    assert stats.main([a, b, "--strict"]) == 2
    assert "--strict: the runs were not all written by the same script" in capsys.readouterr().err


def test_script_diff_names_section_and_function():
    from tools.identity import diff_summary
    base = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train_gpt_simple.py")).read()
    i = base.index("def newton_schulz")
    body_line = base.index("\n", base.index("\n", i) + 1)  # the second line of newton_schulz
    edited = base[:body_line] + "\n    G = G * 1.0" + base[body_line:]
    text = diff_summary(base, edited)
    assert text.startswith("1 line(s) differ; section 'Optimizer' in newton_schulz; e.g. after line")
    assert "added `G = G * 1.0`" in text
    assert diff_summary(base, base + "\n\n") == "identical"


def test_train_steps_choose_one_experiment(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    b = write(tmp_path / "b.txt", log_text([curve(3.27, train_steps=3000)], train_steps=3000))
    assert stats.main([str(tmp_path)]) == 2
    assert "choose one with --train-steps" in capsys.readouterr().err
    code, out = run_json(capsys, [str(tmp_path), "--train-steps", "3250"])
    assert code == 0 and out["n_runs"] == 4 and out["earliest_passing_step"] == 3075
    assert out["warnings"][0] == "--train-steps 3250: left out 1 run(s) of another experiment (b.txt#1: train_steps 3000)"
    assert stats.main([a, b, "--train-steps", "2000"]) == 2


def test_a_file_that_is_not_a_log_is_skipped(tmp_path, capsys):
    good = write(tmp_path / "a.txt", log_text(runs_passing_from()))
    bad = tmp_path / "bin.txt"
    bad.write_bytes(bytes(range(256)) * 10)
    code, out = run_json(capsys, [good, str(bad)])
    assert code == 0 and out["n_runs"] == 4
    assert out["warnings"][0] == f"skipped {bad}: not a training log: looks like a binary file"


def test_same_run_twice_counts_once_in_the_claim(tmp_path, capsys):
    # 1 run at 3.2750 passes bar 0.004 alone (margin 0.005); the same run passed twice must stay n = 1
    a = write(tmp_path / "a.txt", log_text([{"points": curve(3.2750), "seed": 5}]))
    copy = write(tmp_path / "copy.txt", log_text([{"points": curve(3.2750), "seed": 5}]))
    console = write(tmp_path / "a.out", "\n".join(val_line(s, 3250, v) for s, v in curve(3.2750).items()) + "\n")
    code, out = run_json(capsys, [a, a, copy, console, "--bar", "0.004"])
    assert out["n_runs"] == 1 and out["claim"]["n"] == 1
    assert sum("hold the same run" in w for w in out["warnings"]) == 2
