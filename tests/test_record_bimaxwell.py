"""records/20260713_bimaxwell/train_gpt_simple.py is open public PR #339's method (record #46's with Bi-Maxwell
momentum from step 1000): its optimizers, schedules, lookahead, tail EMA and readout equal a direct implementation of
the PR's script (tests/record339_reference.py, one matrix at a time) step for step; its Muon is the harness's MatrixOptimizer
machinery with the record's math in update(), and gives the same bits on 1, 2 and 4 ranks; its state resumes exactly
from a checkpoint; its init is the record's; outside its three sections it is the harness's script."""
import functools
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

import record339_reference as ref
import record_instruments as ri
from tools import tiny
from tools_logtext import ROOT

RECORD = os.path.join(ROOT, "records", "20260713_bimaxwell", "train_gpt_simple.py")
PUBLIC_LOG = os.path.join(os.path.dirname(RECORD), "public_logs", "A800_seed0.txt")
rec = tiny.load_script(RECORD, "record339_port")
# training steps of the comparison: every phase of the schedules (lookahead from 300 to 1949, trust floor fading
# over 1375..1625, Bi-Maxwell from 1000, PowerCool, the momentum cooldown after 2700, the tail EMA after step 2399)
STEPS = [0, 1, 2, 299, 300, 301, 999, 1000, 1001, 1002, 1400, 1500, 1624, 1625, 1948, 1949, 1950, 2398, 2399, 2400,
         2750, 2898, 2899]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tiny tensors run faster, and the 2 shared cores are not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_at_a_time(newton_schulz):
    """newton_schulz applied to each matrix of a stack alone. A bfloat16 matmul of a stack rounds a rare element one
    bfloat16 step off the same matmul of one matrix (another kernel; test_batched_newton_schulz_within_rounding), and
    the reference is one matrix at a time: with this, the rest of the port can be compared bit for bit."""
    return lambda G: torch.stack([newton_schulz(g[None])[0] for g in G])


