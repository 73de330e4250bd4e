"""tools.public_claims: the README table, one row's folder read as a user would, the script-free extracts, and
--prs: the open pull requests of a synthetic public repo (both ref layouts), each claim's verdict and provenance.

Mutation testing of the judging code of --prs (mutmut 3.8.1, 2026-12-06, only this file's tests; the setup of
docs/tools.md "Mutation testing" with tools/public_claims.py under only_mutate, run as
`timeout 900 mutmut run --max-children 1 "tools.public_claims.x_verdict*" "tools.public_claims.x_grid_near*"
"tools.public_claims.x_claim_of*" "tools.public_claims.x_declared_metric*" "tools.public_claims.x_join_resumed*"
"tools.public_claims.x__number*"`): 351 mutants; before the tests from test_verdict_outputs_in_full on, 320 of
353 were killed. Now 346 are killed, 1 times out (x_join_resumed__mutmut_6: `joined = True` at the top of the
loop never ends it, which the timeout catches) and these survive, changing nothing a user can observe:
- x_verdict__mutmut_81: the raw val_loss is recomputed also when the column is val_loss: the same runs, the same
  step, the same mean. _89: that analysis under the default bar instead of `bar`: a mean does not depend on the
  bar.
- x_declared_metric__mutmut_40: `<` for `<=` in the rounding tolerance (half a unit of the stated number's last
  decimal, plus 1e-9): they differ only for a mean exactly at that float distance from the number.
- x_join_resumed__mutmut_5: `joined = None` for `joined = False`: both end the `while joined` loop.
"""
import json
import types
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
    # provenance of the runs read (the capture seed0.stdout has no header; its run is counted once, as a.txt#1)
    assert r2["provenance"]["devices"] == {"NVIDIA H100 80GB HBM3": 2} and r2["raw_mean"] is None
    assert r2["provenance"]["flags"] == []
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
    assert " 401  3250     4/4 val_loss        3.2775             0.00500   0.00100   yes    25  PASS" in text
    assert " 406  3000     2/2 val_ema_loss    3.2770   (3.2791)  0.00424   0.00024    no    25  PASS" in text
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


def _trial(values, train_steps=3000, name="r.txt", index=1, extra=None, sha="a" * 64, steps=None):
    """A run with val loss `values[i]` at steps[i] (default every 25 up to train_steps, ending there)."""
    steps = steps or list(range(train_steps - 25 * (len(values) - 1), train_steps + 1, 25))
    pts = [ValPoint(s, train_steps, v, extra={k: v + d for k, d in (extra or {}).items()})
           for s, v in zip(steps, values)]
    return Trial(source=name, index=index, points=pts, script_sha256=sha)


def test_verdict_pass_fail_at_the_bar():
    # mean 3.278 at 3000 over n=4: margin exactly (3.28 - 3.278) * 2 = 0.004: passes the public bar, not 0.005
    runs = [_trial([3.2800, v], index=i) for i, v in enumerate((3.2770, 3.2790, 3.2775, 3.2785))]
    v = public_claims.verdict(runs, 3000, 4, "val_loss")
    assert (v["verdict"], v["reason"], v["runs"], v["earliest"]) == ("PASS", "", 4, 3000)
    assert v["mean"] == pytest.approx(3.278) and v["margin"] == pytest.approx(0.004)
    assert v["over_bar"] == pytest.approx(0.0, abs=1e-12) and v["passes_workspace_bar"] is False
    assert v["raw_mean"] == v["mean"] and v["grid"] == {"before": 2975, "after": None, "spacing": 25}
    runs[0].points[-1].val_loss = 3.27701  # mean 3.2780025: margin 0.003995 < 0.004
    v = public_claims.verdict(runs, 3000, None, "val_loss")
    assert (v["verdict"], v["reason"], v["earliest"]) == ("FAIL", "margin 0.00400 < 0.004", None)
    assert v["margin"] == pytest.approx(0.003995)
    assert public_claims.verdict(runs, 3000, 4, "val_loss", bar=0.003)["verdict"] == "PASS"


