"""tools.results: results.json written from logs, and --check catching tampering."""
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import curve, log_text, write  # noqa: E402

from tools import results  # noqa: E402

# 4 runs whose mean is 3.2760 + 0.0002 * (3250 - s) / 25 at val step s: passes 0.005 from step 3075 (3.2774).
RUNS = [curve(round(3.2760 + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)]
ARGS = ["--agent-id", "agent-07", "--experiment", "Muon wd 0.04", "--optimizer", "Muon",
        "--hparam", "lr=0.025", "--hparam", "train_steps=3250", "--hparam", "nesterov=true",
        "--hparam", "schedule=linear", "--notes", "two files"]


def make_dir(tmp_path):
    d = tmp_path / "muon_agent-07"
    d.mkdir()
    write(d / "a.txt", log_text(RUNS[:2]))
    write(d / "b.txt", log_text(RUNS[2:]))
    return d


def written(tmp_path, capsys):
    d = make_dir(tmp_path)
    assert results.main([str(d / "a.txt"), str(d / "b.txt")] + ARGS) == 0
    capsys.readouterr()
    return d, json.loads((d / "results.json").read_text())


def test_write(tmp_path, capsys):
    d, r = written(tmp_path, capsys)
    assert r["steps_to_3_28"] == 3075
    assert r["mean_val_loss"] == pytest.approx(3.2774, abs=1e-9)
    assert r["std_val_loss"] == pytest.approx(0.000183, abs=1e-6)  # sample std of +-0.0002, +-0.0001
    assert r["final_val_loss"] == pytest.approx(3.2760, abs=1e-9) and r["final_step"] == 3250
    assert r["num_runs"] == 4
    assert r["key_hparams"] == {"lr": 0.025, "train_steps": 3250, "nesterov": True, "schedule": "linear"}
    assert r["agent_id"] == "agent-07" and r["optimizer"] == "Muon" and r["notes"] == "two files"
    assert r["significance_bar"] == 0.005 and "0.005" in r["significance_rule"]
    assert r["logs"] == ["a.txt", "b.txt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["timestamp"])


def test_write_public_bar(tmp_path, capsys):
    d = make_dir(tmp_path)
    out = tmp_path / "elsewhere" / "results.json"
    assert results.main([str(d / "a.txt"), str(d / "b.txt"), "--bar", "0.004", "-o", str(out)] + ARGS) == 0
    r = json.loads(out.read_text())
    assert r["steps_to_3_28"] == 3000 and r["significance_bar"] == 0.004
    assert r["mean_val_loss"] == pytest.approx(3.2780, abs=1e-9)
    assert "copy it there" in capsys.readouterr().err  # the logs are not beside results.json


def test_refuses_when_nothing_passes(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([curve(3.2790)]))
    assert results.main([path] + ARGS) == 1
    assert not (tmp_path / "results.json").exists()
    err = capsys.readouterr().err
    assert "no val step passes" in err and "nothing written" in err


def test_bad_hparam_and_bad_log(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text(RUNS))
    assert results.main([path] + ARGS + ["--hparam", "novalue"]) == 2
    (tmp_path / "bad.txt").write_bytes(b"\0\1\2" * 100)
    assert results.main([str(tmp_path / "bad.txt")] + ARGS) == 2
    assert "bad.txt" in capsys.readouterr().err


def test_check_ok(tmp_path, capsys):
    d, _ = written(tmp_path, capsys)
    assert results.main(["--check", str(d)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("field,value,message", [
    ("steps_to_3_28", 3050, "earliest passing step in the logs is 3075"),
    ("steps_to_3_28", 3250, "earliest passing step in the logs is 3075"),
    ("mean_val_loss", 3.2773, "logs give 3.27740"),
    ("std_val_loss", 0.001, "logs give"),
    ("final_val_loss", 3.2761, "logs give 3.27600 at step 3250"),
    ("num_runs", 5, "the logs hold 4 runs"),
    ("steps_to_3_28", "3075", "must be an integer"),
    ("steps_to_3_28", 0, "0 < steps"),
    ("steps_to_3_28", True, "must be an integer"),
    ("final_val_loss", None, "must be a number"),
    ("agent_id", "", "must not be empty"),
    ("significance_bar", 0.001, "must be one of"),
])
def test_check_catches_tampering(tmp_path, capsys, field, value, message):
    d, r = written(tmp_path, capsys)
    r[field] = value
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    err = capsys.readouterr().err
    assert f"\n  {field}: " in err and message in err
    assert err.count(str(d / "results.json")) == 1  # each path once


def test_check_tolerates_rounding(tmp_path, capsys):
    d, r = written(tmp_path, capsys)
    r["mean_val_loss"] = round(r["mean_val_loss"] + 4e-5, 6)
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 0


def test_check_missing_field_nan_and_no_logs(tmp_path, capsys):
    d, r = written(tmp_path, capsys)
    del r["optimizer"]
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    assert "optimizer: missing (required)" in capsys.readouterr().err
    (d / "results.json").write_text('{"agent_id": "a", "experiment": "e", "optimizer": "o", '
                                    '"steps_to_3_28": 3075, "final_val_loss": NaN}')
    assert results.main(["--check", str(d)]) == 1
    assert "NaN" in capsys.readouterr().err
    (d / "results.json").write_text("{broken")
    assert results.main(["--check", str(d)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty / "results.json", json.dumps(r | {"optimizer": "Muon"}))
    write(empty / "notes.txt", "not a log\n")
    assert results.main(["--check", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "no training log" in err and f"skipped {empty / 'notes.txt'}: not a training log" in err


def test_check_extra_log_changes_num_runs(tmp_path, capsys):
    d, _ = written(tmp_path, capsys)
    write(d / "c.log", log_text([curve(3.2760)]))
    assert results.main(["--check", str(d), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and {"field": "num_runs", "message": "4 but the logs hold 5 runs"} in out["problems"]


# --- metric, non-finite final loss, run identity, ported records (issues 12, 15, 16, 13) ----------------------

from tools_logtext import RECORD46, SCRIPT, add_column  # noqa: E402
from tools import leaderboard  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_metric_recorded_and_checked(tmp_path, capsys):
    d = tmp_path / "ema_agent-07"
    d.mkdir()
    write(d / "a.txt", add_column(log_text(RUNS), "val_ema_loss", -0.0006))
    assert results.main([str(d), "--metric", "val_ema_loss"] + ARGS[:6]) == 0  # a directory as the logs
    r = json.loads((d / "results.json").read_text())
    assert r["metric"] == "val_ema_loss" and r["steps_to_3_28"] == 3000 and r["logs"] == ["a.txt"]
    assert r["mean_val_loss"] == pytest.approx(3.2774) and r["final_val_loss"] == pytest.approx(3.2754)
    capsys.readouterr()
    assert results.main(["--check", str(d)]) == 0
    assert "holds under bar 0.005 on val_ema_loss" in capsys.readouterr().out
    r["metric"] = "val_loss"  # the claim does not hold on another metric
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    assert "earliest passing step in the logs is 3075" in capsys.readouterr().err


def test_nan_final_val_loss_written_checked_and_shown(tmp_path, capsys):
    root = tmp_path / "repo"
    d = root / "artifacts" / "nan_a1"
    d.mkdir(parents=True)
    text = log_text(RUNS).replace("step:3250/3250 val_loss:3.27620", "step:3250/3250 val_loss:nan", 1)
    assert "val_loss:nan" in text
    write(d / "a.txt", text)
    assert results.main([str(d / "a.txt")] + ARGS) == 0
    assert 'final_val_loss is recorded as "nan"' in capsys.readouterr().err
    r = json.loads((d / "results.json").read_text())
    assert r["final_val_loss"] == "nan" and r["steps_to_3_28"] == 3075 and r["final_step"] == 3250
    assert results.main(["--check", str(d)]) == 0  # the writer and --check agree
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    row = next(l for l in (root / "LEADERBOARD.md").read_text().splitlines() if "nan\\_a1" in l and l[2].isdigit())
    assert row.split(" | ")[4] == "nan"
    r["final_val_loss"] = "3.27"
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    assert "final_val_loss: must be a number or one of nan, inf, -inf, not str" in capsys.readouterr().err


def test_check_prints_the_path_once(tmp_path, capsys):
    d, r = written(tmp_path, capsys)
    (d / "results.json").write_text("{broken")
    assert results.main(["--check", str(d)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"FAILED: {d / 'results.json'}: not valid JSON: ") and err.count("\n") == 1


def _approach(tmp_path, scripts, own):
    """An approach directory with one log per script text and its own train_gpt_simple.py."""
    d = tmp_path / "idea_agent-07"
    d.mkdir()
    for i, script in enumerate(scripts):
        write(d / f"log{i}.txt", log_text([RUNS[i]], script=script))
    write(d / "train_gpt_simple.py", own)
    return d


def test_run_identity(tmp_path, capsys):
    edited = SCRIPT.replace("(1, 2, 3.0)", "(1, 2, 4.0)")
    d = _approach(tmp_path, [SCRIPT, SCRIPT, SCRIPT, edited], SCRIPT)
    assert results.main([str(d)] + ARGS[:6]) == 0
    assert "the runs were written by 2 different scripts" in capsys.readouterr().err
    assert results.main([str(d), "--strict"] + ARGS[:6]) == 2
    capsys.readouterr()
    assert results.main(["--check", str(d)]) == 0  # 3 of 4 logs were written by the file: a warning for the 4th
    err = capsys.readouterr().err
    assert "note: log3.txt was not written by its train_gpt_simple.py; from the file to the log's script: " \
           "1 line(s) differ (only number literals, " \
           "e.g. a seed)" in err
    write(d / "train_gpt_simple.py", SCRIPT + "# edited after the runs\n")  # none of the logs is of this text
    assert results.main(["--check", str(d)]) == 1
    err = capsys.readouterr().err
    assert "  run identity: none of the 4 log(s) was written by its train_gpt_simple.py" in err
    assert err.count("was not written by its train_gpt_simple.py") == 4
    before = (d / "results.json").read_text()
    assert results.main([str(d)] + ARGS[:6]) == 1  # the writer refuses what --check would reject
    err = capsys.readouterr().err
    assert "error: none of the 4 log(s) was written by its train_gpt_simple.py" in err and "nothing written" in err
    assert (d / "results.json").read_text() == before


def _port(tmp_path, logs, step, extra=()):
    d = tmp_path / "records" / "port"
    (d / "public_logs").mkdir(parents=True)
    for name, text in logs:
        write(d / "public_logs" / name, text)
    args = [str(d / "public_logs"), "--evidence", "public", "--step", str(step), "--bar", "0.004",
            "--public-source", "KellerJordan/modded-nanogpt: records/track_3_optimization/results/x/",
            "--hardware", "8x H100", "-o", str(d / "results.json")] + ARGS[:6] + list(extra)
    return d, args


def test_ported_record(tmp_path, capsys):
    # 1 public run at 3.2790 at 3250: margin 0.001 < 0.004 (n = (0.004/0.001)^2 = 16 would pass)
    d, args = _port(tmp_path, [("pub.txt", log_text([curve(3.2790)]))], 3250)
    assert results.main(args) == 0
    assert "the published step 3250 does NOT pass bar 0.004" in capsys.readouterr().err
    r = json.loads((d / "results.json").read_text())
    assert r["evidence"] == "public" and r["claim_holds"] is False and r["steps_to_3_28"] == 3250
    assert r["logs"] == ["public_logs/pub.txt"] and r["metric"] == "val_loss" and r["hardware"] == "8x H100"
    assert results.main(["--check", str(d)]) == 0  # faithful to its logs, and says the claim does not hold
    out = capsys.readouterr()
    assert "does NOT hold (recorded so: claim_holds false)" in out.out and "public evidence" in out.err
    r["claim_holds"] = True
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    assert "claim_holds: says true, but step 3250 does not pass bar 0.004" in capsys.readouterr().err
    del r["hardware"]
    (d / "results.json").write_text(json.dumps(r))
    assert results.main(["--check", str(d)]) == 1
    assert "hardware: missing (required) in a ported record" in capsys.readouterr().err


def test_ported_record_arguments(tmp_path, capsys):
    d, args = _port(tmp_path, [("pub.txt", log_text([curve(3.2790)]))], 3250)
    assert results.main([a for a in args if a not in ("--evidence", "public")]) == 2
    assert "--step records a published claim" in capsys.readouterr().err
    i = args.index("--hardware")
    assert results.main(args[:i] + ["--hardware", " "] + args[i + 2:]) == 2
    assert "--hardware must not be empty for a ported record" in capsys.readouterr().err
    i = args.index("--step")
    assert results.main(args[:i] + ["--step", "3230"] + args[i + 2:]) == 2
    assert "step 3230 is not a val step" in capsys.readouterr().err
    assert not (d / "results.json").exists()


def test_repo_ported_records(capsys):
    r46 = os.path.join(ROOT, "records", "20260619_cwd_rowfloor_tailema")
    assert results.main(["--check", r46]) == 0
    assert "steps_to_3_28 2690 holds under bar 0.004 on val_ema_loss (recomputed mean 3.27833, n 8" in \
        capsys.readouterr().out
    for name in os.listdir(RECORD46):  # the record's evidence is the test material of tools.stats
        with open(os.path.join(RECORD46, name)) as a, open(os.path.join(r46, "public_logs", name)) as b:
            assert a.read() == b.read()
    assert sorted(os.listdir(os.path.join(r46, "public_logs"))) == sorted(os.listdir(RECORD46))
    adamw = os.path.join(ROOT, "records", "20260426_adamw")
    assert results.main(["--check", adamw]) == 0
    assert "steps_to_3_28 5625 does NOT hold (recorded so: claim_holds false) under bar 0.004 on val_loss " \
           "(recomputed mean 3.27903, n 1" in capsys.readouterr().out
    for path in (os.path.join(r46, "public_logs", n) for n in os.listdir(os.path.join(r46, "public_logs"))):
        with open(path) as f:
            assert f.read().startswith("=" * 100 + "\n")  # no script text above the header


@pytest.mark.parametrize("where", ["top", "nested"])
def test_check_refuses_a_duplicate_key_in_one_line(tmp_path, capsys, where):
    d, r = written(tmp_path, capsys)
    text = (d / "results.json").read_text()
    if where == "top":  # json.loads would keep the second value silently
        text = text.replace('"num_runs": 4,', '"num_runs": 4, "num_runs": 5,')
        key = "num_runs"
    else:
        text = text.replace('"lr": 0.025,', '"lr": 0.025, "lr": 0.05,')
        key = "lr"
    assert text != (d / "results.json").read_text()
    (d / "results.json").write_text(text)
    assert results.main(["--check", str(d)]) == 1
    assert capsys.readouterr().err == (f'FAILED: {d / "results.json"}: duplicate key "{key}": JSON would keep only the '
                                       "last one; remove the other, or rewrite the file with python -m tools.results\n")
    assert results.main(["--check", str(d), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [{"field": "results.json", "message": f'duplicate key "{key}": JSON would keep only the '
                                "last one; remove the other, or rewrite the file with python -m tools.results"}]
