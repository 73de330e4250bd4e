"""Build the text of training logs with known numbers, for the tests of tools/."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SEP = "=" * 100
SCRIPT = '"""A training script."""\nprint("step:%d/%d val_loss:%.5f" % (1, 2, 3.0))\nx = "=" * 100\n'
HEADER = "PyTorch 2.11.0+cu130 | CUDA 13.0 | device NVIDIA H100 80GB HBM3 | world_size 8 | micro_batch_seqs 64"


def val_steps(train_steps):
    """The val steps of the training script: 0, every 125 below 90%, every 25 after, and the last."""
    return [s for s in range(train_steps + 1)
            if s == train_steps or s % (125 if s / train_steps < 0.9 else 25) == 0]


def val_line(step, train_steps, loss, public=False):
    t = 0.15483 * step
    if public:
        return f"step:{step}/{train_steps} val_loss:{loss:.4f} train_time:{round(t * 1000)}ms step_avg:154.83ms"
    return (f"step:{step}/{train_steps} val_loss:{loss:.5f} train_time:{t:.3f}s "
            f"step_avg:{1000 * t / max(step, 1):.2f}ms")


def trial_block(i, n, seed, points, train_steps, stop=None, trial_lines=True):
    """points: [(step, loss)] or {step: loss}."""
    points = sorted(points.items()) if isinstance(points, dict) else list(points)
    lines = [f"trial {i}/{n} seed {seed}"] if trial_lines else []
    lines += [val_line(s, train_steps, v) for s, v in points]
    if stop is not None:
        lines.append(f"trial {i}/{n} stopped: training loss is nan or inf at step {stop}; going on with the next trial")
    elif trial_lines:
        reached = next((s for s, v in points if v <= 3.28), None)
        lines.append(f"trial {i}/{n} target val_loss<=3.28 " +
                     (f"first reached at step {reached}" if reached is not None else "not reached"))
        lines.append(f"trial {i}/{n} summary: steps {points[-1][0]} final_val_loss {points[-1][1]:.5f} "
                     f"train_time 1.000s step_avg 1.00ms peak_mem 1.0GiB seed {seed}")
    return lines


def log_text(runs, train_steps=3250, trial_lines=True, script=SCRIPT, header=HEADER):
    """runs: list of {step: loss} (or dicts with 'points', 'seed', 'stop')."""
    lines = [script.rstrip("\n"), SEP, header, SEP]
    for i, run in enumerate(runs, 1):
        if "points" not in run:
            run = {"points": run}
        lines += trial_block(i, len(runs), run.get("seed", 1000 + i), run["points"], train_steps, run.get("stop"),
                             trial_lines)
    return "\n".join(lines) + "\n"


def curve(final, train_steps=3250, slope=0.0002):
    """A run whose val loss falls linearly (by `slope` per 25 steps) to `final` at train_steps,
    with step 0 at 10.82584 (the baseline's uniform-logits value)."""
    out = {}
    for s in val_steps(train_steps):
        out[s] = 10.82584 if s == 0 else round(final + slope * (train_steps - s) / 25, 5)
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def reference_curve(offset=0.0, noise=0.0, seed=0):
    """The public baseline's mean curve (tools/reference/baseline_curve.csv) shifted by `offset`
    (not at step 0), plus uniform noise in [-noise, noise] rounded to 5 decimals."""
    import csv
    import random
    rng = random.Random(seed)
    with open(os.path.join(ROOT, "tools", "reference", "baseline_curve.csv")) as f:
        rows = list(csv.DictReader(f))
    return {int(r["step"]): float(r["mean_val_loss"]) if r["step"] == "0" else
            round(float(r["mean_val_loss"]) + offset + rng.uniform(-noise, noise), 5) for r in rows}


def add_column(text, name, offset):
    """`text` with a column `name:{val_loss + offset:.5f}` after val_loss on every val line, the way the
    training script logs a readout (between val_loss and train_time)."""
    import re
    return re.sub(r"val_loss:([0-9.]+)", lambda m: f"{m.group(0)} {name}:{float(m.group(1)) + offset:.5f}", text)


DATA = os.path.join(ROOT, "tests", "data")
RECORD46 = os.path.join(DATA, "record46")  # val-line extracts of public record #46's 8 logs (no script text)
