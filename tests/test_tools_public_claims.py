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


# ---------------------------------------------------------------------------------------------------------
# --prs: the open pull requests of a clone or mirror, each claim recomputed from its own logs

from tools import identity  # noqa: E402
from tools.logs import Trial, ValPoint, parse_text, script_sha256  # noqa: E402
from tools_logtext import HEADER, add_column  # noqa: E402

TRACK = "records/track_3_optimization"
PR_HEADER = ("Running PyTorch 2.11.0+cu130 compiled for CUDA 13.0\n"
             "Running on device_name=NVIDIA GH200 480GB with world_size=1")
ROW_LINE = ("| 47 | 3000 | 3.2770 (n=2)✓ | a row the PR adds | 2026/07/01 | [logs](results/20260701_row/README.md) "
            "| PR |\n")


def _git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def _runs(finals, train_steps=3250, slope=0.002, **kw):
    return log_text([{"points": curve(f, train_steps, slope=slope), "seed": i} for i, f in enumerate(finals)],
                    train_steps=train_steps, **kw)


def make_pr_repo(root):
    """A public repo with main and PR branches; returns the work tree. PRs:
    401 PASS (4 runs, mean 3.2775 at 3250: margin 0.005), 402 FAIL (mean 3.2785: margin 0.003),
    403 UNVERIFIABLE (one log for nine runs), 404 no track-3 file, 405 merged into main, 329 before #330,
    406 a table row, scored on val_ema_loss."""
    work = root / "work"
    track = work / TRACK
    (track / "results").mkdir(parents=True)
    write(track / "README.md", README)
    _git("init", "-q", "-b", "main", ".", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "main", cwd=work)

    def pr(number, files, on="main"):
        _git("checkout", "-q", "-b", f"pr{number}", on, cwd=work)
        for rel, text in files.items():
            os.makedirs(os.path.dirname(work / rel), exist_ok=True)
            write(work / rel, text)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", f"pr {number}", cwd=work)
        _git("checkout", "-q", "main", cwd=work)

    r = TRACK + "/results/"
    pr(401, {r + "20260701_pass_3250/README.md": "# 3250 steps (n=4) on one GH200\n",
             r + "20260701_pass_3250/a.txt": _runs((3.2773, 3.2777), header=PR_HEADER),
             r + "20260701_pass_3250/b.txt": _runs((3.2774, 3.2776), header=PR_HEADER),
             r + "20260701_pass_3250/train.py": "print('not a log')\n"})
    pr(402, {r + "20260702_fail_3250/README.md": "# 3250 steps\n\nFour seeds on 8xH200: mean 3.2785.\n",
             r + "20260702_fail_3250/a.txt": _runs((3.2783, 3.2787, 3.2784, 3.2786))})
    pr(403, {r + "20260703_one_3225/README.md": "# nine runs, n = 9\n",
             r + "20260703_one_3225/seed0.txt": _runs((3.2700,))})
    pr(404, {"README.md": "another track\n", "records/track_1_short/x.txt": _runs((3.2700,))})
    pr(405, {r + "20260705_merged_3250/a.txt": _runs((3.2700,))})
    _git("merge", "-q", "--no-edit", "pr405", cwd=work)
    pr(329, {r + "20260601_old_3250/a.txt": _runs((3.2700,))})
    ema = add_column(_runs((3.2790, 3.2792), train_steps=3000, header=PR_HEADER), "val_ema_loss", -0.0021)
    pr(406, {TRACK + "/README.md": README + ROW_LINE, r + "20260701_row/seeds.txt": ema,
             r + "20260701_row/README.md": "The readout val_ema is reported.\n"})
    return work


