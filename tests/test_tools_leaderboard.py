"""tools.leaderboard: sorting, per-optimizer bests, recomputed marks, escaping, skipped entries, --check."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import curve, log_text, write  # noqa: E402

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
    rows = [cells(l) for l in section(text, "All entries").splitlines() if l.startswith("| ") and l[2].isdigit()]
    assert [r[1].strip() for r in rows] == ["2500", "2900", "3000", "3250", "3250", "99999999"]
    # tie at 3250: the lower mean first
    assert rows[3][2].strip() == "3.2770" and "Muon\\_a0" in rows[3][11]
    assert rows[4][2].strip() == "3.2774"
    marks = {r[11].strip(): r[12].strip() for r in rows}
    assert marks["[artifacts/sgd\\_d1](artifacts/sgd_d1/)"] == "unverified: no logs"
    assert marks["[artifacts/lion\\_c1](artifacts/lion_c1/)"] == \
        "✗ does not hold: recomputed 3.2790 at 2900 (n=1, bar 0.005)"
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
    for table in ("All entries",):
        for line in section(text, table).splitlines():
            if line.startswith("|"):
                assert len(cells(line)) == 13, line  # no injected column or row
    evil = next(l for l in section(text, "All entries").splitlines() if "evil\\_e1" in l)
    c = cells(evil)
    assert c[7].strip().startswith("Evil\\|Opt\\`")
    exp = c[8].strip()
    assert exp.startswith("a \\| b \\| c \\| d \\| \\# H1 \\[x\\](javascript:alert(1)) \\*\\*b\\*\\* \\`c\\` \\_i\\_ "
                          "&amp; \\~s\\~ \\\\ long")
    assert len(exp) < 300 and exp.endswith("…")
    assert c[2].strip() == "-1e+300" and c[4].strip() == "1e+300"
    assert c[11].strip() == "[artifacts/evil\\_e1](artifacts/evil_e1/)" and c[10].strip() == "2026-01-01"


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