def compare(steps, readout_steps=(), layers=2, dim=16):
    """Run the port (the harness's call order: before_forward, gradients, set_hparams, every optimizer's step,
    after_step) and the reference side by side on tiny_stack(2) with the same random gradients. Returns the first
    (step, what) that differs, or None. Everything is batched as in a run but Newton-Schulz (one_at_a_time)."""
    model = ri.tiny_stack(rec, layers=layers, dim=dim)
    optimizers = rec.make_optimizers(model)
    optimizers[0].newton_schulz = one_at_a_time(optimizers[0].newton_schulz)
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["initial_lr"] = group["lr"]  # as main() does
    reference, state = ref.Record339(model.named_parameters()), {}
    gen = torch.Generator().manual_seed(3)
    for step in steps:
        rec.before_forward(step, model, optimizers, state)
        grads = {n: (torch.randn(p.shape, generator=gen) * 0.1).to(p.dtype) for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()
        rec.set_hparams(step, optimizers, state)  # Muon's group["step"] too: the trust gate follows the schedule
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        rec.after_step(step, model, optimizers, state)
        lrs = reference.step(step, grads)
        lr_muon, lr_head = optimizers[0].param_groups[0]["lr"], optimizers[1].param_groups[1]["lr"]
        differ = [] if (lr_muon, lr_head) == (lrs["muon"], lrs["head"]) else ["lr"]
        differ += [n for n, p in model.named_parameters() if not torch.equal(p, reference.w[n])]
        differ += [f"lookahead buffer {n}" for n, b in zip(reference.names, state["lookahead"])
                   if not torch.equal(b, reference.buf[n])]
        if (reference.ema is None) != ("tail_ema" not in state):
            differ.append("the tail EMA starts at another step")
        elif reference.ema is not None:
            differ += [f"tail EMA {n}" for n, e in reference.ema.items() if not torch.equal(state["tail_ema"][n], e)]
        if step in readout_steps:
            differ += check_readout(model, state, reference)
        if differ:
            return step, differ
    return None


def check_readout(model, state, reference):
    """readouts() evaluates the reference's blended weights and puts the training weights back bit for bit."""
    before = {n: p.clone() for n, p in model.named_parameters()}
    seen = []
    def evaluate():
        seen.append({n: p.clone() for n, p in model.named_parameters()})
        return 3.25
    out = rec.readouts(2400, model, 3.5, evaluate, state)
    want = reference.readout_weights()
    problems = [] if all(torch.equal(p, before[n]) for n, p in model.named_parameters()) else ["weights not restored"]
    if want is None:
        return problems + ([] if out == {"val_ema_loss": 3.5} and not seen else [f"readout before the EMA: {out}"])
    if out != {"val_ema_loss": 3.25} or len(seen) != 1:
        return problems + [f"readout {out}, {len(seen)} evaluations"]
    return problems + [f"readout weights {n}" for n, w in want.items() if not torch.equal(seen[0][n], w)]


def test_every_step_equals_the_published_formulas_bitwise():
    assert compare(STEPS, readout_steps={2, 2399, 2400, 2899}) is None


def test_wider_matrices_equal_the_formulas_bitwise():
    """128 x 128 and 512 x 128 matrices. (At 256 two eigenvalue estimates of a basis refresh tie within rounding: the
    port's sum(Q * GQ) and the published diag(Qᵀ G Q), equal up to rounding, sort those columns differently; README.)"""
    assert compare([0, 1, 2, 3, 1000, 1001, 1500], layers=1, dim=128) is None


def test_batched_newton_schulz_within_rounding():
    """The port's Newton-Schulz of a stack equals one matrix at a time, but for bfloat16 rounding: one step of it in
    a rare element of one iteration, which the remaining iterations carry on (measured here: 1 of these 96 matrices,
    by 1.5e-5; 1 of 64 others by 0.002)."""
    gen = torch.Generator().manual_seed(4)
    for shape in ((64, 16, 16), (16, 16, 64), (16, 64, 16)):
        G = torch.randn(shape, generator=gen) * torch.logspace(-3, 1, shape[0])[:, None, None]
        batched, single = rec.newton_schulz(G), one_at_a_time(rec.newton_schulz)(G)
        assert batched.dtype == single.dtype == torch.bfloat16 and batched.shape == G.shape
        differ = (batched.float() - single.float()).abs().flatten(1).max(1).values
        assert differ.max().item() <= 1e-2 and (differ > 0).sum().item() <= shape[0] // 8, differ
        assert torch.equal(single[1], rec.newton_schulz(G[1]))  # one at a time is the 2-D call


# A port that is wrong in one constant or one formula differs from the reference: the comparison has the power
# to tell. (steps: the shortest sequence that reaches the changed piece)
MUTANTS = [
    ("cautious_wd", 0.02, [0]), ("row_floor", 0.36, [0]), ("radial_outward", 0.6, [0]), ("radial_inward", 0.9, [0]),
    ("soap_beta2", 0.95, [0, 1, 2]), ("soap_denom_power", 0.45, [0, 1]), ("trust_cap", 0.9, [0, 1, 2, 3]),
    ("trust_min_agree", 0.3, [0, 1]), ("lookahead_scale", 0.25, [0, 300, 301]), ("lookahead_ema", 0.98, [0, 300, 301]),
    ("lookahead_rest", 951, [0, 1948, 1949]), ("tail_ema_tau", 140, [2398, 2399, 2400]),
    ("tail_ema_start", 2401, [2398, 2399]), ("lr_cool_power", 1.19, [1500]),
    ("bimaxwell_start", 1001, [999, 1000, 1001]), ("bimaxwell_fast", 0.86, [1000, 1001]),
    ("bimaxwell_slow", 0.97, [1000, 1001]), ("bimaxwell_weight", 0.44, [1000, 1001]),
]


@pytest.mark.parametrize("name, value, steps", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_a_changed_constant_is_caught(monkeypatch, name, value, steps):
    monkeypatch.setattr(rec, name, value)
    assert compare(steps) is not None


def test_trust_gate_bounds_and_fade():
    """The gate per attn.proj matrix, batched, against the formula per matrix, over inputs whose raw gate covers
    [0, 1] (below the floor, between, above the cap), at every phase of the floor and the cap."""
    gen = torch.Generator().manual_seed(5)
    raw, noise, grad = (torch.randn(24, 8, 12, generator=gen) for _ in range(3))
    soap = raw * torch.linspace(-1, 3, 24)[:, None, None] + noise
    grad = grad + raw * torch.linspace(3, 0, 24)[:, None, None]
    gates = {}
    for t in (0, 1374, 1375, 1400, 1500, 1624, 1625, 2000):
        gates[t] = rec.trust_gate(raw, soap, grad, t)
        want = torch.stack([ref.gate(raw[i], soap[i], grad[i], t) for i in range(24)])
        assert torch.equal(gates[t], want), t
    f32 = lambda x: torch.tensor(x).item()  # noqa: E731
    assert gates[0].min().item() == f32(0.45) and gates[0].max().item() == f32(0.85)
    assert (gates[0] - 0.6).abs().min() < 0.1  # some in between
    assert gates[1500].min().item() == f32(0.45 * (1625 - 1500) / 250) and gates[1500].max().item() == f32(0.85)
    assert gates[2000].min().item() == 0.0 and gates[2000].max().item() > 0.85  # no floor, no cap


def test_schedules():
    """PowerCool per group, the momentum schedule, and the val steps, at every step of the run."""
    with torch.device("meta"):
        model = rec.GPT(50304, 12, 768)
    optimizers = rec.make_optimizers(model)
    groups = [g for opt in optimizers for g in opt.param_groups]
    for group in groups:
        group["initial_lr"] = group["lr"]
    kinds = ["muon"] * 3 + ["embed", "head"] + ["aux"] * 3
    initial = dict(muon=ref.MUON_LR, embed=ref.ADAM_EMBED_LR, head=ref.ADAM_HEAD_LR, aux=ref.AUX_LR)
    flat_until = {}
    for step in range(rec.train_steps):
        rec.set_hparams(step, optimizers, {})
        for group, kind in zip(groups, kinds):
            assert group["lr"] == ref.lr_at(step, initial[kind], ref.POWER_C[kind]), (step, kind)
            if group["lr"] == initial[kind]:
                flat_until[kind] = step
        for group in optimizers[0].param_groups:
            assert group["mu"] == ref.mu_at(step) and group["step"] == step
    # the public README: Muon's lr is flat until about step 514, the Adam lrs until about 1487
    assert flat_until["muon"] == 513 and flat_until["embed"] == flat_until["aux"] == 1487
    assert [ref.mu_at(s) for s in (0, 150, 300, 2700, 2800, 2899)] == pytest.approx([0.85, 0.9, 0.95, 0.95, 0.9, 0.8505])
    # the val steps of the PR's 16 published logs (their step:.../2900 lines)
    dense = list(range(2500, 2801, 5)) + [2810, 2820, 2830, 2840, 2850, 2860, 2870, 2880, 2890, 2895, 2900]
    assert [s for s in range(rec.train_steps + 1) if rec.is_val_step(s)] == sorted({*range(125, 2901, 125), *dense})
    logged = [int(line.split()[0][5:].split("/")[0]) for line in open(PUBLIC_LOG) if line.startswith("step:")]
    assert logged == [s for s in range(rec.train_steps + 1) if rec.is_val_step(s)]


def test_optimizer_groups_of_the_real_model():
    with torch.device("meta"):
        model = rec.GPT(50304, 12, 768)
    muon, adam, aux = rec.make_optimizers(model)
    names = {p: n for n, p in model.named_parameters()}
    groups = [(g["blend"], sorted(re.sub(r"blocks\.\d+\.", "", names[p]) for p in g["params"])) for g in muon.param_groups]
    assert groups == [("full", ["attn.k.weight"] * 12 + ["attn.q.weight"] * 12 + ["attn.v.weight"] * 12),
                      ("trust", ["attn.proj.weight"] * 12), (None, ["mlp.fc.weight"] * 12 + ["mlp.proj.weight"] * 12)]
    # one rank owns every matrix: a stack per group and shape
    assert [(g, tuple(P[0].shape), len(P)) for g, P in muon.stacks] == \
        [(0, (768, 768), 36), (1, (768, 768), 12), (2, (768, 3072), 12), (2, (3072, 768), 12)]
    assert all(g["lr"] == 0.0375 and g["mu"] == 0.95 and g["power_c"] == 3.3169534699576625e-06 for g in muon.param_groups)
    assert [(names[g["params"][0]], g["lr"], g["power_c"]) for g in adam.param_groups] == \
        [("embed.weight", 0.3, 4.976805410800738e-05), ("proj.weight", 1 / 320, 5.184172302917436e-07)]
    assert adam.defaults["betas"] == (0.8, 0.99) and adam.defaults["eps"] == 1e-10 and adam.defaults["weight_decay"] == 0
    kinds = [sorted({re.sub(r"blocks\.\d+\.", "", names[p]) for p in g["params"]}) for g in aux.param_groups]
    assert kinds == [["norm1.gains", "norm2.gains"],
                     ["attn.k.bias", "attn.q.bias", "attn.v.bias", "mlp.fc.bias", "mlp.proj.bias", "proj.bias"],
                     ["attn.proj.bias"]]
    assert [len(g["params"]) for g in aux.param_groups] == [26, 61, 12]
    assert [g["betas"] for g in aux.param_groups] == [(0.8, 0.99), (0.8, 0.997), (0.8, 0.9965)]
    assert all(g["lr"] == 0.01 and g["eps"] == 1e-10 and g["power_c"] == 1.6589351369335795e-06 for g in aux.param_groups)
    every = [p for opt in (muon, adam, aux) for g in opt.param_groups for p in g["params"]]
    assert len(every) == len(set(every)) == len(list(model.parameters()))


@pytest.fixture(scope="module")
def sharded():
    steps = (0, 1, 2, 1000, 1001, 1500)  # Bi-Maxwell's first step (its momenta = m) and its second
    return {w: tiny.run(RECORD, w, {}, instrument=functools.partial(ri.sharded_muon, layers=3, steps=steps),
                        start_method="fork") for w in (1, 2, 4)}


def test_sharded_muon_gives_the_same_bits_on_1_2_and_4_ranks(sharded):
    ri.assert_the_same_bits_on_1_2_and_4_ranks(sharded)


def test_init_is_the_records():
    torch.manual_seed(11)
    model = rec.GPT(64, 12, 256)  # 2 heads of 128: the paired CGI layers 6..11 draw per head
    rec.init_params(model)
    named = dict(model.named_parameters())
    for n, p in named.items():
        if "proj" in n:
            assert not p.any(), n
    assert 0.97 < named["embed.weight"].float().std().item() < 1.03
    assert torch.equal(named["norm1.gains"], torch.ones(256)) and torch.equal(named["norm2.gains"], torch.ones(256))
    bound = 1 / 16  # torch's default for a Linear of fan_in 256
    for i, block in enumerate(model.blocks):
        scale = 1.0 - 0.30 * i / 11
        for layer, s in ((block.attn.q, 1.0), (block.attn.k, 1.0), (block.attn.v, 1.0), (block.mlp.fc, scale)):
            for w, b in ((layer.weight, s * bound), (layer.bias, bound)):
                assert b * 0.97 < w.abs().max().item() <= b, (i, layer)
                assert abs(w.std().item() - b / math.sqrt(3)) < 0.05 * b, (i, layer)
        g1, g2 = block.norm1.gains, block.norm2.gains
        s = (1 - g1) / 0.125
        assert torch.equal(g1, 1.0 - 0.125 * s.round()) and torch.equal(g2, 1.0 + 0.125 * s.round())
        assert set(s.round().tolist()) == {-1.0, 1.0}
    # layers 6..11: pairs whose head sums cancel, drawn as the public script draws them
    for first in (6, 8, 10):
        a, b = ((1 - model.blocks[i].norm1.gains) / 0.125 for i in (first, first + 1))
        assert torch.equal(a.view(2, 128).sum(1), -b.view(2, 128).sum(1))
        gen = torch.Generator().manual_seed(0xA9170000 + 11 * 1009 + first * 9176)
        for h in range(2):
            plus = int(round(64 + 0.5 * (int((torch.randint(0, 2, (128,), generator=gen) * 2 - 1 > 0).sum()) - 64)))
            for count, got in ((plus, a), (128 - plus, b)):
                want = torch.cat([torch.ones(count), -torch.ones(128 - count)])[torch.randperm(128, generator=gen)]
                assert torch.equal(got[128 * h:128 * (h + 1)], want), (first, h)


def test_the_optimizer_machinery_is_the_harness_verbatim():
    ri.assert_the_optimizer_machinery_is_the_harness_verbatim(rec, "harness_for_record339")


def test_rmsnorm_in_float32():
    """The record's one precision change: RMSNorm computed in float32 and cast back."""
    norm = rec.RMSNorm(16)
    with torch.no_grad():
        norm.gains.copy_(torch.linspace(0.5, 1.5, 16))
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(2)).bfloat16()
    assert torch.equal(norm(x), (F.rms_norm(x.float(), (16,)) * norm.gains).bfloat16())


def test_outside_its_two_sections_the_record_is_the_harness_script():
    ri.assert_the_record_is_the_harness_outside_its_sections(RECORD)


# -----------------------------------------------------------------------------
# resume through main(): the lookahead and the tail EMA (and Muon's sharded state) survive a checkpoint exactly

RUN = dict(train_steps=30, lookahead_start=4, lookahead_rest=5, tail_ema_start=12, tail_ema_end=28, bimaxwell_start=6,
           is_val_step=ri.val_every_5)  # lookahead over steps 4..24, tail EMA after steps 11..26, Bi-Maxwell from 6
STOP_AT = 21  # SIGTERM in the forward of step 20: the state after step 21 is saved, the run resumes at 22
VAL_RE = re.compile(r"^step:(\d+)/30 val_loss:(\d+\.\d{5}) val_ema_loss:(\d+\.\d{5}) train_time:")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return ri.ResumeRuns(RECORD, tmp_path_factory.mktemp("record339"), RUN, STOP_AT)


@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_ends_exactly_like_the_uninterrupted_run(runs, world_size):
    whole, whole_log, _ = runs.whole(world_size)
    stopped_log, saved, resumed, log = runs.resumed(world_size)
    assert saved["step"] == STOP_AT + 1 and set(saved["state"]) == {"lookahead_prev", "lookahead", "tail_ema"}
    assert any(t.abs().sum() > 0 for t in saved["state"]["lookahead"])
    assert "trial 1/1 stopped by signal 15 at step 22;" in stopped_log
    muon_state = saved["optimizers"][0]["state"]
    assert len(muon_state) == 12 and all(set(s) == set(rec.Muon.state_keys) for s in muon_state.values())
    for rank in range(world_size):
        assert resumed[rank]["error"] is None, resumed[rank]["error"]
        final, reference = resumed[rank]["params"][-1], whole[0]["params"][0]
        assert all(torch.equal(final[k], reference[k]) for k in reference), rank
    lines = [m.groups() for m in map(VAL_RE.match, whole_log.splitlines()) if m]
    assert [int(s) for s, *_ in lines] == [0, 5, 10, 15, 20, 25, 30]
    assert all(ema == val for s, val, ema in lines if int(s) <= 10)  # before the tail EMA: the readout is val_loss
    assert all(ema != val for s, val, ema in lines if int(s) >= 15)
    assert [m.groups() for m in map(VAL_RE.match, log.splitlines()) if m] == lines  # val_ema_loss included
