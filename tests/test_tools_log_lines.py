"""tools.logs: a last line without a newline (a file cut mid-write) is never read as more than it holds, in every
line format the tools read; the script's summary line and the final val; a resumed run stays one run."""
import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import SCRIPT, SEP, curve, log_text, val_line, write  # noqa: E402

from tools import results, stats  # noqa: E402
from tools.logs import RESUME_RE, STOP_RE, SUMMARY_RE, TRIAL_RE, parse_file, parse_text  # noqa: E402

HEAD = SCRIPT + SEP + "\nheader\n" + SEP + "\n"

# Every val line format the tools read, as (name, the line before, the last line): the training script's (5
# decimals, train_time in s), with more columns (record #46), 4 decimals with train_time in ms, the public logs'
# step_avg:nanms at step 0 and columns after step_avg (ema_beta, extrap_*, ref_*), a non-finite loss, and the short
# form `step:S/N val_loss:L` of console captures and hand-made files.
VAL_FORMATS = [
    ("ours", "step:3225/3250 val_loss:3.27990 train_time:499.342s step_avg:154.84ms",
     "step:3250/3250 val_loss:3.27901 train_time:503.123s step_avg:154.81ms"),
    ("ours, more columns", "step:2685/2900 val_loss:3.28290 val_avg_loss:3.28290 val_ema_loss:3.27863 "
                           "train_time:9886.562s step_avg:3682.15ms",
     "step:2690/2900 val_loss:3.28208 val_avg_loss:3.28208 val_ema_loss:3.27795 train_time:9904.996s "
     "step_avg:3682.15ms"),
    ("ms, 4 decimals", "step:3225/3250 val_loss:3.2799 train_time:499342ms step_avg:154.84ms",
     "step:3250/3250 val_loss:3.2790 train_time:503123ms step_avg:154.81ms"),
    ("public, step 0", "step:0/3250 val_loss:10.8258 train_time:0ms step_avg:nanms",
     "step:0/3250 val_loss:10.8258 train_time:0ms step_avg:nanms"),
    ("public, ema_beta after", "step:3175/3200 val_loss:3.27830 train_time:916.374s step_avg:288.36ms ema_beta:0.9",
     "step:3200/3200 val_loss:3.27782 train_time:923.581s step_avg:288.30ms ema_beta:0.95"),
    ("public, three after", "step:3175/3200 val_loss:3.27830 train_time:916.374s step_avg:288.36ms extrap_count:3 "
                            "extrap_rel:1.250e-05 handoff:none",
     "step:3200/3200 val_loss:3.27782 train_time:923.581s step_avg:288.30ms extrap_count:14 extrap_rel:2.125e-05 "
     "handoff:keep"),
    ("public, ref_step last", "step:3175/3200 val_loss:3.27830 train_time:916.374s step_avg:288.36ms ema_beta:0 "
                              "ref_gamma:-0.5 ref_step:100",
     "step:3200/3200 val_loss:3.27782 train_time:923.581s step_avg:288.30ms ema_beta:0 ref_gamma:-0.5 "
     "ref_step:3125"),
    ("nan", "step:3225/3250 val_loss:3.27990 train_time:499.342s step_avg:154.84ms",
     "step:3250/3250 val_loss:nan train_time:503.123s step_avg:154.81ms"),
    ("short", "step:3225/3250 val_loss:3.27990", "step:3250/3250 val_loss:3.27901"),
    ("short, 4 decimals", "step:3225/3250 val_loss:3.2799", "step:3250/3250 val_loss:3.2790"),
]


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _points(text):
    log = parse_text(text, "cut.txt")
    return [p for t in log.trials for p in t.points], log