def test_verdict_unverifiable_and_missing_step():
    runs = [_trial([3.2790, 3.2700], index=i) for i in range(2)]
    v = public_claims.verdict(runs, 3000, 9, "val_loss")  # 2 runs of the 9 claimed: the mean is still shown
    assert (v["verdict"], v["reason"]) == ("UNVERIFIABLE", "2 run(s) in the logs for the 9 claimed")
    assert v["mean"] == pytest.approx(3.27) and v["margin"] == pytest.approx(0.01 * 2 ** 0.5)
    assert public_claims.verdict(runs, 3000, 2, "val_loss")["verdict"] == "PASS"  # as many as claimed
    assert public_claims.verdict(runs, 3000, 1, "val_loss")["verdict"] == "PASS"  # more: all of them count
    none = public_claims.verdict([], 3000, 4, "val_loss")
    assert (none["verdict"], none["reason"], none["runs"], none["grid"]) == \
        ("UNVERIFIABLE", "no log in the PR", 0, None)
    nostep = public_claims.verdict(runs, None, 2, "val_loss")
    assert (nostep["verdict"], nostep["reason"]) == \
        ("UNVERIFIABLE", "no claimed step found (table row, folder name or README)")
    mixed = public_claims.verdict(runs + [_trial([3.27], train_steps=3250, index=3)], 3000, 3, "val_loss")
    assert mixed["verdict"] == "UNVERIFIABLE" and mixed["reason"].startswith(
        "cannot score: runs with different train_steps are different experiments")
    nocol = public_claims.verdict(runs, 3000, 2, "val_ema_loss")
    assert nocol["verdict"] == "UNVERIFIABLE" and "log no column val_ema_loss" in nocol["reason"]
    miss = public_claims.verdict(runs, 2990, 2, "val_loss")  # between the val steps 2975 and 3000
    assert (miss["verdict"], miss["mean"], miss["grid"]) == \
        ("FAIL", None, {"before": 2975, "after": 3000, "spacing": 10})
    assert miss["reason"] == ("step 2990 is not a val step (val_loss) of every run: missing in r.txt#0, r.txt#1; "
                              "the nearest common val steps are 2975 and 3000")
    assert public_claims.verdict(runs, 2990, 9, "val_loss")["verdict"] == "UNVERIFIABLE"


def test_verdict_on_a_readout_column():
    runs = [_trial([3.2850, 3.2820], extra={"val_ema_loss": -0.005}, index=i) for i in range(4)]
    v = public_claims.verdict(runs, 3000, 4, "val_ema_loss")
    assert v["verdict"] == "PASS" and v["mean"] == pytest.approx(3.277) and v["raw_mean"] == pytest.approx(3.282)
    assert v["passes_workspace_bar"] is True and v["margin"] == pytest.approx(0.006)
    assert public_claims.verdict(runs, 3000, 4, "val_loss")["verdict"] == "FAIL"


def test_grid_near():
    a = {"steps": [types.SimpleNamespace(step=s) for s in (2500, 2600, 2605, 2610, 2625)]}
    assert public_claims.grid_near(a, 2605) == {"before": 2600, "after": 2610, "spacing": 5}
    assert public_claims.grid_near(a, 2620) == {"before": 2610, "after": 2625, "spacing": 5}
    assert public_claims.grid_near(a, 2550) == {"before": 2500, "after": 2600, "spacing": 50}
    assert public_claims.grid_near(a, 2500) == {"before": None, "after": 2600, "spacing": 100}
    assert public_claims.grid_near(a, 2625) == {"before": 2610, "after": None, "spacing": 15}
    assert public_claims.grid_near({"steps": a["steps"][:1]}, 2500) == {"before": None, "after": None,
                                                                         "spacing": None}


