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
    assert f"results.json: {field}: " in err and message in err


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
    assert "no training log" in err and "notes.txt: skipped" in err


def test_check_extra_log_changes_num_runs(tmp_path, capsys):
    d, _ = written(tmp_path, capsys)
    write(d / "c.log", log_text([curve(3.2760)]))
    assert results.main(["--check", str(d), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and {"field": "num_runs", "message": "4 but the logs hold 5 runs"} in out["problems"]
