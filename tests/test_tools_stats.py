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
    assert vs["a"] == {"step": 3000, "mean": pytest.approx(3.2790), "n": 4}
    assert vs["b"] == {"step": 3250, "mean": pytest.approx(3.2780), "n": 2}
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