@pytest.mark.parametrize("name,before,last", VAL_FORMATS, ids=[f[0] for f in VAL_FORMATS])
def test_a_cut_val_line_is_never_read_as_another_value(name, before, last):
    whole, _ = _points(HEAD + before + "\n" + last + "\n")
    ref = whole[-1]
    lineno = HEAD.count("\n") + 2
    read_at = []
    for k in range(len(last) + 1):
        points, log = _points(HEAD + before + "\n" + last[:k])
        assert [(p.step, p.val_loss) for p in points[:len(whole) - 1]] == [(p.step, p.val_loss) for p in whole[:-1]]
        if len(points) == len(whole):  # the last line was read: every value it gave is the whole line's
            q = points[-1]
            read_at.append(k)
            assert (q.step, q.train_steps) == (ref.step, ref.train_steps) and _same(q.val_loss, ref.val_loss), k
            assert q.train_time in (None, ref.train_time) and _same(q.step_avg, ref.step_avg), k
            assert all(_same(v, ref.extra[c]) for c, v in q.extra.items()), k
        else:
            assert len(points) == len(whole) - 1, k
            if k:  # the dropped line is named, with its file and line number
                assert any(w.startswith(f"cut.txt:{lineno}: the file ends inside this val line (no newline; ")
                           and w.endswith(f"not read: {last[:k]!r}") for w in log.warnings), (k, log.warnings)
    tail = last.rfind("ms") + 2  # the end of step_avg:...ms: the first cut that proves the line whole
    if name.startswith("short"):
        assert read_at == []  # nothing in the short form proves the number whole
    else:
        assert read_at == list(range(tail, len(last) + 1)), name
    points, log = _points(HEAD + before + "\n" + last)  # the whole line, without a newline
    if last.endswith("ms"):
        assert points[-1].extra == whole[-1].extra and log.warnings == []
    elif not name.startswith("short"):  # a column after step_avg ends the line: it could be cut
        token = last.split()[-1]
        assert points[-1].extra == {c: v for c, v in whole[-1].extra.items() if c != token.split(":")[0]}
        assert log.warnings == [f"cut.txt:{lineno}: the file ends inside this val line (no newline): its last column "
                                f"{token!r} could be cut: not read"]


def test_whole_lines_with_a_carriage_return_or_newline_are_read():
    for end in ("\n", "\r", "\r\n"):
        points, log = _points(HEAD + "step:3225/3250 val_loss:3.27990\nstep:3250/3250 val_loss:3.27901" + end)
        assert [p.val_loss for p in points] == [3.2799, 3.27901] and log.warnings == [], end


def test_the_probe_short_format_cut_to_3_27_does_not_flip_the_claim(tmp_path, capsys):
    # one run in the short format; its last line 3.27901 (fails bar 0.005: n=1 needs <= 3.275) cut to 3.27
    lines = [f"step:{s}/3250 val_loss:{v:.5f}" for s, v in curve(3.27901).items()]
    path = write(tmp_path / "run.txt", "\n".join(lines)[:-len("901")])
    assert open(path).read().endswith("step:3250/3250 val_loss:3.27")
    t = parse_file(path).trials[0]
    assert t.final_step == 3225 and t.final_val_loss == 3.27921 and t.ends_early
    assert t.status() == "stops early at step 3225 of 3250 (its file ends inside the next val line)"
    assert stats.main([path]) == 1
    out = capsys.readouterr()
    assert "claim: NONE" in out.out
    assert (f"warning: {path}:38: the file ends inside this val line (no newline; a val line is known whole only "
            "when it goes on to train_time and step_avg): not read: 'step:3250/3250 val_loss:3.27'") in out.err
    assert results.main([path, "--agent-id", "a", "--experiment", "e", "--optimizer", "o"]) == 1
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("line,what,regex,why", [
    ("trial 2/2 seed 1234", "trial line", TRIAL_RE, "its seed could be cut"),
    ("trial 1/2 resumed from checkpoints/x.pt at step 3125", "resume line", RESUME_RE, "its step could be cut"),
    ("trial 1/2 stopped: training loss is nan or inf at step 3130; going on with the next trial", "stop line",
     STOP_RE, "the script ends a stop line with 'going on with the next trial'"),
    ("trial 1/2 summary: steps 3130 final_val_loss 3.30000 train_time 1.000s step_avg 1.00ms peak_mem 1.0GiB seed 1",
     "summary line", SUMMARY_RE, "its numbers could be cut"),
], ids=["trial", "resume", "stop", "summary"])
def test_cut_trial_stop_resume_and_summary_lines(line, what, regex, why):
    points = {0: 10.82584, 125: 4.6, 3000: 3.3}
    text = log_text([points]).rsplit("trial 1/1 target", 1)[0].replace("1/1", "1/2")
    lineno = text.count("\n") + 1
    whole = parse_text(text + line + "\n", "x.txt")
    for k in range(1, len(line) + 1):
        log = parse_text(text + line[:k], "x.txt")
        t = log.trials[0]
        assert len(log.trials) == 1 and [p.step for p in t.points] == [0, 125, 3000]
        assert t.resumed_at in ([], whole.trials[0].resumed_at) and t.stop_message in (None,
                                                                                         whole.trials[0].stop_message)
        if k == len(line) and what == "stop line":  # the script's stop line ends in a way that proves it whole
            assert t.stop_message == "training loss is nan or inf at step 3130; going on with the next trial"
            assert log.warnings == []
            continue
        assert t.stop_message is None and t.resumed_at == []
        kind = what if regex.match(line[:k]) else "line"  # a shorter cut is not yet recognisable as one
        assert [w for w in log.warnings if w.startswith(f"x.txt:{lineno}:")] == [
            f"x.txt:{lineno}: the file ends inside this {kind} "
            f"(no newline; {why if kind == what else 'it may be cut'}): not read: {line[:k]!r}"], k
    cut = parse_text(text + line[:-1], "x.txt").trials[0]
    if what != "trial line":
        assert cut.status() == f"stops early at step 3000 of 3250 (its file ends inside the next {what})"


