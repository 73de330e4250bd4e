"""tools.leaderboard: sorting, per-optimizer bests, recomputed marks, escaping, skipped entries, --check."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import SCRIPT, curve, log_text, write  # noqa: E402
from tools.logs import script_sha256  # noqa: E402

from tools import leaderboard, results  # noqa: E402
from tools.leaderboard import escape  # noqa: E402


def entry(root, rel, runs=None, train_steps=3250, **fields):
    """A directory with logs (runs: list of finals) and a results.json: written by tools.results when
    `fields` is empty, else exactly `fields`."""
    d = root / rel
    d.mkdir(parents=True)
    if runs:
        # a steep curve (0.002 per 25 steps): only the final step can pass
        write(d / "run.txt", log_text([curve(f, train_steps, slope=0.002) for f in runs], train_steps=train_steps))
    if fields:
        write(d / "results.json", json.dumps(fields) if not isinstance(fields.get("raw"), str) else fields["raw"])
    else:
        opt = rel.split("/")[1].split("_")[0]
        assert results.main([str(d / "run.txt"), "--agent-id", "x", "--experiment", f"exp {rel}",
                             "--optimizer", opt]) == 0
    return d


def cells(line):
    return re.split(r"(?<!\\)\|", line)[1:-1]


def build(tmp_path, capsys):
    root = tmp_path / "repo"
    # Muon: 4 runs passing 0.005 at 3250 (mean 3.2774) and an older 4-run entry at 3250 with mean 3.2770.
    entry(root, "artifacts/Muon_a1", [3.2772, 3.2776, 3.2773, 3.2775])
    entry(root, "artifacts/Muon_a0", [3.2768, 3.2772, 3.2769, 3.2771])
    # AdamW: 4 runs of 3000 steps, mean 3.2765 at 3000.
    entry(root, "records/AdamW_b1", [3.2764, 3.2766, 3.2765, 3.2765], train_steps=3000)
    # Lion: claims 2900 with 1 run, but its log gives 3.2790 there: does not hold.
    entry(root, "artifacts/lion_c1", [3.2790], train_steps=2900, agent_id="c", experiment="lion", optimizer="Lion",
          steps_to_3_28=2900, final_val_loss=3.274, num_runs=1, mean_val_loss=3.274)
    # SGD: no logs at all.
    entry(root, "artifacts/sgd_d1", agent_id="d", experiment="sgd", optimizer="SGD", steps_to_3_28=2500,
          final_val_loss=3.27)
    # Hostile text and huge numbers: valid types, so listed, but escaped.
    entry(root, "artifacts/evil_e1", agent_id="<img src=x onerror=alert(1)>",
          experiment="a | b\n| c | d |\n# H1 [x](javascript:alert(1)) **b** `c` _i_ & ~s~ \\ " + "long " * 1000,
          optimizer="Evil|Opt`", steps_to_3_28=99999999, final_val_loss=1e300, mean_val_loss=-1e300,
          timestamp="2026-01-01T00:00:00Z</td>")
    # Malformed entries: skipped, never fatal.
    entry(root, "artifacts/badjson_f1", raw="{not json")
    entry(root, "artifacts/nan_f2", raw='{"agent_id": "a", "experiment": "e", "optimizer": "o", '
                                       '"steps_to_3_28": 3000, "final_val_loss": NaN}')
    entry(root, "records/missing_f3", agent_id="a", experiment="e", optimizer="o", final_val_loss=3.27)
    entry(root, "records/types_f4", agent_id=["a"], experiment="e", optimizer="o", steps_to_3_28="3000",
          final_val_loss="3.27")
    entry(root, "records/list_f5", raw="[1, 2]")
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    err = capsys.readouterr().err
    return root, (root / "LEADERBOARD.md").read_text(), err


def section(text, title):
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_board(tmp_path, capsys):
    root, text, err = build(tmp_path, capsys)
    rows = [cells(l) for l in section(text, "Results reproduced here").splitlines() if l.startswith("| ") and l[2].isdigit()]
    assert [r[1].strip() for r in rows] == ["2500", "2900", "3000", "3250", "3250", "99999999"]
    # tie at 3250: the lower mean first
    assert rows[3][2].strip() == "3.2770" and "Muon\\_a0" in rows[3][12]
    assert rows[4][2].strip() == "3.2774"
    # what the logs say (tools_logtext.HEADER), and no flag: one device, one script, the same val steps
    assert [c.strip() for c in rows[4][14:]] == [
        f"NVIDIA H100 80GB HBM3 x8, torch 2.11.0+cu130, script {script_sha256(SCRIPT)[:8]}", "-"]
    assert [c.strip() for c in rows[0][14:]] == ["-", "-"]  # sgd_d1: no logs
    marks = {r[12].strip(): r[13].strip() for r in rows}
    assert {r[7].strip() for r in rows} == {"val\\_loss"}  # no metric field: val_loss
    assert marks["[artifacts/sgd\\_d1](artifacts/sgd_d1/)"] == "unverified: no logs"
    assert marks["[artifacts/lion\\_c1](artifacts/lion_c1/)"] == \
        "✗ does not hold: recomputed 3.2790 at 2900 (n=1, bar 0.005; n=25 would pass at this mean)"  # (.005/.001)^2
    assert marks["[records/AdamW\\_b1](records/AdamW_b1/)"] == "✓ holds: recomputed 3.2765 at 3000 (n=4, bar 0.005)"
    assert marks["[artifacts/Muon\\_a1](artifacts/Muon_a1/)"].startswith("✓ holds: recomputed 3.2774 at 3250")

    best = section(text, "Best setting per optimizer")
    best_rows = [cells(l) for l in best.splitlines() if l.startswith("| ") and not l.startswith("| Optimizer")
                 and not l.startswith("|---") and "History" not in l]
    table = {r[0].strip(): r[1].strip() for r in best_rows[:5]}
    assert table["AdamW"] == "3000" and table["Muon"] == "3250"
    assert table["Lion"] == "-" and table["SGD"] == "-"  # no entry whose claim holds
    assert [r[0].strip() for r in best_rows[:2]] == ["AdamW", "Muon"]
    assert "### History: Muon" in best and best.count("artifacts/Muon\\_a0") >= 2  # best row + history

    skipped = section(text, "Skipped entries")
    for name in ("badjson\\_f1", "nan\\_f2", "missing\\_f3", "types\\_f4", "list\\_f5"):
        assert name in skipped
    assert "steps\\_to\\_3\\_28: missing" in skipped and "not a JSON object" in skipped
    assert err.count("skipped ") == 5

    ref = section(text, "Reference: published results")
    assert "not verified here" in ref and "| 2690 | 3.2783 | 8 | SOAP-Muon stack |" in ref


def test_hostile_text_is_escaped(tmp_path, capsys):
    root, text, _ = build(tmp_path, capsys)
    assert "<img" not in text and "</td>" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    lines = [l for l in text.splitlines() if "Evil" in l or "evil" in l]
    assert lines
    for table in ("Results reproduced here",):
        for line in section(text, table).splitlines():
            if line.startswith("|"):
                assert len(cells(line)) == 16, line  # no injected column or row
    evil = next(l for l in section(text, "Results reproduced here").splitlines() if "evil\\_e1" in l)
    c = cells(evil)
    assert c[8].strip().startswith("Evil\\|Opt\\`")
    exp = c[9].strip()
    assert exp.startswith("a \\| b \\| c \\| d \\| \\# H1 \\[x\\](javascript:alert(1)) \\*\\*b\\*\\* \\`c\\` \\_i\\_ "
                          "&amp; \\~s\\~ \\\\ long")
    assert len(exp) < 300 and exp.endswith("…")
    assert c[2].strip() == "-1e+300" and c[4].strip() == "1e+300"
    assert c[12].strip() == "[artifacts/evil\\_e1](artifacts/evil_e1/)" and c[11].strip() == "2026-01-01"


def test_escape():
    assert escape("a|b") == "a\\|b"
    assert escape("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert escape("x\ny\r\nz\tw") == "x y z w"
    assert escape("[a](b) *c* _d_ `e`") == "\\[a\\](b) \\*c\\* \\_d\\_ \\`e\\`"
    assert len(escape("x" * 5000)) == 200
    assert escape(float("nan")) == "nan"


def test_check_mode(tmp_path, capsys):
    root, text, _ = build(tmp_path, capsys)
    assert leaderboard.main(["--root", str(root), "--check"]) == 0
    board = root / "LEADERBOARD.md"
    board.write_text(text.replace("3.2774", "3.2700"))
    assert leaderboard.main(["--root", str(root), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    board.unlink()
    assert leaderboard.main(["--root", str(root), "--check"]) == 1


def test_empty_root_has_reference_section(tmp_path, capsys):
    out = tmp_path / "board.md"
    assert leaderboard.main(["--root", str(tmp_path), "-o", str(out)]) == 0
    text = out.read_text()
    assert "No entries yet." in text and "modded-nanogpt track\\_3 \\#36" in text
    assert "Published elsewhere (modded-nanogpt track_3)" in text


def test_repo_board_is_up_to_date(capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert leaderboard.main(["--root", root, "--check"]) == 0


# --- ported records, metric, run identity, escaping (issues 13, 12, 16, 15) -----------------------------------

from tools_logtext import SCRIPT, add_column  # noqa: E402
from tools.logs import script_sha256  # noqa: E402


def ported(root, rel, finals, step, metric="val_loss", **extra):
    d = root / rel
    (d / "public_logs").mkdir(parents=True)
    text = log_text([curve(f, slope=0.002) for f in finals])
    if metric != "val_loss":
        text = add_column(text, metric, -0.001)
    write(d / "public_logs" / "pub.txt", text)
    assert results.main([str(d / "public_logs"), "--evidence", "public", "--step", str(step), "--bar", "0.004",
                         "--metric", metric, "--public-source", "public/x", "--hardware", "2x A40",
                         "--agent-id", "public", "--experiment", f"port {rel}", "--optimizer", extra.get("opt", "Muon"),
                         "-o", str(d / "results.json")]) == 0
    return d


def test_ported_records_have_their_own_section(tmp_path, capsys):
    root = tmp_path / "repo"
    entry(root, "artifacts/Muon_a1", [3.2772, 3.2776, 3.2773, 3.2775])
    ported(root, "records/frontier", [3.2785, 3.2786, 3.2787, 3.2790], 3250, metric="val_ema_loss")  # ema: 3.2777
    ported(root, "records/adamw", [3.2790], 3250, opt="AdamW")
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    text = (root / "LEADERBOARD.md").read_text()
    here = section(text, "Results reproduced here") + section(text, "Best setting per optimizer")
    assert "records/frontier" not in here and "records/adamw" not in here and "AdamW" not in here
    assert "Muon\\_a1" in here
    port = section(text, "Ported records (ported, public evidence)")
    rows = {cells(l)[12].strip(): cells(l) for l in port.splitlines() if l.startswith("| 3250")}
    front = rows["[records/frontier](records/frontier/)"]
    # the readout's mean, and the raw val_loss of the same runs at the same step beside it
    assert [c.strip() for c in front[:7]] == ["3250", "3.2777 (val\\_loss 3.2787)", "0.00022", "4", "0.004",
                                              "val\\_ema\\_loss", "2x A40"]
    sha = script_sha256(SCRIPT)
    assert front[7].strip() == f"NVIDIA H100 80GB HBM3 x8, torch 2.11.0+cu130, script {sha[:8]}"  # what the logs say
    assert front[8].strip() == ("stated hardware A40; logs say NVIDIA H100 80GB HBM3; stated 2 GPU(s); logs say "
                                "world\\_size 8")
    assert front[13].strip() == "✓ holds: recomputed 3.2777 at 3250 on val\\_ema\\_loss (n=4, bar 0.004)"
    assert rows["[records/adamw](records/adamw/)"][1].strip() == "3.2790"  # val_loss: no second figure
    assert rows["[records/adamw](records/adamw/)"][13].strip() == \
        "✗ does not hold: recomputed 3.2790 at 3250 (n=1, bar 0.004; n=16 would pass at this mean)"
    assert leaderboard.main(["--root", str(root), "--metric", "val_ema_loss", "-o", str(tmp_path / "ema.md")]) == 0
    ema = (tmp_path / "ema.md").read_text()
    assert "records/frontier" in ema and "Muon\\_a1" not in ema and "records/adamw" not in ema


def test_run_identity_on_the_board(tmp_path, capsys):
    root = tmp_path / "repo"
    d = entry(root, "artifacts/Muon_a1", [3.2772, 3.2776, 3.2773, 3.2775])
    write(d / "train_gpt_simple.py", SCRIPT)  # the logs' embedded script: holds
    assert leaderboard.main(["--root", str(root)]) == 0
    row = next(l for l in section((root / "LEADERBOARD.md").read_text(), "Results reproduced here").splitlines()
               if "Muon\\_a1" in l)
    assert cells(row)[13].strip().startswith("✓ holds")
    write(d / "train_gpt_simple.py", SCRIPT + "x = 1\n")  # edited after the runs
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    assert "run.txt was not written by its train_gpt_simple.py; from the file to the log's script: 1 line(s) differ; " \
           "outside any section; e.g. line 4: removed `x = 1`" in capsys.readouterr().err
    row = next(l for l in section((root / "LEADERBOARD.md").read_text(), "Results reproduced here").splitlines()
               if "Muon\\_a1" in l)
    assert cells(row)[13].strip().startswith("✗ run identity: none of the 1 log(s) was written by its "
                                             "train\\_gpt\\_simple.py")
    assert "| - | - | - | - | no entry whose claim holds | - |" in text_of(root)


def text_of(root):
    return (root / "LEADERBOARD.md").read_text()


def test_escape_bidi_and_math():
    # U+202E (right-to-left override) would show "exe.txt" as "txt.exe"; U+2066..U+2069 isolates; U+200B zero width
    assert escape("a\u202eexe.txt\u202c b") == "a\ufffdexe.txt\ufffd b"
    assert escape("x\u2066y\u2069\u200bz") == "x\ufffdy\ufffd\ufffdz"
    assert escape("$\\frac{1}{2}$ and $$x$$") == "&#36;\\\\frac{1}{2}&#36; and &#36;&#36;x&#36;&#36;"
    assert "$" not in escape("cost $5 or $6")


# --- a directory without results.json, a results.json with a key twice -----------------------------------------

def test_directory_without_results_json_is_listed_as_skipped(tmp_path, capsys):
    root = tmp_path / "repo"
    entry(root, "artifacts/Muon_a1", [3.2772, 3.2776, 3.2773, 3.2775])
    (root / "artifacts" / "wip_a2").mkdir()  # tools.new made it; no run finished yet
    write(root / "artifacts" / "wip_a2" / "run.txt", log_text([curve(3.2772)]))
    (root / "records" / "ported_x").mkdir(parents=True)
    write(root / "records" / "README.md", "records\n")  # a file beside the records: not an entry
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    out = capsys.readouterr()
    fix = "when its runs are done, write it from the logs beside it with python -m tools.results {0} --agent-id ID " \
          "--experiment TEXT --optimizer NAME"
    assert [l for l in out.err.splitlines() if l.startswith("skipped ")] == [
        f"skipped {rel}: no results.json: {fix.format(rel)}" for rel in ("artifacts/wip_a2", "records/ported_x")]
    assert out.out == f"wrote {root / 'LEADERBOARD.md'} (2 skipped entries)\n"
    skipped = section(text_of(root), "Skipped entries")
    assert skipped.splitlines()[1:3] == [f"- {escape(rel)}: no results.json: {escape(fix.format(rel), 300)}"
                                        for rel in ("artifacts/wip_a2", "records/ported_x")]
    rows = [l for l in section(text_of(root), "Results reproduced here").splitlines() if l.startswith("| 1 ")]
    assert len(rows) == 1 and "Muon\\_a1" in rows[0]


def test_duplicate_key_is_refused_naming_key_and_file(tmp_path, capsys):
    root = tmp_path / "repo"
    d = entry(root, "artifacts/Muon_a1", [3.2772, 3.2776, 3.2773, 3.2775])
    text = (d / "results.json").read_text()
    assert text.count('"steps_to_3_28": 3250,') == 1
    (d / "results.json").write_text(text.replace('"steps_to_3_28": 3250,',
                                                 '"steps_to_3_28": 3250, "steps_to_3_28": 3000,'))
    capsys.readouterr()
    assert leaderboard.main(["--root", str(root)]) == 0
    err = capsys.readouterr().err
    message = ('results.json: duplicate key "steps_to_3_28": JSON would keep only the last one; remove the other, or '
               "rewrite the file with python -m tools.results")
    assert err.splitlines() == [f"skipped artifacts/Muon_a1: {message}"]
    assert section(text_of(root), "Skipped entries").splitlines()[1] == f"- artifacts/Muon\\_a1: {escape(message, 300)}"
    assert "No entries yet." in section(text_of(root), "Results reproduced here")