def test_claim_of():
    row = {"steps": 3150, "n": 11, "mean": 3.2778}
    assert public_claims.claim_of("20260722_x_3100", "n = 4", row) == {
        "steps": 3150, "steps_from": "table row", "n": 11, "n_from": "table row", "mean": 3.2778}
    assert public_claims.claim_of("20260710_dc_rrr_muon_2645", "19 consecutive seeds on one GH200 (n=20)") == {
        "steps": 2645, "steps_from": "folder name", "n": 20, "n_from": "README", "mean": None}
    c = public_claims.claim_of("20260716_kfac", "# KFAC, 2600 steps\n\nTwelve fixed GH200 seeds pass")
    assert (c["steps"], c["steps_from"], c["n"], c["n_from"]) == (2600, "README", 12, "README")
    c = public_claims.claim_of("x", "# 3250 steps\n\n9 non-cherry-picked runs on 8xH20")
    assert (c["steps"], c["n"]) == (3250, 9)
    c = public_claims.claim_of("x", "2600 optimizer steps over the seeds")  # "steps" is not a count of runs
    assert (c["steps"], c["n"], c["n_from"]) == (2600, None, None)
    assert public_claims.claim_of("x", "nothing") == {"steps": None, "steps_from": None, "n": None,
                                                       "n_from": None, "mean": None}


def test_declared_metric():
    runs = [_trial([3.2850, 3.2820], extra={"val_ema_loss": -0.005}, index=i) for i in range(2)]
    assert public_claims.declared_metric("mean val_ema at 3000", runs, 3000) == \
        ("val_ema_loss", "the README names val_ema")
    assert public_claims.declared_metric("| 3000 | 2 | 3.27700 | pass |", runs, 3000) == \
        ("val_ema_loss", "the stated mean 3.27700 is the val_ema_loss mean at step 3000")
    assert public_claims.declared_metric("mean 3.2820", runs, 3000) == \
        ("val_loss", "the stated mean 3.2820 is the val_loss mean at step 3000")
    assert public_claims.declared_metric("mean 3.2821", runs, 3000) == \
        ("val_loss", "the default (the README names no other column)")
    assert public_claims.declared_metric("", runs, 3000, stated_mean=3.27704) == \
        ("val_ema_loss", "the stated mean 3.2770 is the val_ema_loss mean at step 3000")
    assert public_claims.declared_metric("mean 3.2770", runs, None)[0] == "val_loss"
    assert public_claims.declared_metric("val_emaX", runs, 3000)[0] == "val_loss"


def test_join_resumed():
    part0 = _trial([3.9, 3.8, 3.7], train_steps=3250, name="part0.txt", steps=[450, 475, 500])
    rest = _trial([3.7, 3.6, 3.27], train_steps=3250, name="rest.txt", steps=[475, 500, 3250])
    rest.points[0].val_loss = 3.8  # the same val loss at the resumed step 475
    other = _trial([3.5, 3.27], train_steps=3250, name="other.txt", steps=[500, 3250])
    runs, notes = public_claims.join_resumed([part0, rest, other])
    assert runs == [rest, other] and [p.step for p in rest.points] == [450, 475, 500, 3250]
    assert notes == ["rest.txt#1 goes on from part0.txt#1 at step 475 (the same val loss there): one run resumed "
                     "in another file, joined (part0.txt#1's val lines before step 475)"]
    a = _trial([3.9, 3.8], train_steps=3250, name="a.txt", steps=[450, 475])
    b = _trial([3.81, 3.27], train_steps=3250, name="b.txt", steps=[475, 3250])  # another value at 475
    assert public_claims.join_resumed([a, b]) == ([a, b], [])
    c = _trial([3.8, 3.27], train_steps=3250, name="c.txt", steps=[475, 3250], sha="b" * 64)  # another script
    assert public_claims.join_resumed([a, c]) == ([a, c], [])
    d = _trial([3.8, 3.27], train_steps=3000, name="d.txt", steps=[475, 3000])  # another experiment
    assert public_claims.join_resumed([a, d]) == ([a, d], [])
    whole = _trial([3.9, 3.8, 3.27], train_steps=3250, name="w.txt", steps=[450, 475, 3250])  # complete, not cut
    e = _trial([3.8, 3.27], train_steps=3250, name="e.txt", steps=[475, 3250])
    assert public_claims.join_resumed([whole, e]) == ([whole, e], [])


