"""Training with train_gpt_simple.py on the CPU: init, optimizers, schedule, main()'s refusals,
world-size and microbatch equivalence, Muon's sharded state, and the log of whole runs.

Runs go through tools.tiny.run (the script's own main() on a tiny model, in W gloo processes).
"""
import math
import os
import re
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import torch

import tiny_instruments as ti
import train_gpt_simple as tgs
from data.shards import write_shard
from tools import launch_check, tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
VAL = re.compile(r"step:(\d+)/(\d+)\s+val_loss:([0-9.]+)")  # the public tools' pattern
VAL_LINE = re.compile(r"step:(\d+)/(\d+) val_loss:(\d+\.\d{5}) train_time:(\d+\.\d{3})s step_avg:(\d+\.\d{2})ms")
SEP = "=" * 100
SEED = 1234


def spec_val_steps(train_steps):
    """RULES.md 6.1: step 0, every 125 while step/train_steps < 0.9, every 25 after, and the last."""
    steps = []
    for s in range(train_steps + 1):
        every = 125 if s / train_steps < 0.9 else 25
        if s % every == 0 or s == train_steps:
            steps.append(s)
    return steps


def read_log(log_dir):
    files = os.listdir(log_dir)
    assert len(files) == 1, files
    with open(os.path.join(log_dir, files[0])) as f:
        return f.read()


