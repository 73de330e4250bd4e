"""tools.speed on the tiny CPU configuration: the report's structure and counts (never its timings), the
self-check (--check --cpu), and the memory plan (--memory) against what the compiled model really saves."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tools import compile_check, speed, tiny

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "train_gpt_simple.py"
needs_compiler = pytest.mark.skipif(compile_check.cpp_compiler_problem() is not None,
                                    reason="torch.compile on the CPU needs a C++ compiler")


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
    assert speed.summarize(dict(result, device="NVIDIA GH200 480GB"), 1, 1, 524288)["mfu"] == round(4.48e14 / 989e12, 4)


def test_speed_refuses_without_gpu_unless_cpu():
    if speed.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = subprocess.run([sys.executable, "-m", "tools.speed"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tools.speed", "--check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr


@needs_compiler
def test_check_cpu_passes_with_every_number(capsys):
    code = speed.main(["--check", "--cpu", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["status"] == "PASS", report["problems"]
    assert [name for name, _, _ in report["checks"]] == ["compile", "recompiles", "model", "optimizer", "finite"]
    assert {status for _, status, _ in report["checks"]} == {"PASS"}
    assert report["micro_batch_seqs"] == compile_check.MICRO and report["compared_at_steps"] == [0, 2]
    assert report["steps_measured"] == speed.CHECK_STEPS and report["device"] == "cpu"
    for key in ("ms_per_step", "optimizer_ms", "first_step_s", "val_pass_s", "tokens_per_s"):
        assert report[key] > 0, key
    assert report["mfu"] is None and report["peak_mem_gib"] is None
    model = [c for c in report["comparisons"] if c["kind"] == "model"]
    assert [c["step"] for c in model] == [0, 2] and all(c["loss_diff"] <= 1e-6 for c in model)


@needs_compiler
def test_check_cpu_fails_on_a_recompile_and_says_why(tmp_path, capsys):
    text = BASELINE.read_text()
    old = "        return self.newton_schulz(u) * "
    assert text.count(old) == 1
    path = tmp_path / "train_gpt_simple.py"  # a step counter passed into the compiled function: new graphs every step
    path.write_text(text.replace(old, "        self.t = getattr(self, 't', 0) + 1\n"
                                      "        return self.newton_schulz(u, steps=12 + self.t % 2) * "))
    assert speed.main([str(path), "--check", "--cpu"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  recompiles  3 new graph(s) in train step 1: newton_schulz (train_gpt_simple.py:" in out
    assert out.rstrip().splitlines()[-2] == "FAIL:" and "recompiles: 3 new graph(s)" in out.rstrip().splitlines()[-1]


def test_check_refuses_bad_arguments(tmp_path):
    for argv, message in (([str(tmp_path / "none.py"), "--check", "--cpu"], "no such file"),
                          (["--check", "--memory"], "choose one"), (["--cpu", "--steps", "0"], "at least 1")):
        out = subprocess.run([sys.executable, "-m", "tools.speed", *argv], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2 and message in out.stderr, (argv, out.stderr)


def _saved_by_autograd(fn, *args):
    """Bytes of every distinct storage autograd keeps for the backward of fn(*args), run for real."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(seen.values())


@needs_compiler
def test_memory_plan_counts_exactly_what_the_compiled_model_saves():
    module = tiny.load_script(str(BASELINE), "memory_plan_test")
    sizes = dict(vocab_size=128, num_layers=2, model_dim=16, seq_len=16)
    plans = {s: speed.compiled_step_memory(module, s, **sizes) for s in (1, 2)}
    module.compile_on_cpu = True
    torch._dynamo.reset()
    real = {}
    for s in (1, 2):  # the script's own compiled model, run, with a hook on what autograd saves
        model = module.compiled(module.GPT(128, 2, 16), torch.device("cpu"))
        x = torch.zeros(s, 16, dtype=torch.int32)
        real[s] = _saved_by_autograd(model, x, x.long())
    assert {s: p["saved_all"] for s, p in plans.items()} == real
    # per sequence, all of it is made by the forward (the inputs, 4 + 8 bytes a token, are the loader's)
    assert plans[2]["saved"] - plans[1]["saved"] == real[2] - real[1] - 16 * 12
    for p in plans.values():
        assert p["backward_peak"] > p["saved"] > 0 and p["forward_peak"] >= p["saved"]


def test_fixed_memory_of_the_baseline_at_full_size():
    module = tiny.load_script(str(BASELINE), "fixed_memory_test")
    fixed = speed.fixed_memory(module)
    V, L, D = 50304, 12, 768
    embed, head = V * D * 2, (V * D + V) * 4  # the embedding is bfloat16
    matrices = L * (4 * D * D + 2 * 4 * D * D) * 4
    vectors = (L * (4 * D + 4 * D + D + 2 * D) + 2 * D) * 4  # biases of q, k, v, proj, fc, proj; gains
    assert fixed["weights"] == fixed["gradients"] == embed + head + matrices + vectors
    # AdamW keeps two moments of the embedding, the head and the vectors; Muon one momentum per matrix
    assert fixed["optimizer_state"] == 2 * (embed + head + vectors) + matrices


def test_memory_report_arithmetic(monkeypatch):
    module = tiny.load_script(str(BASELINE), "memory_report_test")
    fake = {1: dict(saved=600 * speed.MIB, saved_all=700 * speed.MIB, forward_peak=610 * speed.MIB,
                    backward_peak=900 * speed.MIB),
            2: dict(saved=1000 * speed.MIB, saved_all=1100 * speed.MIB, forward_peak=1010 * speed.MIB,
                    backward_peak=1600 * speed.MIB)}
    monkeypatch.setattr(speed, "compiled_step_memory", lambda module, seqs: fake[seqs])
    monkeypatch.setattr(speed, "fixed_memory", lambda module: dict(weights=speed.GIB, gradients=speed.GIB,
                                                                   optimizer_state=0))
    rep = speed.memory_report(module)
    assert rep["per_seq_mib"] == dict(saved=400.0, saved_all=400.0, forward_peak=400.0, backward_peak=700.0)
    assert rep["per_microbatch_mib"]["backward_peak"] == 200.0
    # 2 GiB fixed + 200 MiB + 64 x 700 MiB
    assert rep["predicted_peak_gib"][64] == round(2 + (200 + 64 * 700) / 1024, 2)
    assert rep["floor_peak_gib"][8] == round(2 + (200 + 8 * 400) / 1024, 2)
    usable80 = (79.1 - speed.CUDA_CONTEXT_GIB) * speed.ALLOCATOR_MARGIN  # 70.65 GiB: 64 x 0.68 + 2.2 = 46 fits
    assert rep["predicted_peak_gib"][64] <= usable80
    fits = rep["largest_micro_that_fits"]
    assert fits["80 GB (H100, A100 80GB)"] == 64 and fits["40 GB (A100 40GB)"] == 32
    assert fits["24 GB (RTX 3090/4090, A10, L4)"] == 16 and fits["16 GB (A4000, V100 16GB)"] == 16


def test_gpu_check_markov_data_has_the_entropy_it_claims():
    from tools import gpu_check
    successor = gpu_check.markov_table(128)
    tokens = gpu_check.markov_tokens(successor, 200_000, seed=1).astype(int)
    assert tokens.dtype.kind == "i" and len(tokens) == 200_000 and tokens.max() < 128
    # every transition inside a walk is one of the 4 successors; walks are >= 4096 tokens, so few others
    ok = (successor[tokens[:-1]] == tokens[1:, None]).any(axis=1)
    assert ok.mean() > 1 - 64 / 200_000 and ok.sum() < len(ok)
    # the empirical conditional entropy of the next token given this one matches the computed rate
    pairs = np.zeros((128, 128))
    np.add.at(pairs, (tokens[:-1][ok], tokens[1:][ok]), 1)
    cond = pairs / pairs.sum(1, keepdims=True)
    empirical = -(pairs * np.log(np.where(cond > 0, cond, 1))).sum() / pairs.sum()
    rate = gpu_check.entropy_rate(successor, tokens)
    assert abs(empirical - rate) < 0.01 and 1.0 < rate <= 1.2130  # 1.75 bits = 1.2130 nats without collisions


def test_gpu_check_ms_per_step_uses_the_window_or_what_ran():
    from tools import gpu_check
    ends = {k: 10.0 + 0.5 * k for k in range(130)}  # 500 ms per step
    assert gpu_check.ms_per_step(ends) == (500.0, 25, 124)
    cut = {k: v for k, v in ends.items() if k <= 60}  # a run stopped at step 60
    assert gpu_check.ms_per_step(cut) == (500.0, 25, 60)
    assert gpu_check.ms_per_step({k: v for k, v in ends.items() if k < 24}) == (None, None, None)