def test_provenance_flags():
    h100 = parse_text(log_text([curve(3.277)]), "h100.txt")  # HEADER: H100, world_size 8
    gh = parse_text(log_text([curve(3.277)], header=PR_HEADER, script=SCRIPT + "# v2\n"), "gh.txt")
    p = identity.provenance([h100], h100.trials, "runs on 8xH100")
    assert p["flags"] == [] and p["devices"] == {"NVIDIA H100 80GB HBM3": 1} and p["world_sizes"] == {8: 1}
    assert p["torch"] == {"2.11.0+cu130": 1} and p["stated_models"] == ["H100"] and p["stated_counts"] == [8]
    assert identity.provenance_cell(p) == f"NVIDIA H100 80GB HBM3 x8, torch 2.11.0+cu130, script " \
                                          f"{script_sha256(SCRIPT)[:8]}"
    assert identity.provenance([h100], h100.trials, "on 4xH100")["flags"] == [
        "stated 4 GPU(s); logs say world_size 8"]
    both = identity.provenance([h100, gh], h100.trials + gh.trials, "8xH100")
    assert both["flags"] == [
        "stated hardware H100; logs say NVIDIA GH200 480GB",
        "world sizes differ: 8 (1 logs), 1 (1 logs)",
        f"2 different scripts (sha256 {script_sha256(SCRIPT)[:8]}, {script_sha256(SCRIPT + '# v2' + chr(10))[:8]})"]
    assert identity.provenance([h100, gh], h100.trials + gh.trials)["flags"][0] == "2 devices in the logs"
    bare = parse_text("step:0/3250 val_loss:10.8\nstep:3250/3250 val_loss:3.27\n", "bare.txt")
    assert identity.provenance([bare], bare.trials, "one H200")["flags"] == [
        "stated hardware H200; the logs name no device", "1 of 1 run(s) without an embedded script"]
    assert identity.provenance_cell(identity.provenance([bare], bare.trials)) == "? x?, torch ?, script ?"
    dense = parse_text(log_text([curve(3.277)]).replace(
        "step:3225/3250", "step:3220/3250 val_loss:3.28000\nstep:3225/3250"), "dense.txt")
    flags = identity.provenance([h100, dense], h100.trials + dense.trials)["flags"]
    assert flags == ["val steps differ between runs: 1 run(s) share 38 val steps, dense.txt#1 has others"]
    short = _trial([3.3] * 9, train_steps=3250, steps=list(range(0, 1001, 125)), sha=script_sha256(SCRIPT))
    # it stops early: the val steps are compared up to its last one only
    assert identity.provenance([h100], [h100.trials[0], short])["flags"] == [
        "1 of 2 run(s) end before train_steps 3250 (last val step 1000)"]
    assert identity.val_cadence([h100.trials[0], short])[0][0] == tuple(range(0, 1001, 125))


def test_stated_hardware():
    assert identity.stated_hardware("hardware = 8xH200; 16 runs") == (["H200"], [8])
    assert identity.stated_hardware("19 seeds on one GH200") == (["GH200"], [1])
    assert identity.stated_hardware("9 runs on 8×H20, then 2 x NVIDIA A40") == (["H20", "A40"], [8, 2])
    assert identity.stated_hardware("a 16-GPU wrapper; H200_seed0.txt") == ([], [16])
    assert identity.gpu_models("NVIDIA A800-SXM4-80GB and NVIDIA GH200 480GB, L20X") == ["A800", "GH200", "L20X"]


def test_logs_read_torch_device_and_sha(tmp_path):
    log = parse_text(log_text([curve(3.277)]), "x.txt")
    assert (log.torch, log.device, log.world_size) == ("2.11.0+cu130", "NVIDIA H100 80GB HBM3", 8)
    assert log.script_sha256 == script_sha256(SCRIPT) == __import__("hashlib").sha256(SCRIPT.encode()).hexdigest()
    assert log.trials[0].script_sha256 == log.script_sha256
    public = parse_text(log_text([curve(3.277)], header="Running PyTorch 2.11.0+cu128 compiled for CUDA 12.8 on "
                                                        "NVIDIA H100 NVL with world_size 1"), "p.txt")
    assert (public.torch, public.device, public.world_size) == ("2.11.0+cu128", "NVIDIA H100 NVL", 1)
    assert script_sha256("") is None and script_sha256("\n\n") is None
    assert script_sha256("a\n\n\n") == script_sha256("a") == __import__("hashlib").sha256(b"a\n").hexdigest()
    src = write(tmp_path / "run.txt", log_text([curve(3.277)]))  # the extract keeps the sha256 of the script
    assert public_claims.main(["--extract", src, "-o", str(tmp_path / "out")]) == 0
    ex = parse_file(str(tmp_path / "out" / "run.txt"))
    assert not ex.script and ex.script_sha256 == script_sha256(SCRIPT) and ex.torch == "2.11.0+cu130"
    assert ex.header.splitlines() == [HEADER, f"script_sha256={script_sha256(SCRIPT)} (the script above this "
                                              "header in the original log, left out here)"]
    again = public_claims.extract(str(tmp_path / "out" / "run.txt"))  # an extract of an extract: one sha line
    assert again == (tmp_path / "out" / "run.txt").read_text()


def test_verdict_outputs_in_full():
    """Every key of the result, on the early returns and with tools.stats' pooling warnings (mutation tests)."""
    empty = {"verdict": "UNVERIFIABLE", "reason": "no log in the PR", "runs": 0, "mean": None, "raw_mean": None,
             "margin": None, "over_bar": None, "passes_workspace_bar": None, "earliest": None, "grid": None,
             "warnings": []}
    assert public_claims.verdict([], 3000, 4, "val_loss") == empty
    runs = [_trial([3.2850, 3.2750], extra={"val_ema_loss": -0.001}, index=i) for i in range(4)]
    runs[0].points[0].extra["val_ema_loss"] = float("nan")  # a readout that is not finite at step 2975
    v = public_claims.verdict(runs, 3000, 4, "val_ema_loss")
    assert v["warnings"] == ["r.txt#0: val_ema_loss nan at step 2975; it still counts as a run (leaving it out "
                             "would be cherry-picking)"]  # the warning on the scored column (metric passed on)
    assert v["mean"] == pytest.approx(3.274) and v["raw_mean"] == pytest.approx(3.275)
    cut = _trial([3.2850, 3.2770], index=7, steps=[2950, 2975])  # ends at 2975 of 3000
    full = _trial([3.2850, 3.2750, 3.2700], index=6, steps=[2950, 2975, 3000])
    w = public_claims.verdict([full, cut], 2975, 2, "val_loss")  # mean 3.276 over the 2: margin 0.00566
    assert w["warnings"] == ["r.txt#7: stops early at step 2975 of 3000 (no val line after it in its log); it still "
                             "counts as a run (leaving it out would be cherry-picking)"]
    assert (w["verdict"], w["mean"], w["grid"]) == ("PASS", pytest.approx(3.276), {"before": 2950, "after": None,
                                                                                  "spacing": 25})


