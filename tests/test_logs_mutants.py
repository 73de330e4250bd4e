"""tools.logs and tools.public_claims: the cases mutation testing (mutmut, docs/tools.md "Mutation testing") found
untested: the exact text and JSON a user reads, the edges of the reading rules, and the error messages.

With these tests and the other files of the selection in docs/tools.md, 32 of the 1815 mutants of the two files
survive (mutmut 3.8.1, 2026-12-03). None changes anything a tool or a user can observe (`mutmut show NAME`):

tools/logs.py (17):
- x__last_line__mutmut_9, _10, _66, _67: the kind ("stop line", "val line") returned with a line that is read
  whole; the kind is used only in a warning, and a whole line has none.
- x_parse_text__mutmut_124: `break` for `continue` after a last line that is not read: it is the last line.
- x_read_text__mutmut_12, _14: f.read(None) / f.read(MAX_BYTES + 2): the size was checked just before, so the
  file is read whole either way.
- x_read_text__mutmut_22, _25: decode() / decode("UTF-8"): the same codec as "utf-8".
- x__agree__mutmut_13, _14, _24: `<` for `<=`, `- 1e-12` for `+ 1e-12`, 11 ** -hi for 10 ** -hi: values printed
  with hi and lo decimals differ by whole multiples of 10 ** -hi, and the bound 0.5 * 10 ** -lo + 0.5 * 10 ** -hi
  lies half-way between two of them, so any bound strictly between the two multiples gives the same answers.
- x__labels__mutmut_11: one more round of the loop that looks for a unique tail of a path: the loop always
  ends earlier, since two paths whose every part is equal are one file, read once.
- x_dumps__mutmut_3, _4, _7, _11: allow_nan None/True/default and ensure_ascii None: json_safe has already
  replaced every non-finite number, and None is as false as False.
(x_main__mutmut_19, _23, LOG as one string instead of a list, time out under mutmut rather than fail: the string
is read character by character and "/" is walked. Run alone, test_tools_logs.py fails on them.)

tools/public_claims.py (15):
- x__git_export__mutmut_5, _9, _26, _58, _62, _73: the timeouts of the two git calls (none, or one second more):
  a test would need a git that hangs.
- x__git_export__mutmut_50 and x_main__mutmut_137: "UTF-8" for "utf-8", the same codec.
- x__git_export__mutmut_78: pos = None for 0: bytes.index(b"\n", None) searches from the start too.
- x_parse_table__mutmut_21: `cells or True`: str.split always returns at least one cell.
- x_check_row__mutmut_155: `>=` for `>` against 5e-5: differs only where a folder mean and the table's 4-decimal
  mean are exactly the float 5e-5 apart, which no 5-decimal mean from 3.0 to 3.4 is from the 4-decimal values
  next to it (all 80,000 pairs tried).
- x__short__mutmut_8: rstrip("XX/XX"): also strips a trailing "X" from the track-3 folder's path, which ends in
  "track_3_optimization".
- x_main__mutmut_232, _245, _249: the row's mean and margin printed through fmt when they are None (fmt(None)
  is "-", as printed otherwise), and fmt's default of 5 digits for the explicit 5.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import HEADER, RECORD46, SCRIPT, SEP, add_column, curve, log_text, val_line, write  # noqa: E402

from tools import logs, public_claims  # noqa: E402
from tools.logs import LogError, parse_file, parse_text, read_runs  # noqa: E402


def demo(tmp_path, name="demo.txt"):
    """Two tagged trials of 250 steps with a val_ema_loss column: the first stopped after step 125, the second
    resumed at step 126 and complete."""
    lines = log_text([{"points": {0: 10.82584, 125: 4.6}, "stop": 130, "seed": 5},
                      {"points": {0: 10.82584, 125: 4.5, 250: 4.1}, "seed": 6}], train_steps=250).splitlines()
    i = lines.index(val_line(125, 250, 4.5))
    lines[i + 1:i + 1] = ["trial 2/2 resumed from checkpoints/x.pt at step 126"]
    return write(tmp_path / name, add_column("\n".join(lines) + "\n", "val_ema_loss", -0.001))


def run(capsys, argv):
    code = logs.main(argv)
    got = capsys.readouterr()
    return code, got.out, got.err


# --- tools.logs: the table and the JSON --------------------------------------------------------------------------

def test_table(tmp_path, capsys):
    path = demo(tmp_path)
    code, out, err = run(capsys, [path])
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"{path}: 2 trial(s); world_size 8, device NVIDIA H100 80GB HBM3",
        "  run                          seed       steps  final val  status",
        "  #1 (1/2)                        5     125/250    4.60000  stopped: training loss is nan or inf at step 130; "
        "going on with the next trial; columns val_loss, val_ema_loss",
        "  #2 (2/2)                        6     250/250    4.10000  complete (resumed at step 126); columns val_loss, "
        "val_ema_loss"]


@pytest.mark.parametrize("header,env", [
    (HEADER, "; world_size 8, device NVIDIA H100 80GB HBM3"),
    ("world_size 2 | micro_batch_seqs 64", "; world_size 2"),
    ("device NVIDIA A40 | nothing else", "; device NVIDIA A40"),
    ("PyTorch 2.11", ""),
])
def test_table_header_line(tmp_path, capsys, header, env):
    path = write(tmp_path / "a.txt", log_text([{0: 10.8, 10: 3.2}], train_steps=10, header=header, trial_lines=False))
    code, out, _ = run(capsys, [path])
    assert code == 0 and out.splitlines()[0] == f"{path}: 1 trial(s){env}"
    assert out.splitlines()[2] == "  #1                              -       10/10    3.20000  complete"


def test_table_of_a_run_that_stops_early_and_warnings(tmp_path, capsys):
    text = log_text([{0: 10.8, 5: 3.5}], train_steps=10, trial_lines=False) + "hello val_loss: x\n"
    path = write(tmp_path / "a.txt", text)
    code, out, err = run(capsys, [path])
    assert code == 0
    assert out.splitlines()[2] == ("  #1                              -        5/10    3.50000  stops early at step 5 "
                                   "of 10 (no val line after it in its log)")
    assert err == f"warning: {path}:9: malformed val line skipped\n"


def test_json(tmp_path, capsys):
    path = demo(tmp_path)
    code, out, err = run(capsys, [path, "--json"])
    assert code == 0 and err == ""
    got = json.loads(out)
    assert got == [{
        "path": path, "world_size": 8, "device": "NVIDIA H100 80GB HBM3", "torch": "2.11.0+cu130",
        "script_sha256": logs.script_sha256(SCRIPT), "header": HEADER, "has_script": True,
        "trials": [
            {"run": "demo.txt#1", "file": path, "trial": "1/2", "seed": 5, "train_steps": 250, "final_step": 125,
             "final_val_loss": 4.6, "stopped": True, "ends_early": False,
             "status": "stopped after val step 125: training loss is nan or inf at step 130; going on with the next "
                       "trial",
             "stop_message": "training loss is nan or inf at step 130; going on with the next trial",
             "resumed_at": [], "num_val_points": 2, "columns": ["val_loss", "val_ema_loss"]},
            {"run": "demo.txt#2", "file": path, "trial": "2/2", "seed": 6, "train_steps": 250, "final_step": 250,
             "final_val_loss": 4.1, "stopped": False, "ends_early": False, "status": "complete", "stop_message": None,
             "resumed_at": [126], "num_val_points": 3, "columns": ["val_loss", "val_ema_loss"]}],
        "warnings": []}]
    assert out.startswith('[\n  {\n    "path": ')  # indented for a person too


def test_json_of_nan_and_non_ascii(tmp_path, capsys):
    text = log_text([{0: 10.8, 10: float("nan")}], train_steps=10, header="device Ünïcode GPU | world_size 1")
    path = write(tmp_path / "a.txt", text)
    code, out, _ = run(capsys, [path, "--json"])
    got = json.loads(out)[0]
    assert code == 0 and got["trials"][0]["final_val_loss"] is None and got["device"] == "Ünïcode GPU"
    assert '"device": "Ünïcode GPU"' in out  # not escaped to \\u00dc


# --- tools.logs --script -------------------------------------------------------------------------------------------

def test_script_errors(tmp_path, capsys):
    path = demo(tmp_path)
    assert run(capsys, [path, path, "--script"]) == (2, "", "--script takes exactly one LOG\n")
    bare = write(tmp_path / "bare.txt", "step:0/10 val_loss:1.0\n")
    assert run(capsys, [bare, "--script"]) == (2, "", f"{bare}: holds no embedded script (no line of 100 '=')\n")
    extract = write(tmp_path / "x.txt", SEP + "\nheader\n" + SEP + "\nstep:0/10 val_loss:1.0\n")
    assert run(capsys, [extract, "--script"])[0] == 2  # an empty script is none either
    nowhere = tmp_path / "no" / "dir" / "run.py"
    code, out, err = run(capsys, [path, "--script", "-o", str(nowhere)])
    assert (code, out) == (2, "") and err == f"error: {nowhere}: No such file or directory\n"
    code, out, err = run(capsys, [str(tmp_path / "missing.txt"), "--script"])
    assert code == 2 and err.startswith(f"error: {tmp_path / 'missing.txt'}: cannot read: ")


def test_script_written(tmp_path, capsys):
    path = demo(tmp_path)
    target = tmp_path / "run.py"
    code, out, err = run(capsys, [path, "--script", "-o", str(target)])
    assert (code, out) == (0, "") and err == f"wrote {target} (3 lines) from {path}\n"
    assert target.read_text() == SCRIPT


def test_bad_log_message(tmp_path, capsys):
    bad = write(tmp_path / "bad.txt", "hello\n")
    assert run(capsys, [bad]) == (2, "", f"error: no training log among {bad}: {bad}: not a training log: no val line "
                                         "`step:S/N val_loss:L`\n")


# --- tools.logs: reading edges ---------------------------------------------------------------------------------------

def test_fmt():
    assert logs.fmt(None) == "-" and logs.fmt(float("nan")) == "nan" and logs.fmt(float("-inf")) == "-inf"
    assert logs.fmt(3.2) == "3.20000" and logs.fmt(3.2, 2) == "3.20" and logs.fmt(7) == "7"
    assert logs.fmt(1e9) == "1e+09" and logs.fmt(999999999.5) == "999999999.50000" and logs.fmt(-2e9, 3) == "-2e+09"


def test_json_safe_and_dumps():
    assert logs.json_safe({1: [float("inf"), (2.5, float("nan"))], "a": {"b": float("-inf")}}) == \
        {"1": [None, [2.5, None]], "a": {"b": None}}
    assert logs.dumps({"x": "é"}) == '{\n  "x": "é"\n}'


def test_decimals():
    assert [logs._decimals(x) for x in ("3.27901", "3", "-2.50", "+1.0", "3.", "1e5", "nan", ".5")] == \
        [5, 0, 2, 1, None, None, None, None]


def test_header_and_script_fields(tmp_path):
    log = parse_file(demo(tmp_path))
    assert log.script == SCRIPT and log.header == HEADER and log.world_size == 8
    no_header = parse_text(SCRIPT + SEP + "\nstep:0/10 val_loss:1.0\n", "a")
    assert no_header.header == "" and no_header.world_size is None and no_header.device is None
    first = parse_text(SEP + "\nh\n" + SEP + "\nstep:0/10 val_loss:1.0\n", "a")
    assert first.script == "" and first.header == "h"


def test_trial_without_val_lines_is_left_out_with_a_warning(tmp_path):
    text = log_text([{0: 10.8, 10: 3.2}], train_steps=10)
    text = text.replace("trial 1/1 seed 1001", "trial 1/2 seed 1001") + "trial 2/2 seed 1002\n"
    log = parse_text(text, "a.txt")
    assert [t.tag for t in log.trials] == ["1/2"] and log.warnings == ["a.txt: trial 2/2 has no val line; left out"]
    middle = text.replace("trial 1/2 seed 1001", "trial 0/2 seed 7\ntrial 1/2 seed 1001")
    log = parse_text(middle, "a.txt")
    assert [t.index for t in log.trials] == [1] and log.warnings[0] == "a.txt: trial 0/2 has no val line; left out"


def test_stop_and_resume_lines_that_match_no_trial(tmp_path):
    text = SEP + "\nh\n" + SEP + "\ntrial 1/1 stopped: early\nstep:0/10 val_loss:1.0\n" \
        "trial 3/3 resumed from x at step 5\nstep:10/10 val_loss:0.5\n"
    log = parse_text(text, "a.txt")
    assert log.warnings == ["a.txt:4: stop line before any trial; ignored"]
    assert log.trials[0].resumed_at == [5]  # a run without trial lines takes any resume line
    tagged = log_text([{0: 10.8, 10: 3.2}], train_steps=10).replace(
        val_line(0, 10, 10.8), val_line(0, 10, 10.8) + "\ntrial 2/2 resumed from x at step 5")
    log = parse_text(tagged, "a.txt")
    assert log.trials[0].resumed_at == [] and log.warnings == [
        "a.txt:9: resume of trial 2/2, which is not the trial in progress; ignored"]


def test_stop_line_for_an_earlier_trial(tmp_path):
    text = log_text([{0: 10.8, 10: 3.2}, {0: 10.8, 10: 3.3}], train_steps=10)
    text += "trial 1/2 stopped: late note\n"
    a, b = parse_text(text, "a.txt").trials
    assert a.stop_message == "late note" and b.stop_message is None


def test_long_seed_and_stop_message(tmp_path):
    text = log_text([{"points": {0: 10.8, 10: 3.2}, "seed": 10 ** 30}], train_steps=10)
    text = text.replace("trial 1/1 target", "trial 1/1 stopped: " + "x" * 600 + "\ntrial 1/1 target")
    t = parse_text(text, "a").trials[0]
    assert t.seed is None and t.stop_message == "x" * 500
    t = parse_text(text.replace(str(10 ** 30), str(10 ** 28)), "a").trials[0]
    assert t.seed == 10 ** 28


def test_malformed_val_lines(tmp_path):
    body = ("step:0/10 val_loss:1.0\nstep:5/0 val_loss:1.0\nstep:11/10 val_loss:1.0\n"
            "step:1234567890/10 val_loss:1.0\nstep:5/1234567890 val_loss:1.0\nstep:10/10 val_loss:0.5\n")
    log = parse_text(SEP + "\n\n" + SEP + "\n" + body, "a")
    assert [(p.step, p.val_loss) for p in log.trials[0].points] == [(0, 1.0), (10, 0.5)]
    assert log.warnings == ["a:5: malformed val line (step 5/0) skipped",
                            "a:6: malformed val line (step 11/10) skipped", "a:7: step number too large; line skipped", "a:8: step number too large; line skipped"]
    nine = parse_text("step:123456789/999999999 val_loss:1.0\n", "a")
    assert nine.trials[0].points[0].step == 123456789 and nine.warnings == []


def test_a_new_train_steps_starts_a_run_only_without_trial_lines(tmp_path):
    tagged = log_text([{0: 10.8, 10: 3.2}], train_steps=10).replace(
        val_line(10, 10, 3.2), val_line(10, 10, 3.2) + "\n" + val_line(15, 20, 3.1))
    log = parse_text(tagged, "a")
    assert len(log.trials) == 1 and log.warnings == ["a:10: step 15/20 after step 10/10 in the same trial; skipped"]
    untagged = "step:0/10 val_loss:1.0\nstep:10/10 val_loss:0.5\nstep:10/20 val_loss:0.4\nstep:20/20 val_loss:0.3\n"
    assert [(t.train_steps, len(t.points)) for t in parse_text(untagged, "a").trials] == [(10, 2), (20, 2)]


def test_columns_reading():
    line = "step:5/10 val_loss:1.0 a:1 a:2 b:x c:3e2 val_loss:9 d:nan e:1.5.6 f::2 g:4"
    t = parse_text(line + "\n", "x").trials[0]
    assert t.points[0].extra == {"a": 1.0, "c": 300.0, "d": t.points[0].extra["d"], "g": 4.0}
    assert t.points[0].extra["d"] != t.points[0].extra["d"]  # nan
    assert t.points[0].train_time is None and t.points[0].step_avg is None


def test_train_time_units():
    ms = parse_text("step:5/10 val_loss:1.0 train_time:2500ms step_avg:500.00ms\n", "x").trials[0].points[0]
    s = parse_text("step:5/10 val_loss:1.0 train_time:2.5S step_avg:500.00MS\n", "x").trials[0].points[0]
    assert (ms.train_time, ms.step_avg) == (2.5, 500.0) and (s.train_time, s.step_avg) == (2.5, 500.0)


def test_read_text_limits(tmp_path, monkeypatch):
    path = write(tmp_path / "a.txt", "step:0/10 val_loss:1.0\n")
    monkeypatch.setattr(logs, "MAX_BYTES", 10)
    with pytest.raises(LogError) as e:
        logs.read_text(path)
    assert str(e.value) == f"{path}: 23 bytes; not a training log (limit 10)"
    monkeypatch.setattr(logs, "MAX_BYTES", 23)
    assert logs.read_text(path) == ("step:0/10 val_loss:1.0\n", False)
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises(LogError, match="blank.txt: empty file$"):
        logs.read_text(str(tmp_path / "blank.txt"))
    (tmp_path / "nul.txt").write_bytes(b"step:0/10 val_loss:1.0\n")
    assert logs.read_text(str(tmp_path / "nul.txt"))[1] is False
    (tmp_path / "nul.txt").write_bytes(b"step:0/10 val_loss:1.\0\n")
    assert logs.read_text(str(tmp_path / "nul.txt"))[1] is True


def test_expand_lists_what_it_leaves_out(tmp_path):
    d = tmp_path / "d"
    (d / ".git").mkdir(parents=True)
    (d / "b").mkdir()
    for name in ("z.txt", "a.LOG", "x.out", "y.stdout", "c1.md", "c2.md", "c3.md", "c4.md", "c5.md", "c6.md",
                 ".hidden.txt", ".git/x.txt", "b/k.txt"):
        write(d / name, "x\n")
    files, skipped = logs.expand([str(d), str(tmp_path / "lone.md")])
    assert [os.path.relpath(f, d) for f in files[:-1]] == ["a.LOG", "x.out", "y.stdout", "z.txt", "b/k.txt"]
    assert files[-1] == str(tmp_path / "lone.md")  # a file named explicitly is read whatever its name
    assert skipped == [f"{d}: skipped 6 file(s) not named like a log (*.txt/*.log/*.out/*.stdout): c1.md, c2.md, "
                       "c3.md, c4.md, c5.md ..."]
    (d / "c6.md").unlink()
    assert logs.expand([str(d)])[1][0].endswith("(*.txt/*.log/*.out/*.stdout): c1.md, c2.md, c3.md, c4.md, c5.md")


def test_labels():
    assert logs._labels(["a/x/log.txt", "b/x/log.txt", "c/y.txt"]) == {"a/x/log.txt": "a/x/log.txt",
                                                                       "b/x/log.txt": "b/x/log.txt", "c/y.txt": "y.txt"}
    assert logs._labels(["r/a/s.txt", "r/b/s.txt"]) == {"r/a/s.txt": "a/s.txt", "r/b/s.txt": "b/s.txt"}


def test_agree():
    p = lambda v, d: logs.ValPoint(1, 2, v, decimals=d)  # noqa: E731
    assert logs._agree(p(3.27901, 5), p(3.2790, 4)) and logs._agree(p(3.27905, 5), p(3.2791, 4))
    assert not logs._agree(p(3.27906, 5), p(3.2790, 4)) and not logs._agree(p(3.27901, 5), p(3.27902, 5))
    assert not logs._agree(p(3.27901, None), p(3.2790, 4)) and not logs._agree(p(3.27901, 5), p(3.2790, None))
    assert logs._agree(p(3.5, None), p(3.5, None))


def test_same_run_by_its_time_alone():
    def trial(points, seed=None, source="a", tag=None):
        t = logs.Trial(source=source, index=1, seed=seed, tag=tag)
        t.points = [logs.ValPoint(s, 10, v, train_time=tt, decimals=5) for s, v, tt in points]
        return t
    full = trial([(0, 10.0, 0.0), (5, 3.5, 1.0), (10, 3.2, 2.0)])
    assert logs.same_run(full, trial([(10, 3.2, 2.0004)], source="b")) == 1  # within 5e-4 s
    assert logs.same_run(full, trial([(10, 3.2, 2.0006)], source="b")) == 0
    assert logs.same_run(full, trial([(10, 3.2, None)], source="b")) == 0
    assert logs.same_run(full, trial([(0, 10.0, 0.0), (10, 3.2, 9.0)], source="b")) == 0  # step 0 does not count
    assert logs.same_run(full, trial([(5, 3.5, 7.0), (10, 3.2, 9.0)], source="b")) == 2
    assert logs.same_run(trial(full_points := [(5, 3.5, 1.0), (10, 3.2, 2.0)], seed=1),
                         trial(full_points, seed=2, source="b")) == 0
    assert logs.same_run(trial(full_points, seed=1), trial(full_points, seed=1, source="b")) == 2
    assert logs.same_run(trial(full_points, tag="1/2"), trial(full_points, tag="2/2")) == 0
    assert logs.same_run(trial(full_points, tag="1/2"), trial(full_points, tag="2/2", source="b")) == 2


def test_dedupe_keeps_the_one_with_a_script_on_a_tie(tmp_path):
    points = curve(3.277)
    capture = write(tmp_path / "a.out", "\n".join(val_line(s, 3250, v) for s, v in points.items()) + "\n")
    log = write(tmp_path / "b.txt", log_text([points], trial_lines=False))
    runs = read_runs([capture, log])
    assert [t.name for t in runs.trials] == ["b.txt#1"] and runs.trials[0].script == SCRIPT
    runs = read_runs([log, capture])
    assert [t.name for t in runs.trials] == ["b.txt#1"]


def test_read_runs_errors(tmp_path):
    with pytest.raises(LogError, match="^no log files given$"):
        read_runs([])
    names = [write(tmp_path / f"n{i}.txt", "x\n") for i in range(6)]
    with pytest.raises(LogError) as e:
        read_runs(names)
    assert str(e.value).startswith(f"no training log among {', '.join(names[:5])} ...: {names[0]}: not a training log")
    assert str(e.value).count("not a training log") == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LogError) as e:
        read_runs([str(empty)])
    assert str(e.value) == f"no training log among {empty}: no file"
    assert read_runs([str(empty)], allow_empty=True).trials == []


def test_runs_messages_order(tmp_path):
    a = write(tmp_path / "a.txt", log_text([curve(3.277)]) + "step:1/2 val_loss:x\n")
    b = write(tmp_path / "b.txt", "hello\n")
    runs = read_runs([a, a, b])
    assert runs.messages() == [f"skipped {b}: not a training log: no val line `step:S/N val_loss:L`",
                               f"{a}: the same file as {a}; read once",
                               f"{a}:48: malformed val line skipped"]


def test_trial_properties():
    t = logs.Trial(source="a", index=1)
    assert (t.train_steps, t.final_step, t.final_val_loss, t.complete, t.ends_early) == (None, None, None, False, False)
    t.points = [logs.ValPoint(5, 10, 3.0, extra={"b": 1.0}), logs.ValPoint(10, 10, 2.0, extra={"a": 1.0, "b": 2.0})]
    assert t.columns() == ["val_loss", "b", "a"] and t.losses("b") == {5: 1.0, 10: 2.0} and t.losses("a") == {10: 1.0}
    assert t.complete and t.status() == "complete" and t.first_nonfinite is None
    assert logs.ValPoint(1, 2, float("inf")).finite is False


# --- tools.public_claims ---------------------------------------------------------------------------------------------

from test_tools_public_claims import README, make_track  # noqa: E402


def test_public_claims_text(tmp_path, capsys):
    make_track(tmp_path)
    assert public_claims.main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["public track-3 claims at their declared step, bar 0.004, read as a user would (the row's "
                         "folder)",
                         " row  step           table metric          n     mean   margin  verdict"]
    assert lines[2] == "   2  3250    3.2775 (n=4) val_loss        4   3.2775  0.00500  PASS   [results/20260501_x]"
    assert lines[3] == f"          logs: NVIDIA H100 80GB HBM3 x8, torch 2.11.0+cu130, script {logs.script_sha256(SCRIPT)[:8]}"
    assert lines[4] == "          - skipped results/20260501_x/notes.txt: not a training log: no val line `step:S/N val_loss:L`"
    row3 = next(l for l in lines if l.startswith("   3 "))
    assert row3 == ("   3  3225    3.2775 (n=4) val_loss        4   3.2795  0.00100  FAIL: margin 0.00100 < 0.004   "
                    "[results/20260501_x]")
    assert lines[-1] == "summary: 2 of 3 rows pass at their declared step"


def test_public_claims_all_rows_and_json(tmp_path, capsys):
    make_track(tmp_path)
    assert public_claims.main([str(tmp_path), "--all", "--rows", "1", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["bar"] == 0.004 and out["checked"] == 1 and out["passed"] == 0
    r = out["rows"][0]
    assert (r["row"], r["declared"], r["evidence"], r["metric"], r["read"], r["n"], r["pass"]) == \
        (1, 3600, "3.2777 (n=1)", "val_loss", "results/top.txt", 1, False)
    assert r["reason"] == "step 3600 is not a val step of every run" and r["earliest"] is None
    assert public_claims.main([str(tmp_path), "--rows", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["passed"], out["checked"]) == (1, 1) and out["rows"][0]["margin"] == pytest.approx(0.005)
    assert out["rows"][0]["earliest"] == 3250 and out["rows"][0]["reason"] == ""


def test_public_claims_notes_a_table_that_differs(tmp_path, capsys):
    track = make_track(tmp_path)
    readme = (track / "README.md").read_text().replace("3.2775 (n=4)✓ | a folder", "3.2776 (n=4)✓ | a folder")
    write(track / "README.md", readme)
    assert public_claims.main([str(tmp_path), "--rows", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "          - the table says 3.2776 (n=4); the folder gives 3.2775 (n=4)" in lines


def test_public_claims_unscorable_row(tmp_path, capsys):
    track = make_track(tmp_path)
    write(track / "README.md", README.replace("results/20260503_y/b.txt", "results/20260503_z/b.txt"))
    (track / "results" / "20260503_z").mkdir()
    write(track / "results" / "20260503_z" / "b.txt", "not a log\n")
    assert public_claims.main([str(tmp_path), "--rows", "4"]) == 1
    row = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("   4 "))
    assert row.startswith("   4  3000    3.2770 (n=2) val_loss        -        -        -  FAIL: cannot score: no "
                          "training log among results/20260503_z: ")


def test_parse_table_edges():
    text = ("| 7 | 3100 | 3.2761 (n=3)✓ | d | 2026 | [log](results/a.txt) | x |\n"
            "| 8 | 3100 | no evidence | d | 2026 | [log](results/a.txt) | x |\n"
            "| 9 | abc | 3.2761 (n=3)✓ | d | 2026 | [log](results/a.txt) | x |\n"
            "| 10 | 3000 | 3.2761 (n=3)✓ | d | 2026 | no link | x |\n"
            "|11|2900|3.2700 (n=12)Ⓧ|d|[log](results/b.txt)|\n"
            "| 12 |\n")
    assert public_claims.parse_table(text) == [
        {"row": 7, "steps": 3100, "mean": 3.2761, "n": 3, "significant": True, "log": "results/a.txt"},
        {"row": 11, "steps": 2900, "mean": 3.27, "n": 12, "significant": False, "log": "results/b.txt"}]


def test_locate(tmp_path):
    track = make_track(tmp_path)
    assert public_claims.locate(str(tmp_path), "unused") == os.path.join(str(tmp_path), public_claims.TRACK)
    assert public_claims.locate(str(track), "unused") == str(track)
    (tmp_path / "empty").mkdir()
    with pytest.raises(public_claims.SourceError) as e:
        public_claims.locate(str(tmp_path / "empty"), "unused")
    assert str(e.value) == (f"{tmp_path / 'empty'}: neither a git directory nor a folder holding "
                            "records/track_3_optimization/README.md and results/")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_export_of_a_checkout_and_of_a_repo_without_the_track(tmp_path, capsys):
    work = tmp_path / "work"
    make_track(work)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)
    shutil.move(str(work / "records"), str(tmp_path / "moved"))  # only .git holds the files now
    out = tmp_path / "out"
    track = public_claims.locate(str(work), str(out))
    assert track == os.path.join(str(out), public_claims.TRACK)
    with open(os.path.join(track, "results", "20260501_x", "a.txt")) as f, \
            open(tmp_path / "moved" / "track_3_optimization" / "results" / "20260501_x" / "a.txt") as g:
        assert f.read() == g.read()
    assert sorted(os.listdir(os.path.join(track, "results"))) == ["20260501_x", "20260503_y", "top.txt"]
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    write(other / "x.txt", "x\n")
    subprocess.run(["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"],
                   check=True)
    with pytest.raises(public_claims.SourceError) as e:
        public_claims.locate(str(other), str(tmp_path / "out2"))
    assert str(e.value) == f"{other / '.git'}: HEAD has no records/track_3_optimization/"
    fake = tmp_path / "fake"
    fake.mkdir()
    write(fake / "HEAD", "ref: refs/heads/main\n")
    with pytest.raises(public_claims.SourceError, match=f"^{fake}: not a readable git directory"):
        public_claims.locate(str(fake), str(tmp_path / "out3"))
    assert public_claims.main([str(fake)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {fake}: not a readable git directory")


def test_extract_errors_and_output(tmp_path, capsys):
    src = write(tmp_path / "run.txt", log_text([{0: 10.8, 10: 3.2}], train_steps=10))
    out = tmp_path / "out"
    assert public_claims.main(["--extract", src, "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out / 'run.txt'} (6 lines)\n"
    assert (out / "run.txt").read_text() == "\n".join(
        [SEP, HEADER, SHA_LINE % logs.script_sha256(SCRIPT), SEP, val_line(0, 10, 10.8), val_line(10, 10, 3.2)]) + "\n"
    crlf = write(tmp_path / "crlf.txt", log_text([{0: 10.8, 10: 3.2}], train_steps=10).replace("\n", "\r\n"))
    crlf_sha = parse_file(crlf).script_sha256  # the script as printed, with its CRs
    assert crlf_sha == logs.script_sha256(SCRIPT.replace("\n", "\r\n")) != logs.script_sha256(SCRIPT)
    assert public_claims.extract(crlf) == (out / "run.txt").read_text().replace(logs.script_sha256(SCRIPT), crlf_sha)
    no_val = write(tmp_path / "noval.txt", SCRIPT + SEP + "\nh\n" + SEP + "\nhello\n")
    assert public_claims.main(["--extract", no_val, "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {no_val}: no val line after the header\n"
    with pytest.raises(SystemExit) as e:
        public_claims.main(["--extract", src])
    assert e.value.code == 2 and "--extract needs LOG... and -o DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        public_claims.main([str(tmp_path), str(tmp_path)])
    assert "give one SOURCE" in capsys.readouterr().err


def test_short():
    assert public_claims._short("/tmp/x/records/t/results/a: b /tmp/x/records/t/c", "/tmp/x/records/t/") == \
        "results/a: b c"
    assert public_claims._short("/tmp/x/records/tt/a", "/tmp/x/records/t") == "/tmp/x/records/tt/a"


def test_record_46_row_uses_val_ema_loss(tmp_path):
    track = tmp_path / "records" / "track_3_optimization"
    folder = track / "results" / "20260619_cwd_rowfloor_tailema"
    folder.mkdir(parents=True)
    for name in os.listdir(RECORD46):
        shutil.copy(os.path.join(RECORD46, name), folder / name)
    row = {"row": 46, "steps": 2690, "mean": 3.2783, "n": 8, "significant": True,
           "log": f"results/20260619_cwd_rowfloor_tailema/{sorted(os.listdir(RECORD46))[0]}"}
    r = public_claims.check_row(str(track), row)
    assert r["pass"] and r["metric"] == "val_ema_loss" and r["n"] == 8 and r["mean"] == pytest.approx(3.27832875)
    assert r["margin"] == pytest.approx(0.0047, abs=5e-5) and r["earliest"] == 2690 and r["notes"] == [
        "A40_seed7_5c1a373d-6eb4-4643-b562-3db6aab4381a.txt#1: stops early at step 2765 of 2900 (no val line after it "
        "in its log); it still counts as a run (leaving it out would be cherry-picking)"]
    r = public_claims.check_row(str(track), dict(row, row=45))  # another row: val_loss, where 2690 fails
    assert r["metric"] == "val_loss" and not r["pass"] and r["reason"].startswith("margin ")


# --- second batch: the edges of the reading rules ------------------------------------------------------------------

def test_parse_text_defaults():
    with pytest.raises(LogError) as e:
        parse_text("hello\n")
    assert str(e.value) == "<text>: not a training log: no val line `step:S/N val_loss:L`"


@pytest.mark.parametrize("text,message", [
    (SCRIPT + SEP + "\n", "only the training script (no run output)"),
    (SCRIPT + SEP + "\nheader\n", "no val line `step:S/N val_loss:L`"),
    ("hello\n", "no val line `step:S/N val_loss:L`"),
])
def test_not_a_log_messages(text, message):
    with pytest.raises(LogError) as e:
        parse_text(text, "f.txt")
    assert str(e.value) == f"f.txt: not a training log: {message}"
    with pytest.raises(LogError) as e:
        parse_text(text, "f.txt", binary=True)
    assert str(e.value) == "f.txt: not a training log: looks like a binary file"


def test_val_line_right_after_the_first_separator():
    log = parse_text(SCRIPT + SEP + "\nstep:0/10 val_loss:1.0\nstep:10/10 val_loss:0.5\n", "a")
    assert [p.step for p in log.trials[0].points] == [0, 10] and log.header == ""


def test_crlf_log_keeps_its_script_unread():
    script = 'X = "step:5/10 val_loss:0.10000"\n'
    text = log_text([{0: 10.8, 10: 3.2}], train_steps=10, script=script).replace("\n", "\r\n")
    log = parse_text(text, "a")
    assert log.script == script.replace("\n", "\r\n") and [p.step for p in log.trials[0].points] == [0, 10]
    assert log.header == HEADER + "\r" and log.world_size == 8


def test_zero_train_steps_is_malformed():
    log = parse_text("step:0/0 val_loss:1.0\nstep:0/1 val_loss:2.0\nstep:1/1 val_loss:1.5\n", "a")
    assert [(p.step, p.train_steps) for p in log.trials[0].points] == [(0, 1), (1, 1)]
    assert log.warnings == ["a:1: malformed val line (step 0/0) skipped"]


def test_seed_of_30_digits_is_not_read():
    for digits, seed in ((30, None), (29, 10 ** 28)):
        text = log_text([{"points": {0: 10.8, 10: 3.2}, "seed": 10 ** (digits - 1)}], train_steps=10)
        assert parse_text(text, "a").trials[0].seed == seed, digits


def test_stop_line_of_an_unknown_trial_goes_to_the_current_one():
    text = log_text([{0: 10.8, 10: 3.2}, {0: 10.8, 10: 3.3}], train_steps=10) + "trial 5/5 stopped: odd\n"
    a, b = parse_text(text, "a").trials
    assert a.stop_message is None and b.stop_message == "odd"


def test_summary_of_another_trial_or_before_any_is_ignored():
    text = log_text([{0: 10.8, 10: 3.2}, {0: 10.8, 5: 3.3}], train_steps=10)
    summary = "trial 2/2 summary: steps 5 final_val_loss 3.30000"
    assert summary in text
    early = text.replace(summary, "trial 1/2 summary: steps 10 final_val_loss 3.20000")  # 1/2's, during 2/2
    log = parse_text(early, "a")
    assert [t.summary_step for t in log.trials] == [10, None] and log.warnings == []
    log = parse_text(SEP + "\n\n" + SEP + "\ntrial 1/1 summary: steps 10 final_val_loss 3.2\nstep:0/10 val_loss:1.0\n",
                     "a")
    assert log.trials[0].summary_step is None and log.warnings == []


def test_summary_warnings_name_the_trial():
    text = log_text([{0: 10.8, 10: 3.2}, {0: 10.8, 5: 3.3}], train_steps=10)
    bad = text.replace("trial 2/2 summary: steps 5 final_val_loss 3.30000",
                       "trial 2/2 summary: steps 10 final_val_loss 3.30000")
    log = parse_text(bad, "a")
    assert log.warnings == ["a:16: the summary says trial 2/2 ran to step 10, but its last val line is at step 5: "
                            "the log lacks its final val line"]
    assert log.trials[1].status() == ("stops early at step 5 of 10 (no val line after it in its log, though its "
                                      "summary line says it ran to step 10)")
    other = text.replace("trial 2/2 summary: steps 5 final_val_loss 3.30000",
                         "trial 2/2 summary: steps 5 final_val_loss nan")
    assert parse_text(other, "a").warnings == ["a:16: the summary says final_val_loss nan, but the val line at step 5 "
                                               "says 3.3"]
    nan = log_text([{0: 10.8, 10: float("nan")}], train_steps=10)
    assert "trial 1/1 summary: steps 10 final_val_loss nan" in nan and parse_text(nan, "a").warnings == []
    assert parse_text(text, "a").trials[0].summary_step == 10
    stop = log_text([{"points": {0: 10.8, 5: 3.3}, "stop": 7}], train_steps=10) + \
        "trial 1/1 summary: steps 7 final_val_loss 9.00000\n"
    assert parse_text(stop, "a").warnings == []  # a stopped trial's summary is not checked


def test_resumed_at_a_val_step_that_was_printed_already():
    # vals at 1625 and 1750 printed, a crash, a resume from the checkpoint at 1625: 1625 and 1750 come again
    points = curve(3.274)
    lines = [val_line(s, 3250, v) for s, v in sorted(points.items())]
    i = lines.index(val_line(1750, 3250, points[1750]))
    lines[i + 1:i + 1] = ["trial 1/1 resumed from checkpoints/x.pt at step 1625", lines[i - 1], lines[i]]
    log = parse_text("\n".join(lines) + "\n", "a")
    assert len(log.trials) == 1 and log.warnings == [] and log.trials[0].complete


def test_after_a_resume_a_step_never_printed_before_is_named():
    points = {0: 10.8, 125: 4.5, 250: 4.1, 375: 3.9}
    lines = [val_line(s, 375, v) for s, v in sorted(points.items())]
    lines[3:3] = ["trial 1/1 resumed from x at step 100", val_line(200, 375, 4.2)]
    log = parse_text("\n".join(lines) + "\n", "a")
    assert [p.step for p in log.trials[0].points] == [0, 125, 250, 375]
    assert log.warnings == ["a:5: step 200/375 after step 250/375 in the same trial; skipped"]


def test_another_train_steps_at_the_same_step_is_named_in_a_tagged_trial():
    text = log_text([{0: 10.8, 10: 3.2}], train_steps=10).replace(
        val_line(10, 10, 3.2), val_line(10, 10, 3.2) + "\nstep:10/20 val_loss:3.20000")
    log = parse_text(text, "a")
    assert log.warnings == ["a:10: step 10/20 after step 10/10 in the same trial; skipped"]


def test_train_time_before_the_val_part_is_not_read():
    p = parse_text("x train_time:9s step_avg:9.00ms | step:5/10 val_loss:1.0 train_time:1s step_avg:2.00ms\n"
                   "step:10/10 val_loss:0.5\n", "a").trials[0].points[0]
    assert (p.train_time, p.step_avg) == (1.0, 2.0)
    q = parse_text("x train_time:9s step_avg:9.00ms | step:5/10 val_loss:1.0\n", "a").trials[0].points[0]
    assert (q.train_time, q.step_avg) == (None, None)


@pytest.mark.parametrize("last,read,warning", [
    # a step_avg before the val part proves nothing about the val part
    ("x train_time:1.0s step_avg:1.00ms | step:10/10 val_loss:3.27", False, "the file ends inside this val line (no "
     "newline; a val line is known whole only when it goes on to train_time and step_avg): not read: "
     "'x train_time:1.0s step_avg:1.00ms | step:10/10 val_loss:3.27'"),
    # a space after the last column proves it whole
    ("step:10/10 val_loss:3.27901 train_time:1.000s step_avg:1.00ms ema_beta:0.95 ", True, None),
    # columns separated by tabs: the last one is left out
    ("step:10/10 val_loss:3.27901 train_time:1.000s step_avg:1.00ms\tema_beta:0.95\tref_step:1", True,
     "the file ends inside this val line (no newline): its last column 'ref_step:1' could be cut: not read"),
    ("step:10/10 val_loss:3.27901 train_time:1.000s step_avg:1.00ms " + "a" * 50 + ":1", True,
     "the file ends inside this val line (no newline): its last column '" + "a" * 40 + "' could be cut: not read"),
    ("step:10/10 val_loss:3.27901 X", False, "the file ends inside this val line (no newline; a val line is known "
     "whole only when it goes on to train_time and step_avg): not read: 'step:10/10 val_loss:3.27901 X'"),
    ("trial 1/1 stopped: training loss is nan or inf at step 9; going on with the next trial ", True, None),
])
def test_last_line_edges(last, read, warning):
    log = parse_text("step:0/10 val_loss:9.0\n" + last, "a")
    t = log.trials[0]
    assert (len(t.points) == 2 or t.stop_message is not None) == read
    assert log.warnings == ([f"a:2: {warning}"] if warning else [])
    if read and t.points[-1].step == 10:
        assert t.points[-1].val_loss == 3.27901 and t.points[-1].extra.get("ema_beta") == (
            0.95 if "ema_beta" in last else None)


def test_long_cut_lines_are_shown_by_their_end():
    for n, shown in ((160, None), (161, "...")):
        last = "step:10/10 val_loss:3.2" + "7" * (n - len("step:10/10 val_loss:3.2"))
        assert len(last) == n
        warning = parse_text("step:0/10 val_loss:9.0\n" + last, "a").warnings[0]
        tail = repr(last if shown is None else "..." + last[-157:])
        assert warning.endswith(f"not read: {tail}") and len(tail) == 162, n


def test_a_cut_trial_line_does_not_mark_the_run_before():
    text = log_text([{0: 10.8, 5: 3.3}], train_steps=10).replace("1/1", "1/2") + "trial 2/2 seed 12"
    log = parse_text(text, "a")
    assert log.trials[0].status() == "stops early at step 5 of 10 (no val line after it in its log)"
    assert log.warnings[-1].endswith("(no newline; its seed could be cut): not read: 'trial 2/2 seed 12'")


# --- second batch: tools.public_claims ---------------------------------------------------------------------------

def test_parse_table_cells():
    text = "| 13 | 3000 | 3.2700 (n=2)✓ [log](results/x.txt) |\n| 14 | 3000 |\n| 15 | 3000 | x |\n"
    assert public_claims.parse_table(text) == [
        {"row": 13, "steps": 3000, "mean": 3.27, "n": 2, "significant": True, "log": "results/x.txt"}]


def test_locate_needs_both_readme_and_results(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    write(folder / "README.md", "x\n")
    with pytest.raises(public_claims.SourceError):
        public_claims.locate(str(folder), "unused")
    (folder / "README.md").unlink()
    (folder / "results").mkdir()
    with pytest.raises(public_claims.SourceError):
        public_claims.locate(str(folder), "unused")


def test_row_whose_linked_log_has_one_trial(tmp_path):
    track = make_track(tmp_path)
    row = {"row": 5, "steps": 3500, "mean": 3.27, "n": 1, "significant": True, "log": "results/20260503_y/a.txt"}
    r = public_claims.check_row(str(track), row)
    assert (r["n"], r["pass"], r["mean"]) == (1, True, pytest.approx(3.27))
    assert r["notes"][-1].startswith("the folder holds runs of several train_steps; read those of the linked log "
                                     "(--train-steps 3500: left out 2 run(s) of another experiment")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_export_of_many_files_and_a_missing_one(tmp_path):
    work = tmp_path / "work"
    track = make_track(work)
    (track / "results" / "many").mkdir()
    for i in range(60):  # more files than a git object name has characters
        write(track / "results" / "many" / f"f{i:02d}.md", f"file {i}\n" * (i + 1))
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)
    sha = subprocess.run(git + ["rev-parse", f"HEAD:{public_claims.TRACK}/results/many/f10.md"], check=True,
                         capture_output=True, text=True).stdout.strip()
    os.remove(work / ".git" / "objects" / sha[:2] / sha[2:])  # a mirror that lacks this file
    out = public_claims.locate(str(work / ".git"), str(tmp_path / "out"))
    many = sorted(os.listdir(os.path.join(out, "results", "many")))
    assert many == [f"f{i:02d}.md" for i in range(60) if i != 10]
    for i in (0, 11, 59):
        with open(os.path.join(out, "results", "many", f"f{i:02d}.md")) as f:
            assert f.read() == f"file {i}\n" * (i + 1)


def test_extract_first_line_after_the_header(tmp_path):
    src = write(tmp_path / "pub.txt", "import os\n" + SEP + "\nhead\n" + SEP + "\nstep:0/10 val_loss:9.0\n"
                "step:1/10 train_time:1ms\nstep:10/10 val_loss:3.0\n")
    assert public_claims.extract(src) == SEP + "\nhead\n" + SHA_LINE % logs.script_sha256("import os\n") + "\n" + SEP + \
        "\nstep:0/10 val_loss:9.0\nstep:10/10 val_loss:3.0\n"


SHA_LINE = "script_sha256=%s (the script above this header in the original log, left out here)"


# --- the command lines' help -----------------------------------------------------------------------------------------

def _help(capsys, monkeypatch, main):
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_logs_help(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, logs.main)
    assert text.startswith("usage: python -m tools.logs [-h] [--script] [-o FILE] [--json] LOG [LOG ...]\n\n"
                           "Parse the training logs that train_gpt_simple.py writes (logs/<uuid>.txt), and public "
                           "ones.\n")
    flat = " ".join(text.split())
    for option in ["LOG log files or directories (walked for logs)",
                   "--script print the training script embedded in the (one) LOG",
                   "-o FILE, --output FILE with --script: write the script to FILE",
                   "--json machine-readable output", "Exit status: 0 ok, 2 a file is not a usable log."]:
        assert option in flat, option


def test_public_claims_help(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, public_claims.main)
    assert text.startswith("usage: python -m tools.public_claims [-h] [--rows ROWS] [--all] [--extract] [-o DIR] "
                           "[--prs] [--from N] [--pr N,M] [--base REF] [--json] [source ...]\n")
    assert public_claims.__doc__.strip() in text  # the module's text with its line breaks
    flat = " ".join(text.split())
    for option in ["source the public repo: a git directory or a folder (or, with --extract, logs)",
                   "--rows ROWS only these rows, e.g. 44,46",
                   "--all also the rows the table marks as not significant",
                   "--extract write the non-script part of each LOG into -o DIR", "-o DIR, --output DIR --prs", "--json"]:
        assert option in flat, option


def test_public_claims_notes_keep_their_indent(tmp_path, capsys):
    track = make_track(tmp_path)
    folder = track / "results" / "20260501_x"
    edited = SCRIPT.replace("(1, 2, 3.0)", "(1, 2, 4.0)")
    write(folder / "b.txt", (folder / "b.txt").read_text().replace(SCRIPT, edited))
    assert public_claims.main([str(tmp_path), "--rows", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = next(k for k, l in enumerate(lines) if "the runs were written by 2 different scripts" in l)
    assert lines[i] == ("          - the runs were written by 2 different scripts (pooled anyway; --strict refuses); "
                        "compared with the script of a.txt#1, a.txt#2:")
    assert lines[i + 1].startswith("            b.txt#1, b.txt#2: 1 line(s) differ (only number literals, e.g. a seed)")


# --- third batch -----------------------------------------------------------------------------------------------------

def test_logs_help_layout(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, logs.main)
    assert "A log is the full text" not in text  # the first paragraph of the module's text only
    assert " ".join(text.split()).endswith("Exit status: 0 ok, 2 a file is not a usable log.")
    monkeypatch.setenv("COLUMNS", "60")
    with pytest.raises(SystemExit):
        logs.main(["--help"])
    assert "\nParse the training logs that train_gpt_simple.py writes (logs/<uuid>.txt), and public ones.\n" in \
        capsys.readouterr().out  # kept on one line, as written


def test_two_resumes_are_listed(tmp_path, capsys):
    text = log_text([{0: 10.8, 5: 3.5, 10: 3.2}], train_steps=10).replace(
        val_line(5, 10, 3.5), val_line(5, 10, 3.5) + "\ntrial 1/1 resumed from x at step 3\n" + val_line(5, 10, 3.5)
        + "\ntrial 1/1 resumed from x at step 7")
    code, out, _ = run(capsys, [write(tmp_path / "a.txt", text)])
    assert code == 0 and out.splitlines()[2].endswith("complete (resumed at step 3, 7)")


def test_read_runs_error_joins_the_reasons(tmp_path):
    names = [write(tmp_path / f"n{i}.txt", "x\n") for i in range(5)]
    with pytest.raises(LogError) as e:
        read_runs(names[:2])
    assert str(e.value) == (f"no training log among {names[0]}, {names[1]}: {names[0]}: not a training log: no val "
                            f"line `step:S/N val_loss:L`; {names[1]}: not a training log: no val line `step:S/N "
                            "val_loss:L`")
    with pytest.raises(LogError) as e:
        read_runs(names)
    assert str(e.value).startswith(f"no training log among {', '.join(names)}: ")  # five: no "..."
    only = tmp_path / "only"
    only.mkdir()
    write(only / "notes.md", "x\n")
    with pytest.raises(LogError) as e:
        read_runs([str(only)])
    assert str(e.value) == (f"no training log among {only}: {only}: skipped 1 file(s) not named like a log "
                            "(*.txt/*.log/*.out/*.stdout): notes.md")


def test_missing_file_message(tmp_path):
    with pytest.raises(LogError) as e:
        logs.read_text(str(tmp_path / "nope.txt"))
    assert str(e.value) == f"{tmp_path / 'nope.txt'}: cannot read: No such file or directory"


def test_kept_run_keeps_its_own_script(tmp_path):
    points = curve(3.277)
    a = write(tmp_path / "a.txt", log_text([points], trial_lines=False))
    b = write(tmp_path / "b.txt", log_text([points], trial_lines=False, script=SCRIPT + "# edited\n"))
    runs = read_runs([a, b])
    assert [t.name for t in runs.trials] == ["a.txt#1"] and runs.trials[0].script == SCRIPT


def test_same_run_at_exactly_the_time_tolerance():
    def trial(source, tt):
        t = logs.Trial(source=source, index=1)
        t.points = [logs.ValPoint(10, 10, 3.2, train_time=tt, decimals=5)]
        return t
    assert logs.same_run(trial("a", 0.0), trial("b", 5e-4)) == 1 and logs.same_run(trial("a", 0.0), trial("b", 6e-4)) == 0


@pytest.mark.parametrize("odd", ["\f", "X", "\x1c"])
def test_only_spaces_tabs_and_cr_may_follow_a_separator(tmp_path, odd):
    script = "x = 1\n" + SEP + odd + "\ny = 2\n"
    text = script + SEP + " \t\r\nheader\n" + SEP + "\nstep:0/10 val_loss:1.0\n"
    log = parse_text(text, "a")
    assert log.script == script and log.header == "header"
    assert public_claims.extract(write(tmp_path / "t.txt", text)) == \
        SEP + "\nheader\n" + SHA_LINE % logs.script_sha256(script) + "\n" + SEP + "\nstep:0/10 val_loss:1.0\n"


def test_two_launches_with_the_same_tag_in_one_file():
    text = log_text([{"points": {0: 10.8, 10: 3.2}, "seed": 1}], train_steps=10) + \
        log_text([{"points": {0: 10.8, 5: 3.3}, "seed": 2}], train_steps=10, script="").split(SEP + "\n", 2)[2]
    text = text.replace("trial 1/1 target val_loss<=3.28 not reached\ntrial 1/1 summary: steps 5",
                        "trial 1/1 stopped: training loss is nan or inf at step 7\ntrial 1/1 summary: steps 5")
    a, b = parse_text(text, "a").trials
    assert (a.seed, b.seed) == (1, 2) and a.stop_message is None
    assert b.stop_message == "training loss is nan or inf at step 7"


def test_extract_keeps_what_follows_the_text(tmp_path):
    src = write(tmp_path / "pub.txt", "import os\n" + SEP + "\nh1  \nh2 step:1/2 val_loss:3.0 X\n" + SEP +
                "\nstep:0/10 val_loss:9.0 \nstep:10/10 val_loss:3.0 X\r\n")
    assert public_claims.extract(src) == (SEP + "\nh1  \nh2 step:1/2 val_loss:3.0 X\n" +
                                          SHA_LINE % logs.script_sha256("import os") + "\n" + SEP +
                                          "\nstep:0/10 val_loss:9.0 \nstep:10/10 val_loss:3.0 X\n")


def test_public_claims_argument_errors_exactly(tmp_path, capsys):
    for argv, message in ((["--extract", "x.txt"], "--extract needs LOG... and -o DIR"), ([], "give one SOURCE")):
        with pytest.raises(SystemExit) as e:
            public_claims.main(argv)
        assert e.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"python -m tools.public_claims: error: {message}"


def test_public_claims_in_a_c_locale(tmp_path):
    make_track(tmp_path)
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0", PYTHONIOENCODING="utf-8")
    p = subprocess.run([sys.executable, "-m", "tools.public_claims", str(tmp_path), "--rows", "2"], cwd=ROOT_DIR,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "summary: 1 of 1 rows pass at their declared step" in p.stdout, p.stderr


ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_public_claims_reads_the_table_as_utf8_whatever_the_locale(tmp_path, capsys, monkeypatch):
    # the same as above in-process (mutmut sees only in-process calls): open() without an encoding gets ASCII here
    import builtins
    make_track(tmp_path)

    def ascii_locale_open(file, mode="r", *args, encoding=None, **kwargs):
        if "b" not in mode and encoding is None:
            encoding = "ascii"
        return builtins.open(file, mode, *args, encoding=encoding, **kwargs)

    monkeypatch.setattr(public_claims, "open", ascii_locale_open, raising=False)
    assert public_claims.main([str(tmp_path), "--rows", "2"]) == 0
    assert "summary: 1 of 1 rows pass at their declared step" in capsys.readouterr().out


def test_git_answer_for_another_object_is_refused(tmp_path, monkeypatch):
    sha = b"a" * 40

    class Done:
        def __init__(self, stdout):
            self.stdout = stdout

    answer = b"b" * 40 + b" blob 3" + b" x" * 30  # 97 characters: the message shows the first 80
    answers = iter([Done(b"100644 blob " + sha + b"\t" + public_claims.TRACK.encode() + b"/README.md\0"),
                    Done(answer + b"\nabc\n")])
    monkeypatch.setattr(public_claims.subprocess, "run", lambda *a, **k: next(answers))
    with pytest.raises(public_claims.SourceError) as e:
        public_claims._git_export("G", str(tmp_path))
    assert str(e.value) == f"G: git cat-file answered {answer[:80]!r} for {public_claims.TRACK}/README.md"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_export_of_odd_file_names(tmp_path):
    work = tmp_path / "work"
    track = make_track(work)
    odd = os.path.join(str(track).encode(), b"results", b"tab\there.txt")
    bad = os.path.join(str(track).encode(), b"results", b"bad\xffname.txt")
    for name in (odd, bad):
        with open(name, "wb") as f:
            f.write(b"content\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "core.quotepath=off"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)
    out = public_claims.locate(str(work / ".git"), str(tmp_path / "out"))
    names = sorted(os.listdir(os.path.join(out, "results")))
    assert "tab\there.txt" in names and "bad\ufffdname.txt" in names
    with open(os.path.join(out, "results", "tab\there.txt"), "rb") as f:
        assert f.read() == b"content\n"


def test_nan_in_the_rows_metric_is_noted(tmp_path):
    track = tmp_path / "records" / "track_3_optimization"
    folder = track / "results" / "r46"
    folder.mkdir(parents=True)
    runs = [curve(round(3.2760 + o, 5)) for o in (-0.0002, 0.0002)]
    text = add_column(log_text(runs), "val_ema_loss", -0.0005)
    text = re.sub(r"(step:125/3250 val_loss:\S+ val_ema_loss:)\S+", r"\1nan", text, count=1)
    assert "step:125/3250 val_loss:3.30080 val_ema_loss:nan" in text
    write(folder / "a.txt", text)
    row = {"row": 46, "steps": 3250, "mean": 3.2755, "n": 2, "significant": True, "log": "results/r46/a.txt"}
    r = public_claims.check_row(str(track), row)
    assert r["metric"] == "val_ema_loss" and r["pass"] and "a.txt#1: val_ema_loss nan at step 125; it still counts " \
        "as a run (leaving it out would be cherry-picking)" in r["notes"]
