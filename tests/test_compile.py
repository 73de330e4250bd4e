"""tools.compile_check: the script's own torch.compile calls on the CPU, against eager.

Compiling takes most of the time (about a minute for the tiny model the first time on a 2-core CPU;
inductor's on-disk cache makes later compiles of the same graphs take seconds), so the baseline's
check runs once for the whole module and the broken copies change only what they test: a graph break
fails at its first trace, and the recompile and compiled-differs copies change newton_schulz only.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from tools import compile_check, tiny

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "train_gpt_simple.py"

pytestmark = pytest.mark.skipif(compile_check.cpp_compiler_problem() is not None,
                                reason="torch.compile on the CPU needs a C++ compiler")


def broken_copy(tmp_path, *subs):
    text = BASELINE.read_text()
    for old, new in subs:
        assert text.count(old) == 1, f"substitution target {old!r} found {text.count(old)} times"
        text = text.replace(old, new)
    path = tmp_path / "train_gpt_simple.py"
    path.write_text(text)
    return path


def by_name(report):
    return {name: (status, detail) for name, status, detail in report["checks"]}


@pytest.fixture(scope="module")
def baseline():
    return compile_check.check(str(BASELINE))


def test_baseline_passes_every_check(baseline):
    assert baseline["status"] == "PASS", baseline["detail"]
    assert {name: status for name, status, _ in baseline["checks"]} == dict(
        compile="PASS", recompiles="PASS", model="PASS", optimizer="PASS")
    assert baseline["micro"] == compile_check.MICRO
    assert baseline["compiled_functions"] == ["Muon.newton_schulz"]


def test_baseline_compiles_five_graphs_all_in_step_0(baseline):
    # the model twice (val under no_grad, then training), newton_schulz once per stack shape
    assert baseline["graphs"] == [dict(when="val at step 0", graphs=1), dict(when="train step 0", graphs=4)]
    reasons = [r["reason"] for r in baseline["recompiles"]]
    assert len(reasons) == 3 and all(r["when"] == "train step 0" for r in baseline["recompiles"])
    line = {name: i + 1 for i, text in enumerate(BASELINE.read_text().splitlines())
            for name in ("forward", "newton_schulz") if text.startswith(f"    def {name}(self, inputs, targets)")
            or text.startswith(f"def {name}(G")}
    assert reasons[0] == f"forward (train_gpt_simple.py:{line['forward']}): GLOBAL_STATE changed: grad_mode"
    assert reasons[1:] == [f"newton_schulz (train_gpt_simple.py:{line['newton_schulz']}): tensor 'G' size mismatch "
                           f"at index {i}. expected {a}, actual {b}" for i, a, b in ((0, 8, 2), (1, 16, 64))]


def test_baseline_compiled_equals_eager_on_the_same_batch(baseline):
    model = [c for c in baseline["comparisons"] if c["kind"] == "model"]
    assert [c["step"] for c in model] == [0, compile_check.STEPS - 1]
    for c in model:
        assert c["shape"] == (8, 16) and c["grads_missing"] == []
        assert c["loss_diff"] <= 1e-6 and c["grad_rel"] <= 2e-3
        assert 4.5 < c["loss_eager"] < 5.2  # random tokens, vocabulary 128: about ln 128 = 4.85
    assert model[0]["loss_diff"] == 0 and model[0]["grad_rel"] == 0  # step 0: bitwise


def test_newton_schulz_square_tall_wide_compiled_equals_eager(baseline):
    ns = [c for c in baseline["comparisons"] if c["kind"] == "out"]
    assert sorted({c["shape"] for c in ns}) == [(2, 16, 64), (2, 64, 16), (8, 16, 16)]  # wide, tall, square
    assert len(ns) == 6 and all(c["rel"] == 0 for c in ns)


def test_newton_schulz_compiled_by_the_scripts_own_helper_equals_eager(baseline):
    module = tiny.load_script(str(BASELINE), "ns_compile_test")
    module.compile_on_cpu = True
    fn = module.compiled(module.newton_schulz, torch.device("cpu"))
    assert fn is not module.newton_schulz and fn._torchdynamo_orig_callable is module.newton_schulz
    inductor = torch._inductor.config
    emulate, inductor.emulate_precision_casts = inductor.emulate_precision_casts, True
    try:
        gen = torch.Generator().manual_seed(0)
        for shape in [(8, 16, 16), (2, 64, 16), (2, 16, 64)]:
            G = torch.randn(shape, generator=gen)
            got, want = fn(G), module.newton_schulz(G)
            assert got.shape == shape and got.dtype == torch.bfloat16
            assert torch.equal(got, want), shape
    finally:
        inductor.emulate_precision_casts = emulate
    module.compile_on_cpu = False
    assert module.compiled(module.newton_schulz, torch.device("cpu")) is module.newton_schulz  # eager on CPU by default


def test_graph_break_fails_with_the_line(tmp_path):
    path = broken_copy(tmp_path, ("        x = x + self.attn(self.norm1(x))\n",
                                  "        if x.float().abs().max().item() > 1e4:  # a debugging check left in\n"
                                  "            x = x.clamp(-1e4, 1e4)\n"
                                  "        x = x + self.attn(self.norm1(x))\n"))
    report = compile_check.check(str(path))
    assert report["status"] == "FAIL"
    status, detail = by_name(report)["compile"]
    assert status == "FAIL" and detail.startswith("graph break: ")
    assert "train_gpt_simple.py:" in detail and ".item() > 1e4" in detail
    assert by_name(report)["recompiles"][0] == "SKIP"


def test_recompile_every_step_fails_naming_the_guard(tmp_path):
    # an epsilon scaled by the lr, a Python float passed into the compiled function: one new graph per lr value
    path = broken_copy(tmp_path,
                       ("def newton_schulz(G, steps=12, dtype=torch.bfloat16):",
                        "def newton_schulz(G, steps=12, dtype=torch.bfloat16, eps=1e-7):"),
                       ("    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)",
                        "    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)"),
                       ("        return self.newton_schulz(u) * ", "        return self.newton_schulz(u, eps=1e-5 * group['lr']) * "))
    report = compile_check.check(str(path))
    assert report["status"] == "FAIL"
    status, detail = by_name(report)["recompiles"]
    # lr is constant over steps 0-2 of the 8-step schedule (lr_multiplier: 1 below 30%), then decays
    line = path.read_text().splitlines().index("def newton_schulz(G, steps=12, dtype=torch.bfloat16, eps=1e-7):") + 1
    # the graphs of step 0 were compiled for eps = 1e-5 * 0.025
    assert status == "FAIL" and detail.startswith(f"3 new graph(s) in train step 3: newton_schulz "
                                                  f"(train_gpt_simple.py:{line}): eps == 2.5000000000000004e-07. ")
    assert "pass it as a tensor" in detail
    assert by_name(report)["model"][0] == "PASS"  # the run stopped at step 4: the first comparison ran


def test_compiled_that_differs_from_eager_fails(tmp_path):
    path = broken_copy(tmp_path, ("    return (X.mT if G.size(-2) > G.size(-1) else X).reshape(G.shape)",
                                  "    X = X * 1.01 if torch.compiler.is_compiling() else X\n"
                                  "    return (X.mT if G.size(-2) > G.size(-1) else X).reshape(G.shape)"))
    report = compile_check.check(str(path))
    checks = by_name(report)
    assert report["status"] == "FAIL" and checks["model"][0] == "PASS"
    status, detail = checks["optimizer"]
    # step 0 compares zeros (the zero-initialized head sends no gradient to the blocks); step 7 shows the 1% change
    assert status == "FAIL" and detail.startswith("Muon.newton_schulz on (8, 16, 16) at step 7: compiled differs "
                                                  "from eager by 0.009")  # 1 - 1/1.01, rounded in bf16


def test_uncompiled_model_fails(tmp_path):
    path = broken_copy(tmp_path, ("        run.model = compiled(run.raw_model, device)",
                                  "        run.model = run.raw_model"))
    report = compile_check.check(str(path))
    status, detail = by_name(report)["compile"]
    assert report["status"] == "FAIL" and status == "FAIL" and "did not compile the model" in detail


def test_script_without_the_switch_fails_clearly(tmp_path):
    text = BASELINE.read_text().replace("compile_on_cpu = False", "").replace("compile_on_cpu", "False")
    path = tmp_path / "old.py"
    path.write_text(text)
    report = compile_check.check(str(path))
    assert report["status"] == "FAIL" and report["checks"][0][:2] == ("compile", "FAIL")
    assert "has no compile_on_cpu setting" in report["detail"]


def test_cli_bad_input_and_json(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        compile_check.main([str(tmp_path / "missing.py")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        compile_check.main([str(BASELINE), "--steps", "1"])
    assert e.value.code == 2 and "--steps must be at least 2" in capsys.readouterr().err
    path = broken_copy(tmp_path, ("        return x + self.mlp(self.norm2(x))",
                                  "        print('block')\n        return x + self.mlp(self.norm2(x))"))
    assert compile_check.main([str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "FAIL" and "print" in report["detail"]
    assert compile_check.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  compile     graph break: " in out and out.rstrip().endswith("s.") and "FAIL." in out
