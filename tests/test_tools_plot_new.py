"""tools.plot (a PNG from synthetic logs) and tools.new (scaffolding an approach directory)."""
import os
import sys

import pytest

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
    capsys.readouterr()
    assert new.main(["muon-wd", "agent-01", "--root", str(tmp_path)]) == 2  # bad input, as the README says
    assert (d / "README.md").read_text() == "mine"
    assert capsys.readouterr().err == (f"error: {d} already exists; not overwriting it (pick another approach "
                                       "name)\n")


def test_new_validates_names_and_needs_the_script(tmp_path, capsys):
    for approach, agent in (("../x", "a"), ("a/b", "a"), ("ok", "a b"), ("", "a"), ("x" * 65, "a"), (".hidden", "a")):
        assert new.main([approach, agent, "--root", str(tmp_path)]) == 2
    assert not (tmp_path / "artifacts").exists()  # refused before creating anything
    assert new.main(["ok", "a", "--root", str(tmp_path)]) == 2
    assert "train_gpt_simple.py does not exist" in capsys.readouterr().err


def test_plot_output_path_is_the_one_written(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([reference_curve(0, 0.0015, 1)]))
    out_dir = tmp_path / "plots"
    out_dir.mkdir()
    assert plot.main([path, "-o", str(out_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out_dir / 'curve.png'}: ")
    assert (out_dir / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert plot.main([path, "-o", str(tmp_path / "noext")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'noext.png'}: ")
    assert (tmp_path / "noext.png").exists() and not (tmp_path / "noext").exists()
    assert plot.main([path, "-o", str(tmp_path / "x.foo")]) == 2
    assert "x.foo" in capsys.readouterr().err and not (tmp_path / "x.foo").exists()


def test_plot_metric_numbers(capsys, tmp_path):
    from tools_logtext import RECORD46
    from tools.logs import read_runs
    trials = read_runs([RECORD46]).trials
    steps, means, stds = plot.group_curve(trials, "val_ema_loss")
    i = steps.index(2690)
    assert steps[0] == 125 and steps[-1] == 2765  # seed 7 stops at 2765
    assert means[i] == pytest.approx(3.27832875, abs=1e-12) and stds[i] == pytest.approx(0.00094430, abs=1e-8)
    assert plot.group_curve(trials)[1][plot.group_curve(trials)[0].index(2735)] == pytest.approx(3.278345, abs=1e-12)
    out = tmp_path / "ema.png"
    assert plot.main([RECORD46, "--metric", "val_ema_loss", "-o", str(out)]) == 0
    assert "record46: 8 runs (val_ema_loss)" in capsys.readouterr().out and out.stat().st_size > 20_000
    assert plot.main([RECORD46, "--metric", "val_xyz", "-o", str(tmp_path / "y.png")]) == 2
    assert "no val step with a finite val_xyz in every run (the columns these runs log: val_avg_loss, " \
           "val_ema_loss, val_loss)" in capsys.readouterr().err


def test_plot_breaks_the_lines_at_nan_and_says_where(tmp_path, capsys, monkeypatch):
    import math

    import matplotlib.axes

    from tools.logs import read_runs
    good, bad = reference_curve(0, 0.0015, 1), reference_curve(0, 0.0015, 2)
    bad[1625] = bad[1750] = float("nan")  # a run whose val loss was nan at two val steps
    path = write(tmp_path / "a.txt", log_text([good, bad]))
    trials = read_runs([path]).trials
    steps, means, stds = plot.group_curve(trials)
    i = steps.index(1625)
    assert steps == sorted(good) and [math.isnan(m) for m in means[i - 1:i + 3]] == [False, True, True, False]
    assert math.isnan(stds[i]) and means[i - 1] == pytest.approx((good[1500] + bad[1500]) / 2, abs=1e-12)
    xs, ys = plot.run_series(trials[1])
    assert xs == sorted(bad) and math.isnan(ys[xs.index(1625)]) and ys[xs.index(1500)] == bad[1500]
    drawn = []
    original = matplotlib.axes.Axes.plot

    def record(self, x, y, *args, **kwargs):
        drawn.append(dict(zip(list(x), list(y))))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    assert plot.main([path, "-o", str(tmp_path / "nan.png")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["note: a: a.txt#2: val_loss is not finite at step 1625, 1750: no point there, its line breaks",
                   "note: a: no mean at step 1625, 1750 (a run's val_loss is not finite there): the mean line breaks"]
    # on each of the two panels: the reference and the good run go through 1625, the bad run and the mean break there
    assert sorted(math.isnan(d[1625]) for d in drawn if 1625 in d) == [False] * 4 + [True] * 4
    assert (tmp_path / "nan.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_of_a_group_with_no_finite_mean_is_refused(tmp_path, capsys):
    path = write(tmp_path / "a.txt", log_text([{0: 10.82584, 10: float("nan")}, {0: float("nan"), 10: 6.0}],
                                              train_steps=10))
    assert plot.main([path, "-o", str(tmp_path / "x.png")]) == 2
    assert "error: group a: no val step with a finite val_loss in every run" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