def _layouts(tmp_path):
    """(mirror with refs/pull/N/head, clone with refs/remotes/pr/N) of the repo of make_pr_repo."""
    work = make_pr_repo(tmp_path)
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror)], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(work), str(clone)], check=True)
    for n in (329, 401, 402, 403, 404, 405, 406):
        subprocess.run(["git", "--git-dir", str(mirror), "update-ref", f"refs/pull/{n}/head", f"refs/heads/pr{n}"],
                       check=True)
    # what `git fetch origin 'refs/pull/*/head:refs/remotes/pr/*'` gives a clone of GitHub
    subprocess.run(["git", "-C", str(clone), "fetch", "-q", "origin", "refs/heads/pr*:refs/remotes/pr/*"], check=True)
    return mirror, clone


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_prs_on_both_ref_layouts(tmp_path, capsys):
    mirror, clone = _layouts(tmp_path)
    assert public_claims.pr_refs(str(mirror)).keys() == {329, 401, 402, 403, 404, 405, 406}
    assert public_claims.pr_refs(str(clone / ".git")).keys() == {329, 401, 402, 403, 404, 405, 406}
    outs = []
    for source in (mirror, clone):
        assert public_claims.main([str(source), "--prs", "--json"]) == 1  # 402 fails
        outs.append(json.loads(capsys.readouterr().out))
    for out in outs:
        for c in out["claims"]:
            c.pop("commit")
    assert outs[0] == outs[1]
    claims = {c["pr"]: c for c in outs[0]["claims"]}
    assert sorted(claims) == [401, 402, 403, 406]  # 404: no track-3 file; 405: merged; 329: before #330
    p = claims[401]
    assert (p["verdict"], p["steps"], p["steps_from"], p["n"], p["runs"], p["metric"]) == \
        ("PASS", 3250, "folder name", 4, 4, "val_loss")
    assert p["mean"] == pytest.approx(3.2775) and p["margin"] == pytest.approx(0.005)
    assert p["over_bar"] == pytest.approx(0.001) and p["passes_workspace_bar"] is True
    assert p["grid"] == {"before": 3225, "after": None, "spacing": 25}
    prov = p["provenance"]
    assert prov["devices"] == {"NVIDIA GH200 480GB": 2} and prov["world_sizes"] == {"1": 2}
    assert prov["torch"] == {"2.11.0+cu130": 2} and prov["flags"] == []
    assert prov["script_sha256"] == {script_sha256(SCRIPT): 4}
    f = claims[402]
    assert (f["verdict"], f["reason"], f["n"], f["n_from"]) == ("FAIL", "margin 0.00300 < 0.004", 4, "README")
    assert f["mean"] == pytest.approx(3.2785) and f["passes_workspace_bar"] is False
    assert f["provenance"]["flags"] == ["stated hardware H200; logs say NVIDIA H100 80GB HBM3"]  # 8 GPUs: as logged
    u = claims[403]
    assert (u["verdict"], u["reason"], u["n"], u["runs"]) == \
        ("UNVERIFIABLE", "1 run(s) in the logs for the 9 claimed", 9, 1)
    assert u["mean"] == pytest.approx(3.2700 + 0.002)  # still shown: the one run at step 3225
    t = claims[406]
    assert (t["verdict"], t["steps"], t["steps_from"], t["n"], t["metric"], t["metric_from"]) == \
        ("PASS", 3000, "table row", 2, "val_ema_loss", "the README names val_ema")
    assert t["mean"] == pytest.approx(3.2770) and t["raw_mean"] == pytest.approx(3.2791)
    assert public_claims.main([str(mirror), "--prs", "--pr", "401,406"]) == 0
    text = capsys.readouterr().out
    assert " 401  3250     4/4 val_loss        3.2775             0.00500   0.00100    25  PASS" in text
    assert " 406  3000     2/2 val_ema_loss    3.2770   (3.2791)  0.00424   0.00024    25  PASS" in text
    assert "logs: NVIDIA GH200 480GB x1, torch 2.11.0+cu130, script " + script_sha256(SCRIPT)[:8] in text
    assert "summary: 2 claims: 2 pass, 0 fail, 0 unverifiable" in text
    assert public_claims.main([str(mirror), "--prs", "--from", "403"]) == 1
    assert "summary: 2 claims: 1 pass, 0 fail, 1 unverifiable" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_prs_bad_sources(tmp_path, capsys):
    assert public_claims.main([str(tmp_path), "--prs"]) == 2
    assert "not a git directory (--prs reads the pull-request refs" in capsys.readouterr().err
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "empty.git")], check=True)
    assert public_claims.main([str(tmp_path / "empty.git"), "--prs"]) == 2
    assert "no pull-request refs; fetch them: git -C" in capsys.readouterr().err
