"""tools.results and tools.leaderboard: the cases mutation testing (mutmut, docs/tools.md "Mutation testing") found
untested in the code that judges a claim: --check's JSON and exit status, the logs results.json lists, the notes,
the default bar and metric, the board's verdict texts, its order of ties, --metric and --json.

mutmut 3.8.1, 2026-12-07, tools/leaderboard.py and tools/results.py, only tests/test_tools_leaderboard.py and
tests/test_tools_results.py (docs/tools.md "Mutation testing"): 2319 mutants, 1880 killed, 439 survived before this
file; with it 2438 (the new tests reach more lines), 2253 killed, 185 survive. In the code that judges a claim or
writes one (results: validate, verify, compare_claim, check, write_results, parse_hparams, loss_field; leaderboard:
status, collect, sort_key, _number, read_reference, render's rows, loss, std, date_of, logs_cell, flags_cell) 9
survive, and none changes anything a user can observe (`mutmut show NAME`):
- leaderboard._number__mutmut_9: float("INF") for float("inf"): the same number.
- leaderboard.read_reference__mutmut_2, _3, _5, _6, _9: open() without newline="" or with another spelling of
  UTF-8: the reference CSV has no quoted newlines, and this workspace's locale is UTF-8.
- results.loss_field__mutmut_18, _19: `x >= 0` / `x > 1` for `x > 0`: only +inf and -inf reach that test.
- results.write_results__mutmut_145: `or` for `and` in the refusal of a non-finite mean or std: a finite mean with
  an infinite std needs val losses near +-1e308 in a log.
The other 176 are in text no verdict depends on: 62 in render() (header rows, the "-" printed for a field a
results.json lacks, the sentence --metric adds), 79 and 35 in the argparse and printing code of the two main()s.
"""
import csv
import datetime
import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import SCRIPT, add_column, curve, log_text, write  # noqa: E402

from tools import leaderboard, results  # noqa: E402

