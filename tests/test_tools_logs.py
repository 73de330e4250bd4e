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
    log = parse_file(write(tmp_path / "t.txt", text[:cut]))
    assert log.trials[0].final_step == 3225
    assert any("truncated" in w for w in log.warnings)


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


@pytest.mark.parametrize("module", ["logs", "stats", "results", "leaderboard", "plot", "new"])
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