def test_declared_metric_edges():
    def runs_with(offsets, partial=None):
        out = []
        for i in range(2):
            t = _trial([3.2850, 3.2820], extra=offsets, index=i)
            if partial and i == 1:  # the first run logs it: the column comes before val_b_loss
                for p in t.points:
                    p.extra.pop(partial)
            out.append(t)
        return out
    # a number the public logs print as a column (ema_beta:0.9) is no readout, even when the README names it
    beta = runs_with({"ema_beta": 0.0})
    assert public_claims.declared_metric("ema_beta 0.9, ema_beta stays", beta, 3000)[0] == "val_loss"
    assert public_claims.declared_metric("mean 3.2820 with ema_beta", beta, 3000)[0] == "val_loss"
    ema = runs_with({"val_ema_loss": -0.00496})  # val_ema mean 3.27704
    assert public_claims.declared_metric("val_emas are not val_ema's stem", ema, 3000)[0] == "val_ema_loss"
    assert public_claims.declared_metric("the val_emax readout", ema, 3000)[0] == "val_loss"
    # 4 decimals: within half a unit (5e-5) of the mean: 3.2770 is 3.27704 rounded
    assert public_claims.declared_metric("mean 3.2770", ema, 3000) == \
        ("val_ema_loss", "the stated mean 3.2770 is the val_ema_loss mean at step 3000")
    assert public_claims.declared_metric("mean 3.2771", ema, 3000)[0] == "val_loss"  # 6e-5 off
    half = runs_with({"val_ema_loss": -0.00495})  # mean 3.27705: exactly half a unit from 3.2771 (and 3.2770)
    assert public_claims.declared_metric("mean 3.2771", half, 3000)[0] == "val_ema_loss"
    far = runs_with({"val_ema_loss": -0.00490})  # mean 3.2771
    assert public_claims.declared_metric("mean 3.2772", far, 3000)[0] == "val_loss"  # a unit off
    assert public_claims.declared_metric("mean 3.27715", far, 3000)[0] == "val_loss"  # 5 decimals: 5e-5 off
    # a readout only some runs log is passed over, and the next column is still tried
    two = runs_with({"val_a_loss": 0.0, "val_b_loss": -0.00496}, partial="val_a_loss")
    assert public_claims.declared_metric("mean 3.2770", two, 3000) == \
        ("val_b_loss", "the stated mean 3.2770 is the val_b_loss mean at step 3000")
    assert public_claims.declared_metric("mean 3.2820", two, None)[0] == "val_loss"  # no step: nothing to match


def test_join_resumed_chains_and_leaves_whole_runs():
    full = _trial([10.8, 3.5, 3.27], train_steps=3250, name="full.txt", steps=[0, 475, 3250])
    cut = _trial([10.8, 3.5], train_steps=3250, name="cut.txt", steps=[0, 475])  # ends early; also from step 0
    # a run from step 0 never continues another, even one with the same values there
    assert public_claims.join_resumed([full, cut]) == ([full, cut], [])
    d = _trial([3.9, 3.8], train_steps=3250, name="d.txt", steps=[400, 425])
    a = _trial([3.8, 3.7], train_steps=3250, name="a.txt", steps=[425, 450])
    c = _trial([3.7, 3.27], train_steps=3250, name="c.txt", steps=[450, 3250])
    runs, notes = public_claims.join_resumed([full, d, c, a])  # the step-0 run first: it is passed over
    assert runs == [full, c] and [p.step for p in c.points] == [400, 425, 450, 3250]
    assert [p.val_loss for p in c.points] == [3.9, 3.8, 3.7, 3.27]
    assert notes == ["c.txt#1 goes on from a.txt#1 at step 450 (the same val loss there): one run resumed in another "
                     "file, joined (a.txt#1's val lines before step 450)",
                     "c.txt#1 goes on from d.txt#1 at step 425 (the same val loss there): one run resumed in another "
                     "file, joined (d.txt#1's val lines before step 425)"]
