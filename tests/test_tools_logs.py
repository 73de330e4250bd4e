"""tools.logs: parsing our logs and public ones, trial splitting, hostile files."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import HEADER, ROOT, SCRIPT, SEP, curve, log_text, val_line, write  # noqa: E402

from tools import logs  # noqa: E402
from tools.logs import LogError, parse_file  # noqa: E402


def test_trials_split_at_trial_lines(tmp_path):
    path = write(tmp_path / "a.txt", log_text([{"points": curve(3.277), "seed": 1234567},
                                                {"points": curve(3.278), "seed": 99}]))
    log = parse_file(path)
    assert log.world_size == 8 and log.device == "NVIDIA H100 80GB HBM3"
    assert log.header == HEADER
    assert log.script == SCRIPT  # the script's own val-looking text is not parsed
    assert [t.seed for t in log.trials] == [1234567, 99]
    assert [t.tag for t in log.trials] == ["1/2", "2/2"]
    t = log.trials[0]
    assert len(t.points) == 38 and t.train_steps == 3250 and t.final_step == 3250
    assert t.points[0].val_loss == 10.82584 and t.final_val_loss == 3.277
    assert t.points[1].step == 125 and t.points[1].train_time == pytest.approx(19.354, abs=1e-3)
    assert t.points[1].step_avg == pytest.approx(154.83)
    assert t.complete and not t.stopped
    assert log.trials[1].final_val_loss == 3.278


def test_trials_split_where_step_0_reappears(tmp_path):
    path = write(tmp_path / "a.txt", log_text([curve(3.277), curve(3.278), curve(3.279)], trial_lines=False))
    log = parse_file(path)
    assert len(log.trials) == 3
    assert [t.seed for t in log.trials] == [None, None, None]
    assert [t.final_val_loss for t in log.trials] == [3.277, 3.278, 3.279]
    assert all(len(t.points) == 38 for t in log.trials)


def test_public_style_log(tmp_path):
    lines = ["import os", "print0('hello')", SEP,
             "Running Python 3.12.7 (main, Oct  1 2024) [GCC 13.2.0]",
             "Running PyTorch 2.10.0.dev20250926+cu126 compiled for CUDA 12.6",
             "+-----------------------------------------------------------------------------------------+",
             "| NVIDIA-SMI 570.124.06             Driver Version: 570.124.06     CUDA Version: 12.8     |",
             "|=========================================+========================+======================|",
             "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:19:00.0 Off |                    0 |",
             SEP]
    for run, final in enumerate((3.2770, 3.2790)):
        for s, v in curve(final, train_steps=500, slope=0.01).items():
            lines.append(val_line(s, 500, v, public=True))
            if s < 500:
                lines.append(f"step:{s + 1}/500 train_time:{s * 150}ms step_avg:150.00ms")
    log = parse_file(write(tmp_path / "pub.txt", "\n".join(lines) + "\n"))
    assert log.world_size is None and log.device is None
    assert "Running PyTorch 2.10" in log.header
    assert len(log.trials) == 2
    t = log.trials[0]
    assert [p.step for p in t.points] == [0, 125, 250, 375, 450, 475, 500]
    assert t.points[1].val_loss == 3.427  # 4 decimals in public logs
    assert t.points[1].train_time == pytest.approx(19.354)  # ms converted to seconds
    assert log.trials[1].final_val_loss == 3.279


def test_stopped_trial_and_nan(tmp_path):
    text = log_text([{"points": {0: 10.82584, 125: 4.6}, "stop": 130}, curve(3.277)])
    text = text.replace("step:3250/3250 val_loss:3.27700", "step:3250/3250 val_loss:nan")
    log = parse_file(write(tmp_path / "s.txt", text))
    a, b = log.trials
    assert a.stopped and a.final_step == 125 and "nan or inf at step 130" in a.stop_message
    assert b.stopped and b.stop_message is None and b.final_step == 3250
    assert b.final_val_loss != b.final_val_loss  # nan


def test_no_separator_parses_whole_file(tmp_path):
    text = "\n".join(val_line(s, 3250, v) for s, v in curve(3.277).items()) + "\n"
    log = parse_file(write(tmp_path / "bare.txt", text))
    assert log.script is None and len(log.trials) == 1 and log.trials[0].final_val_loss == 3.277


def test_lines_before_separator_are_never_parsed(tmp_path):
    script = 'LINE = "step:5/10 val_loss:1.00000"\nstep:0/10 val_loss:2.00000\n'
    log = parse_file(write(tmp_path / "a.txt", log_text([{0: 10.8, 10: 3.2}], train_steps=10, script=script)))
    assert [(p.step, p.val_loss) for p in log.trials[0].points] == [(0, 10.8), (10, 3.2)]
    assert log.script == script


def test_truncated_last_line_is_skipped(tmp_path):
    text = log_text([curve(3.277)], trial_lines=False)
    cut = text.index("step:3250/3250") + len("step:3250/3250 val_loss:3.2")
    path = write(tmp_path / "t.txt", text[:cut])
    log = parse_file(path)
    assert log.trials[0].final_step == 3225
    assert log.warnings == [f"{path}:44: the file ends inside this val line (no newline; a val line is known whole "
                            "only when it goes on to train_time and step_avg): not read: 'step:3250/3250 val_loss:3.2'"]


def test_huge_numbers(tmp_path):
    body = ("step:0/10 val_loss:1e308 train_time:0.000s step_avg:0.00ms\n"
            "step:99999999999999999999/10 val_loss:3.2 train_time:1.000s step_avg:1.00ms\n"
            "step:5/10 val_loss:99999999999999999999 train_time:1.000s step_avg:1.00ms\n"
            "step:10/10 val_loss:1e400 train_time:1.000s step_avg:1.00ms\n")
    log = parse_file(write(tmp_path / "h.txt", SCRIPT + SEP + "\n" + SEP + "\n" + body))
    t = log.trials[0]
    assert [p.step for p in t.points] == [0, 5, 10]
    assert t.points[0].val_loss == 1e308 and t.points[1].val_loss == 1e20
    assert t.points[2].val_loss == float("inf") and t.stopped
    assert any("too large" in w for w in log.warnings)


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"),
    (bytes(range(256)) * 20, "binary"),
    (SCRIPT.encode() + SEP.encode() + b"\n", "only the training script"),
    (b"hello\nworld\n", "no val line"),
])
def test_bad_files_raise_log_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(LogError) as e:
        parse_file(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "nope.txt", tmp_path):
        with pytest.raises(LogError, match="cannot read"):
            parse_file(str(path))


def test_cli_script_and_summary(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([curve(3.277)]))
    assert logs.main([path, "--script"]) == 0
    assert capsys.readouterr().out == SCRIPT
    out = tmp_path / "out.py"
    assert logs.main([path, "--script", "-o", str(out)]) == 0
    assert out.read_text() == SCRIPT
    assert logs.main([path]) == 0
    assert "3250/3250" in capsys.readouterr().out


def test_cli_bad_log_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bin.txt"
    bad.write_bytes(bytes(range(256)) * 10)
    for module in ("logs", "stats"):
        p = subprocess.run([sys.executable, "-m", f"tools.{module}", str(bad)], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 2
        assert "Traceback" not in p.stderr and str(bad) in p.stderr


@pytest.mark.parametrize("module", ["logs", "stats", "results", "leaderboard", "plot", "new", "public_claims"])
def test_help(module):
    p = subprocess.run([sys.executable, "-m", f"tools.{module}", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "usage" in p.stdout


def test_resumed_trial_stays_one_run(tmp_path):
    lines = log_text([curve(3.277), curve(3.278)]).splitlines()
    i = lines.index(val_line(1625, 3250, curve(3.277)[1625]))
    # stopped by a signal after the val at 1625, resumed there (val at 1625 printed again), then goes on
    lines[i + 1:i + 1] = ["trial 1/2 stopped by signal 15 at step 1630; checkpoint checkpoints/x.pt; resume with: "
                          "RESUME=checkpoints/x.pt and the same launch command",
                          "trial 1/2 resumed from checkpoints/x.pt at step 1625",
                          val_line(1625, 3250, curve(3.277)[1625])]
    log = parse_file(write(tmp_path / "r.txt", "\n".join(lines) + "\n"))
    a, b = log.trials
    assert len(log.trials) == 2 and a.resumed_at == [1625] and not a.stopped and a.complete
    assert len(a.points) == 38 and a.final_val_loss == 3.277 and b.final_val_loss == 3.278
    assert log.warnings == []  # the repeated val line is dropped quietly


# --- columns, splitting, reading folders (issue 12) ----------------------------------------------------------

from tools_logtext import RECORD46, add_column  # noqa: E402
from tools.logs import read_runs  # noqa: E402


def test_extra_columns_are_metrics(tmp_path):
    text = add_column(log_text([{0: 10.82584, 125: 4.5, 250: 4.1}], train_steps=250), "val_ema_loss", -0.01)
    line = next(l for l in text.splitlines() if l.startswith("step:125/"))
    assert line.startswith("step:125/250 val_loss:4.50000 val_ema_loss:4.49000 train_time:")
    t = parse_file(write(tmp_path / "a.txt", text)).trials[0]
    assert t.columns() == ["val_loss", "val_ema_loss"]
    assert t.losses("val_ema_loss") == {0: pytest.approx(10.81584), 125: 4.49, 250: 4.09}
    assert t.losses() == {0: 10.82584, 125: 4.5, 250: 4.1}
    assert t.points[1].train_time == pytest.approx(19.354, abs=1e-3)  # train_time is still read
    assert t.losses("val_avg_loss") == {}


def test_columns_of_public_record_46():
    log = parse_file(os.path.join(RECORD46, "A40_seed0_5c87fa44-7ca7-4d54-971d-d952f9b15792.txt"))
    assert log.script == "" and log.world_size == 2 and log.device == "NVIDIA A40"
    t = log.trials[0]
    assert t.columns() == ["val_loss", "val_avg_loss", "val_ema_loss"]
    assert t.losses()[2690] == 3.28208 and t.losses("val_ema_loss")[2690] == 3.27795
    assert t.points[0].step == 125 and t.final_step == 2900 and t.complete  # no step 0 in these logs
    seed7 = parse_file(os.path.join(RECORD46, "A40_seed7_5c1a373d-6eb4-4643-b562-3db6aab4381a.txt")).trials[0]
    assert seed7.ends_early and not seed7.stopped and seed7.final_step == 2765
    assert seed7.status() == "stops early at step 2765 of 2900 (no val line after it in its log)"


def test_run_split_where_step_goes_back(tmp_path):
    runs = [curve(3.277), curve(3.278), curve(3.279)]
    for r in runs:
        del r[0]  # public logs without step-0 lines
    text = log_text(runs, trial_lines=False) + "\n".join(
        val_line(s, 3000, v) for s, v in curve(3.276, train_steps=3000).items() if s >= 2900) + "\n"
    log = parse_file(write(tmp_path / "a.txt", text))
    assert [(t.points[0].step, t.final_step, t.train_steps) for t in log.trials] == \
        [(125, 3250, 3250)] * 3 + [(2900, 3000, 3000)]  # a new run where train_steps changes, too
    assert [t.final_val_loss for t in log.trials] == [3.277, 3.278, 3.279, 3.276] and log.warnings == []


def test_step_going_back_inside_a_tagged_trial_is_skipped(tmp_path):
    lines = log_text([{0: 10.8, 125: 4.5, 250: 4.1}], train_steps=250).splitlines()
    lines.insert(lines.index(val_line(250, 250, 4.1)), val_line(125, 250, 4.4))
    log = parse_file(write(tmp_path / "a.txt", "\n".join(lines) + "\n"))
    assert len(log.trials) == 1 and log.trials[0].losses() == {0: 10.8, 125: 4.5, 250: 4.1}
    assert any("step 125/250 after step 125/250" in w for w in log.warnings)


def _capture(runs, train_steps=3250, keep=None):
    """A console capture: the val lines only (no script, no trial lines), optionally only steps in `keep`."""
    return "\n".join(val_line(s, train_steps, v) for r in runs for s, v in r.items()
                     if keep is None or s in keep) + "\n"


def test_same_run_counted_once(tmp_path):
    a = write(tmp_path / "a.txt", log_text([{"points": curve(3.277), "seed": 7}]))
    copy = tmp_path / "sub"
    copy.mkdir()
    b = write(copy / "a_copy.txt", log_text([{"points": curve(3.277), "seed": 7}]))
    fewer = write(tmp_path / "console.out", _capture([curve(3.277)], keep={3000, 3125, 3250}))
    last = write(tmp_path / "final.stdout", _capture([curve(3.277)], keep={3250}))  # the last line alone
    other = write(tmp_path / "b.txt", log_text([{"points": curve(3.278), "seed": 8}]))
    runs = read_runs([a, a, b, fewer, last, other])
    assert [t.name for t in runs.trials] == ["a.txt#1", "b.txt#1"]
    assert runs.notes[0] == f"{a}: the same file as {a}; read once"
    assert runs.notes[1] == ("a.txt#1 and a_copy.txt#1 hold the same run (equal val loss at all 37 common val steps); "
                             "counted once, kept a.txt#1 (38 val lines)")
    assert "a.txt#1 and console.out#1 hold the same run (equal val loss at all 3 common val steps)" in runs.notes[2]
    assert "a.txt#1 and final.stdout#1 hold the same run (equal val loss at all 1 common val steps)" in runs.notes[3]


def test_fuller_capture_is_kept_and_takes_the_script(tmp_path):
    short = curve(3.277)
    log = write(tmp_path / "log.txt", log_text([{s: v for s, v in short.items() if s <= 3000}], trial_lines=False))
    write(tmp_path / "run.stdout", _capture([short]))  # more val lines than the log
    runs = read_runs([str(tmp_path)])
    assert [t.name for t in runs.trials] == ["run.stdout#1"] and runs.trials[0].final_step == 3250
    assert runs.trials[0].script == SCRIPT  # the run's identity comes from the log
    assert "kept run.stdout#1 (38 val lines)" in runs.notes[0]
    assert log in [l.path for l in runs.logs]


@pytest.mark.parametrize("case", ["tagged trials of one file", "different seeds", "one common step, no time",
                                  "values differ"])
def test_distinct_runs_are_not_merged(tmp_path, case):
    if case == "tagged trials of one file":
        paths = [write(tmp_path / "a.txt", log_text([curve(3.277), curve(3.277)]))]  # equal values, 2 trials
    elif case == "different seeds":
        paths = [write(tmp_path / "a.txt", log_text([{"points": curve(3.277), "seed": 1}])),
                 write(tmp_path / "b.txt", log_text([{"points": curve(3.277), "seed": 2}]))]
    elif case == "one common step, no time":
        paths = [write(tmp_path / "a.txt", log_text([curve(3.277)])),
                 write(tmp_path / "b.txt", "step:3250/3250 val_loss:3.27700\n")]
    else:
        other = dict(curve(3.277))
        other[3250] = 3.27701
        paths = [write(tmp_path / "a.txt", log_text([curve(3.277)], trial_lines=False)),
                 write(tmp_path / "b.txt", log_text([other], trial_lines=False))]
    runs = read_runs(paths)
    assert len(runs.trials) == 2 and runs.notes == []


def test_precision_of_a_capture(tmp_path):
    # the log prints 5 decimals, a capture 4 (public format): still the same numbers
    points = {0: 10.82584, 125: 4.58541, 250: 4.09785}
    log = write(tmp_path / "a.txt", log_text([points], train_steps=250, trial_lines=False))
    cap = write(tmp_path / "b.out", "\n".join(val_line(s, 250, v, public=True) for s, v in points.items()) + "\n")
    assert len(read_runs([log, cap]).trials) == 1
    wrong = write(tmp_path / "c.out", "step:125/250 val_loss:4.5855\nstep:250/250 val_loss:4.0978\n")
    assert len(read_runs([log, wrong]).trials) == 2  # 4.58541 does not print as 4.5855


def test_directory_walk_skips_what_is_not_a_log(tmp_path):
    d = tmp_path / "folder"
    (d / "sub").mkdir(parents=True)
    write(d / "a.txt", log_text([curve(3.277)]))
    write(d / "sub" / "b.log", log_text([curve(3.278)]))
    write(d / "README.md", "step:3250/3250 val_loss:3.10000\n")  # quoted in prose: not read
    write(d / "train.py", SCRIPT)
    write(d / "train_gpt_simple.py", SCRIPT)  # an approach directory's own files pass without a word
    write(d / "results.json", "{}")
    write(d / "curve.png", "png")
    write(d / "notes.txt", "hello\n")
    (d / ".hidden.txt").write_text(log_text([curve(3.2)]))
    runs = read_runs([str(d)])
    assert [t.name for t in runs.trials] == ["a.txt#1", "b.log#1"]
    assert runs.skipped == [f"{d}: skipped 1 file(s) not named like a log (*.txt/*.log/*.out/*.stdout): train.py",
                            f"skipped {d / 'notes.txt'}: not a training log: no val line `step:S/N val_loss:L`"]
    with pytest.raises(LogError, match="no training log among .*notes.txt: not a training log"):
        read_runs([str(d / "notes.txt")])
    with pytest.raises(LogError, match="not a training log"):
        read_runs([str(d / "notes.txt"), str(d / "a.txt")], strict_files=True)


def test_truncated_file_status(tmp_path):
    text = log_text([curve(3.277)], trial_lines=False)
    cut = text.index("step:3250/3250") + len("step:3250/3250 val_loss:3.2")
    t = parse_file(write(tmp_path / "t.txt", text[:cut])).trials[0]
    assert t.cut and t.status() == "stops early at step 3225 of 3250 (its file ends inside the next val line)"


def test_tie_keeps_the_log_and_names_are_unique(tmp_path):
    points = curve(3.277)
    write(tmp_path / "a_capture.txt", _capture([points]))  # first in the walk, as many lines as the log
    (tmp_path / "seed_1").mkdir()
    (tmp_path / "seed_2").mkdir()
    write(tmp_path / "seed_1" / "stdout.txt", log_text([points], trial_lines=False))
    write(tmp_path / "seed_2" / "stdout.txt", log_text([curve(3.278)], trial_lines=False))
    runs = read_runs([str(tmp_path)])
    assert [t.name for t in runs.trials] == ["seed_1/stdout.txt#1", "seed_2/stdout.txt#1"]
    assert runs.notes == ["a_capture.txt#1 and seed_1/stdout.txt#1 hold the same run (equal val loss at all 37 "
                          "common val steps); counted once, kept seed_1/stdout.txt#1 (38 val lines)"]