# 4 runs whose mean is 3.2760 + 0.0002 * (3250 - s) / 25 at val step s: passes bar 0.005 from step 3075 (3.2774)
RUNS = [curve(round(3.2760 + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)]
FIELDS = ["--agent-id", "agent-07", "--experiment", "Muon wd 0.04", "--optimizer", "Muon"]


def approach(tmp_path, runs=RUNS, files=2, name="muon_agent-07"):
    """A directory with the runs in `files` logs and the results.json tools.results writes from them."""
    d = tmp_path / name
    d.mkdir(parents=True)
    per = -(-len(runs) // files)
    for i in range(files):
        write(d / f"{'abcdef'[i]}.txt", log_text(runs[i * per:(i + 1) * per]))
    write(d / "train_gpt_simple.py", SCRIPT)  # the script the logs embed: no identity note
    assert results.main([str(d)] + FIELDS) == 0
    return d, json.loads((d / "results.json").read_text())


def rewrite(d, r):
    (d / "results.json").write_text(json.dumps(r))


# -----------------------------------------------------------------------------
# results --check: the JSON, the exit status, the target, the OK line


def test_check_json_of_a_claim_that_holds(tmp_path, capsys):
    d, _ = approach(tmp_path)
    capsys.readouterr()
    assert results.check(str(d), as_json=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == str(d / "results.json") and out["ok"] is True and out["problems"] == []
    assert out["notes"] == [] and out["logs"] == ["a.txt", "b.txt"]
    rec = out["recomputed"]
    assert rec["n"] == 4 and rec["metric"] == "val_loss" and rec["earliest_passing_step"] == 3075
    assert rec["claim"]["step"] == 3075 and rec["claim"]["pass"] is True
    assert rec["final"]["step"] == 3250 and rec["final"]["mean"] == pytest.approx(3.2760)


def test_check_json_when_no_step_passes(tmp_path, capsys):
    d, r = approach(tmp_path)
    write(d / "a.txt", log_text([curve(3.2795)] * 2))  # the runs no longer pass anywhere
    write(d / "b.txt", log_text([curve(3.2795)] * 2))
    capsys.readouterr()
    assert results.check(str(d), as_json=True) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["recomputed"]["claim"] is None
    assert out["recomputed"]["earliest_passing_step"] is None


def test_check_takes_the_file_or_its_directory_only(tmp_path, capsys):
    d, _ = approach(tmp_path)
    capsys.readouterr()
    assert results.check(str(d / "results.json")) == 0
    assert capsys.readouterr().out.startswith(f"OK: {d / 'results.json'}: ")
    for target in (d / "a.txt", d / "missing" / "results.json"):  # a log is not a results.json
        assert results.check(str(target)) == 2
        assert capsys.readouterr().err == f"error: {target}: not a directory\n"


def test_the_ok_line(tmp_path, capsys):
    d, _ = approach(tmp_path)
    capsys.readouterr()
    assert results.check(str(d)) == 0
    assert capsys.readouterr().out == (f"OK: {d / 'results.json'}: steps_to_3_28 3075 holds under bar 0.005 on val_loss "
                                       "(recomputed mean 3.27740, n 4, from a.txt, b.txt)\n")
    d5, _ = approach(tmp_path, RUNS + [curve(3.2760)], files=5, name="five")
    capsys.readouterr()
    assert results.check(str(d5)) == 0
    assert capsys.readouterr().out.endswith("from a.txt, b.txt, c.txt, d.txt ...)\n")


def test_no_bar_and_no_metric_field_mean_the_defaults(tmp_path, capsys):
    d, r = approach(tmp_path)
    del r["significance_bar"]
    r.pop("metric", None)
    rewrite(d, r)
    capsys.readouterr()
    assert results.check(str(d)) == 0
    out = capsys.readouterr()
    assert out.err == "note: no significance_bar field: checked under the default bar 0.005\n"
    assert " holds under bar 0.005 on val_loss " in out.out
    assert results.verify(str(d))["notes"] == ["no significance_bar field: checked under the default bar 0.005"]
    r["significance_bar"] = 0.005
    rewrite(d, r)
    assert results.verify(str(d))["notes"] == []


def test_notes_keep_the_bar_note_and_the_skipped_files(tmp_path):
    d, r = approach(tmp_path)
    del r["significance_bar"]
    rewrite(d, r)
    write(d / "notes.txt", "not a log\n")
    notes = results.verify(str(d))["notes"]
    assert notes[0] == "no significance_bar field: checked under the default bar 0.005"
    assert any(n.startswith(f"skipped {d / 'notes.txt'}: not a training log") for n in notes[1:]), notes


def test_a_listed_log_that_is_not_there(tmp_path):
    d, r = approach(tmp_path)
    r["logs"] = ["a.txt", "b.txt", "c.txt"]
    r["num_runs"] = 5  # and a second problem: both are reported
    rewrite(d, r)
    problems = results.verify(str(d))["problems"]
    assert ("logs", f"lists c.txt, which is not a training log in {d}") in problems
    assert ("num_runs", "5 but the logs hold 4 runs") in problems


def test_no_training_log_is_a_problem_of_the_logs_field(tmp_path):
    d, r = approach(tmp_path)
    for name in ("a.txt", "b.txt"):
        os.remove(d / name)
    r.pop("logs")
    rewrite(d, r)
    assert results.verify(str(d))["problems"] == [
        ("logs", f"no training log (*.txt, *.log) in {d}: the claim cannot be checked")]


def test_identity_warnings_join_the_other_notes(tmp_path):
    d, r = approach(tmp_path)
    del r["significance_bar"]
    rewrite(d, r)
    write(d / "train_gpt_simple.py", SCRIPT)
    write(d / "b.txt", log_text(RUNS[2:], script=SCRIPT.replace("(1, 2, 3.0)", "(1, 2, 4.0)")))
    out = results.verify(str(d))
    assert out["problems"] == []
    assert out["notes"][0] == "no significance_bar field: checked under the default bar 0.005"
    assert any(n.startswith("b.txt was not written by its train_gpt_simple.py") for n in out["notes"]), out["notes"]


@pytest.mark.parametrize("x, field", [(3.27744449, 3.277444), (3.2774445, 3.277445), (float("nan"), "nan"),
                                      (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_loss_field(x, field):
    assert results.loss_field(x) == field


# -----------------------------------------------------------------------------
# the board: each verdict text, ties, --metric, --json


def board_entry(root, rel, runs, **changes):
    """An approach directory under root/artifacts with tools.results's results.json, then `changes` to it."""
    d, r = approach(root / "artifacts", runs, files=1, name=rel)
    r.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del r[k]
    rewrite(d, r)
    return d


def statuses(root, metric=None):
    entries, skipped = leaderboard.collect(str(root), metric)
    return {e["rel"]: e["status"] for e in entries}, skipped


def test_a_claim_whose_mean_is_above_the_target_names_no_run_count(tmp_path):
    board_entry(tmp_path, "a_1", RUNS)
    d = tmp_path / "artifacts" / "b_1"
    d.mkdir()
    write(d / "run.txt", log_text([curve(3.2810)]))
    rewrite(d, dict(agent_id="b", experiment="e", optimizer="o", steps_to_3_28=3250, final_val_loss=3.281))
    (tmp_path / "artifacts" / "c_1").mkdir()
    write(tmp_path / "artifacts" / "c_1" / "run.txt", log_text([curve(3.2790)]))
    rewrite(tmp_path / "artifacts" / "c_1", dict(agent_id="c", experiment="e", optimizer="o", steps_to_3_28=3250,
                                                 final_val_loss=3.279))
    got, _ = statuses(tmp_path)
    assert got["artifacts/b_1"] == "✗ does not hold: recomputed 3.2810 at 3250 (n=1, bar 0.005)"
    assert got["artifacts/c_1"].startswith("✗ does not hold: recomputed 3.2790 at 3250 (n=1, bar 0.005; n=")
    assert got["artifacts/c_1"].endswith(" would pass at this mean)")


def test_a_claim_that_holds_but_misstates_a_field(tmp_path):
    board_entry(tmp_path, "a_1", RUNS, num_runs=5)
    got, _ = statuses(tmp_path)
    assert got["artifacts/a_1"] == "✗ does not match its logs: num\\_runs: 5 but the logs hold 4 runs"


def test_an_unverified_entry_says_where_its_logs_should_be(tmp_path):
    for rel, extra in (("artifacts/x_1", {}), ("records/y_1", dict(
            evidence="public", public_source="records/y", hardware="8xH100", metric="val_loss", significance_bar=0.005,
            num_runs=4, mean_val_loss=3.277, std_val_loss=0.001, notes="ported"))):
        (tmp_path / rel).mkdir(parents=True)
        rewrite(tmp_path / rel, dict(agent_id="a", experiment="e", optimizer="o", steps_to_3_28=3000,
                                     final_val_loss=3.27, **extra))
    got, _ = statuses(tmp_path)
    assert got == {"artifacts/x_1": "unverified: no logs", "records/y_1": "unverified: no logs in public_logs/"}


def test_logs_not_written_by_the_approach_script_are_counted(tmp_path):
    d = board_entry(tmp_path, "a_1", RUNS)
    write(d / "train_gpt_simple.py", SCRIPT)
    write(d / "b.txt", log_text(RUNS[:1], script=SCRIPT.replace("(1, 2, 3.0)", "(1, 2, 4.0)")))
    os.remove(d / "results.json")
    assert results.main([str(d)] + FIELDS) == 0
    got, _ = statuses(tmp_path)
    assert got["artifacts/a_1"].endswith("; 1 of 2 logs not written by its train\\_gpt\\_simple.py"), got


def test_a_run_identity_problem_is_cut_at_160_characters(tmp_path):
    d = board_entry(tmp_path, "a_1", RUNS)
    write(d / "train_gpt_simple.py", SCRIPT + "x = 1\n")  # none of the logs is of this script: a 165-character problem
    (status,) = statuses(tmp_path)[0].values()
    assert status == ("✗ run identity: none of the 1 log(s) was written by its train\\_gpt\\_simple.py (the script "
                      "embedded in each log differs from the file, or is missing): the results are not of this…")


def test_the_skipped_reason_names_every_schema_problem(tmp_path):
    (tmp_path / "artifacts" / "bad_1").mkdir(parents=True)
    rewrite(tmp_path / "artifacts" / "bad_1", dict(agent_id="", experiment="e", optimizer="o", final_val_loss=3.27))
    _, skipped = statuses(tmp_path)
    assert skipped == [("artifacts/bad_1", "results.json: steps_to_3_28: missing (required); agent_id: must not be "
                                           "empty")]


def test_metric_val_loss_includes_entries_without_a_metric_field(tmp_path):
    board_entry(tmp_path, "a_1", RUNS, metric=None)
    assert list(statuses(tmp_path, "val_loss")[0]) == ["artifacts/a_1"]
    assert list(statuses(tmp_path, "val_ema_loss")[0]) == []


def test_ties_in_steps_go_to_the_lower_mean_then_the_final_loss(tmp_path):
    def e(rel, **d):
        return dict(rel=rel, data=dict(steps_to_3_28=3000, **d))
    entries = [e("z", mean_val_loss=3.2770, final_val_loss=3.2700), e("y", mean_val_loss=3.2765, final_val_loss=3.29),
               e("x", final_val_loss=3.2768), e("w", final_val_loss="nan"), e("v", final_val_loss=3.2768)]
    assert [x["rel"] for x in sorted(entries, key=leaderboard.sort_key)] == ["y", "v", "x", "z", "w"]


@pytest.mark.parametrize("x, number", [(3.27, 3.27), (3, 3), ("nan", float("inf")), ("inf", float("inf")),
                                       ("-inf", float("inf")), (None, float("inf"))])
def test_a_loss_that_is_not_a_finite_number_sorts_last(x, number):
    assert leaderboard._number(x) == number


def test_json_lists_each_entrys_logs(tmp_path, capsys):
    board_entry(tmp_path, "a_1", RUNS)
    capsys.readouterr()
    assert leaderboard.main(["--root", str(tmp_path), "--json"]) == 0
    (e,) = json.loads(capsys.readouterr().out)["entries"]
    assert e["logs"] == ["a.txt"] and e["holds"] is True and e["directory"] == "artifacts/a_1"


def test_reference_rows_with_equal_steps_and_mean_keep_their_order(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("steps_to_3_28,mean_val_loss,optimizer\n3000,3.2770,B\n2900,3.2775,A\n3000,3.2770,C\nx,1,D\n",
                    encoding="utf-8")
    rows, error = leaderboard.read_reference(str(path))
    assert error is None and [(s, m, r["optimizer"]) for s, m, r in rows] == [(2900, 3.2775, "A"), (3000, 3.277, "B"),
                                                                             (3000, 3.277, "C")]


@pytest.mark.parametrize("x, text", [(None, "-"), (3.277449, "3.2774"), (9999.5, "9999.5000"), (1e4, "1e+04"),
                                     ("nan", "nan")])
def test_loss_cell(x, text):
    assert leaderboard.loss(x) == text


@pytest.mark.parametrize("x, text", [(None, "-"), (0.000183, "0.00018"), (9999.5, "9999.50000"), (1e4, "1e+04")])
def test_std_cell(x, text):
    assert leaderboard.std(x) == text


@pytest.mark.parametrize("ts, text", [("2026-01-02T03:04:05Z", "2026-01-02"), (None, "-"), (20260102, "20260102"),
                                      ("yesterday, around noon, I think", "yesterday, around n…")])
def test_date_cell(ts, text):
    assert leaderboard.date_of(dict(data={} if ts is None else dict(timestamp=ts))) == text


def test_a_bad_reference_row_is_skipped_not_the_end(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("steps_to_3_28,mean_val_loss,optimizer\n3000,3.2770,B\nx,1,D\n2900,3.2775,A\n", encoding="utf-8")
    rows, _ = leaderboard.read_reference(str(path))
    assert [r["optimizer"] for _, _, r in rows] == ["A", "B"]


@pytest.mark.parametrize("known, cell", [
    (dict(devices={"NVIDIA H100": 1}), "NVIDIA H100 x?, torch ?, script ?"),
    (dict(torch={"2.11.0": 1}), "? x?, torch 2.11.0, script ?"),
    (dict(script_sha256={"ab" * 32: 1}), "? x?, torch ?, script abababab"),
    ({}, "-")])
def test_the_logs_cell_shows_whatever_the_logs_say(known, cell):
    p = dict(dict(devices={}, world_sizes={}, torch={}, script_sha256={}, flags=[]), **known)
    assert leaderboard.logs_cell(dict(provenance=p)) == cell


def test_a_long_flag_is_cut_at_160_characters():
    cell = leaderboard.flags_cell(dict(provenance=dict(flags=["a" * 200, "b"])))
    assert cell == "a" * 159 + "…; b"


def test_check_json_of_an_unreadable_results_json_lists_no_logs(tmp_path, capsys):
    d, _ = approach(tmp_path)
    (d / "results.json").write_text("{broken")
    capsys.readouterr()
    assert results.check(str(d), as_json=True) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["logs"] == [] and out["recomputed"] is None and out["problems"][0]["field"] == "results.json"


def test_four_logs_are_named_without_an_ellipsis(tmp_path, capsys):
    d, _ = approach(tmp_path, RUNS, files=4, name="four")
    capsys.readouterr()
    assert results.check(str(d)) == 0
    assert capsys.readouterr().out.endswith("from a.txt, b.txt, c.txt, d.txt)\n")


# -----------------------------------------------------------------------------
# the writer: what results.json holds, --hparam, -o DIR, the files it reads


def test_hparams_are_typed_as_written():
    assert results.parse_hparams(["a=b=c", "n=12", "x=-3", "t=True", "f=FALSE", "lr=1E-3", "w=1.5e2", "s=inf",
                                  "u=1_000", "h=0x10", "name= muon "]) == {
        "a": "b=c", "n": 12, "x": -3, "t": True, "f": False, "lr": 0.001, "w": 150.0, "s": "inf", "u": "1_000",
        "h": "0x10", "name": "muon"}
    assert [type(v) for v in results.parse_hparams(["n=12", "f=1.0"]).values()] == [int, float]
    with pytest.raises(results.ResultsError, match=r"^--hparam lr given twice$"):
        results.parse_hparams(["lr=1", "lr=2"])


def test_output_to_a_directory_writes_results_json_there(tmp_path, capsys):
    d, _ = approach(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert results.main([str(d), "-o", str(out)] + FIELDS) == 0
    assert (out / "results.json").is_file()


def test_what_results_json_holds(tmp_path, capsys):
    d = tmp_path / "three"
    d.mkdir()
    write(d / "a.txt", log_text([curve(3.2760), curve(3.2761), curve(3.2761)]))
    write(d / "train_gpt_simple.py", SCRIPT)
    assert results.main([str(d)] + FIELDS) == 0
    r = json.loads((d / "results.json").read_text())
    assert r["steps_to_3_28"] == 3125 and r["num_runs"] == 3
    assert r["mean_val_loss"] == 3.277067 and r["std_val_loss"] == 5.8e-05  # rounded to 6 decimals
    assert r["notes"] == "" and r["generated_by"] == "python -m tools.results"
    assert r["significance_rule"] == ("steps_to_3_28 = earliest val step, present in every run, with (3.28 - mean) "
                                      "* sqrt(n) >= 0.005 (workspace bar: sigma 0.0016, one-sided p < .001), on val_loss")


def test_a_file_named_as_a_log_must_be_one(tmp_path, capsys):
    d, _ = approach(tmp_path)
    write(d / "notes.txt", "not a log\n")
    capsys.readouterr()
    assert results.main([str(d / "a.txt"), str(d / "b.txt"), str(d / "notes.txt")] + FIELDS) == 2
    assert "notes.txt" in capsys.readouterr().err


def test_the_writer_warns_of_a_readout_that_is_not_finite(tmp_path, capsys):
    d = tmp_path / "ema"
    d.mkdir()
    text = add_column(log_text(RUNS), "val_ema_loss", -0.0006)
    text = re.sub(r"(step:125/3250 val_loss:\S+ val_ema_loss:)\S+", r"\1nan", text, count=1)  # the first run's
    assert "val_ema_loss:nan" in text
    write(d / "a.txt", text)
    write(d / "train_gpt_simple.py", SCRIPT)
    assert results.main([str(d), "--metric", "val_ema_loss"] + FIELDS) == 0
    assert "val_ema_loss nan at step 125; it still counts as a run" in capsys.readouterr().err


def test_the_writers_lines(tmp_path, capsys):
    d, _ = approach(tmp_path)
    capsys.readouterr()
    assert results.main([str(d)] + FIELDS) == 0
    assert capsys.readouterr().out == (
        f"wrote {d / 'results.json'}: steps_to_3_28 3075 on val_loss (mean 3.27740, std 0.00018, n 4, margin "
        "0.00520 >= bar 0.005); final_val_loss 3.27600 at step 3250\n")
    assert results.main([str(d), "--agent-id", " ", "--experiment", "e", "--optimizer", "o"]) == 2
    assert capsys.readouterr().err == "error: --agent-id must not be empty\n"
    assert results.main([str(d), "--step", "3000"] + FIELDS) == 2
    assert capsys.readouterr().err == ("error: --step records a published claim (--evidence public); your own claim is "
                                       "the earliest passing step, which tools.results finds\n")
    with pytest.raises(results.ResultsError, match=r"^--hparam 'novalue': expected KEY=VALUE$"):
        results.parse_hparams(["novalue"])


@pytest.mark.parametrize("final, need", [(3.2790, "25 runs at this mean"), (3.2810, "never at this mean")])
def test_the_writers_refusal_when_nothing_passes(tmp_path, capsys, final, need):
    d = tmp_path / "nopass"
    d.mkdir()
    write(d / "a.txt", log_text([curve(final)] * 2))
    write(d / "train_gpt_simple.py", SCRIPT)
    assert results.main([str(d)] + FIELDS) == 1
    margin = f"{(3.28 - final) * 2 ** 0.5:.5f}"
    assert capsys.readouterr().err == (
        "error: no val step passes bar 0.005 = workspace bar: sigma 0.0016, one-sided p < .001 over these 2 runs "
        f"(val_loss), so there is no steps_to_3_28 to claim; nothing written. Final step 3250: mean {final:.5f}, "
        f"margin {margin}; passing would need {need}.\n")


def test_a_published_step_is_recorded_with_its_verdict(tmp_path, capsys):
    d = tmp_path / "pub"
    d.mkdir()
    write(d / "a.txt", log_text(RUNS))
    public = ["--evidence", "public", "--public-source", "x/y", "--hardware", "8xH100"]
    for step, verdict, holds in ((3000, "does NOT pass", "false"), (3100, "passes", "true")):
        assert results.main([str(d), "--step", str(step)] + public + FIELDS) == 0
        r = json.loads((d / "results.json").read_text())
        mean = 3.2760 + 0.0002 * (3250 - step) / 25
        margin = f"{(3.28 - mean) * 2:.5f}"
        cap = capsys.readouterr()
        assert cap.err == (
            f"note: the published step {step} {verdict} bar 0.005 over these 4 runs (mean {mean:.5f}, margin "
            f"{margin}); recorded as published with claim_holds {holds}\n")
        assert cap.out.endswith(f"margin {margin} {'<' if holds == 'false' else '>='} bar 0.005); "
                                                "final_val_loss 3.27600 at step 3250\n")
        assert r["claim_holds"] is (holds == "true") and r["significance_rule"] == (
            "steps_to_3_28 = the published step; it holds when (3.28 - mean) * sqrt(n) >= 0.005 (workspace bar: "
            "sigma 0.0016, one-sided p < .001) there, on val_loss")
    assert results.main([str(d), "--evidence", "public", "--public-source", "", "--hardware", "h"] + FIELDS) == 2
    assert capsys.readouterr().err == "error: --public-source must not be empty for a ported record\n"


def test_the_writer_never_writes_what_check_would_reject(tmp_path, capsys):
    d, before = approach(tmp_path)
    capsys.readouterr()
    assert results.main([str(d), "--agent-id", "a", "--experiment", "x" * 10_001, "--optimizer", "o",
                         "--notes", "y" * 10_002]) == 1
    assert capsys.readouterr().err == ("error: the results would not pass the schema (experiment: 10001 characters; "
                                       "at most 10000; notes: 10002 characters; at most 10000); nothing written\n")
    assert json.loads((d / "results.json").read_text()) == before


def test_identity_warnings_and_the_fix_for_a_missing_script(tmp_path, capsys):
    d, _ = approach(tmp_path)
    write(d / "b.txt", log_text(RUNS[2:], script=SCRIPT.replace("(1, 2, 3.0)", "(1, 2, 4.0)")))
    capsys.readouterr()
    assert results.main([str(d)] + FIELDS) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: the runs were written by 2 different scripts")
    assert any(line.startswith("warning: b.txt was not written by its train_gpt_simple.py") for line in err), err
    other = tmp_path / "other"
    other.mkdir()
    write(other / "train_gpt_simple.py", SCRIPT + "x = 1\n")  # not the script of the logs
    assert results.main([str(d / "a.txt"), "-o", str(other / "results.json")] + FIELDS) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"; nothing written. Put the script that wrote the logs there: python -m tools.logs LOG "
                        f"--script -o {other / 'train_gpt_simple.py'}\n"), err
    write(other / "train_gpt_simple.py", SCRIPT)
    assert results.main([str(d / "a.txt"), "-o", str(other / "results.json")] + FIELDS) == 0
    assert capsys.readouterr().err == (f"warning: ../muon_agent-07/a.txt is not in {other}; copy it there: --check and "
                                       "the leaderboard recompute the claim from the logs beside results.json\n")


def test_the_writer_on_runs_that_end_early_or_in_nan(tmp_path, capsys):
    d = tmp_path / "early"
    d.mkdir()
    short = [{s: v for s, v in run.items() if s <= 3200} for run in RUNS]  # no val line at 3250
    write(d / "a.txt", log_text(short))
    write(d / "train_gpt_simple.py", SCRIPT)
    capsys.readouterr()
    assert results.main([str(d)] + FIELDS) == 0
    assert capsys.readouterr().out.endswith("final_val_loss 3.27640 at step 3200 (not train_steps 3250: a run has no "
                                            "val line there; see the warnings)\n")
    text = log_text(RUNS).replace("step:3250/3250 val_loss:3.27620", "step:3250/3250 val_loss:nan", 1)
    write(d / "a.txt", text)
    assert results.main([str(d)] + FIELDS) == 0
    assert 'warning: the final val step 3250 has a non-finite mean (val_loss nan in a run); final_val_loss is ' \
           'recorded as "nan"\n' in capsys.readouterr().err


def test_the_timestamp_is_utc_whatever_the_local_zone(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TZ", "JST-9")  # a POSIX zone string, UTC+9: needs no tz database
    time.tzset()
    try:
        d, r = approach(tmp_path)
    finally:
        monkeypatch.undo()  # the environment's own TZ (or none) again, then the C library told so
        time.tzset()
    written = datetime.datetime.strptime(r["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - written).total_seconds()) < 600


# -----------------------------------------------------------------------------
# render(): every cell of every table, once


def test_every_table_row_of_the_board(tmp_path):
    root = tmp_path / "repo"
    board_entry(root, "Muon_a1", RUNS, timestamp="2026-03-02T00:00:00Z", agent_id="ag1", experiment="wd 0.05")
    board_entry(root, "muon_a2", RUNS[:2] + [curve(3.2755), curve(3.2757)], optimizer="muon", agent_id="ag2",
                timestamp="2026-01-05T00:00:00Z", experiment="wd 0.1")  # the same optimizer, written otherwise
    lion = root / "artifacts" / "Lion_b1"
    lion.mkdir()
    write(lion / "a.txt", log_text([curve(3.2790)] * 2))
    write(lion / "train_gpt_simple.py", SCRIPT)
    rewrite(lion, dict(optimizer="Lion", steps_to_3_28=3250, mean_val_loss=3.279, std_val_loss=0.0, num_runs=2,
                       final_val_loss=3.279, agent_id="ag3", experiment="lion", timestamp="2026-02-01T00:00:00Z"))
    port = root / "records" / "Port_c1"
    port.mkdir(parents=True)
    rewrite(port, dict(agent_id="pa", experiment="ported x", optimizer="PortOpt", steps_to_3_28=2900, notes="n",
                       final_val_loss=3.27, evidence="public", public_source="records/track_3/x", hardware="8xH100",
                       metric="val_loss", significance_bar=0.004, num_runs=8, mean_val_loss=3.2775, std_val_loss=0.0012))
    bad = root / "artifacts" / "bad_z1"
    bad.mkdir()
    rewrite(bad, dict(agent_id=1, experiment=2, optimizer=3, timestamp=4, notes=5, steps_to_3_28="x", num_runs=-1,
                      final_val_loss="y", evidence="elsewhere", metric="bad metric!", claim_holds="maybe"))
    text, skipped, _ = leaderboard.render(str(root))
    lines = text.splitlines()
    logs = "NVIDIA H100 80GB HBM3 x8, torch 2.11.0+cu130, script 31cc76ec"
    holds = {3050: "✓ holds: recomputed 3.2774 at 3050 (n=4, bar 0.005)",
             3075: "✓ holds: recomputed 3.2774 at 3075 (n=4, bar 0.005)",
             3250: "✗ does not hold: recomputed 3.2790 at 3250 (n=2, bar 0.005; n=25 would pass at this mean)"}
    a1, a2, b1 = ("[artifacts/Muon\\_a1](artifacts/Muon_a1/)", "[artifacts/muon\\_a2](artifacts/muon_a2/)",
                  "[artifacts/Lion\\_b1](artifacts/Lion_b1/)")
    for row in [
            f"| 1 | 3050 | 3.2774 | 0.00029 | 3.2758 | 4 | 0.005 | val\\_loss | muon | wd 0.1 | ag2 | 2026-01-05 | {a2} "
            f"| {holds[3050]} | {logs} | - |",
            f"| 2 | 3075 | 3.2774 | 0.00018 | 3.2760 | 4 | 0.005 | val\\_loss | Muon | wd 0.05 | ag1 | 2026-03-02 | {a1} "
            f"| {holds[3075]} | {logs} | - |",
            f"| 3 | 3250 | 3.2790 | 0.00000 | 3.2790 | 2 | 0.005 | val\\_loss | Lion | lion | ag3 | 2026-02-01 | {b1} "
            f"| {holds[3250]} | {logs} | - |",
            f"| muon | 3050 | 3.2774 | 4 | val\\_loss | wd 0.1 | {a2} |",
            "| Lion | - | - | - | - | no entry whose claim holds | - |",
            f"| 2026-01-05 | 3050 | 3.2774 | 4 | val\\_loss | wd 0.1 | ag2 | {a2} | {holds[3050]} |",
            f"| 2026-03-02 | 3075 | 3.2774 | 4 | val\\_loss | wd 0.05 | ag1 | {a1} | {holds[3075]} |",
            f"| 2026-02-01 | 3250 | 3.2790 | 2 | val\\_loss | lion | ag3 | {b1} | {holds[3250]} |",
            "| 2900 | 3.2775 | 0.00120 | 8 | 0.004 | val\\_loss | 8xH100 | - | - | PortOpt | ported x | "
            "records/track\\_3/x | [records/Port\\_c1](records/Port_c1/) | unverified: no logs in public_logs/ |"]:
        assert row in lines, row
    assert lines.index(f"| 2026-01-05 | 3050 | 3.2774 | 4 | val\\_loss | wd 0.1 | ag2 | {a2} | {holds[3050]} |") < \
        lines.index(f"| 2026-03-02 | 3075 | 3.2774 | 4 | val\\_loss | wd 0.05 | ag1 | {a1} | {holds[3075]} |")  # by date
    (reason,) = [why for rel, why in skipped if rel == "artifacts/bad_z1"]
    assert len(reason) > 301 and f"- artifacts/bad\\_z1: {leaderboard.escape(reason, 300)}" in lines
    with open(leaderboard.REF_RESULTS, newline="", encoding="utf-8") as f:
        first = min(csv.DictReader(f), key=lambda r: (int(r["steps_to_3_28"]), float(r["mean_val_loss"])))
    esc = leaderboard.escape
    assert (f"| {first['steps_to_3_28']} | {float(first['mean_val_loss']):.4f} | {esc(first['num_runs'])} "
            f"| {esc(first['optimizer'])} | {esc(first['summary'])} | {esc(first['date'])} | {esc(first['source'])} |"
            ) in lines
