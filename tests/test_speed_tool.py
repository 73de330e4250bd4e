"""tools.speed on the tiny CPU configuration: the report's structure and counts (never its timings)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import speed

ROOT = Path(__file__).resolve().parents[1]


def test_speed_cpu_reports_every_field_for_the_measured_steps(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tools.speed", "--cpu", "--steps", "6", "--warmup", "2", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["device"] == "cpu" and report["world_size"] == 1
    assert report["steps_measured"] == 6  # warmup 2 + 6 measured intervals out of 9 steps
    for key in ("ms_per_step", "optimizer_ms", "first_step_s", "val_pass_s"):
        assert report[key] > 0, key
    assert report["optimizer_ms"] < report["ms_per_step"]
    assert report["tokens_per_s"] > 0
    assert report["mfu"] is None and report["peak_mem_gib"] is None  # no GPU: no peak FLOPs, no CUDA memory


def test_summarize_uses_the_median_interval_after_warmup():
    # optimizer steps end at 1, 2, 3.5, 4.5, 5.5 s; the first two are warm-up
    result = dict(t_start=0.0, steps=[[0.5, 1.0], [1.9, 2.0], [3.0, 3.5], [4.4, 4.5], [5.0, 5.5]],
                  vals=[[5.5, 6.0, 5]], device="NVIDIA H100 80GB HBM3", peak_mem_gib=40.0)
    report = speed.summarize(result, warmup=1, world_size=8, tokens_per_step=524288)
    assert report["steps_measured"] == 3  # 2.0->3.5, 3.5->4.5, 4.5->5.5
    assert report["ms_per_step"] == 1000.0
    assert report["optimizer_ms"] == 300.0  # median of 0.1, 0.5, 0.1, 0.5
    assert report["tokens_per_s"] == 524288
    assert report["mfu"] == round(4.48e14 / 1.0 / (8 * 989e12), 4)
    assert report["first_step_s"] == 1.0 and report["val_pass_s"] == 0.5


def test_speed_refuses_without_gpu_unless_cpu():
    if speed.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = subprocess.run([sys.executable, "-m", "tools.speed"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr
