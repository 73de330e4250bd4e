"""tools.public_claims: the README table, one row's folder read as a user would, the script-free extracts."""
import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import SCRIPT, SEP, curve, log_text, val_line, write  # noqa: E402

from tools import public_claims  # noqa: E402
from tools.logs import parse_file  # noqa: E402

README = """# Track 3

| # | Steps to 3.28 | Evidence | Description | Date | Log | Contributors |
| - | - | - | - | - | - | - |
| 1 | 3600(!) | 3.2777 (n=1)Ⓧ | first | 2026/04/26 | [log](results/top.txt) | someone |
| 2 | 3250 | 3.2775 (n=4)✓ | a folder with a copy | 2026/05/01 | [log](results/20260501_x/README.md) | [PR](https://x/1) |
| 3 | 3225(!) | 3.2775 (n=4)✓ | the same runs, an earlier step | 2026/05/02 | [log](results/20260501_x/a.txt) | b |
| 4 | 3000 | 3.2770 (n=2)✓ | two experiments in a folder | 2026/05/03 | [log](results/20260503_y/b.txt) | c |

Notes: | not a row |
"""

FINALS = (3.2773, 3.2777, 3.2774, 3.2776)  # mean 3.2775 at 3250: (3.28 - 3.2775) * 2 = 0.005 >= 0.004


def make_track(root):
    track = root / "records" / "track_3_optimization"
    x = track / "results" / "20260501_x"
    y = track / "results" / "20260503_y"
    for d in (x, y):
        d.mkdir(parents=True)
    write(track / "README.md", README)
    write(track / "results" / "top.txt", log_text([curve(3.2777)]))
    runs = [{"points": curve(f, slope=0.002), "seed": i} for i, f in enumerate(FINALS)]
    write(x / "a.txt", log_text(runs[:2]))
    write(x / "b.txt", log_text(runs[2:]))
    write(x / "seed0.stdout", "\n".join(val_line(s, 3250, v) for s, v in runs[0]["points"].items()) + "\n")
    write(x / "README.md", "step:3250/3250 val_loss:3.20000\n")
    write(x / "notes.txt", "not a log\n")
    write(y / "a.txt", log_text([curve(3.2700, 3500, slope=0.002)], train_steps=3500))
    write(y / "b.txt", log_text([curve(3.2765, 3000, slope=0.002), curve(3.2775, 3000, slope=0.002)], train_steps=3000))
    return track


def test_parse_table():
    rows = public_claims.parse_table(README)
    assert [(r["row"], r["steps"], r["mean"], r["n"], r["significant"], r["log"]) for r in rows] == [
        (1, 3600, 3.2777, 1, False, "results/top.txt"),
        (2, 3250, 3.2775, 4, True, "results/20260501_x/README.md"),
        (3, 3225, 3.2775, 4, True, "results/20260501_x/a.txt"),
        (4, 3000, 3.2770, 2, True, "results/20260503_y/b.txt")]


def test_rows_of_a_folder(tmp_path):
    track = make_track(tmp_path)
    rows = {r["row"]: r for r in public_claims.parse_table(README)}
    r2 = public_claims.check_row(str(track), rows[2])
    assert r2["pass"] and r2["n"] == 4 and r2["mean"] == pytest.approx(3.2775) and r2["read"] == "results/20260501_x"
    assert any("a.txt#1 and seed0.stdout#1 hold the same run" in n for n in r2["notes"])
    assert any("notes.txt: not a training log" in n for n in r2["notes"])
    r3 = public_claims.check_row(str(track), rows[3])  # at 3225 the mean is 3.2775 + 0.002: margin 0.001, fails
    assert not r3["pass"] and r3["mean"] == pytest.approx(3.2795) and r3["reason"] == "margin 0.00100 < 0.004"
    r4 = public_claims.check_row(str(track), rows[4])  # the folder also holds a 3500-step experiment
    assert r4["pass"] and r4["n"] == 2 and r4["mean"] == pytest.approx(3.2770)
    assert any("read those of the linked log" in n and "a.txt#1: train_steps 3500" in n for n in r4["notes"])
    r1 = public_claims.check_row(str(track), rows[1])  # a log directly in results/: that file alone
    assert r1["read"] == "results/top.txt" and r1["n"] == 1 and not r1["pass"]


def test_main_on_a_folder(tmp_path, capsys):
    track = make_track(tmp_path)
    assert public_claims.main([str(tmp_path), "--json"]) == 1  # row 3 fails
    out = json.loads(capsys.readouterr().out)
    assert [(r["row"], r["pass"]) for r in out["rows"]] == [(2, True), (3, False), (4, True)]
    assert out["passed"] == 2 and out["checked"] == 3
    assert public_claims.main([str(track), "--rows", "2,4"]) == 0
    text = capsys.readouterr().out
    assert "summary: 2 of 2 rows pass at their declared step" in text and str(track) not in text
    assert public_claims.main([str(tmp_path / "nowhere")]) == 2
    assert "neither a git directory nor a folder" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_main_on_a_git_directory(tmp_path, capsys):
    make_track(tmp_path / "work")
    git = ["git", "-C", str(tmp_path / "work"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path / "work")], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "work"), str(tmp_path / "bare")], check=True)
    assert public_claims.main([str(tmp_path / "bare"), "--rows", "2"]) == 0
    assert "   2  3250    3.2775 (n=4) val_loss        4   3.2775  0.00500  PASS" in capsys.readouterr().out


def test_extract_keeps_header_and_val_lines_only(tmp_path, capsys):
    text = log_text([curve(3.277)]).replace(SEP + "\n", SEP + "\nsecond header line\n", 1)
    src = write(tmp_path / "run.txt", text)
    assert public_claims.main(["--extract", src, "-o", str(tmp_path / "out")]) == 0
    extract = (tmp_path / "out" / "run.txt").read_text()
    assert extract.startswith(SEP + "\n") and SCRIPT.splitlines()[0] not in extract
    assert "trial 1/1" not in extract and "second header line" in extract
    a, b = parse_file(src).trials[0], parse_file(str(tmp_path / "out" / "run.txt")).trials[0]
    assert [(p.step, p.val_loss, p.train_time) for p in a.points] == [(p.step, p.val_loss, p.train_time) for p in b.points]
    bare = write(tmp_path / "bare.txt", "step:0/10 val_loss:1.0\n")
    assert public_claims.main(["--extract", bare, "-o", str(tmp_path / "out")]) == 2
    assert "no header between two lines of 100 '='" in capsys.readouterr().err