def test_a_whole_last_line_with_new_columns_is_the_final_val(tmp_path):
    # the last line, without a newline, carries a column the lines before it do not: it is whole (it ends in
    # step_avg), so the run reaches train_steps and is complete, never "early"
    text = log_text([{0: 10.82584, 125: 4.5, 250: 3.2}], train_steps=250, trial_lines=False).rstrip("\n")
    text = text.replace("step:250/250 val_loss:3.20000", "step:250/250 val_loss:3.20000 val_ema_loss:3.19000")
    t = parse_file(write(tmp_path / "a.txt", text)).trials[0]
    assert t.complete and not t.ends_early and t.final_step == 250 and t.status() == "complete"
    assert t.losses("val_ema_loss") == {250: 3.19}


# --- the summary line and the final val -----------------------------------------------------------------------

def test_summary_line_must_agree_with_the_final_val(tmp_path):
    text = log_text([curve(3.277)])
    lost = text.replace(val_line(3250, 3250, 3.277) + "\n", "")  # the final val line is missing, the summary is not
    log = parse_file(write(tmp_path / "a.txt", lost))
    t = log.trials[0]
    assert t.ends_early and t.summary_step == 3250
    assert t.status() == ("stops early at step 3225 of 3250 (no val line after it in its log, though its summary "
                          "line says it ran to step 3250)")
    lineno = lost.splitlines().index(next(l for l in lost.splitlines() if " summary: " in l)) + 1
    assert log.warnings == [f"{tmp_path / 'a.txt'}:{lineno}: the summary says trial 1/1 ran to step 3250, but its "
                            "last val line is at step 3225: the log lacks its final val line"]
    edited = text.replace(val_line(3250, 3250, 3.277), val_line(3250, 3250, 3.27))
    log = parse_file(write(tmp_path / "b.txt", edited))
    assert log.trials[0].complete and log.warnings == [
        f"{tmp_path / 'b.txt'}:{lineno + 1}: the summary says final_val_loss 3.27700, but the val line at step 3250 "
        "says 3.27"]
    assert parse_file(write(tmp_path / "c.txt", text)).warnings == []  # a whole log agrees with its summary