def val_trials(text):
    """[[(step, train_steps, loss), ...] per trial] as the public tools read a log."""
    trials = []
    for line in text.splitlines():
        m = VAL.search(line)
        if m:
            step, total, loss = int(m.group(1)), int(m.group(2)), float(m.group(3))
            if step == 0:
                trials.append([])
            trials[-1].append((step, total, loss))
    return trials


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic shards for up to 151 steps of the tiny configuration (4 train shards)."""
    return tiny.tiny_data(str(tmp_path_factory.mktemp("data")), 151)


def overrides(data, tmp, train_steps, **extra):
    train, val = data
    over = dict(tiny.TINY, train_files=train, val_files=val, train_steps=train_steps,
                log_dir=os.path.join(tmp, "logs"), checkpoint_dir=os.path.join(tmp, "ckpt"))
    over.update(extra)
    return over


def launch(data, tmp, world_size, train_steps, num_trials=1, instrument=ti.track, seed=SEED, **extra):
    tmp = str(tmp)
    os.makedirs(tmp, exist_ok=True)
    env = {} if seed is None else dict(SEED=str(seed))
    results = tiny.run(SCRIPT, world_size, overrides(data, tmp, train_steps, **extra), num_trials, instrument, env)
    for r in results:
        assert r["error"] is None, r["error"]
    return results, read_log(os.path.join(tmp, "logs"))


# -----------------------------------------------------------------------------
# init, optimizers, schedule


def test_init_params():
    torch.manual_seed(0)
    model = tgs.GPT(512, 2, 256)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))  # every parameter must be set by init_params
    tgs.init_params(model)
    checked = 0
    for name, p in model.named_parameters():
        p = p.detach().float()
        if name.endswith("gains"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias") or "proj" in name:
            assert torch.equal(p, torch.zeros_like(p)), name
        elif name == "embed.weight":
            assert abs(p.std().item() - 1) < 0.02 and abs(p.mean().item()) < 0.02
        else:
            want = math.sqrt(0.33 / p.size(-1))
            assert abs(p.std().item() / want - 1) < 0.03, (name, p.std().item(), want)
            assert abs(p.mean().item()) < 0.03 * want
            checked += 1
        assert torch.isfinite(p).all(), name
    assert checked == 2 * 4  # q, k, v, mlp.fc of two blocks
    zero = {n for n, p in model.named_parameters() if not p.detach().float().any()}
    assert {"proj.weight", "blocks.0.attn.proj.weight", "blocks.1.mlp.proj.weight"} <= zero
    assert "blocks.0.mlp.fc.weight" not in zero
    # fan_in is size(-1): mlp.fc (1024, 256) has std sqrt(0.33/256), not sqrt(0.33/1024)
    assert abs(model.blocks[0].mlp.fc.weight.std().item() / math.sqrt(0.33 / 256) - 1) < 0.03


def test_make_optimizers_groups():
    with torch.device("meta"):
        model = tgs.GPT(50304, 12, 768)
    muon, adam = tgs.make_optimizers(model)
    names = {p: n for n, p in model.named_parameters()}
    assert isinstance(adam, torch.optim.AdamW)
    groups = [(g["lr"], sorted(names[p] for p in g["params"])) for g in adam.param_groups]
    assert groups[0] == (0.7, ["embed.weight"])
    assert groups[1] == (0.004, ["proj.weight"])
    assert groups[2][0] == 0.015
    assert groups[2][1] == sorted(n for n, p in model.named_parameters() if p.ndim < 2)
    for g in adam.param_groups:
        assert g["betas"] == (0.8, 0.95) and g["eps"] == 1e-10 and g["weight_decay"] == 0.001
        assert not g.get("nesterov", False) and not g.get("amsgrad", False)
    muon_names = sorted(names[p] for g in muon.param_groups for p in g["params"])
    assert muon_names == sorted(n for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2)
    assert len(muon_names) == 12 * 6
    for g in muon.param_groups:
        assert (g["lr"], g["weight_decay"], g["mu"]) == (0.025, 0.05, 0.95)
    everything = [names[p] for opt in (muon, adam) for g in opt.param_groups for p in g["params"]]
    assert sorted(everything) == sorted(names.values())  # each parameter in exactly one optimizer, once


@pytest.mark.parametrize("step,by_hand", [(0, 1.0), (974, 1.0), (975, 1.0), (976, 2274 / 2275), (2000, 1250 / 2275),
                                          (3249, 1 / 2275), (3250, 0.0)])
def test_lr_multiplier(step, by_hand):
    assert tgs.train_steps == 3250
    x = step / 3250
    formula = 1.0 if x < 0.3 else (1 - x) / 0.7  # RULES.md 5.6
    assert formula == pytest.approx(by_hand, abs=1e-12)
    assert tgs.lr_multiplier(step) == pytest.approx(formula, abs=1e-12)


def test_lr_multiplier_follows_train_steps(monkeypatch):
    monkeypatch.setattr(tgs, "train_steps", 100)
    assert [round(tgs.lr_multiplier(s), 12) for s in (0, 29, 30, 65, 100)] == [1.0, 1.0, 1.0, 0.5, 0.0]


# -----------------------------------------------------------------------------
# main()'s refusals: SystemExit with a clear message, before a model or a log exists


def refused(tmp_path, over, env=None):
    results = tiny.run(SCRIPT, 1, over, 1, ti.record_build, env=env)
    error = results[0]["error"]
    assert error is not None and error.startswith("SystemExit: "), error
    assert not results[0].get("built") and not results[0].get("pg")
    assert not os.path.exists(over["log_dir"]) and not os.path.exists(over["checkpoint_dir"])
    return error.splitlines()[0][len("SystemExit: "):]


def test_no_shards(tmp_path, data):
    over = overrides(data, tmp_path, 6, train_files=str(tmp_path / "none" / "fineweb_train_*.bin"))
    msg = refused(tmp_path, over)
    assert over["train_files"] in msg and "python data/cached_fineweb10B.py" in msg
    over = overrides(data, tmp_path, 6, val_files=str(tmp_path / "none" / "fineweb_val_*.bin"))
    msg = refused(tmp_path, over)
    assert over["val_files"] in msg and "python data/cached_fineweb10B.py" in msg


def test_too_few_train_tokens(tmp_path, data):
    # the fixture's 4 shards hold 40 steps each; 3250 steps need ceil(3250 / 190) = 18 real chunks
    msg = refused(tmp_path, overrides(data, tmp_path, 3250))
    assert "3250" in msg and "only 160" in msg and msg.endswith("python data/cached_fineweb10B.py 18")
    msg = refused(tmp_path, overrides(data, tmp_path, 161))
    assert "only 160" in msg and msg.endswith("python data/cached_fineweb10B.py 1")


def test_short_val_shard(tmp_path, data):
    # the fixture's val shard holds val_tokens + batch_size = 640 tokens; the stream needs val_tokens + 2
    msg = refused(tmp_path, overrides(data, tmp_path, 6, val_tokens=639))
    assert "fineweb_val_000000.bin" in msg and "640 tokens" in msg and "val_tokens + 2 = 641" in msg


@pytest.mark.parametrize("fault", ["magic", "truncated"])
def test_bad_shard(tmp_path, data, fault):
    bad_dir = tmp_path / "shards"
    bad_dir.mkdir()
    write_shard(bad_dir / "fineweb_train_000001.bin", np.arange(5000) % 128)
    bad = bad_dir / "fineweb_train_000002.bin"
    write_shard(bad, np.arange(5000) % 128)
    if fault == "magic":
        with open(bad, "r+b") as f:
            f.write((1234).to_bytes(4, "little"))
    else:
        with open(bad, "r+b") as f:
            f.truncate(1024 + 2 * 4000)
    msg = refused(tmp_path, overrides(data, tmp_path, 6, train_files=str(bad_dir / "fineweb_train_*.bin")))
    assert msg.startswith(f"{bad}: not a whole token shard of this benchmark (python -m tools.launch_check")
    why = launch_check.shard_problem(str(bad))  # what the tool says about it
    assert ("magic 1234" in why) if fault == "magic" else ("truncated" in why and "5000 tokens" in why)


def test_world_size_not_dividing_8(tmp_path, data, monkeypatch):
    module = tiny.load_script(SCRIPT, "tgs_world_size_3")
    for key, value in overrides(data, tmp_path, 6).items():
        setattr(module, key, value)
    built = {}
    ti.record_build(module, built)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as e:
        module.main()
    assert "world size 3 does not divide 8" in str(e.value) and "1, 2, 4 or 8" in str(e.value)
    assert not torch.distributed.is_initialized() and built == {}
    assert not os.path.exists(tmp_path / "logs")


def test_cuda_needed(tmp_path, data):
    assert not torch.cuda.is_available()
    msg = refused(tmp_path, overrides(data, tmp_path, 6, device_type="cuda"))
    assert "needs CUDA GPUs" in msg


def test_import_has_no_side_effects(tmp_path):
    code = ("import torch.distributed as dist, train_gpt_simple as t; "
            "print(dist.is_initialized(), t.train_steps, t.device_type)")
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False 3250 cuda"
    assert os.listdir(tmp_path) == []  # no logs/, no checkpoints/, nothing


# -----------------------------------------------------------------------------
# the same math for any number of ranks and microbatches


WS_STEPS = 6


@pytest.fixture(scope="module")
def world_runs(data, tmp_path_factory):
    """Trial 1 as the script is (bf16), trial 2 in float32, for 1, 2 and 4 ranks; same SEED."""
    runs = {}
    for w in (1, 2, 4):
        runs[w] = launch(data, tmp_path_factory.mktemp(f"w{w}"), w, WS_STEPS, 2, ti.bf16_then_fp32)
    return runs


def max_param_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def relative_to_update(trial, base):
    """Per parameter ||p - p_base|| / ||p_base - p_init||: the difference as a fraction of what
    training changed (both runs start from the same init); the worst and the median parameter."""
    ratios = sorted(((trial["params"][n].double() - p.double()).norm() / (p.double() - base["init"][n].double()).norm()).item()
                    for n, p in base["params"].items())
    return ratios[-1], ratios[len(ratios) // 2]


# Tolerances, from measurements on this CPU (6 steps, SEED 1234), world size 2 / 4 / micro 8 against 1:
# - trial 1, bf16 as the script runs: val loss differences 1e-5 / 0 / 1.1e-4; parameter differences
#   (relative to the training update) worst 0.08 / 0.19 / 0.25, median 0.005 / 0.006 / 0.015. bf16
#   gradient sums in a different order, amplified by Adam's sign-like updates of near-zero gradients
#   (lr 0.7 on the embedding) and by bf16 Newton-Schulz. A wrong rank slice or update gives ~1.
# - trial 2, all float32 (embed and Newton-Schulz): val losses equal to the printed 5 decimals;
#   max abs parameter difference 2.0e-6 / 1.7e-6 / 2.1e-6, relative to the update worst 1e-5 / 2e-5 / 5e-5.
BF16 = dict(loss=5e-4, worst=0.5, median=0.05)
FP32 = dict(loss=1.5e-5, abs=2e-5, worst=5e-4)


def check_equivalent(label, results, log, base_results, base_log):
    vals, base_vals = val_trials(log), val_trials(base_log)
    assert [[s for s, _, _ in t] for t in vals] == [[s for s, _, _ in t] for t in base_vals] == [[0, WS_STEPS]] * 2
    assert vals[0][0] == base_vals[0][0]  # step 0: the same init and val data, whatever the split
    trials, base_trials = results[0]["trials"], base_results[0]["trials"]
    for t, tol in enumerate((BF16, FP32)):
        assert max_param_diff(trials[t]["init"], base_trials[t]["init"]) == 0
        loss_diff = max(abs(a[2] - b[2]) for a, b in zip(vals[t], base_vals[t]))
        worst, median = relative_to_update(trials[t], base_trials[t])
        abs_diff = max_param_diff(trials[t]["params"], base_trials[t]["params"])
        print(f"{label} trial {t + 1}: val loss diff {loss_diff:.1e}, param diff {abs_diff:.1e} abs, "
              f"relative to the update: worst {worst:.1e} median {median:.1e}")
        assert loss_diff <= tol["loss"], (label, t, loss_diff)
        assert worst <= tol["worst"] and median <= tol.get("median", 1), (label, t, worst, median)
        assert abs_diff <= tol.get("abs", 1), (label, t, abs_diff)


def test_every_rank_ends_with_the_same_model(world_runs):
    for w, (results, _) in world_runs.items():
        for r in results[1:]:
            for t in range(2):
                assert max_param_diff(r["trials"][t]["params"], results[0]["trials"][t]["params"]) == 0, (w, t)


def test_fp32_instrument_takes_effect(world_runs):
    results, _ = world_runs[1]
    assert results[0]["trials"][0]["params"]["embed.weight"].dtype == torch.bfloat16
    assert results[0]["trials"][1]["params"]["embed.weight"].dtype == torch.float32


@pytest.mark.parametrize("world_size", [2, 4])
def test_world_size_equivalence(world_runs, world_size):
    results, log = world_runs[world_size]
    check_equivalent(f"world size {world_size}", results, log, *world_runs[1])
    # training moved the parameters, so the equal results say something
    trial = world_runs[1][0][0]["trials"][1]
    assert trial["params"]["blocks.0.attn.proj.weight"].abs().max() > 1e-3  # zero at init


def expected_owners(params, world_size):
    """The MatrixOptimizer docstring: each block matrix's cost is m n min(m, n) (Newton-Schulz); largest cost
    first (model order among equals), each goes to the least-loaded rank (the lowest among equals)."""
    names = [n for n, p in params.items() if n.startswith("blocks.") and p.ndim == 2]
    # Muon's param groups are its shapes, sorted: the optimizer's order of the matrices
    names = [n for shape in sorted({tuple(params[n].shape) for n in names}) for n in names
             if tuple(params[n].shape) == shape]
    cost = {n: params[n].shape[0] * params[n].shape[1] * min(params[n].shape) for n in names}
    load, owners = [0] * world_size, {}
    for n in sorted(names, key=lambda n: -cost[n]):
        owners[n] = min(range(world_size), key=lambda r: (load[r], r))
        load[owners[n]] += cost[n]
    return owners


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_muon_state_is_sharded(world_runs, world_size):
    results, _ = world_runs[world_size]
    params = results[0]["trials"][0]["params"]
    owners = expected_owners(params, world_size)
    assert len(owners) == 2 * 6
    adam_names = {n for n in params if n not in owners}
    held = []
    for rank, r in enumerate(results):
        for trial in r["trials"]:
            muon_state, adam_state = trial["states"]
            mine = {n for n, o in owners.items() if o == rank}
            assert set(muon_state) == mine, (rank, sorted(muon_state))
            assert all(st == {"momentum_buffer": params[n].numel()} for n, st in muon_state.items())
            # AdamW is not sharded: every rank keeps both moments of every AdamW parameter
            assert set(adam_state) == adam_names
            assert all(st["exp_avg"] == st["exp_avg_sq"] == params[n].numel() for n, st in adam_state.items())
        held.append(set(r["trials"][0]["states"][0]))
    assert set().union(*held) == set(owners) and sum(map(len, held)) == len(owners)
    if world_size == 2:  # 2 layers: each rank one of each wide shape and 4 of the 8 square matrices
        assert held[0] == {"blocks.0.mlp.proj.weight", "blocks.0.mlp.fc.weight", "blocks.0.attn.q.weight",
                           "blocks.0.attn.v.weight", "blocks.1.attn.q.weight", "blocks.1.attn.v.weight"}


def test_optimizer_without_owner_gets_summed_gradients(data, tmp_path):
    """AdamW over every parameter (no `owner`): main() all-reduces every gradient, so 2 ranks
    train as 1 does (float32; measured max parameter difference 1e-7)."""
    runs = [launch(data, tmp_path / f"w{w}", w, WS_STEPS, 1, ti.adamw_everywhere_fp32) for w in (1, 2)]
    (one, log1), (two, log2) = runs
    assert val_trials(log1)[0][0] == val_trials(log2)[0][0]
    trained = max_param_diff(one[0]["trials"][0]["params"], one[0]["trials"][0]["init"])
    assert trained > 1e-2  # AdamW moved every matrix by ~lr per step
    assert max_param_diff(two[0]["trials"][0]["params"], one[0]["trials"][0]["params"]) < 1e-5
    # every parameter changed, vectors included (a vector left out of the bucket would differ between ranks)
    assert all(not torch.equal(p, one[0]["trials"][0]["init"][n]) for n, p in two[0]["trials"][0]["params"].items())
    assert max_param_diff(two[1]["trials"][0]["params"], two[0]["trials"][0]["params"]) == 0


def test_microbatch_equivalence(data, tmp_path, world_runs):
    """micro_batch_seqs 8 (one pass per step) against 1 (eight passes): the same training."""
    base_results, base_log = world_runs[1]  # micro_batch_seqs 1
    results, log = launch(data, tmp_path, 1, WS_STEPS, 2, ti.bf16_then_fp32, micro_batch_seqs=8)
    assert "micro_batch_seqs 8" in log and "micro_batch_seqs 1" in base_log
    check_equivalent("micro 8 vs 1", results, log, base_results, base_log)


# -----------------------------------------------------------------------------
# seeds


def test_seed_replay(data, tmp_path):
    both, log2 = launch(data, tmp_path / "two", 1, WS_STEPS, 2)
    second, log_b = launch(data, tmp_path / "b", 1, WS_STEPS, 1, seed=SEED + 1)
    first, log_a = launch(data, tmp_path / "a", 1, WS_STEPS, 1, seed=SEED)
    assert f"trial 1/2 seed {SEED}\n" in log2 and f"trial 2/2 seed {SEED + 1}\n" in log2
    assert f"trial 1/1 seed {SEED + 1}\n" in log_b
    t2 = val_trials(log2)
    assert t2 == val_trials(log_a) + val_trials(log_b)  # identical val losses, trial by trial
    assert t2[0] != t2[1]
    assert max_param_diff(both[0]["trials"][0]["params"], first[0]["trials"][0]["params"]) == 0
    assert max_param_diff(both[0]["trials"][1]["params"], second[0]["trials"][0]["params"]) == 0


def test_capture_model_returns_each_trials_final_parameters(data, tmp_path):
    """tools.tiny.capture_model promises "the final parameters of each trial's model"."""
    results, _ = launch(data, tmp_path, 1, 3, 2, ti.capture_and_track)
    captured, tracked = results[0]["params"], [t["params"] for t in results[0]["trials"]]
    assert len(captured) == 2
    assert max_param_diff(tracked[0], tracked[1]) > 0  # two seeds, two different models
    assert max_param_diff(captured[1], tracked[1]) == 0
    assert max_param_diff(captured[0], tracked[0]) == 0, "trial 1's entry holds trial 2's parameters"


# -----------------------------------------------------------------------------
# whole runs through main(): the log


E2E_STEPS = 151  # val at 0 and 125 (every 125 below 90%), 150 (every 25 from 135.9 on), 151 (last)


@pytest.fixture(scope="module")
def e2e(data, tmp_path_factory):
    return launch(data, tmp_path_factory.mktemp("e2e"), 2, E2E_STEPS, 2, micro_batch_seqs=None)


def test_val_cadence_formula():
    assert spec_val_steps(E2E_STEPS) == [0, 125, 150, 151]
    assert spec_val_steps(3250) == list(range(0, 2925, 125)) + list(range(2925, 3251, 25))
    assert spec_val_steps(40) == [0, 40]


def test_log_starts_with_the_script(e2e):
    _, text = e2e
    with open(SCRIPT) as f:
        code = f.read()
    lines = text.split("\n")
    first_sep = lines.index(SEP)
    assert "\n".join(lines[:first_sep]) + "\n" == code + "\n"
    assert text.startswith(code + "\n" + SEP + "\n")
    assert re.fullmatch(r"PyTorch \S+ \| CUDA \S+ \| device cpu \| world_size 2 \| micro_batch_seqs 4",
                        lines[first_sep + 1]), lines[first_sep + 1]
    assert lines[first_sep + 2] == SEP
    # nothing in the printed script looks like a val line to the public tools
    assert not any(VAL.search(line) for line in code.splitlines())


def test_log_lines_of_two_trials(e2e):
    _, text = e2e
    lines = text.split("\n")
    body = lines[lines.index(SEP) + 3:]
    assert body[-1] == ""
    body = body[:-1]
    expected = spec_val_steps(E2E_STEPS)
    i = 0
    finals = []
    for trial in (1, 2):
        tag = f"trial {trial}/2"
        assert body[i] == f"{tag} seed {SEED + trial - 1}"
        i += 1
        last_time, reached = 0.0, None
        for step in expected:
            m = VAL_LINE.fullmatch(body[i])
            assert m, body[i]
            assert (int(m.group(1)), int(m.group(2))) == (step, E2E_STEPS)
            loss, train_time, avg = float(m.group(3)), float(m.group(4)), float(m.group(5))
            assert 1.1 < loss < 6.0  # the synthetic stream's entropy floor is 1.110 (tools.tiny)
            assert train_time >= last_time
            # train_time is printed to 0.0005 s, step_avg to 0.005 ms: all that the two printed numbers can promise
            # (at step 0 a 0.05 ms step_avg next to train_time 0.000s is right: the time was 0.00005 s)
            assert avg == pytest.approx(1000 * train_time / max(step, 1), abs=1000 * 0.0005 / max(step, 1) + 0.005 + 1e-9)
            last_time = train_time
            reached = step if reached is None and loss <= 3.28 else reached
            i += 1
        # the synthetic stream can be learned below 3.28: the target line names the first val step at or below it
        assert reached is not None and body[i] == f"{tag} target val_loss<=3.28 first reached at step {reached}"
        m = re.fullmatch(rf"{tag} summary: steps {E2E_STEPS} final_val_loss (\d+\.\d{{5}}) train_time (\d+\.\d{{3}})s "
                         rf"step_avg (\d+\.\d\d)ms peak_mem 0\.0GiB seed {SEED + trial - 1}", body[i + 1])
        assert m, body[i + 1]
        assert m.group(1) == VAL_LINE.fullmatch(body[i - 1]).group(3)
        finals.append(float(m.group(1)))
        i += 2
    assert i == len(body)
    # the public reading: split at step 0 into two trials with the expected steps
    trials = val_trials(text)
    assert [[s for s, _, _ in t] for t in trials] == [expected, expected]
    assert all(total == E2E_STEPS for t in trials for _, total, _ in t)
    assert [t[-1][2] for t in trials] == finals


NAN_STEPS, NAN_AT = 20, 5


@pytest.fixture(scope="module")
def nan_run(data, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.delenv("SEED", raising=False)  # rank 0 draws the seed and broadcasts it
    instrument = partial(ti.nan_loss, trial=0, step=NAN_AT, rank=0)
    return launch(data, tmp_path_factory.mktemp("nan"), 2, NAN_STEPS, 2, instrument, seed=None)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_nan_stops_the_trial_and_the_next_trial_runs(nan_run):
    results, text = nan_run
    body = text.split("\n")[text.split("\n").index(SEP) + 3:-1]
    seed = int(re.fullmatch(r"trial 1/2 seed (\d+)", body[0]).group(1))
    assert VAL_LINE.fullmatch(body[1]).group(1) == "0"
    assert body[2] == f"trial 1/2 stopped: training loss is nan or inf at step {NAN_AT}; going on with the next trial"
    assert body[3] == "trial 1/2 target val_loss<=3.28 not reached"
    assert body[4].startswith(f"trial 1/2 summary: steps {NAN_AT + 1} final_val_loss ")
    assert body[5] == f"trial 2/2 seed {seed + 1}"
    assert [VAL_LINE.fullmatch(line).group(1) for line in body[6:8]] == ["0", str(NAN_STEPS)]
    assert body[8] == "trial 2/2 target val_loss<=3.28 not reached"
    assert body[9].startswith(f"trial 2/2 summary: steps {NAN_STEPS} final_val_loss ")
    assert len(body) == 10
    assert [[s for s, _, _ in t] for t in val_trials(text)] == [[0], [0, NAN_STEPS]]
    # only rank 0's loss was poisoned (at the step and the one that runs before its flag is read),
    # yet both ranks stopped together; then trial 2 re-initialized both to the same finite model
    assert results[0]["poisoned_steps"] == {NAN_AT, NAN_AT + 1} and "poisoned_steps" not in results[1]
    for r in results:
        assert len(r["trials"]) == 2
        assert not all(torch.isfinite(p).all() for p in r["trials"][0]["params"].values())
        assert all(torch.isfinite(p).all() for p in r["trials"][1]["params"].values())
    assert max_param_diff(results[0]["trials"][1]["params"], results[1]["trials"][1]["params"]) == 0


STEP_LINE = re.compile(r"^step:(\d+)/(\d+) train_time:(\d+\.\d{3})s step_avg:(\d+\.\d{2})ms$")


def test_the_console_gets_a_line_per_step_and_the_log_does_not(tmp_path, data, capsys):
    """The public script's per-step console line, step_avg = training time so far / steps done; the log holds the
    header, the trial lines and the val lines only, as before the console line (tools parse logs with
    step:(\\d+)/(\\d+)\\s+val_loss:, which the per-step line does not match)."""
    over = overrides(data, str(tmp_path), 13, micro_batch_seqs=4)
    assert tiny.run(SCRIPT, 1, over, 2, None, env=dict(SEED="3", RESUME=""))[0]["error"] is None
    console = capsys.readouterr().out.splitlines()
    steps = [m for m in map(STEP_LINE.match, console) if m]
    assert [(int(m[1]), int(m[2])) for m in steps] == [(k, 13) for k in range(1, 14)] * 2  # two trials
    for m in steps:  # train_time rounds to 1 ms, so step_avg is within 0.5 ms / steps of 1000 train_time / steps
        assert abs(float(m[4]) - 1000 * float(m[3]) / int(m[1])) <= 0.5 / int(m[1]) + 0.005, m[0]
    assert not any(re.search(r"step:(\d+)/(\d+)\s+val_loss:", m[0]) for m in steps)
    (log,) = [os.path.join(over["log_dir"], f) for f in os.listdir(over["log_dir"])]
    text = open(log).read()
    body = text[len(open(SCRIPT).read()) + 1:].splitlines()
    assert body[0] == "=" * 100 and body[1].startswith("PyTorch ") and body[2] == "=" * 100
    val = re.compile(r"^step:(\d+)/13 val_loss:\d+\.\d{5} train_time:\d+\.\d{3}s step_avg:\d+\.\d{2}ms$")
    kinds = ["val" if val.match(line) else line.split(" ", 2)[2].split(" ")[0] for line in body[3:]]
    assert kinds == (["seed", "val", "val", "target", "summary:"] * 2), kinds  # steps 0 and 13 of each trial
    echoed = [line for line in console if not STEP_LINE.match(line) and not line.startswith("logging to ")]
    assert echoed == [body[1]] + body[3:]  # the console echoes the log's lines, less the script and the rules


def test_frozen_biases_and_gains_train_on_two_ranks(data, tmp_path):
    """With no vector gradient at all (every bias and gain frozen) the all-reduce of the non-sharded gradients has
    no vector bucket: the run trains on 2 ranks and the frozen values stay as they were."""
    results, log = launch(data, str(tmp_path), 2, 4, instrument=ti.frozen_vectors)
    assert [r["vectors_moved"] for r in results] == [False, False]
    assert "trial 1/1 summary: steps 4 " in log
