"""tools.plot (a PNG from synthetic logs) and tools.new (scaffolding an approach directory)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import log_text, reference_curve, write  # noqa: E402

from tools import new, plot  # noqa: E402


def test_plot_groups(tmp_path, capsys):
    a = write(tmp_path / "a.txt", log_text([reference_curve(0, 0.0015, s) for s in range(3)]))
    b1 = write(tmp_path / "b1.txt", log_text([reference_curve(-0.004, 0.0015, 10)]))
    b2 = write(tmp_path / "b2.txt", log_text([reference_curve(-0.004, 0.0015, 11)]))
    out = tmp_path / "curve.png"
    assert plot.main([a, "--group", b1, b2, "--label", "baseline", "--label", "tuned", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "baseline: 3 runs; tuned: 2 runs" in capsys.readouterr().out


def test_plot_short_run_stopped_run_and_errors(tmp_path, capsys):
    short = {0: 10.82584, 10: 6.1, 20: 5.2}
    path = write(tmp_path / "s.txt", log_text([short, {"points": {0: 10.82584, 10: 7.0}, "stop": 12}],
                                              train_steps=20))
    out = tmp_path / "short.png"
    assert plot.main([path, "-o", str(out), "--no-reference"]) == 0 and out.stat().st_size > 5_000
    assert plot.main([path, "-o", str(tmp_path / "x.png"), "--label", "a", "--label", "b"]) == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\0garbage")
    assert plot.main([str(bad), "-o", str(tmp_path / "y.png")]) == 2
    assert "bad.txt" in capsys.readouterr().err and not (tmp_path / "y.png").exists()


def test_new_scaffolds_and_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "train_gpt_simple.py").write_text("# the script\n")
    assert new.main(["muon-wd", "agent-01", "--root", str(tmp_path)]) == 0
    d = tmp_path / "artifacts" / "muon-wd_agent-01"
    assert (d / "train_gpt_simple.py").read_text() == "# the script\n"
    readme = (d / "README.md").read_text()
    assert "torchrun --standalone --nproc_per_node=8" in readme and "## What changed" in readme
    assert "## Hyperparameters" in readme and "## Results" in readme
    (d / "README.md").write_text("mine")
    assert new.main(["muon-wd", "agent-01", "--root", str(tmp_path)]) == 1
    assert (d / "README.md").read_text() == "mine"
    assert "already exists" in capsys.readouterr().err


def test_new_validates_names_and_needs_the_script(tmp_path, capsys):
    for approach, agent in (("../x", "a"), ("a/b", "a"), ("ok", "a b"), ("", "a"), ("x" * 65, "a"), (".hidden", "a")):
        assert new.main([approach, agent, "--root", str(tmp_path)]) == 2
    assert not (tmp_path / "artifacts").exists()  # refused before creating anything
    assert new.main(["ok", "a", "--root", str(tmp_path)]) == 2
    assert "train_gpt_simple.py does not exist" in capsys.readouterr().err