def test_gpu_check_patches_the_public_loop_end_or_says_it_changed():
    from tools import gpu_check
    text = ("val_tokens = 20 * 524288\n"
            "        if step == train_steps:\n            break\n")
    patched = gpu_check.patch_public(text, 125, 2097152, rehearse=False)
    assert "if step == train_steps or step == 125:" in patched and "val_tokens = 2097152" in patched
    with pytest.raises(ValueError, match="the public script changed: expected one loop end"):
        gpu_check.patch_public("val_tokens = 20 * 524288\n", 125, 2097152, rehearse=False)


# -----------------------------------------------------------------------------
# --balance and --share (tools/optimizer_share.py)

RECORD46 = ROOT / "records" / "20260619_cwd_rowfloor_tailema" / "train_gpt_simple.py"


def test_balance_json_has_every_rank_s_load_at_1_2_4_8():
    out = subprocess.run([sys.executable, "-m", "tools.speed", str(RECORD46), "--balance", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rep = json.loads(out.stdout)
    assert rep["optimizers"] == ["Muon"] and rep["matrices"] == 72
    assert list(rep["world_sizes"]) == ["1", "2", "4", "8"]
    square, mlp = 2 * 768 ** 3 + 2 * 768 * 768 * 1536, 3072 ** 3 + 768 ** 3 + 2 * 3072 * 768 * 3840
    for w, r in rep["world_sizes"].items():
        assert len(r["load"]) == int(w) and sum(r["load"]) == 48 * square + 24 * mlp
        assert r["max_over_mean"] == round(max(r["load"]) / (sum(r["load"]) / int(w)), 4)
    text = subprocess.run([sys.executable, "-m", "tools.speed", str(RECORD46), "--balance"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300).stdout
    assert "   8     1.000   12.5% (9)" in text  # 3 MLP + 6 square matrices on each of 8 ranks


def test_share_cpu_times_each_rank_and_adds_up_the_estimate(capsys):
    assert speed.main([str(RECORD46), "--share", "2", "--cpu", "--steps", "1", "--profile", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["world_size"] == 2 and [r["rank"] for r in rep["ranks"]] == [0, 1]
    # the tiny model: 2 layers of 16: 6 q, k, v + 2 attn.proj (16 x 16) and 4 MLP matrices, split by cost
    assert [r["matrices"] for r in rep["ranks"]] == [6, 6]
    # by cost, largest first, each to the least loaded rank: fc of both layers to rank 0, their mlp.proj to rank 1,
    # then the squares alternately
    assert [[(tuple(s["shape"]), s["k"]) for s in r["stacks"]] for r in rep["ranks"]] == [
        [((16, 16), 3), ((16, 16), 1), ((64, 16), 2)], [((16, 16), 3), ((16, 16), 1), ((16, 64), 2)]]
    for r in rep["ranks"]:
        assert r["step_ms"] >= r["update_ms"] > 0 and r["first_step_ms"] > 0
        assert len(r["update_ms_per_stack"]) == len(r["stacks"])
    assert "profile" in rep["ranks"][0] and "profile" not in rep["ranks"][1]
    kinds = rep["ranks"][0]["profile"]["by_kind"]
    assert {"QR", "matmul"} <= set(kinds) and "eigh" not in kinds  # a later step: QR refreshes, no eigendecomposition
    functions = rep["ranks"][0]["profile"]["by_function"]
    assert {"update", "refreshed_basis", "newton_schulz", "step"} <= set(functions)
    # QR FLOPs from the shapes, 4/3 n^3 for geqrf and for the Q formed, once per matrix and side: rank 0 owns 4
    # square matrices (2 sides of 16) and both mlp.fc (64 x 16: a side of 64, a side of 16)
    qr = sum(o["flop"] for o in rep["ranks"][0]["profile"]["ops"] if o["kind"] == "QR")
    assert qr == pytest.approx(2 * 4 / 3 * (10 * 16 ** 3 + 2 * 64 ** 3), abs=10)  # each row rounded to a FLOP
    est, fb, rp = rep["estimate"], rep["forward_backward"], rep["replicated"]
    assert fb["seqs"] == 1 and fb["full_ms"] == pytest.approx(fb["measured_ms"] * 8, abs=0.05)  # 8 sequences a step
    assert est["forward_backward_ms"] == round(fb["full_ms"] / 2, 2)
    assert est["slowest_share_ms"] == max(r["step_ms"] for r in rep["ranks"])
    assert est["collectives_ms"] == round(1000 * (rp["matrix_bytes"] + rp["other_grad_bytes"]) / 400e9, 2)
    assert est["step_ms"] == pytest.approx(sum(est[k] for k in ("forward_backward_ms", "slowest_share_ms",
                                                                "replicated_ms", "collectives_ms")), abs=0.02)
    assert rp["names"] == ["AdamW", "AuxAdam"] and rp["matrix_params"] == 2 * (4 * 16 * 16 + 2 * 16 * 64)


def test_share_and_balance_refuse_bad_input():
    adamw = ROOT / "records" / "20260426_adamw" / "train_gpt_simple.py"
    for argv, code, message in (
            (["--share", "3", "--cpu"], 2, "the world size must divide 8"),
            (["--share", "8", "--rank", "8", "--cpu"], 2, "ranks of a 8-rank run are 0 to 7"),
            (["--share", "2", "--balance"], 2, "choose one"),
            ([str(adamw), "--balance"], 1, "make_optimizers() returns no MatrixOptimizer")):
        out = subprocess.run([sys.executable, "-m", "tools.speed", *argv], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == code and message in out.stderr, (argv, out.stderr[-500:])
        assert "Traceback" not in out.stderr


def test_share_vs_another_version_checks_the_bits(tmp_path, capsys):
    """--vs steps two versions alternately on the same inputs: a copy gives the same bits (exit 0), a copy with one
    constant changed (cautious weight decay 0.025 -> 0.02) differs from the first step on (exit 1)."""
    text = RECORD46.read_text()
    same, changed = tmp_path / "same.py", tmp_path / "changed.py"
    same.write_text(text)
    old = "cautious_wd = 0.025  #"
    assert text.count(old) == 1
    changed.write_text(text.replace(old, "cautious_wd = 0.02  #"))
    assert speed.main([str(RECORD46), "--share", "2", "--rank", "1", "--cpu", "--steps", "2", "--vs", str(same),
                       "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["bitwise_equal"] and rep["rank"] == 1 and [len(x) for x in rep["all_ms"]] == [2, 2]
    assert [d["step"] for d in rep["steps"]] == [0, 1, 2] and all(d["max_param_diff"] == 0 for d in rep["steps"])
    assert speed.main([str(RECORD46), "--share", "2", "--cpu", "--steps", "2", "--vs", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "results: DIFFER: step 0: max |param diff| " in out


def test_gpu_check_summary_of_the_record46_phases():
    """before46/after46: rank 0's optimizer step by kind, the estimated 8-GPU step, and the baseline's estimated the
    same way from the ours phase (its ms/step / 8 + the same collectives)."""
    from tools import gpu_check
    ends = {k: 10.0 + 0.8 * k for k in range(130)}  # ours: 800 ms per step
    share = dict(ranks=[dict(rank=0, step_ms=150.0, update_ms=140.0, machinery_ms=10.0, first_step_ms=900.0,
                             profile=dict(by_kind=dict(QR=dict(ms=100.0), matmul=dict(ms=30.0))))],
                 estimate=dict(step_ms=252.5, collectives_ms=2.5))
    results = dict(ours_numbers=dict(ends=ends, vals={}), after46=share)
    rows = gpu_check.summarize(results, {}, 125)
    assert rows["after46"]["baseline_estimated_step_ms_8"] == 102.5  # 800 / 8 + 2.5
    assert rows["after46"]["ratio_to_baseline_8"] == round(252.5 / 102.5, 3)
    assert rows["after46"]["by_kind"] == dict(QR=100.0, matmul=30.0) and "before46" not in rows
    text = gpu_check.format_summary(dict(phases={}), rows)
    assert "after46: rank 0 of 8, optimizer step 150.0 ms (update() 140.0, machinery 10.0; first step 900.0); by " \
           "kind: QR 100.0, matmul 30.0" in text
    assert "ESTIMATED 8-GPU step 252.5 ms" in text and "ratio 2.463" in text


def test_gpu_check_record46_phases_need_their_files(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--phases", "after46,before46", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--record46-before None: no such file" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--phases", "ours,public", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--public None: no such file" in out.stderr