def test_early_and_final_val_wording_in_stats_and_results(tmp_path, capsys):
    runs = [curve(round(3.2760 + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)]
    del runs[3][3250]  # the 4th run has no final val line
    d = tmp_path / "x"
    d.mkdir()
    path = write(d / "a.txt", log_text(runs))
    code = stats.main([path, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["n_runs"] == 4 and out["final"]["step"] == 3225
    assert [r["status"] for r in out["runs"]] == ["complete"] * 3 + [
        "stops early at step 3225 of 3250 (no val line after it in its log)"]
    assert [r["ends_early"] for r in out["runs"]] == [False, False, False, True]
    assert out["warnings"] == ["a.txt#4: stops early at step 3225 of 3250 (no val line after it in its log); it still "
                               "counts as a run (leaving it out would be cherry-picking)"]
    assert results.main([path, "--agent-id", "a", "--experiment", "e", "--optimizer", "o"]) == 0
    got = capsys.readouterr()
    assert got.out.rstrip().endswith("final_val_loss 3.27620 at step 3225 (not train_steps 3250: a run has no val "
                                     "line there; see the warnings)")
    assert "warning: a.txt#4: stops early at step 3225 of 3250" in got.err


# --- a resumed run stays one run -------------------------------------------------------------------------------

def _capture(points, train_steps=3250):
    return [val_line(s, train_steps, v) for s, v in sorted(points.items())]


def test_untagged_capture_repeating_the_resumed_step_is_one_run(tmp_path, capsys):
    # stdout of a run stopped after its val at 1625 and resumed there: the val line at 1625 comes twice, and no
    # trial lines (a capture of the val lines only)
    points = curve(3.274)
    lines = _capture(points)
    i = lines.index(val_line(1625, 3250, points[1625]))
    lines.insert(i + 1, lines[i])
    path = write(tmp_path / "run.out", "\n".join(lines) + "\n")
    log = parse_file(path)
    assert len(log.trials) == 1 and log.warnings == []
    t = log.trials[0]
    assert [p.step for p in t.points] == sorted(points) and t.complete and t.final_val_loss == 3.274
    code = stats.main([path, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["n_runs"] == 1 and out["warnings"] == [] and out["final"]["mean"] == 3.274
    assert code == 0 and out["claim"]["step"] == 3125  # n=1 at 3.275 there: margin exactly 0.005


@pytest.mark.parametrize("resume_line", ["trial 1/1 resumed from checkpoints/x.pt at step 1626",
                                         "trial 1/1 resumed from checkpoints/x.pt at step 1626 on world_size 4 "
                                         "(micro_batch_seqs 64)"])
def test_untagged_capture_with_a_resume_line_repeating_several_steps_is_one_run(tmp_path, resume_line):
    # a checkpoint at 1626 (step 1625 done), vals printed at 1750 and 1875, a crash, a resume from 1626: the vals at
    # 1750 and 1875 come again after the resume line
    points = curve(3.274)
    lines = _capture(points)
    i = lines.index(val_line(1875, 3250, points[1875]))
    lines[i + 1:i + 1] = [resume_line, val_line(1750, 3250, points[1750]),
                          val_line(1875, 3250, points[1875])]
    log = parse_file(write(tmp_path / "run.out", "\n".join(lines) + "\n"))
    assert len(log.trials) == 1 and log.warnings == []
    t = log.trials[0]
    assert t.resumed_at == [1626] and [p.step for p in t.points] == sorted(points) and t.complete
    # without the resume line the step going back starts another run (the public logs' convention)
    del lines[i + 1]
    log = parse_file(write(tmp_path / "two.out", "\n".join(lines) + "\n"))
    assert [(t.points[0].step, t.final_step) for t in log.trials] == [(0, 1875), (1750, 3250)]


def test_a_repeated_step_with_another_value_is_named(tmp_path):
    points = curve(3.274)
    lines = _capture(points)
    i = lines.index(val_line(1625, 3250, points[1625]))
    lines.insert(i + 1, val_line(1625, 3250, points[1625] + 0.001))
    path = write(tmp_path / "run.out", "\n".join(lines) + "\n")
    log = parse_file(path)
    assert len(log.trials) == 1 and log.trials[0].losses()[1625] == points[1625]
    assert log.warnings == [f"{path}:{i + 2}: step 1625/3250 after step 1625/3250 in the same trial; skipped"]
